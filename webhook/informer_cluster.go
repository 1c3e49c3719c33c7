package webhook

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
	configv1alpha2 "github.com/corsmesh/corsmesh/injector/api/config/v1alpha2"
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
	// meshConfig reads the one MeshConfig through the cache: its informer watches one
	// namespace, so it is not a plain shared informer to index (and one small object is
	// copied cheaply).
	meshConfig *CacheCluster
	chains     *chainSnapshot
	// Live reads a namespace the informer does not know yet (created a moment ago).
	Live client.Reader
}

// chainSnapshot is the PluginChain list every admission walks whole, kept compiled between
// changes instead of listed (and allocated, and looked up in a cache of compiled
// selectors) per admission.
//
// It learns of changes from the informer's store itself, through an index that indexes
// nothing and only counts the store's updates as the store makes them. An event handler
// would be too late: the informer notifies each handler on its own goroutine, so a
// controller reconciling a new chain could read the list before the handler had marked it
// stale, decide without the chain, and never be told again.
type chainSnapshot struct {
	indexer toolscache.Indexer
	changes atomic.Uint64 // store updates so far (countChange)

	mu       sync.Mutex
	built    bool
	seen     uint64 // changes when built
	chains   []*v1alpha1.PluginChain
	compiled []injector.CompiledChain
}

// indexChainChanges names countChange's index.
const indexChainChanges = "corsmesh.io/changes"

// countChange is an index function: the store calls it, under its lock, for every object
// it adds, updates or deletes.
func (s *chainSnapshot) countChange(any) ([]string, error) {
	s.changes.Add(1)
	return nil, nil
}

func (s *chainSnapshot) get() ([]*v1alpha1.PluginChain, []injector.CompiledChain, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Read before listing: a change made meanwhile is in the list or triggers a rebuild.
	changes := s.changes.Load()
	if s.built && s.seen == changes {
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
	s.chains, s.compiled, s.built, s.seen = chains, compiled, true, changes
	return s.chains, s.compiled, nil
}

var (
	_ injector.Cluster             = (*InformerCluster)(nil)
	_ injector.CompiledChainLister = (*InformerCluster)(nil)
)

// NewInformerCluster gets (and so starts with the manager) the informers admission reads.
func NewInformerCluster(ctx context.Context, c cache.Cache, live client.Reader) (*InformerCluster, error) {
	indexer := func(obj client.Object, indexers toolscache.Indexers) (toolscache.Indexer, error) {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			return nil, fmt.Errorf("informer for %T: %w", obj, err)
		}
		shared, ok := inf.(toolscache.SharedIndexInformer)
		if !ok {
			return nil, fmt.Errorf("informer for %T is a %T, not a shared index informer", obj, inf)
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
	ic.chains = &chainSnapshot{}
	if ic.chains.indexer, err = indexer(&v1alpha1.PluginChain{}, toolscache.Indexers{indexChainChanges: ic.chains.countChange}); err != nil {
		return nil, err
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
	if _, err := c.GetInformer(ctx, &configv1alpha2.MeshConfig{}); err != nil {
		return nil, fmt.Errorf("informer for MeshConfigs: %w", err)
	}
	ic.meshConfig = &CacheCluster{Cache: c}
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

func (c *InformerCluster) MeshConfig(ctx context.Context, namespace, name string) (*configv1alpha2.MeshConfig, error) {
	return c.meshConfig.MeshConfig(ctx, namespace, name)
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
