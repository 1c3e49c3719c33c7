package sandbox

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	configv1alpha2 "github.com/corsmesh/corsmesh/injector/api/config/v1alpha2"
)

// OSMNamespace is the guide's $osm_namespace: the namespace of the MeshConfig
// osm-mesh-config, corsmesh's own.
const OSMNamespace = WebhookNamespace

// SetPluginPolicy sets spec.featureFlags.enablePluginPolicy of MeshConfig osm-mesh-config,
// with the merge patch the guide's `kubectl patch meshconfig` sends.
func (s *Sandbox) SetPluginPolicy(ctx context.Context, on bool) error {
	mc := &configv1alpha2.MeshConfig{}
	mc.Namespace, mc.Name = OSMNamespace, configv1alpha2.MeshConfigName
	patch := fmt.Appendf(nil, `{"spec":{"featureFlags":{"enablePluginPolicy":%t}}}`, on)
	if err := s.Client.Patch(ctx, mc, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("setting enablePluginPolicy=%t in MeshConfig %s/%s: %w", on, OSMNamespace, configv1alpha2.MeshConfigName, err)
	}
	return nil
}
