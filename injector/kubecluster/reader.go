// Package kubecluster reads the injector's view of a cluster through a controller-runtime
// client.Reader: corsmeshctl's --from-cluster and check read the API server with it, and the
// webhook reads what its informers do not index (the MeshConfig, a namespace created a
// moment ago).
package kubecluster

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
	configv1alpha2 "github.com/corsmesh/corsmesh/injector/api/config/v1alpha2"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

// Reader is the injector's view of the cluster read through a client.Reader. Objects or
// CRDs the cluster lacks read as absent. Lists skip the reader's deep copy: the injector
// only reads them.
type Reader struct {
	client.Reader
}

var _ injector.Cluster = Reader{}

func (c Reader) Namespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	return getOrNil[corev1.Namespace](ctx, c.Reader, types.NamespacedName{Name: name})
}

func (c Reader) Services(ctx context.Context, namespace string) ([]*corev1.Service, error) {
	var list corev1.ServiceList
	if err := c.List(ctx, &list, client.InNamespace(namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing Services: %w", err)
	}
	return pointers(list.Items), nil
}

func (c Reader) PluginChains(ctx context.Context) ([]*v1alpha1.PluginChain, error) {
	var list v1alpha1.PluginChainList
	if err := c.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil && !meta.IsNoMatchError(err) {
		return nil, fmt.Errorf("listing PluginChains: %w", err)
	}
	return pointers(list.Items), nil
}

func (c Reader) PluginConfigsFor(ctx context.Context, namespace, service string) ([]*v1alpha1.PluginConfig, error) {
	// No field index: a plain client has none, and the webhook reads its informers' own.
	var list v1alpha1.PluginConfigList
	if err := c.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil && !meta.IsNoMatchError(err) {
		return nil, fmt.Errorf("listing PluginConfigs: %w", err)
	}
	var out []*v1alpha1.PluginConfig
	for i := range list.Items {
		if injector.RefersTo(&list.Items[i], namespace, service) {
			out = append(out, &list.Items[i])
		}
	}
	return out, nil
}

func (c Reader) Plugin(ctx context.Context, name string) (*v1alpha1.Plugin, error) {
	return getOrNil[v1alpha1.Plugin](ctx, c.Reader, types.NamespacedName{Name: name})
}

func (c Reader) MeshConfig(ctx context.Context, namespace, name string) (*configv1alpha2.MeshConfig, error) {
	return getOrNil[configv1alpha2.MeshConfig](ctx, c.Reader, types.NamespacedName{Namespace: namespace, Name: name})
}

// getOrNil reads one object; nil when it does not exist, also when the cluster lacks its
// CRD (no MeshConfig CRD: plugin policy is off, as without the object). The object is the
// reader's own, not a copy (read only).
func getOrNil[T any, PT interface {
	*T
	client.Object
}](ctx context.Context, c client.Reader, key client.ObjectKey) (PT, error) {
	obj := PT(new(T))
	switch err := c.Get(ctx, key, obj, client.UnsafeDisableDeepCopy); {
	case apierrors.IsNotFound(err), meta.IsNoMatchError(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("getting %T %s: %w", obj, key, err)
	}
	return obj, nil
}

// Scheme returns the types corsmesh reads and writes: Kubernetes' own, the plugin
// resources and osm-edge's MeshConfig.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := configv1alpha2.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

func pointers[T any](items []T) []*T {
	out := make([]*T, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}

// Load reads every object the injector reads into memory: corsmeshctl's --from-cluster,
// where a run asks about a few workloads and each question would otherwise be API calls.
// The MeshConfig is read in namespace meshNamespace.
func Load(ctx context.Context, c client.Reader, meshNamespace string) (*injector.Objects, error) {
	r := Reader{c}
	objs := &injector.Objects{}
	var namespaces corev1.NamespaceList
	if err := c.List(ctx, &namespaces); err != nil {
		return nil, fmt.Errorf("listing namespaces: %w", err)
	}
	objs.Namespaces = pointers(namespaces.Items)
	var services corev1.ServiceList
	if err := c.List(ctx, &services); err != nil {
		return nil, fmt.Errorf("listing Services: %w", err)
	}
	objs.ServiceList = pointers(services.Items)
	var chains v1alpha1.PluginChainList
	if err := c.List(ctx, &chains); err != nil && !meta.IsNoMatchError(err) {
		return nil, fmt.Errorf("listing PluginChains: %w", err)
	}
	objs.Chains = pointers(chains.Items)
	var configs v1alpha1.PluginConfigList
	if err := c.List(ctx, &configs); err != nil && !meta.IsNoMatchError(err) {
		return nil, fmt.Errorf("listing PluginConfigs: %w", err)
	}
	objs.Configs = pointers(configs.Items)
	var plugins v1alpha1.PluginList
	if err := c.List(ctx, &plugins); err != nil && !meta.IsNoMatchError(err) {
		return nil, fmt.Errorf("listing Plugins: %w", err)
	}
	objs.Plugins = pointers(plugins.Items)
	mc, err := r.MeshConfig(ctx, meshNamespace, configv1alpha2.MeshConfigName)
	if err != nil {
		return nil, err
	}
	if mc != nil {
		objs.MeshConfigs = append(objs.MeshConfigs, mc)
	}
	return objs, nil
}

// Objects lists objs as client objects, Load's inverse: what a fake client or an apply
// is seeded with.
func Objects(objs *injector.Objects) []client.Object {
	var out []client.Object
	out = appendObjects(out, objs.Namespaces)
	out = appendObjects(out, objs.ServiceList)
	out = appendObjects(out, objs.Chains)
	out = appendObjects(out, objs.Configs)
	out = appendObjects(out, objs.Plugins)
	return appendObjects(out, objs.MeshConfigs)
}

func appendObjects[T client.Object](out []client.Object, items []T) []client.Object {
	for _, o := range items {
		out = append(out, o)
	}
	return out
}
