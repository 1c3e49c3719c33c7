package informers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
	configv1alpha2 "github.com/corsmesh/corsmesh/injector/api/config/v1alpha2"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
	"github.com/corsmesh/corsmesh/injector/kubecluster"
)

// indexDestination is InformerCluster's own index of PluginConfigs by the Services they
// name, on the shared informer itself (controller-runtime's field indexes are reached only
// through List, which copies every object it returns).
const indexDestination = "corsmesh.io/destination"

// indexSelector files Services by namespace and injector.SelectorKey, so an admission reads only the
// Services that may select its pod (ServicesSelecting).
const indexSelector = "corsmesh.io/selector"

// selectorIndex is indexSelector's function.
func selectorIndex(obj any) ([]string, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return nil, nil
	}
	if key := injector.SelectorKey(svc); key != "" {
		return []string{svc.Namespace + "/" + key}, nil
	}
	return nil, nil
}

// InformerCluster is the injector's view of the cluster read straight from the manager's
// shared informers: lookups return the informers' own objects, without the per-List copy
// of each item that the cache's client.Reader makes (with 1,000 PluginChains that copy
// alone was most of an admission's cost). The objects are shared: read them, never modify.
type InformerCluster struct {
	namespaces, chains, configs, plugins toolscache.Indexer
	// services is the cache's informer of every Service, or nil when namespaced holds the
	// Services of the monitored namespaces only.
	services   toolscache.Indexer
	namespaced *NamespacedInformer
	// cache reads the one MeshConfig: its informer watches one namespace, so it is not a
	// plain shared informer to index (and one small object is read cheaply).
	cache kubecluster.Reader
	// live reads a namespace the informer does not know yet (created a moment ago).
	live *kubecluster.Reader
}

// indexChanges names the index through which the informers' stores report changes.
const indexChanges = "corsmesh.io/changes"

var _ injector.SelectingCluster = (*InformerCluster)(nil)

// NewResolver gets (and so starts with the manager) the informers the injector reads, and
// returns a Resolver over them that they tell of every change.
//
// The stores tell the Resolver through an index that indexes nothing and only reports the
// updates as the store makes them, under its lock (PluginChains' through chainChanges,
// which spares the compiled chains their status writes). An event handler would be too late: the
// informer notifies each handler on its own goroutine, so a controller reconciling a new
// chain could read the Resolver's compiled chains before the handler had marked them
// stale, decide without the chain, and never be told again.
//
// With services set, the Services are read from it (the monitored namespaces' informers,
// which this tells of every namespace) instead of the cache's informer of every Service.
func NewResolver(ctx context.Context, c cache.Cache, live client.Reader, in *injector.Injector, services *NamespacedInformer) (*injector.Resolver, *InformerCluster, error) {
	ic := &InformerCluster{cache: kubecluster.Reader{Reader: c}, namespaced: services}
	if live != nil {
		ic.live = &kubecluster.Reader{Reader: live}
	}
	r := injector.NewResolver(in, ic, injector.ResolverOptions{Watched: true})
	if services != nil {
		services.opts.Changed = func() { r.Changed(injector.InputOther) }
	}
	changed := func(what injector.Input) toolscache.Indexers {
		return toolscache.Indexers{indexChanges: func(any) ([]string, error) {
			r.Changed(what)
			return nil, nil
		}}
	}
	indexer := func(obj client.Object, indexers ...toolscache.Indexers) (toolscache.Indexer, error) {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			return nil, fmt.Errorf("informer for %T: %w", obj, err)
		}
		for _, idx := range indexers {
			if err := inf.AddIndexers(idx); err != nil {
				return nil, fmt.Errorf("indexing %T: %w", obj, err)
			}
		}
		shared, ok := inf.(toolscache.SharedIndexInformer)
		if !ok {
			return nil, nil // read through the cache (the MeshConfig's)
		}
		return shared.GetIndexer(), nil
	}
	other := changed(injector.InputOther)
	var err error
	if ic.namespaces, err = indexer(&corev1.Namespace{}, other); err != nil {
		return nil, nil, err
	}
	if services == nil {
		if ic.services, err = indexer(&corev1.Service{}, other, toolscache.Indexers{indexSelector: selectorIndex}); err != nil {
			return nil, nil, err
		}
	} else {
		if err := services.AddIndexers(toolscache.Indexers{indexChanges: other[indexChanges], indexSelector: selectorIndex}); err != nil {
			return nil, nil, fmt.Errorf("indexing Services: %w", err)
		}
		nsInformer, err := c.GetInformer(ctx, &corev1.Namespace{})
		if err != nil {
			return nil, nil, fmt.Errorf("informer for namespaces: %w", err)
		}
		if err := services.FollowNamespaces(nsInformer, in.Options().Monitors); err != nil {
			return nil, nil, err
		}
	}
	chains := newChainChanges(r)
	if ic.chains, err = indexer(&v1alpha1.PluginChain{}, toolscache.Indexers{indexChanges: chains.index}); err != nil {
		return nil, nil, err
	}
	chainInformer, err := c.GetInformer(ctx, &v1alpha1.PluginChain{})
	if err != nil {
		return nil, nil, fmt.Errorf("informer for PluginChains: %w", err)
	}
	if _, err := chainInformer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{DeleteFunc: chains.deleted}); err != nil {
		return nil, nil, fmt.Errorf("watching PluginChain deletes: %w", err)
	}
	if ic.configs, err = indexer(&v1alpha1.PluginConfig{}, other, toolscache.Indexers{indexDestination: func(obj any) ([]string, error) {
		pc, ok := obj.(*v1alpha1.PluginConfig)
		if !ok {
			return nil, nil
		}
		return injector.DestinationKeys(pc), nil
	}}); err != nil {
		return nil, nil, err
	}
	if ic.plugins, err = indexer(&v1alpha1.Plugin{}, other); err != nil {
		return nil, nil, err
	}
	if _, err := indexer(&configv1alpha2.MeshConfig{}, other); err != nil {
		return nil, nil, err
	}
	for name, idx := range map[string]toolscache.Indexer{"namespaces": ic.namespaces, "Services": ic.services, "PluginChains": ic.chains, "PluginConfigs": ic.configs, "Plugins": ic.plugins} {
		if idx == nil && (name != "Services" || services == nil) {
			return nil, nil, fmt.Errorf("the informer of %s is not a shared index informer", name)
		}
	}
	return r, ic, nil
}

func (c *InformerCluster) Namespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	if ns, err := byKey[corev1.Namespace](c.namespaces, name); ns != nil || err != nil || c.live == nil {
		return ns, err
	}
	return c.live.Namespace(ctx, name)
}

// Services reads a monitored namespace's Services from its informer. Those of a namespace
// the mesh does not monitor are read by nothing but a PluginConfig's status (does the
// Service it names exist): they are listed live, as are a monitored namespace's while its
// informer has not started (the label seen a moment before the informers were told) or
// not synced within SyncWait.
func (c *InformerCluster) Services(ctx context.Context, namespace string) ([]*corev1.Service, error) {
	if c.namespaced == nil {
		return byIndex[corev1.Service](c.services, toolscache.NamespaceIndex, namespace)
	}
	if objs, ok := c.namespaced.List(ctx, namespace); ok {
		return Typed[corev1.Service](objs)
	}
	if c.live == nil {
		return nil, nil
	}
	return c.live.Services(ctx, namespace)
}

// ServicesSelecting reads, of the namespace's Services, those filed under one of the
// pod's labels by indexSelector: each Service that selects the pod is among them once.
// Where Services would be read live, it reads them so.
func (c *InformerCluster) ServicesSelecting(ctx context.Context, namespace string, podLabels map[string]string) ([]*corev1.Service, error) {
	var out []*corev1.Service
	for k, v := range podLabels {
		key := namespace + "/" + injector.SelectorLabel(k, v)
		var objs []any
		var err error
		if c.namespaced == nil {
			objs, err = c.services.ByIndex(indexSelector, key)
		} else {
			var ok bool
			if objs, ok, err = c.namespaced.ByIndex(ctx, namespace, indexSelector, key); !ok {
				return c.Services(ctx, namespace)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("index %s: %w", indexSelector, err)
		}
		for _, o := range objs {
			svc, ok := o.(*corev1.Service)
			if !ok {
				return nil, fmt.Errorf("informer holds a %T, want a Service", o)
			}
			out = append(out, svc)
		}
	}
	return out, nil
}

// PluginChains lists the informer's chains; the Resolver keeps them compiled between changes.
func (c *InformerCluster) PluginChains(context.Context) ([]*v1alpha1.PluginChain, error) {
	return Typed[v1alpha1.PluginChain](c.chains.List())
}

func (c *InformerCluster) PluginConfigsFor(_ context.Context, namespace, service string) ([]*v1alpha1.PluginConfig, error) {
	return byIndex[v1alpha1.PluginConfig](c.configs, indexDestination, namespace+"/"+service)
}

func (c *InformerCluster) Plugin(_ context.Context, name string) (*v1alpha1.Plugin, error) {
	return byKey[v1alpha1.Plugin](c.plugins, name)
}

func (c *InformerCluster) MeshConfig(ctx context.Context, namespace, name string) (*configv1alpha2.MeshConfig, error) {
	return c.cache.MeshConfig(ctx, namespace, name)
}

func byKey[T any](idx toolscache.Indexer, key string) (*T, error) {
	obj, ok, err := idx.GetByKey(key)
	if err != nil || !ok {
		return nil, err
	}
	t, ok := obj.(*T)
	if !ok {
		return nil, fmt.Errorf("informer holds a %T for %s", obj, key)
	}
	return t, nil
}

func byIndex[T any](idx toolscache.Indexer, index, value string) ([]*T, error) {
	objs, err := idx.ByIndex(index, value)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", index, err)
	}
	return Typed[T](objs)
}

// Typed converts what an informer's store returns to the kind it holds, or fails naming
// what it found instead.
func Typed[T any](objs []any) ([]*T, error) {
	out := make([]*T, 0, len(objs))
	for _, o := range objs {
		t, ok := o.(*T)
		if !ok {
			return nil, fmt.Errorf("informer holds a %T, want %T", o, new(T))
		}
		out = append(out, t)
	}
	return out, nil
}
