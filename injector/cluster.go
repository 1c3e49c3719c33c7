package injector

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	configv1alpha2 "github.com/corsmesh/corsmesh/injector/api/config/v1alpha2"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

// Cluster is what the injector reads about the cluster. Implementations return shared
// objects that callers must not modify.
type Cluster interface {
	// Namespace returns the namespace, or nil if it does not exist.
	Namespace(ctx context.Context, name string) (*corev1.Namespace, error)
	// Services lists the Services of a namespace.
	Services(ctx context.Context, namespace string) ([]*corev1.Service, error)
	// PluginChains lists every PluginChain: a chain's own namespace does not limit which
	// pods it selects (as in osm-edge). The list may be shared: read it, never modify it.
	PluginChains(ctx context.Context) ([]*v1alpha1.PluginChain, error)
	// PluginConfigsFor lists the PluginConfigs whose destinationRefs name the Service.
	PluginConfigsFor(ctx context.Context, namespace, service string) ([]*v1alpha1.PluginConfig, error)
	// Plugin returns the cluster-scoped Plugin, or nil if it does not exist.
	Plugin(ctx context.Context, name string) (*v1alpha1.Plugin, error)
	// MeshConfig returns osm-edge's MeshConfig, or nil if it does not exist.
	MeshConfig(ctx context.Context, namespace, name string) (*configv1alpha2.MeshConfig, error)
}

// Objects is a Cluster held in memory: for corsmeshctl's offline injection and for tests.
type Objects struct {
	Namespaces  []*corev1.Namespace
	ServiceList []*corev1.Service
	Chains      []*v1alpha1.PluginChain
	Configs     []*v1alpha1.PluginConfig
	Plugins     []*v1alpha1.Plugin
	MeshConfigs []*configv1alpha2.MeshConfig
}

var _ Cluster = (*Objects)(nil)

func (o *Objects) Namespace(_ context.Context, name string) (*corev1.Namespace, error) {
	i := slices.IndexFunc(o.Namespaces, func(n *corev1.Namespace) bool { return n.Name == name })
	if i < 0 {
		return nil, nil
	}
	return o.Namespaces[i], nil
}

func (o *Objects) Services(_ context.Context, namespace string) ([]*corev1.Service, error) {
	var out []*corev1.Service
	for _, s := range o.ServiceList {
		if s.Namespace == namespace {
			out = append(out, s)
		}
	}
	return out, nil
}

func (o *Objects) PluginChains(context.Context) ([]*v1alpha1.PluginChain, error) {
	return o.Chains, nil
}

func (o *Objects) PluginConfigsFor(_ context.Context, namespace, service string) ([]*v1alpha1.PluginConfig, error) {
	var out []*v1alpha1.PluginConfig
	for _, c := range o.Configs {
		if RefersTo(c, namespace, service) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (o *Objects) Plugin(_ context.Context, name string) (*v1alpha1.Plugin, error) {
	i := slices.IndexFunc(o.Plugins, func(p *v1alpha1.Plugin) bool { return p.Name == name })
	if i < 0 {
		return nil, nil
	}
	return o.Plugins[i], nil
}

func (o *Objects) MeshConfig(_ context.Context, namespace, name string) (*configv1alpha2.MeshConfig, error) {
	i := slices.IndexFunc(o.MeshConfigs, func(m *configv1alpha2.MeshConfig) bool { return m.Namespace == namespace && m.Name == name })
	if i < 0 {
		return nil, nil
	}
	return o.MeshConfigs[i], nil
}

// RefersTo reports whether a PluginConfig names the Service among its destinations.
func RefersTo(c *v1alpha1.PluginConfig, namespace, service string) bool {
	return slices.Contains(DestinationKeys(c), namespace+"/"+service)
}

// DestinationKeys returns "namespace/name" of each Service a PluginConfig names (a
// destination without a namespace means the PluginConfig's own): the webhook indexes
// PluginConfigs by them.
func DestinationKeys(c *v1alpha1.PluginConfig) []string {
	var keys []string
	for _, ref := range c.Spec.DestinationRefs {
		if ref.Kind != "" && ref.Kind != v1alpha1.DestinationKindService {
			continue
		}
		ns := ref.Namespace
		if ns == "" {
			ns = c.Namespace
		}
		keys = append(keys, ns+"/"+ref.Name)
	}
	return keys
}

// Overlay returns the objects of local and those of remote that local does not replace
// (same kind, namespace and name): corsmeshctl's files over the cluster's objects.
func Overlay(local, remote *Objects) *Objects {
	return &Objects{
		Namespaces:  overlay(local.Namespaces, remote.Namespaces),
		ServiceList: overlay(local.ServiceList, remote.ServiceList),
		Chains:      overlay(local.Chains, remote.Chains),
		Configs:     overlay(local.Configs, remote.Configs),
		Plugins:     overlay(local.Plugins, remote.Plugins),
		MeshConfigs: overlay(local.MeshConfigs, remote.MeshConfigs),
	}
}

func overlay[T metav1.Object](local, remote []T) []T {
	key := func(o T) string { return o.GetNamespace() + "/" + o.GetName() }
	seen := map[string]bool{}
	out := make([]T, 0, len(local)+len(remote))
	for _, o := range local {
		seen[key(o)] = true
		out = append(out, o)
	}
	for _, o := range remote {
		if !seen[key(o)] {
			out = append(out, o)
		}
	}
	return out
}
