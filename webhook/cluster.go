package webhook

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
	configv1alpha2 "github.com/corsmesh/corsmesh/injector/api/config/v1alpha2"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

// IndexPluginConfigDestination indexes PluginConfigs by the "namespace/name" of each
// Service they name, so admission finds a Service's configs without scanning them all.
const IndexPluginConfigDestination = "spec.destinationRefs.service"

// CacheCluster is the injector's view of the cluster, read from the manager's informer
// cache: admission makes no API call except for a namespace the cache does not know yet
// (created a moment ago), which is read live.
type CacheCluster struct {
	Cache client.Reader
	Live  client.Reader
}

var _ injector.Cluster = (*CacheCluster)(nil)

func (c *CacheCluster) Namespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	var ns corev1.Namespace
	err := c.Cache.Get(ctx, types.NamespacedName{Name: name}, &ns)
	if apierrors.IsNotFound(err) && c.Live != nil {
		err = c.Live.Get(ctx, types.NamespacedName{Name: name}, &ns)
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("getting namespace %s: %w", name, err)
	}
	return &ns, nil
}

// The lists below skip the cache's deep copy: the injector only reads them, and copying
// thousands of Services on every admission would dominate its cost.

func (c *CacheCluster) Services(ctx context.Context, namespace string) ([]*corev1.Service, error) {
	var list corev1.ServiceList
	if err := c.Cache.List(ctx, &list, client.InNamespace(namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing Services: %w", err)
	}
	return pointers(list.Items), nil
}

func (c *CacheCluster) PluginChains(ctx context.Context) ([]*v1alpha1.PluginChain, error) {
	var list v1alpha1.PluginChainList
	if err := c.Cache.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing PluginChains: %w", err)
	}
	return pointers(list.Items), nil
}

func (c *CacheCluster) PluginConfigsFor(ctx context.Context, namespace, service string) ([]*v1alpha1.PluginConfig, error) {
	var list v1alpha1.PluginConfigList
	if err := c.Cache.List(ctx, &list, client.MatchingFields{IndexPluginConfigDestination: namespace + "/" + service}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing PluginConfigs: %w", err)
	}
	return pointers(list.Items), nil
}

// Plugin returns nil when the Plugin does not exist, also when the cluster does not even
// have the Plugin CRD.
func (c *CacheCluster) Plugin(ctx context.Context, name string) (*v1alpha1.Plugin, error) {
	var p v1alpha1.Plugin
	err := c.Cache.Get(ctx, types.NamespacedName{Name: name}, &p)
	switch {
	case apierrors.IsNotFound(err), meta.IsNoMatchError(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("getting Plugin %s: %w", name, err)
	}
	return &p, nil
}

// MeshConfig returns nil when the MeshConfig does not exist, also when the cluster does not
// have its CRD (plugin policy is then off, osm-edge's default).
func (c *CacheCluster) MeshConfig(ctx context.Context, namespace, name string) (*configv1alpha2.MeshConfig, error) {
	var mc configv1alpha2.MeshConfig
	// Every admission reads it: the cache's object as it is, not a deep copy (read only).
	err := c.Cache.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &mc, client.UnsafeDisableDeepCopy)
	switch {
	case apierrors.IsNotFound(err), meta.IsNoMatchError(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("getting MeshConfig %s/%s: %w", namespace, name, err)
	}
	return &mc, nil
}

func pointers[T any](items []T) []*T {
	out := make([]*T, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}
