// Package controllers keeps what runs current with the policy: config sync patches injected
// pods, the status controllers write PluginChain and PluginConfig conditions, all from the
// injector.Resolver the webhook admits with.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

// IndexPodInjected indexes Pods carrying the status annotation under "true": the controllers
// map a policy change to the injected pods it may affect without scanning every pod.
const IndexPodInjected = "corsmesh.io/injected"

// indexInjectedPod is the IndexPodInjected indexer. Pods without the annotation are left out
// of the index entirely, so it stays as small as the number of injected pods.
func indexInjectedPod(o client.Object) []string {
	if isInjected(o) {
		return []string{"true"}
	}
	return nil
}

func isInjected(o client.Object) bool {
	_, ok := o.GetAnnotations()[injector.AnnotationStatus]
	return ok
}

// controllerRecorder is the reportingController of the controllers' Events (admission's
// are "corsmesh-webhook"), so `kubectl events` tells them apart.
const controllerRecorder = "corsmesh-controller"

// Setup registers the controllers with the manager.
// Services are watched through services when set (the webhook keeps them per monitored
// namespace), else through the manager's cache. Pods are watched through pods, which the
// manager's cache does not hold, and read live where pods does not hold them; ReplicaSets
// likewise from replicaSets.
func Setup(ctx context.Context, mgr manager.Manager, resolver *injector.Resolver, services cache.Informer, pods PodCache, replicaSets ReplicaSetCache, log logr.Logger) error {
	if pods == nil {
		return errors.New("the controllers need a pod cache")
	}
	// The index must exist before the informers start, which is after this returns.
	if err := pods.AddIndexers(podIndexers()); err != nil {
		return fmt.Errorf("indexing injected pods: %w", err)
	}
	events := mgr.GetEventRecorder(controllerRecorder)
	live := mgr.GetAPIReader()
	sync := &ConfigSyncReconciler{Client: mgr.GetClient(), Resolver: resolver, Services: services, Pods: pods, Live: live, Events: events}
	if err := sync.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("config sync controller: %w", err)
	}
	configs := &PluginConfigReconciler{Client: mgr.GetClient(), Resolver: resolver, Services: services}
	if err := configs.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("PluginConfig status controller: %w", err)
	}
	chains := &PluginChainReconciler{Client: mgr.GetClient(), Resolver: resolver, Services: services, Events: events, Pods: pods, Live: live, ReplicaSets: replicaSets}
	if err := chains.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("PluginChain status controller: %w", err)
	}
	log.V(1).Info("controllers registered", "controllers", []string{configSyncName, pluginConfigName, pluginChainName})
	return nil
}

// podsThrough reads pods from cache and, where it holds none, through live (nil: c); with
// no cache (a unit test's fake client), through c alone.
func podsThrough(cache PodCache, live, c client.Reader) podReader {
	if live == nil {
		live = c
	}
	if cache == nil {
		return readerPods{reader: live}
	}
	return cachedPods{cache: cache, live: readerPods{reader: live}}
}

// podSource is a controller's watch of the pods through cache.
func podSource(cache PodCache, h handler.EventHandler, preds ...predicate.Predicate) (source.Source, error) {
	if cache == nil {
		return nil, errors.New("no pod cache to watch")
	}
	return &source.Informer{Informer: cache, Handler: h, Predicates: preds}, nil
}

// serviceSource is a controller's watch of Services: through services when set, else the
// manager's cache.
func serviceSource(mgr manager.Manager, services cache.Informer, h handler.EventHandler, preds ...predicate.Predicate) source.Source {
	if services == nil {
		return source.Kind[client.Object](mgr.GetCache(), &corev1.Service{}, h, preds...)
	}
	return &source.Informer{Informer: services, Handler: h, Predicates: preds}
}

// notInitialList drops the creations an informer replays when it starts (or when a
// controller joins a running one). A controller reconciles every object of its own kind
// then anyway, once all its caches have synced, so mapping each of ten thousand existing
// Services to the objects they affect would only repeat that work, ten thousand times.
func notInitialList() predicate.Predicate {
	return predicate.Funcs{CreateFunc: func(e event.CreateEvent) bool { return !e.IsInInitialList }}
}

// mapBatched is handler.EnqueueRequestsFromMapFunc for a stream of events that fn maps
// alike whenever key says so, mapped once per key and window instead of once per event:
// the first event arms a timer of delay, the events until it fires are collected by key
// (the latest object of each kept), and then fn maps each key's object once and its
// requests are added. A burst of events (a rollout creating a hundred pods with the same
// labels) costs one mapping and one reconcile of each request, not a hundred.
//
// Mapping later loses nothing: fn reads the cache when the window ends, at least as
// current as it was at each event, and an event arriving during a flush opens the next
// window. One mapBatched serves one controller (it adds to the queue of its first event).
func mapBatched(delay time.Duration, key func(client.Object) string, fn handler.MapFunc) handler.EventHandler {
	return newBatchMapper(delay, key, fn).handler()
}

func newBatchMapper(delay time.Duration, key func(client.Object) string, fn handler.MapFunc) *batchMapper {
	return &batchMapper{delay: delay, key: key, fn: fn, pending: map[string]client.Object{}}
}

func (b *batchMapper) handler() handler.EventHandler {
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			b.add(ctx, q, e.Object)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			b.add(ctx, q, e.ObjectOld, e.ObjectNew)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			b.add(ctx, q, e.Object)
		},
		GenericFunc: func(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			b.add(ctx, q, e.Object)
		},
	}
}

type batchMapper struct {
	delay time.Duration
	key   func(client.Object) string
	fn    handler.MapFunc

	mu      sync.Mutex
	pending map[string]client.Object // by key, until the armed timer fires
	armed   bool
}

func (b *batchMapper) add(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], objs ...client.Object) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, o := range objs {
		if o != nil {
			b.pending[b.key(o)] = o
		}
	}
	if b.armed || len(b.pending) == 0 {
		return
	}
	b.armed = true
	// controller-runtime cancels an event's context as soon as the handler returns; the
	// flush keeps its values (the logger) only. A stopped controller's queue ignores adds.
	ctx = context.WithoutCancel(ctx)
	time.AfterFunc(b.delay, func() { b.flush(ctx, q) })
}

func (b *batchMapper) flush(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	b.mu.Lock()
	pending := b.pending
	b.pending, b.armed = make(map[string]client.Object, len(pending)), false
	b.mu.Unlock()
	if q.ShuttingDown() {
		return
	}
	for _, o := range pending {
		for _, req := range b.fn(ctx, o) {
			q.Add(req)
		}
	}
}

// namespaceAndLabels keys objects by what a selector-matching map function reads of them.
// Label keys and values cannot hold ',' or '=', so the rendering is unambiguous.
func namespaceAndLabels(o client.Object) string {
	return o.GetNamespace() + "/" + labels.Set(o.GetLabels()).String()
}

// controllerOptions are shared by the three controllers. Name validation is skipped
// because the names are process-global in controller-runtime, and tests start several
// webhook servers in one process.
func controllerOptions() controller.Options {
	return controller.Options{SkipNameValidation: ptr.To(true)}
}

// injectedPodRequests maps the injected pods of a namespace ("" for all) that match keep
// (nil: all) to requests.
func injectedPodRequests(ctx context.Context, pods podReader, namespace string, keep func(*corev1.Pod) bool) []reconcile.Request {
	injected, err := pods.Injected(ctx, namespace)
	if err != nil {
		// A map function cannot return an error; the next event or resync maps again.
		logf.FromContext(ctx).Error(err, "listing injected pods", "namespace", namespace)
		return nil
	}
	var reqs []reconcile.Request
	for _, pod := range injected {
		if keep == nil || keep(pod) {
			reqs = append(reqs, requestFor(pod))
		}
	}
	return reqs
}

func requestFor(o client.Object) reconcile.Request {
	return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}}
}

// metadataChanged passes creations, deletions and updates of labels or annotations:
// namespace selection and opt-outs live there, while status updates (the bulk of the
// update traffic) change neither.
func metadataChanged() predicate.Predicate {
	return predicate.Or[client.Object](predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{})
}

// specChanged passes creations, deletions and updates that change what the injector
// reads of the object: for Plugins, PluginChains and PluginConfigs the generation (the
// spec) or the annotations (corsmesh.io/implements on a Plugin).
func specChanged() predicate.Predicate {
	return predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{})
}

// serviceChanged passes creations, deletions and updates of a Service's spec (its selector
// and ports decide what is intercepted); Services carry no generation to compare.
func serviceChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		old, okOld := e.ObjectOld.(*corev1.Service)
		cur, okNew := e.ObjectNew.(*corev1.Service)
		return !okOld || !okNew || !equality.Semantic.DeepEqual(old.Spec.Selector, cur.Spec.Selector) ||
			!equality.Semantic.DeepEqual(old.Spec.Ports, cur.Spec.Ports)
	}}
}

// acceptedCondition is the Resolver's Accepted condition as the API writes it.
func acceptedCondition(c injector.Condition, generation int64) metav1.Condition {
	status := metav1.ConditionFalse
	if c.Accepted {
		status = metav1.ConditionTrue
	}
	return metav1.Condition{Type: v1alpha1.ConditionAccepted, Status: status, Reason: c.Reason, Message: c.Message, ObservedGeneration: generation}
}

// patchStatus writes the status update makes to a copy of obj, when it changes anything:
// the one way the status controllers write. It returns the object as now stored (obj when
// nothing changed) and whether it wrote. The optimistic lock keeps a stale cache from
// overwriting a newer status; a conflict is retried with the fresh object.
func patchStatus[T client.Object](ctx context.Context, c client.Client, obj T, update func(next T)) (T, bool, error) {
	next, ok := obj.DeepCopyObject().(T)
	if !ok {
		return obj, false, fmt.Errorf("copying %T", obj)
	}
	update(next)
	if equality.Semantic.DeepEqual(obj, next) {
		return obj, false, nil
	}
	if err := c.Status().Patch(ctx, next, client.MergeFromWithOptions(obj, client.MergeFromWithOptimisticLock{})); err != nil {
		return obj, false, fmt.Errorf("updating status of %T %s/%s: %w", obj, obj.GetNamespace(), obj.GetName(), err)
	}
	return next, true, nil
}
