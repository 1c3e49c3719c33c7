package webhook

import (
	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/corsmesh/corsmesh/injector"
)

// SetupControllers registers the controllers with the manager.
func SetupControllers(mgr manager.Manager, in *injector.Injector, cluster *CacheCluster, log logr.Logger) error {
	return nil
}
