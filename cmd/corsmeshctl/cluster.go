package main

import (
	"context"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
	configv1alpha2 "github.com/corsmesh/corsmesh/injector/api/config/v1alpha2"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

// liveCluster is the injector's view of a cluster read with a plain client (no informer
// cache, no field index): what inject --from-cluster uses. Lists are read once per run.
type liveCluster struct {
	c        client.Reader
	services map[string][]*corev1.Service
	chains   []*v1alpha1.PluginChain
	configs  []*v1alpha1.PluginConfig
	listed   bool
}

var _ injector.Cluster = (*liveCluster)(nil)

func newLiveCluster(c client.Reader) *liveCluster {
	return &liveCluster{c: c, services: map[string][]*corev1.Service{}}
}

func (l *liveCluster) Namespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	return getOrNil[corev1.Namespace](ctx, l.c, client.ObjectKey{Name: name})
}

func (l *liveCluster) Services(ctx context.Context, namespace string) ([]*corev1.Service, error) {
	if s, ok := l.services[namespace]; ok {
		return s, nil
	}
	var list corev1.ServiceList
	if err := l.c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("listing Services in %s: %w", namespace, err)
	}
	l.services[namespace] = pointers(list.Items)
	return l.services[namespace], nil
}

func (l *liveCluster) list(ctx context.Context) error {
	if l.listed {
		return nil
	}
	// A cluster without the CRDs has no policies: the files may still bring some.
	var chains v1alpha1.PluginChainList
	if err := l.c.List(ctx, &chains); err != nil && !meta.IsNoMatchError(err) {
		return fmt.Errorf("listing PluginChains: %w", err)
	}
	var configs v1alpha1.PluginConfigList
	if err := l.c.List(ctx, &configs); err != nil && !meta.IsNoMatchError(err) {
		return fmt.Errorf("listing PluginConfigs: %w", err)
	}
	l.chains, l.configs, l.listed = pointers(chains.Items), pointers(configs.Items), true
	return nil
}

func (l *liveCluster) PluginChains(ctx context.Context) ([]*v1alpha1.PluginChain, error) {
	if err := l.list(ctx); err != nil {
		return nil, err
	}
	return l.chains, nil
}

func (l *liveCluster) PluginConfigsFor(ctx context.Context, namespace, service string) ([]*v1alpha1.PluginConfig, error) {
	if err := l.list(ctx); err != nil {
		return nil, err
	}
	var out []*v1alpha1.PluginConfig
	for _, c := range l.configs {
		if injector.RefersTo(c, namespace, service) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (l *liveCluster) Plugin(ctx context.Context, name string) (*v1alpha1.Plugin, error) {
	return getOrNil[v1alpha1.Plugin](ctx, l.c, client.ObjectKey{Name: name})
}

func (l *liveCluster) MeshConfig(ctx context.Context, namespace, name string) (*configv1alpha2.MeshConfig, error) {
	return getOrNil[configv1alpha2.MeshConfig](ctx, l.c, client.ObjectKey{Namespace: namespace, Name: name})
}

// getOrNil reads one object; nil when it does not exist, also when the cluster lacks its
// CRD (no MeshConfig CRD: plugin policy is off, as without the object).
func getOrNil[T any, PT interface {
	*T
	client.Object
}](ctx context.Context, c client.Reader, key client.ObjectKey) (PT, error) {
	obj := PT(new(T))
	switch err := c.Get(ctx, key, obj); {
	case apierrors.IsNotFound(err), meta.IsNoMatchError(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("getting %T %s: %w", obj, key, err)
	}
	return obj, nil
}

// layeredCluster is what inject hands the injector: the objects of the files, over the
// cluster's (--from-cluster; an object of the files replaces the cluster's of the same
// name), and, for a namespace found nowhere, a namespace monitored by the mesh, and for a
// MeshConfig found nowhere, one with plugin policy on: offline injection of a workload
// means the user asked for it.
type layeredCluster struct {
	local  *injector.Objects
	remote injector.Cluster // nil when offline
	mesh   string
	notice io.Writer

	assumed     map[string]*corev1.Namespace
	assumedMesh *configv1alpha2.MeshConfig
}

var _ injector.Cluster = (*layeredCluster)(nil)

func (l *layeredCluster) Namespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	if ns, _ := l.local.Namespace(ctx, name); ns != nil {
		return ns, nil
	}
	if l.remote != nil {
		ns, err := l.remote.Namespace(ctx, name)
		if err != nil || ns != nil {
			return ns, err
		}
	}
	if ns, ok := l.assumed[name]; ok {
		return ns, nil
	}
	where := "the input or the policies"
	if l.remote != nil {
		where = "the input, the policies or the cluster"
	}
	fmt.Fprintf(l.notice, "corsmeshctl: namespace %s is not in %s: treating it as monitored by mesh %q (%s=%s)\n",
		name, where, l.mesh, injector.LabelMonitoredBy, l.mesh)
	ns := namespaceObject(name)
	ns.Labels[injector.LabelMonitoredBy] = l.mesh
	if l.assumed == nil {
		l.assumed = map[string]*corev1.Namespace{}
	}
	l.assumed[name] = ns
	return ns, nil
}

// namespaceObject is a namespace with the label the API server gives every namespace, so
// namespace selectors on it evaluate as they would in the cluster.
func namespaceObject(name string) *corev1.Namespace {
	ns := &corev1.Namespace{}
	ns.APIVersion, ns.Kind = "v1", "Namespace"
	ns.Name = name
	ns.Labels = map[string]string{corev1.LabelMetadataName: name}
	return ns
}

func (l *layeredCluster) Services(ctx context.Context, namespace string) ([]*corev1.Service, error) {
	local, _ := l.local.Services(ctx, namespace)
	if l.remote == nil {
		return local, nil
	}
	remote, err := l.remote.Services(ctx, namespace)
	if err != nil {
		return nil, err
	}
	return overlay(local, remote), nil
}

func (l *layeredCluster) PluginChains(ctx context.Context) ([]*v1alpha1.PluginChain, error) {
	local, _ := l.local.PluginChains(ctx)
	if l.remote == nil {
		return local, nil
	}
	remote, err := l.remote.PluginChains(ctx)
	if err != nil {
		return nil, err
	}
	return overlay(local, remote), nil
}

func (l *layeredCluster) PluginConfigsFor(ctx context.Context, namespace, service string) ([]*v1alpha1.PluginConfig, error) {
	local, _ := l.local.PluginConfigsFor(ctx, namespace, service)
	if l.remote == nil {
		return local, nil
	}
	remote, err := l.remote.PluginConfigsFor(ctx, namespace, service)
	if err != nil {
		return nil, err
	}
	// A PluginConfig of the files replaces the cluster's even when it no longer names the
	// Service.
	shadowed := map[string]bool{}
	for _, c := range l.local.Configs {
		shadowed[key(c)] = true
	}
	out := local
	for _, c := range remote {
		if !shadowed[key(c)] {
			out = append(out, c)
		}
	}
	return out, nil
}

func (l *layeredCluster) Plugin(ctx context.Context, name string) (*v1alpha1.Plugin, error) {
	if p, _ := l.local.Plugin(ctx, name); p != nil {
		return p, nil
	}
	if l.remote == nil {
		return nil, nil
	}
	return l.remote.Plugin(ctx, name)
}

func (l *layeredCluster) MeshConfig(ctx context.Context, namespace, name string) (*configv1alpha2.MeshConfig, error) {
	if mc, _ := l.local.MeshConfig(ctx, namespace, name); mc != nil {
		return mc, nil
	}
	if l.remote != nil {
		mc, err := l.remote.MeshConfig(ctx, namespace, name)
		if err != nil || mc != nil {
			return mc, err
		}
	}
	if l.assumedMesh == nil {
		fmt.Fprintf(l.notice, "corsmeshctl: MeshConfig %s/%s is not in the input: treating plugin policy as on (spec.featureFlags.enablePluginPolicy: true)\n", namespace, name)
		l.assumedMesh = &configv1alpha2.MeshConfig{}
		l.assumedMesh.Namespace, l.assumedMesh.Name = namespace, name
		l.assumedMesh.Spec.FeatureFlags.EnablePluginPolicy = true
	}
	return l.assumedMesh, nil
}

func key(o client.Object) string { return o.GetNamespace() + "/" + o.GetName() }

// overlay returns local and the objects of remote that local does not replace.
func overlay[T any, PT interface {
	*T
	client.Object
}](local, remote []PT) []PT {
	seen := map[string]bool{}
	out := make([]PT, 0, len(local)+len(remote))
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

func pointers[T any](items []T) []*T {
	out := make([]*T, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}
