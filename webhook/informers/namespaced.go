package informers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
)

// NamespacedInformer keeps one informer per namespace the mesh monitors, started when the
// namespace becomes monitored and stopped (its objects dropped) when it no longer is, and
// presents them as one cache.Informer to the controllers' watches.
//
// A namespace's Services are read by a decision only once the namespace is monitored; a
// cluster with ten thousand Services in namespaces the mesh does not reach would otherwise
// hold them all (the controller-runtime cache's namespaces are fixed when it starts).
type NamespacedInformer struct {
	opts NamespacedOptions

	mu sync.Mutex
	// ctx is Start's; nil before Start, when namespaces only join pending.
	ctx     context.Context
	pending map[string]bool
	byNS    map[string]*namespaceInformer
	// indexers and handlers are added to every namespace's informer, present and future.
	indexers toolscache.Indexers
	handlers []*fanInRegistration
	// namespacesSynced tells when Follow has been told of every namespace that existed at
	// start (FollowNamespaces).
	namespacesSynced toolscache.InformerSynced
	// synced is closed once the informers of the namespaces monitored at Start have synced.
	synced  chan struct{}
	stopped chan struct{}
	running sync.WaitGroup
}

// NamespacedOptions configure a NamespacedInformer.
type NamespacedOptions struct {
	// ListWatch lists and watches the objects of one namespace.
	ListWatch func(namespace string) toolscache.ListerWatcher
	// Example is the object kind (&corev1.Service{}).
	Example runtime.Object
	// Transform trims each object before it is stored (package slim).
	Transform toolscache.TransformFunc
	// Changed is told when a namespace's objects appear or go at once: an informer stopped,
	// whose store no index hears being dropped.
	Changed func()
	// SyncWait bounds how long a read waits for a newly started informer to sync before
	// the caller reads the API server instead (default 5s).
	SyncWait time.Duration
	// LeaderElected runs the informers on the leader only: for objects only the
	// controllers read (pods), which a replica that admits but does not lead never needs.
	LeaderElected bool
}

type namespaceInformer struct {
	inf    toolscache.SharedIndexInformer
	cancel context.CancelFunc
	// later is true for an informer started after Start: its initial list is news to the
	// controllers (a namespace just monitored), not a replay of what they already know.
	later bool
	regs  map[*fanInRegistration]toolscache.ResourceEventHandlerRegistration
}

var _ cache.Informer = (*NamespacedInformer)(nil)

// NewNamespacedInformer returns a NamespacedInformer following no namespace yet: Follow
// tells it of each, Start runs it.
func NewNamespacedInformer(opts NamespacedOptions) *NamespacedInformer {
	if opts.SyncWait == 0 {
		opts.SyncWait = 5 * time.Second
	}
	if opts.Changed == nil {
		opts.Changed = func() {}
	}
	return &NamespacedInformer{
		opts:     opts,
		pending:  map[string]bool{},
		byNS:     map[string]*namespaceInformer{},
		indexers: toolscache.Indexers{},
		synced:   make(chan struct{}),
		stopped:  make(chan struct{}),
	}
}

// Follow starts the namespace's informer when monitored is true and stops it otherwise.
func (n *NamespacedInformer) Follow(namespace string, monitored bool) {
	if monitored {
		n.ensure(namespace)
	} else {
		n.stop(namespace)
	}
}

// FollowNamespaces has the namespaces' informer tell Follow of every namespace, monitored
// or not (by monitored), as they come, change and go.
func (n *NamespacedInformer) FollowNamespaces(namespaces cache.Informer, monitored func(*corev1.Namespace) bool) error {
	follow := func(obj any) {
		if ns, ok := obj.(*corev1.Namespace); ok {
			n.Follow(ns.Name, monitored(ns))
		}
	}
	reg, err := namespaces.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    follow,
		UpdateFunc: func(_, obj any) { follow(obj) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if ns, ok := obj.(*corev1.Namespace); ok {
				n.Follow(ns.Name, false)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("following namespaces: %w", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.namespacesSynced = reg.HasSynced
	return nil
}

// ensure starts the namespace's informer unless it runs; before Start it only notes it.
func (n *NamespacedInformer) ensure(namespace string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.byNS[namespace] != nil:
	case n.ctx == nil:
		n.pending[namespace] = true
	case n.ctx.Err() == nil:
		n.startLocked(namespace, true)
	}
}

func (n *NamespacedInformer) startLocked(namespace string, later bool) *namespaceInformer {
	inf := toolscache.NewSharedIndexInformer(n.opts.ListWatch(namespace), n.opts.Example, 0, toolscache.Indexers{})
	if n.opts.Transform != nil {
		// Cannot fail: the informer has not started.
		_ = inf.SetTransform(n.opts.Transform)
	}
	// Cannot fail either before the informer starts (only a conflicting name does, and
	// AddIndexers refused that already).
	_ = inf.AddIndexers(n.indexers)
	ni := &namespaceInformer{inf: inf, later: later, regs: map[*fanInRegistration]toolscache.ResourceEventHandlerRegistration{}}
	for _, h := range n.handlers {
		ni.add(h, later)
	}
	ctx, cancel := context.WithCancel(n.ctx)
	ni.cancel = cancel
	n.byNS[namespace] = ni
	n.running.Go(func() { inf.RunWithContext(ctx) })
	return ni
}

// add adds the handler; news delivers the informer's initial list as creations (added
// before a later informer runs). A handler joining a running informer is replayed its
// store as an initial list, as any informer does: a controller starting (a replica
// becoming leader) reconciles its own kind then anyway.
func (ni *namespaceInformer) add(h *fanInRegistration, news bool) {
	handler := h.handler
	if news {
		handler = laterAdds{handler}
	}
	reg, err := ni.inf.AddEventHandlerWithOptions(handler, h.options)
	if err == nil { // an error only for a stopped informer, whose events are over
		ni.regs[h] = reg
	}
}

// stop stops the namespace's informer; its store goes with it.
func (n *NamespacedInformer) stop(namespace string) {
	n.mu.Lock()
	delete(n.pending, namespace)
	ni := n.byNS[namespace]
	delete(n.byNS, namespace)
	n.mu.Unlock()
	if ni != nil {
		ni.cancel()
		n.opts.Changed()
	}
}

// laterAdds delivers an informer's initial list as ordinary creations: the objects of a
// namespace that has just become monitored are new to the controllers, whose watches
// drop the initial list (a controller reconciles its own kind then anyway).
type laterAdds struct {
	toolscache.ResourceEventHandler
}

func (l laterAdds) OnAdd(obj any, _ bool) { l.ResourceEventHandler.OnAdd(obj, false) }

// Start starts the informers of the namespaces followed so far (the namespaces' informer
// has synced: they are all the monitored ones) and runs until ctx ends, then stops them all.
func (n *NamespacedInformer) Start(ctx context.Context) error {
	n.mu.Lock()
	namespacesSynced := n.namespacesSynced
	n.mu.Unlock()
	if namespacesSynced != nil && !toolscache.WaitForCacheSync(ctx.Done(), namespacesSynced) {
		close(n.stopped)
		return nil
	}
	n.mu.Lock()
	if n.ctx != nil {
		n.mu.Unlock()
		return fmt.Errorf("NamespacedInformer of %T started twice", n.opts.Example)
	}
	n.ctx = ctx
	initial := map[string]*namespaceInformer{}
	for _, ns := range slices.Sorted(maps.Keys(n.pending)) {
		initial[ns] = n.startLocked(ns, false)
	}
	clear(n.pending)
	n.mu.Unlock()

	// An initial informer stopped meanwhile (its label went) will never sync: only those
	// still running count.
	initialSynced := func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		for ns, ni := range initial {
			if n.byNS[ns] == ni && !ni.inf.HasSynced() {
				return false
			}
		}
		return true
	}
	if toolscache.WaitForCacheSync(ctx.Done(), initialSynced) {
		close(n.synced)
	}
	<-ctx.Done()
	n.mu.Lock()
	for ns, ni := range n.byNS {
		ni.cancel()
		delete(n.byNS, ns)
	}
	n.mu.Unlock()
	n.running.Wait()
	close(n.stopped)
	return nil
}

// NeedLeaderElection is false unless LeaderElected: every replica admits, and admission
// reads the Services' informers.
func (n *NamespacedInformer) NeedLeaderElection() bool { return n.opts.LeaderElected }

// Watches reports whether the namespace's informer runs.
func (n *NamespacedInformer) Watches(namespace string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.byNS[namespace] != nil
}

// Namespaces are those whose informer runs, sorted.
func (n *NamespacedInformer) Namespaces() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Sorted(maps.Keys(n.byNS))
}

// List returns the objects of the namespace's informer, waiting for a newly started one
// to sync, up to SyncWait. ok is false when no synced informer holds the namespace (not
// monitored, or Follow not yet told it is): the caller reads the API server.
//
// A read never starts an informer itself: it may hold a namespace read before Follow was
// told the label went, and would start an informer that nothing stops.
func (n *NamespacedInformer) List(ctx context.Context, namespace string) (objs []any, ok bool) {
	store, ok := n.indexer(ctx, namespace)
	if !ok {
		return nil, false
	}
	return store.List(), true
}

// Get returns the object of the namespace's informer named name (nil: there is none), as
// List reads it: ok is false when no synced informer holds the namespace.
func (n *NamespacedInformer) Get(ctx context.Context, namespace, name string) (obj any, ok bool, err error) {
	store, ok := n.indexer(ctx, namespace)
	if !ok {
		return nil, false, nil
	}
	obj, _, err = store.GetByKey(namespace + "/" + name)
	return obj, true, err
}

// ByIndex is List narrowed to the objects an index (AddIndexers) files under value.
func (n *NamespacedInformer) ByIndex(ctx context.Context, namespace, index, value string) (objs []any, ok bool, err error) {
	store, ok := n.indexer(ctx, namespace)
	if !ok {
		return nil, false, nil
	}
	objs, err = store.ByIndex(index, value)
	return objs, true, err
}

// indexer is the namespace's synced store, as List reads it.
func (n *NamespacedInformer) indexer(ctx context.Context, namespace string) (toolscache.Indexer, bool) {
	n.mu.Lock()
	ni := n.byNS[namespace]
	n.mu.Unlock()
	if ni == nil {
		return nil, false
	}
	if !ni.inf.HasSynced() {
		ctx, cancel := context.WithTimeout(ctx, n.opts.SyncWait)
		defer cancel()
		select {
		case <-ni.inf.HasSyncedChecker().Done():
		case <-ctx.Done():
			return nil, false
		}
	}
	return ni.inf.GetIndexer(), true
}

// AddEventHandler implements cache.Informer.
func (n *NamespacedInformer) AddEventHandler(h toolscache.ResourceEventHandler) (toolscache.ResourceEventHandlerRegistration, error) {
	return n.AddEventHandlerWithOptions(h, toolscache.HandlerOptions{})
}

// AddEventHandlerWithResyncPeriod implements cache.Informer; the informers never resync.
func (n *NamespacedInformer) AddEventHandlerWithResyncPeriod(h toolscache.ResourceEventHandler, _ time.Duration) (toolscache.ResourceEventHandlerRegistration, error) {
	return n.AddEventHandlerWithOptions(h, toolscache.HandlerOptions{})
}

// AddEventHandlerWithOptions adds the handler to every namespace's informer, present and
// future.
func (n *NamespacedInformer) AddEventHandlerWithOptions(h toolscache.ResourceEventHandler, opts toolscache.HandlerOptions) (toolscache.ResourceEventHandlerRegistration, error) {
	reg := &fanInRegistration{parent: n, handler: h, options: opts}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.handlers = append(n.handlers, reg)
	for _, ni := range n.byNS {
		ni.add(reg, false)
	}
	return reg, nil
}

// RemoveEventHandler implements cache.Informer.
func (n *NamespacedInformer) RemoveEventHandler(handle toolscache.ResourceEventHandlerRegistration) error {
	reg, ok := handle.(*fanInRegistration)
	if !ok {
		return fmt.Errorf("not a registration of this informer: %T", handle)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.handlers = slices.DeleteFunc(n.handlers, func(r *fanInRegistration) bool { return r == reg })
	for _, ni := range n.byNS {
		if r, ok := ni.regs[reg]; ok {
			if err := ni.inf.RemoveEventHandler(r); err != nil {
				return err
			}
			delete(ni.regs, reg)
		}
	}
	return nil
}

// AddIndexers adds the indexers to every namespace's informer, present and future.
func (n *NamespacedInformer) AddIndexers(indexers toolscache.Indexers) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for name := range indexers {
		if _, ok := n.indexers[name]; ok {
			return fmt.Errorf("indexer %q already added", name)
		}
	}
	for _, ni := range n.byNS {
		if err := ni.inf.AddIndexers(indexers); err != nil {
			return err
		}
	}
	maps.Copy(n.indexers, indexers)
	return nil
}

// HasSynced reports whether the informers of the namespaces monitored at Start have synced.
func (n *NamespacedInformer) HasSynced() bool { return toolscache.IsDone(n.HasSyncedChecker()) }

// HasSyncedChecker implements cache.Informer.
func (n *NamespacedInformer) HasSyncedChecker() toolscache.DoneChecker {
	return doneChecker{name: fmt.Sprintf("namespaced informer of %T", n.opts.Example), done: n.synced}
}

// IsStopped reports whether Start has returned.
func (n *NamespacedInformer) IsStopped() bool { return toolscache.IsDone(doneChecker{done: n.stopped}) }

type doneChecker struct {
	name string
	done chan struct{}
}

func (d doneChecker) Name() string          { return d.name }
func (d doneChecker) Done() <-chan struct{} { return d.done }

// fanInRegistration is a handler added to every namespace's informer.
type fanInRegistration struct {
	parent  *NamespacedInformer
	handler toolscache.ResourceEventHandler
	options toolscache.HandlerOptions
}

// HasSynced reports whether the initial informers have synced and delivered their initial
// lists to the handler.
func (r *fanInRegistration) HasSynced() bool {
	if !r.parent.HasSynced() {
		return false
	}
	r.parent.mu.Lock()
	defer r.parent.mu.Unlock()
	for _, ni := range r.parent.byNS {
		if reg, ok := ni.regs[r]; ok && !ni.later && !reg.HasSynced() {
			return false
		}
	}
	return true
}

// HasSyncedChecker implements toolscache.ResourceEventHandlerRegistration; it is done with
// the informer (a handler's own delivery is reported by HasSynced).
func (r *fanInRegistration) HasSyncedChecker() toolscache.DoneChecker {
	return r.parent.HasSyncedChecker()
}
