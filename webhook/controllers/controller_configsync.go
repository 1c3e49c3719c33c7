package controllers

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/corsmesh/corsmesh/corsproxy/config"
	"github.com/corsmesh/corsmesh/injector"
	configv1alpha2 "github.com/corsmesh/corsmesh/injector/api/config/v1alpha2"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

const configSyncName = "corsmesh-config-sync"

// Event reasons of the config sync controller, on the pod.
const (
	EventConfigUpdated   = "CORSConfigUpdated"
	EventPassthrough     = "CORSProxyPassthrough"
	EventRestartRequired = "CORSProxyRestartRequired"
	EventInvalidStatus   = "CORSProxyInvalidStatus"
)

// PodConditionRestartRequired is True on an injected pod whose Services now reach other
// ports than its proxy intercepts: the iptables rules are set at start only.
const PodConditionRestartRequired corev1.PodConditionType = "corsmesh.io/RestartRequired"

// Reasons of PodConditionRestartRequired.
const (
	reasonPortsChanged = "PortsChanged"
	reasonPortsMatch   = "PortsMatch"
)

// ConfigSyncReconciler keeps the config annotation of injected pods current: the kubelet
// refreshes the downward-API file from it and the proxy reloads, so policy edits apply to
// running pods without a restart. Port changes do need one, and it says so.
type ConfigSyncReconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	Client   client.Client
	Resolver *injector.Resolver
	// Services are watched through this informer (nil: the manager's cache).
	Services cache.Informer
	// Pods are watched and read through this cache of the monitored namespaces' pods
	// (nil, in unit tests: read through Client, not watched); other pods are read through
	// Live (nil: Client).
	Pods   PodCache
	Live   client.Reader
	Events events.EventRecorder // may be nil
	// Now stamps condition transitions (nil: time.Now).
	Now func() metav1.Time
}

// SetupWithManager registers the controller: injected pods, and what decides their config.
// Watching every input also makes the controller wait for those caches to sync before its
// first reconcile: with an empty PluginChain cache every pod would look unselected.
func (r *ConfigSyncReconciler) SetupWithManager(mgr ctrl.Manager) error {
	pods, err := podSource(r.Pods, &handler.EnqueueRequestForObject{}, predicate.NewPredicateFuncs(isInjected), metadataChanged(), notJustInjected(r.Resolver))
	if err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(configSyncName).
		WithOptions(controllerOptions()).
		WatchesRawSource(pods).
		Watches(&v1alpha1.PluginConfig{}, handler.EnqueueRequestsFromMapFunc(r.podsForPluginConfig), builder.WithPredicates(notInitialList(), predicate.GenerationChangedPredicate{})).
		WatchesRawSource(serviceSource(mgr, r.Services, handler.EnqueueRequestsFromMapFunc(r.podsForService), notInitialList(), serviceChanged())).
		Watches(&corev1.Namespace{}, handler.Funcs{UpdateFunc: r.namespaceUpdated}, builder.WithPredicates(notInitialList(), metadataChanged())).
		Watches(&v1alpha1.PluginChain{}, handler.EnqueueRequestsFromMapFunc(r.allInjectedPods), builder.WithPredicates(notInitialList(), predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.Plugin{}, handler.EnqueueRequestsFromMapFunc(r.allInjectedPods), builder.WithPredicates(notInitialList(), specChanged())).
		// The plugin-policy switch: pods left alone while it was off may have lost their
		// namespace's label meanwhile.
		Watches(&configv1alpha2.MeshConfig{}, handler.EnqueueRequestsFromMapFunc(r.everyInjectedPod), builder.WithPredicates(notInitialList(), predicate.GenerationChangedPredicate{})).
		WatchesRawSource(source.Func(r.sweepOutsideTheMesh)).
		Complete(r)
}

func (r *ConfigSyncReconciler) pods() podReader { return podsThrough(r.Pods, r.Live, r.Client) }

// live reads pods from the API server, whatever the cache holds.
func (r *ConfigSyncReconciler) live() readerPods {
	return readerPods{reader: cmp.Or(r.Live, client.Reader(r.Client))}
}

// notJustInjected drops the creation of a pod this process's webhook injected with a
// decision that still holds: reconciling it would decide again and find nothing to do (it
// was one reconcile per injected pod). It is safe: a change of anything the decision read
// moves the Resolver's revision before that change's own events are handled, so either
// the change is seen here (and the pod reconciled), or the pod is already in the cache
// when the change's events map to the injected pods, this one among them.
func notJustInjected(r *injector.Resolver) predicate.Predicate {
	return predicate.Funcs{CreateFunc: func(e event.CreateEvent) bool {
		if e.IsInInitialList {
			return true // a restart: the pods must be checked against what changed meanwhile
		}
		pod, ok := e.Object.(*corev1.Pod)
		if !ok {
			return true
		}
		status, err := injector.ParseStatus(pod)
		return err != nil || status == nil || !r.Current(status.Resolved)
	}}
}

// podsForPluginConfig maps a PluginConfig to the injected pods of the namespaces of the
// Services it names (the old and the new object are both mapped on update).
func (r *ConfigSyncReconciler) podsForPluginConfig(ctx context.Context, o client.Object) []reconcile.Request {
	pc, ok := o.(*v1alpha1.PluginConfig)
	if !ok {
		return nil
	}
	var reqs []reconcile.Request
	var seen []string
	for _, key := range injector.DestinationKeys(pc) {
		ns, _, _ := strings.Cut(key, "/")
		if slices.Contains(seen, ns) {
			continue
		}
		seen = append(seen, ns)
		reqs = append(reqs, injectedPodRequests(ctx, r.pods(), ns, nil)...)
	}
	return reqs
}

// podsForService maps a Service to the injected pods it selects.
func (r *ConfigSyncReconciler) podsForService(ctx context.Context, o client.Object) []reconcile.Request {
	svc, ok := o.(*corev1.Service)
	if !ok || len(svc.Spec.Selector) == 0 {
		return nil
	}
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	return injectedPodRequests(ctx, r.pods(), svc.Namespace, func(p *corev1.Pod) bool { return sel.Matches(labels.Set(p.Labels)) })
}

// namespaceUpdated maps a change of a namespace's labels or annotations to its injected
// pods: from the cache while the namespace is monitored (a chain's namespaceSelector may
// now select them, or no longer), and listed live when it has just left the mesh, whose
// pods are no longer cached (their informer stops with the label) but must have their
// proxies switched to passthrough. Pods of a namespace that stays outside the mesh pass
// traffic through already.
func (r *ConfigSyncReconciler) namespaceUpdated(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	for _, req := range r.podsForNamespace(ctx, e.ObjectOld, e.ObjectNew) {
		q.Add(req)
	}
}

func (r *ConfigSyncReconciler) podsForNamespace(ctx context.Context, oldObj, newObj client.Object) []reconcile.Request {
	oldNS, okOld := oldObj.(*corev1.Namespace)
	newNS, okNew := newObj.(*corev1.Namespace)
	if !okOld || !okNew {
		return nil
	}
	monitors := r.Resolver.Injector().Options().Monitors
	switch {
	case monitors(newNS):
		return injectedPodRequests(ctx, r.pods(), newNS.Name, nil)
	case monitors(oldNS):
		// The whole namespace listed, once per label removal: pods injected before the
		// injector labelled them are among them.
		return injectedPodRequests(ctx, wholeNamespaces{r.live()}, newNS.Name, nil)
	}
	return nil
}

// allInjectedPods maps PluginChains and Plugins, which select across namespaces, to the
// injected pods of the monitored namespaces.
func (r *ConfigSyncReconciler) allInjectedPods(ctx context.Context, _ client.Object) []reconcile.Request {
	return injectedPodRequests(ctx, r.pods(), "", nil)
}

// everyInjectedPod is allInjectedPods and those outside the monitored namespaces, listed
// live.
func (r *ConfigSyncReconciler) everyInjectedPod(ctx context.Context, o client.Object) []reconcile.Request {
	reqs := r.allInjectedPods(ctx, o)
	outside, err := r.injectedOutsideTheMesh(ctx)
	if err != nil {
		logf.FromContext(ctx).Error(err, "listing injected pods outside the monitored namespaces")
	}
	return append(reqs, outside...)
}

// injectedOutsideTheMesh lists live the injected pods of the namespaces whose pods the cache
// does not hold: those of a namespace unlabelled while this controller did not run (the
// webhook down, another replica leading) still need their proxies switched to passthrough.
// Found by their label, which pods injected before it existed lack: those keep their
// config until restarted.
func (r *ConfigSyncReconciler) injectedOutsideTheMesh(ctx context.Context) ([]reconcile.Request, error) {
	pods, err := r.live().Injected(ctx, "")
	if err != nil {
		return nil, err
	}
	var reqs []reconcile.Request
	for _, pod := range pods {
		if r.Pods == nil || !r.Pods.Watches(pod.Namespace) {
			reqs = append(reqs, requestFor(pod))
		}
	}
	return reqs, nil
}

// sweepOutsideTheMesh is a source run once as the controller starts: once the pods' cache
// knows the monitored namespaces, it queues the injected pods outside them (listed live,
// retried until it succeeds). The cache's own pods come as its initial list.
func (r *ConfigSyncReconciler) sweepOutsideTheMesh(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	go func() {
		if r.Pods != nil && !toolscache.WaitForCacheSync(ctx.Done(), r.Pods.HasSynced) {
			return
		}
		backoff := wait.Backoff{Duration: time.Second, Factor: 2, Steps: math.MaxInt32, Cap: time.Minute}
		_ = wait.ExponentialBackoffWithContext(ctx, backoff, func(ctx context.Context) (bool, error) {
			reqs, err := r.injectedOutsideTheMesh(ctx)
			if err != nil {
				logf.FromContext(ctx).Error(err, "listing injected pods outside the monitored namespaces; retrying")
				return false, nil
			}
			for _, req := range reqs {
				q.Add(req)
			}
			return true, nil
		})
	}()
	return nil
}

// Reconcile brings one injected pod's config annotation and RestartRequired condition in
// line with the decision for the pod as if it were created now.
func (r *ConfigSyncReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pod, err := r.pods().Pod(ctx, req.NamespacedName)
	if err != nil || pod == nil {
		return ctrl.Result{}, err
	}
	if !isInjected(pod) || pod.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	status, err := injector.ParseStatus(pod)
	if err != nil {
		// Not retried: only a new pod fixes the annotation.
		r.event(pod, corev1.EventTypeWarning, EventInvalidStatus, "Sync", "the CORS config is not kept current: %v", err)
		return ctrl.Result{}, nil
	}
	d, err := r.Resolver.Decide(ctx, pod, pod.Namespace, injector.ForResync)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("deciding for pod %s: %w", req.NamespacedName, err)
	}
	if d.Reason == injector.ReasonPluginPolicyDisabled {
		// As in osm-edge, the switch stops policy changes from applying, not the policy in
		// force: the pod keeps its config until plugin policy is on again.
		return ctrl.Result{}, nil
	}
	if err := r.syncConfig(ctx, pod, status, d); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, r.syncRestartCondition(ctx, pod, status, d)
}

// syncConfig patches the config annotation when it differs from what the proxy should serve.
func (r *ConfigSyncReconciler) syncConfig(ctx context.Context, pod *corev1.Pod, status *injector.Status, d *injector.Decision) error {
	want, err := proxyConfig(d, status.Ports).MarshalString()
	if err != nil {
		return err
	}
	if !needsAnnotationPatch(pod, want) {
		return nil
	}
	patch, err := annotationPatch(injector.AnnotationConfig, want)
	if err != nil {
		return err
	}
	// A merge patch of one annotation: it neither races the kubelet's status writes nor
	// needs the pod's resourceVersion, and applying it twice is harmless.
	if err := r.Client.Patch(ctx, pod, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("patching the CORS config of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	logf.FromContext(ctx).Info("CORS config updated", "inject", d.Inject, "reason", d.Reason)
	if d.Inject {
		r.event(pod, corev1.EventTypeNormal, EventConfigUpdated, "Sync", "CORS config updated from PluginChains %v; the proxy reloads it when the kubelet refreshes the file", d.Chains)
	} else {
		r.event(pod, corev1.EventTypeNormal, EventPassthrough, "Sync", "no CORS policy applies any more (%s: %s): the proxy passes traffic through; restarting the pod removes the proxy", d.Reason, d.Message)
	}
	return nil
}

// syncRestartCondition sets RestartRequired when the ports changed, clears it when they
// match again, and warns once per change.
func (r *ConfigSyncReconciler) syncRestartCondition(ctx context.Context, pod *corev1.Pod, status *injector.Status, d *injector.Decision) error {
	required, message := restartRequired(status.Ports, d)
	cond := restartCondition(findPodCondition(pod, PodConditionRestartRequired), required, message, r.now())
	if cond == nil {
		return nil
	}
	// A strategic merge patch keyed by condition type: it touches only this condition,
	// never the kubelet's, whatever their state in our cache.
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": []corev1.PodCondition{*cond}}})
	if err != nil {
		return fmt.Errorf("encoding the pod condition patch: %w", err)
	}
	if err := r.Client.Status().Patch(ctx, pod, client.RawPatch(types.StrategicMergePatchType, patch)); err != nil {
		return fmt.Errorf("patching condition %s of pod %s/%s: %w", PodConditionRestartRequired, pod.Namespace, pod.Name, err)
	}
	if required {
		r.event(pod, corev1.EventTypeWarning, EventRestartRequired, "Sync", "%s", message)
	}
	return nil
}

func (r *ConfigSyncReconciler) event(pod *corev1.Pod, eventType, reason, action, format string, args ...any) {
	if r.Events != nil {
		r.Events.Eventf(pod, nil, eventType, reason, action, format, args...)
	}
}

func (r *ConfigSyncReconciler) now() metav1.Time {
	if r.Now != nil {
		return r.Now()
	}
	return metav1.Now()
}

// proxyConfig is the config the pod's proxy should serve: for each port it intercepts
// (fixed at injection: iptables rules change only on restart) the desired entry, or a
// passthrough entry when the decision no longer injects or no longer reaches the port.
// Ports the decision adds are left out: no traffic reaches the proxy on them yet.
func proxyConfig(d *injector.Decision, injected []int32) *config.Config {
	cfg := &config.Config{Version: config.Version, Ports: []config.Port{}}
	for _, port := range sortedPorts(injected) {
		entry := config.Port{Port: port}
		if d.Inject && d.Config != nil {
			if p := d.Config.Lookup(port); p != nil {
				entry = *p
			}
		}
		cfg.Ports = append(cfg.Ports, entry)
	}
	return cfg
}

// needsAnnotationPatch reports whether the pod's config annotation differs from want. The
// webhook and the controller render with the same MarshalString, so the strings compare.
func needsAnnotationPatch(pod *corev1.Pod, want string) bool {
	have, ok := pod.Annotations[injector.AnnotationConfig]
	return !ok || have != want
}

// restartRequired reports whether the pod must restart to intercept the ports its Services
// now reach, and says so naming both sets. A pod no longer injected needs none: its proxy
// passes traffic through.
func restartRequired(injected []int32, d *injector.Decision) (bool, string) {
	if !d.Inject {
		return false, ""
	}
	have, want := sortedPorts(injected), sortedPorts(d.Ports)
	if slices.Equal(have, want) {
		return false, ""
	}
	return true, fmt.Sprintf("the CORS proxy intercepts ports %v but the pod's Services now reach ports %v: restart the pod (its workload) to intercept them, iptables rules are set only at start", have, want)
}

// restartCondition returns the RestartRequired condition to write, or nil when existing
// already says it. A False condition is only written over a True one: pods that never
// needed a restart do not get the condition at all.
func restartCondition(existing *corev1.PodCondition, required bool, message string, now metav1.Time) *corev1.PodCondition {
	if !required {
		if existing == nil || existing.Status != corev1.ConditionTrue {
			return nil
		}
		return &corev1.PodCondition{Type: PodConditionRestartRequired, Status: corev1.ConditionFalse, Reason: reasonPortsMatch,
			Message: "the CORS proxy intercepts the ports the pod's Services reach", LastTransitionTime: now}
	}
	if existing != nil && existing.Status == corev1.ConditionTrue && existing.Message == message {
		return nil
	}
	cond := &corev1.PodCondition{Type: PodConditionRestartRequired, Status: corev1.ConditionTrue, Reason: reasonPortsChanged, Message: message, LastTransitionTime: now}
	if existing != nil && existing.Status == corev1.ConditionTrue {
		cond.LastTransitionTime = existing.LastTransitionTime
	}
	return cond
}

func findPodCondition(pod *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == t {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

func annotationPatch(key, value string) ([]byte, error) {
	b, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{key: value}}})
	if err != nil {
		return nil, fmt.Errorf("encoding annotation patch: %w", err)
	}
	return b, nil
}

func sortedPorts(ports []int32) []int32 {
	out := slices.Clone(ports)
	slices.Sort(out)
	return slices.Compact(out)
}
