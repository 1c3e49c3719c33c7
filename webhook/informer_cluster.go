package webhook

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

// indexDestination is InformerCluster's own index of PluginConfigs by the Services they
// name, on the shared informer itself (controller-runtime's field indexes are reached only
// through List, which copies every object it returns).
const indexDestination = "corsmesh.io/destination"

// InformerCluster is the injector's view of the cluster read straight from the manager's
// shared informers: lookups return the informers' own objects, without the per-List copy
// of each item that the cache's client.Reader makes (with 1,000 PluginChains that copy
// alone was most of an admission's cost). The objects are shared: read them, never modify.
type InformerCluster struct {
	namespaces, services, configs, plugins toolscache.Indexer
	chains                                 *chainSnapshot
	// Live reads a namespace the informer does not know yet (created a moment ago).
	Live client.Reader
}

// chainSnapshot is the PluginChain list every admission walks whole, kept compiled between
// changes instead of listed (and allocated, and looked up in a cache of compiled
// selectors) per admission. The informer updates its indexer before it notifies handlers,
// so a rebuild after the notification sees the change.
type chainSnapshot struct {
	indexer  toolscache.Indexer
	mu       sync.Mutex
	stale    bool
	chains   []*v1alpha1.PluginChain
	compiled []injector.CompiledChain
}

func (s *chainSnapshot) invalidate() {
	s.mu.Lock()
	s.stale = true
	s.mu.Unlock()
}

func (s *chainSnapshot) get() ([]*v1alpha1.PluginChain, []injector.CompiledChain, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stale {
		return s.chains, s.compiled, nil
	}
	chains, err := typed[v1alpha1.PluginChain](s.indexer.List())
	if err != nil {
		return nil, nil, err
	}
	// An unchanged chain is the same object: only changed ones are compiled again.
	previous := make(map[*v1alpha1.PluginChain]injector.CompiledChain, len(s.compiled))
	for _, c := range s.compiled {
		previous[c.Chain] = c
	}
	compiled := make([]injector.CompiledChain, len(chains))
	for i, c := range chains {
		cc, ok := previous[c]
		if !ok {
			cc = injector.CompileChain(c)
		}
		compiled[i] = cc
	}
	s.chains, s.compiled, s.stale = chains, compiled, false
	return s.chains, s.compiled, nil
}

var (
	_ injector.Cluster             = (*InformerCluster)(nil)
	_ injector.CompiledChainLister = (*InformerCluster)(nil)
)

// NewInformerCluster gets (and so starts with the manager) the informers admission reads.
func NewInformerCluster(ctx context.Context, c cache.Cache, live client.Reader) (*InformerCluster, error) {
	informer := func(obj client.Object) (toolscache.SharedIndexInformer, error) {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			return nil, fmt.Errorf("informer for %T: %w", obj, err)
		}
		shared, ok := inf.(toolscache.SharedIndexInformer)
		if !ok {
			return nil, fmt.Errorf("informer for %T is a %T, not a shared index informer", obj, inf)
		}
		return shared, nil
	}
	indexer := func(obj client.Object, indexers toolscache.Indexers) (toolscache.Indexer, error) {
		shared, err := informer(obj)
		if err != nil {
			return nil, err
		}
		if indexers != nil {
			if err := shared.AddIndexers(indexers); err != nil {
				return nil, fmt.Errorf("indexing %T: %w", obj, err)
			}
		}
		return shared.GetIndexer(), nil
	}
	ic := &InformerCluster{Live: live}
	var err error
	if ic.namespaces, err = indexer(&corev1.Namespace{}, nil); err != nil {
		return nil, err
	}
	if ic.services, err = indexer(&corev1.Service{}, nil); err != nil {
		return nil, err
	}
	chains, err := informer(&v1alpha1.PluginChain{})
	if err != nil {
		return nil, err
	}
	ic.chains = &chainSnapshot{indexer: chains.GetIndexer(), stale: true}
	invalidate := func(any) { ic.chains.invalidate() }
	if _, err := chains.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    invalidate,
		UpdateFunc: func(_, obj any) { invalidate(obj) },
		DeleteFunc: invalidate,
	}); err != nil {
		return nil, fmt.Errorf("watching PluginChains: %w", err)
	}
	if ic.configs, err = indexer(&v1alpha1.PluginConfig{}, toolscache.Indexers{indexDestination: func(obj any) ([]string, error) {
		pc, ok := obj.(*v1alpha1.PluginConfig)
		if !ok {
			return nil, nil
		}
		return injector.DestinationKeys(pc), nil
	}}); err != nil {
		return nil, err
	}
	if ic.plugins, err = indexer(&v1alpha1.Plugin{}, nil); err != nil {
		return nil, err
	}
	return ic, nil
}

func (c *InformerCluster) Namespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	if ns, err := byKey[corev1.Namespace](c.namespaces, name); ns != nil || err != nil || c.Live == nil {
		return ns, err
	}
	return (&CacheCluster{Cache: c.Live}).Namespace(ctx, name)
}

func (c *InformerCluster) Services(_ context.Context, namespace string) ([]*corev1.Service, error) {
	return byIndex[corev1.Service](c.services, toolscache.NamespaceIndex, namespace)
}

// PluginChains returns a list shared between callers until the next change: read it,
// never modify it.
func (c *InformerCluster) PluginChains(context.Context) ([]*v1alpha1.PluginChain, error) {
	chains, _, err := c.chains.get()
	return chains, err
}

// CompiledPluginChains returns the chains with their selectors compiled, shared like
// PluginChains' list.
func (c *InformerCluster) CompiledPluginChains(context.Context) ([]injector.CompiledChain, error) {
	_, compiled, err := c.chains.get()
	return compiled, err
}

func (c *InformerCluster) PluginConfigsFor(_ context.Context, namespace, service string) ([]*v1alpha1.PluginConfig, error) {
	return byIndex[v1alpha1.PluginConfig](c.configs, indexDestination, namespace+"/"+service)
}

func (c *InformerCluster) Plugin(_ context.Context, name string) (*v1alpha1.Plugin, error) {
	return byKey[v1alpha1.Plugin](c.plugins, name)
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
	return typed[T](objs)
}

func typed[T any](objs []any) ([]*T, error) {
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
