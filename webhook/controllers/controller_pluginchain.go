package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/corsmesh/corsmesh/injector"
	configv1alpha2 "github.com/corsmesh/corsmesh/injector/api/config/v1alpha2"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

const pluginChainName = "corsmesh-pluginchain-status"

// Annotations on a PluginChain.
const (
	// AnnotationRestartWorkloads: "true" opts the chain in to restarting, as `kubectl
	// rollout restart` does, the workloads of the pods it selects that run without the proxy.
	AnnotationRestartWorkloads = "corsmesh.io/restart-workloads"
	// AnnotationRestartedWorkloads records (restartRecord JSON) which workloads were
	// restarted for which generation of the chain: once each, so a pod the webhook again
	// leaves without a sidecar (it was down, say) cannot cause a restart loop.
	AnnotationRestartedWorkloads = "corsmesh.io/restarted-workloads"
	// annotationRestartedAt is kubectl's own: the pod template change that rolls a workload.
	annotationRestartedAt = "kubectl.kubernetes.io/restartedAt"
)

// Event reasons of the PluginChain controller, on the chain.
const (
	EventWorkloadsRestarted = "CORSWorkloadsRestarted"
	EventRestartFailed      = "CORSWorkloadRestartFailed"
)

// podEventDelay batches the pod events of a chain: its status counts pods, and a rollout
// creating a hundred of them should cost one mapping to the chains selecting them, one
// reconcile and one status write, not a hundred. Mapping a pod matches it against every
// chain's selectors; per event it was a tenth of the webhook's CPU per pod created (1,000
// chains: 0.15 ms of a 3.1 ms pod in hack/bench/webhook's profile).
const podEventDelay = time.Second

// maxHintWorkloads bounds restartHint: a status is no place for ten thousand names.
const maxHintWorkloads = 50

// PluginChainReconciler writes a PluginChain's status: whether it mounts CORS where
// corsmesh serves it, how many pods it selects, which of those still run without the proxy
// (pods created before the chain, as in the seed guide's order) and the command that
// restarts them; on request it restarts them itself.
type PluginChainReconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	Client   client.Client
	Resolver *injector.Resolver
	// Services are watched through this informer (nil: the manager's cache).
	Services cache.Informer
	Events   events.EventRecorder // may be nil
	// Pods are watched and read through this cache of the monitored namespaces' pods
	// (nil, in unit tests: read through Client, not watched); a namespace it does not hold
	// yet is read through Live (nil: Client).
	Pods PodCache
	Live client.Reader
	// ReplicaSets holds the monitored namespaces' ReplicaSets as metadata (nil: read
	// through Live); a ReplicaSet it does not hold is read through Live.
	ReplicaSets ReplicaSetCache
	// Now stamps restarts (nil: time.Now).
	Now func() time.Time
}

// SetupWithManager registers the controller: chains, and the pods, namespaces, Plugins,
// Services and the MeshConfig that change what they select or whether a restart would
// inject.
func (r *PluginChainReconciler) SetupWithManager(mgr ctrl.Manager) error {
	pods, err := podSource(r.Pods, mapBatched(podEventDelay, namespaceAndLabels, r.chainsSelectingPod), notInitialList(), podSelectionChanged())
	if err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(pluginChainName).
		WithOptions(controllerOptions()).
		// Annotations too: the restart opt-in lives there. Our status writes pass neither.
		For(&v1alpha1.PluginChain{}, builder.WithPredicates(specChanged())).
		WatchesRawSource(pods).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.allChains), builder.WithPredicates(notInitialList(), metadataChanged())).
		Watches(&v1alpha1.Plugin{}, handler.EnqueueRequestsFromMapFunc(r.chainsNamingPlugin), builder.WithPredicates(notInitialList(), specChanged())).
		WatchesRawSource(serviceSource(mgr, r.Services, mapBatched(podEventDelay, everyServiceAlike, r.allChains), notInitialList(), serviceChanged())).
		Watches(&configv1alpha2.MeshConfig{}, handler.EnqueueRequestsFromMapFunc(r.allChains), builder.WithPredicates(notInitialList(), predicate.GenerationChangedPredicate{})).
		Complete(r)
}

// podSelectionChanged passes pod creations and deletions, and updates that change whether
// or how a pod is counted: its labels, its sidecar, its owner, whether it is still running.
// Status updates, most of a pod's updates, pass only when the pod finishes.
func podSelectionChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		old, okOld := e.ObjectOld.(*corev1.Pod)
		cur, okNew := e.ObjectNew.(*corev1.Pod)
		if !okOld || !okNew {
			return true
		}
		return !maps.Equal(old.Labels, cur.Labels) || isInjected(old) != isInjected(cur) ||
			podCounted(old) != podCounted(cur) || !equality.Semantic.DeepEqual(old.OwnerReferences, cur.OwnerReferences)
	}}
}

// podCounted: finished and terminating pods are not counted, nor restarted.
func podCounted(p *corev1.Pod) bool {
	return p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

// listChains maps to the chains keep accepts (nil: all), read without copying them.
func (r *PluginChainReconciler) listChains(ctx context.Context, keep func(*v1alpha1.PluginChain) bool) []reconcile.Request {
	chains, err := r.Resolver.Chains(ctx)
	if err != nil {
		logf.FromContext(ctx).Error(err, "listing PluginChains")
		return nil
	}
	var reqs []reconcile.Request
	for i := range chains {
		if keep == nil || keep(chains[i].Chain) {
			reqs = append(reqs, requestFor(chains[i].Chain))
		}
	}
	return reqs
}

// everyServiceAlike keys every Service event the same: each maps to all chains, so a burst
// (a namespace just labelled delivering its ten thousand Services, each a creation) lists
// the chains once per window instead of once per Service.
func everyServiceAlike(client.Object) string { return "" }

func (r *PluginChainReconciler) allChains(ctx context.Context, _ client.Object) []reconcile.Request {
	return r.listChains(ctx, nil)
}

// chainsSelectingPod maps a pod to the chains whose selectors match it (old and new labels
// are both mapped on update). Every pod event of the monitored namespaces passes through
// here, so it reads the chains without copying them.
//
// Pods outside the mesh's namespaces map to nothing: the chains count only monitored
// namespaces' pods (one may come from an informer about to stop with the label).
func (r *PluginChainReconciler) chainsSelectingPod(ctx context.Context, o client.Object) []reconcile.Request {
	ns, err := r.Resolver.Cluster().Namespace(ctx, o.GetNamespace())
	if err != nil || !r.Resolver.Injector().Options().Monitors(ns) {
		return nil
	}
	var reqs []reconcile.Request
	// A chain with a bad selector is reconciled too: its status says so.
	if err := r.Resolver.EachChainSelecting(ctx, o.GetLabels(), ns.Labels, func(c *injector.CompiledChain) {
		reqs = append(reqs, requestFor(c.Chain))
	}); err != nil {
		logf.FromContext(ctx).Error(err, "listing PluginChains")
		return nil
	}
	return reqs
}

func (r *PluginChainReconciler) chainsNamingPlugin(ctx context.Context, o client.Object) []reconcile.Request {
	return r.listChains(ctx, func(c *v1alpha1.PluginChain) bool {
		return slices.ContainsFunc(c.Spec.Chains, func(ch v1alpha1.ChainPluginSpec) bool { return slices.Contains(ch.Plugins, o.GetName()) })
	})
}

// Reconcile computes one chain's status, writes it when it changed, and restarts the
// workloads of its pods without sidecar when the chain asks for it.
func (r *PluginChainReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var chain v1alpha1.PluginChain
	if err := r.Client.Get(ctx, req.NamespacedName, &chain); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	status, err := r.Resolver.Chain(ctx, &chain)
	if err != nil {
		return ctrl.Result{}, err
	}
	cond := acceptedCondition(status.Condition(), chain.Generation)
	var selected int32
	var withoutSidecar []*corev1.Pod
	var workloads []chainWorkload
	if status.Compiled.Err == nil {
		if selected, withoutSidecar, err = r.selectPods(ctx, status.Compiled.Pods, status.Compiled.Namespaces); err != nil {
			return ctrl.Result{}, err
		}
		if workloads, err = r.workloadsOf(ctx, withoutSidecar); err != nil {
			return ctrl.Result{}, err
		}
	}
	stored, _, err := patchStatus(ctx, r.Client, &chain, func(next *v1alpha1.PluginChain) {
		meta.SetStatusCondition(&next.Status.Conditions, cond)
		next.Status.ObservedGeneration = chain.Generation
		next.Status.SelectedPods = selected
		next.Status.PodsWithoutSidecar = int32(len(withoutSidecar))
		next.Status.RestartHint = restartHint(workloads)
	})
	if err != nil {
		return ctrl.Result{}, err
	}
	if wantsRestart(stored) {
		return ctrl.Result{}, r.restartWorkloads(ctx, stored.DeepCopy(), workloads)
	}
	return ctrl.Result{}, nil
}

// selectPods counts the running pods of the mesh's namespaces that the selectors match,
// and returns those without the proxy that a restart would inject (not those opted out,
// on the host network or without an HTTP port: restarting them changes nothing).
func (r *PluginChainReconciler) selectPods(ctx context.Context, podSel, nsSel labels.Selector) (int32, []*corev1.Pod, error) {
	var namespaces corev1.NamespaceList
	if err := r.Client.List(ctx, &namespaces, client.MatchingLabels{injector.LabelMonitoredBy: r.Resolver.Injector().Options().MeshName}); err != nil {
		return 0, nil, fmt.Errorf("listing monitored namespaces: %w", err)
	}
	var selected int32
	var without []*corev1.Pod
	for _, ns := range namespaces.Items {
		if !nsSel.Matches(labels.Set(ns.Labels)) {
			continue
		}
		pods, err := r.pods().Pods(ctx, ns.Name, podSel)
		if err != nil {
			return 0, nil, fmt.Errorf("listing pods of namespace %s: %w", ns.Name, err)
		}
		for _, pod := range pods {
			if !podCounted(pod) {
				continue
			}
			selected++
			if isInjected(pod) {
				continue
			}
			d, err := r.Resolver.Decide(ctx, pod, pod.Namespace, injector.ForAdmission)
			if err != nil {
				return 0, nil, fmt.Errorf("deciding for pod %s/%s: %w", pod.Namespace, pod.Name, err)
			}
			if d.Inject {
				without = append(without, pod)
			}
		}
	}
	return selected, without, nil
}

func (r *PluginChainReconciler) pods() podReader { return podsThrough(r.Pods, r.Live, r.Client) }

// chainWorkload is what restarts a pod: its Deployment, StatefulSet or DaemonSet, or the
// pod itself (Kind "Pod") when it has no owner kubectl can roll.
type chainWorkload struct {
	Kind, Namespace, Name string
}

func (w chainWorkload) rollable() bool { return w.Kind != "Pod" }

func (w chainWorkload) key() string { return w.Kind + "/" + w.Namespace + "/" + w.Name }

// workloadsOf resolves the pods' workloads, reading the ReplicaSets between pods and
// Deployments as metadata only (a small cache, and no ReplicaSet specs in memory).
func (r *PluginChainReconciler) workloadsOf(ctx context.Context, pods []*corev1.Pod) ([]chainWorkload, error) {
	live := r.Live
	if live == nil {
		live = r.Client
	}
	rsOwners := map[string]*metav1.OwnerReference{}
	for _, pod := range pods {
		ref := metav1.GetControllerOf(pod)
		if ref == nil || !isAppsKind(ref, "ReplicaSet") {
			continue
		}
		key := types.NamespacedName{Namespace: pod.Namespace, Name: ref.Name}
		if _, done := rsOwners[key.String()]; done {
			continue
		}
		owner, err := replicaSetController(ctx, r.ReplicaSets, live, key)
		if err != nil {
			return nil, err
		}
		rsOwners[key.String()] = owner
	}
	return podWorkloads(pods, rsOwners), nil
}

// podWorkloads maps pods to their workloads, merged and sorted. rsOwners gives the
// controller of each ReplicaSet ("namespace/name"; nil: none, or not found).
func podWorkloads(pods []*corev1.Pod, rsOwners map[string]*metav1.OwnerReference) []chainWorkload {
	byKey := map[string]chainWorkload{}
	for _, pod := range pods {
		w := podWorkload(pod, rsOwners)
		byKey[w.key()] = w
	}
	out := slices.Collect(maps.Values(byKey))
	slices.SortFunc(out, func(a, b chainWorkload) int {
		return strings.Compare(a.Namespace+"/"+a.Kind+"/"+a.Name, b.Namespace+"/"+b.Kind+"/"+b.Name)
	})
	return out
}

// podWorkload follows a pod's controller: ReplicaSet to Deployment, or StatefulSet or
// DaemonSet. Anything else (a bare pod, a Job, a ReplicaSet of its own) is restarted by
// deleting the pod: its controller, if any, makes a new one.
func podWorkload(pod *corev1.Pod, rsOwners map[string]*metav1.OwnerReference) chainWorkload {
	w := chainWorkload{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name}
	ref := metav1.GetControllerOf(pod)
	switch {
	case ref == nil:
	case isAppsKind(ref, "StatefulSet"), isAppsKind(ref, "DaemonSet"):
		w.Kind, w.Name = ref.Kind, ref.Name
	case isAppsKind(ref, "ReplicaSet"):
		if dep := rsOwners[pod.Namespace+"/"+ref.Name]; dep != nil && isAppsKind(dep, "Deployment") {
			w.Kind, w.Name = dep.Kind, dep.Name
		}
	}
	return w
}

func isAppsKind(ref *metav1.OwnerReference, kind string) bool {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	return err == nil && gv.Group == appsv1.GroupName && ref.Kind == kind
}

// restartHint is the command restarting the workloads, one per namespace and verb:
//
//	kubectl rollout restart -n pipy deployment/pipy-ok-v1 deployment/pipy-ok-v2
//	kubectl delete pod -n NS NAME   (pods without a rollable owner)
//
// joined by " && "; beyond maxHintWorkloads the rest are only counted, in a comment.
func restartHint(ws []chainWorkload) string {
	shown := ws
	if len(shown) > maxHintWorkloads {
		shown = shown[:maxHintWorkloads]
	}
	type group struct {
		namespace string
		rollable  bool
	}
	var order []group
	members := map[group][]string{}
	for _, w := range shown {
		g := group{w.Namespace, w.rollable()}
		if _, ok := members[g]; !ok {
			order = append(order, g)
		}
		name := w.Name
		if w.rollable() {
			name = strings.ToLower(w.Kind) + "/" + w.Name
		}
		members[g] = append(members[g], name)
	}
	slices.SortStableFunc(order, func(a, b group) int {
		if c := strings.Compare(a.namespace, b.namespace); c != 0 {
			return c
		}
		if a.rollable == b.rollable {
			return 0
		}
		if a.rollable {
			return -1
		}
		return 1
	})
	cmds := make([]string, 0, len(order))
	for _, g := range order {
		verb := "kubectl rollout restart -n " + g.namespace
		if !g.rollable {
			verb = "kubectl delete pod -n " + g.namespace
		}
		cmds = append(cmds, verb+" "+strings.Join(members[g], " "))
	}
	hint := strings.Join(cmds, " && ")
	if rest := len(ws) - len(shown); rest > 0 {
		hint += fmt.Sprintf(" # and %d more workloads", rest)
	}
	return hint
}

// restartRecord is AnnotationRestartedWorkloads: the workloads (chainWorkload keys)
// restarted for one generation of the chain.
type restartRecord struct {
	Generation int64    `json:"generation"`
	Workloads  []string `json:"workloads"`
}

func wantsRestart(c *v1alpha1.PluginChain) bool {
	on, err := strconv.ParseBool(c.Annotations[AnnotationRestartWorkloads])
	return err == nil && on
}

// pendingRestarts are the rollable workloads not yet restarted for this generation. A
// record of an older generation (or an unreadable one) counts for nothing: the chain
// changed, so its pods may need a restart again.
func pendingRestarts(ws []chainWorkload, recorded string, generation int64) (todo []chainWorkload, record restartRecord) {
	record = restartRecord{Generation: generation}
	var old restartRecord
	if json.Unmarshal([]byte(recorded), &old) == nil && old.Generation == generation {
		record.Workloads = old.Workloads
	}
	for _, w := range ws {
		if w.rollable() && !slices.Contains(record.Workloads, w.key()) {
			todo = append(todo, w)
		}
	}
	return todo, record
}

// restartWorkloads restarts the pending workloads. The record is written first: a restart
// that then fails is reported, not retried, so nothing restarts twice in one generation.
func (r *PluginChainReconciler) restartWorkloads(ctx context.Context, chain *v1alpha1.PluginChain, ws []chainWorkload) error {
	todo, record := pendingRestarts(ws, chain.Annotations[AnnotationRestartedWorkloads], chain.Generation)
	if len(todo) == 0 {
		return nil
	}
	for _, w := range todo {
		record.Workloads = append(record.Workloads, w.key())
	}
	recorded, err := json.Marshal(record)
	if err != nil {
		return fmt.Errorf("encoding restart record: %w", err)
	}
	orig := chain.DeepCopy()
	if chain.Annotations == nil {
		chain.Annotations = map[string]string{}
	}
	chain.Annotations[AnnotationRestartedWorkloads] = string(recorded)
	// The optimistic lock makes the record a claim: a reconcile on a stale chain conflicts
	// instead of restarting the same workloads again.
	if err := r.Client.Patch(ctx, chain, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("recording restarts on PluginChain %s/%s: %w", chain.Namespace, chain.Name, err)
	}
	var restarted []string
	var errs []error
	for _, w := range todo {
		if err := r.restart(ctx, w); err != nil {
			errs = append(errs, err)
			r.event(chain, corev1.EventTypeWarning, EventRestartFailed, "Restart", "could not restart %s %s/%s: %v; run: %s", w.Kind, w.Namespace, w.Name, err, restartHint([]chainWorkload{w}))
			continue
		}
		restarted = append(restarted, strings.ToLower(w.Kind)+"/"+w.Name+" in "+w.Namespace)
	}
	if len(restarted) > 0 {
		logf.FromContext(ctx).Info("restarted workloads for the CORS proxy", "workloads", restarted)
		r.event(chain, corev1.EventTypeNormal, EventWorkloadsRestarted, "Restart", "restarted %s so their pods get the CORS proxy (%s=true)", strings.Join(restarted, ", "), AnnotationRestartWorkloads)
	}
	// Not returned for a retry: the record says they are done. The Warning says what to run.
	if err := errors.Join(errs...); err != nil {
		logf.FromContext(ctx).Error(err, "restarting workloads")
	}
	return nil
}

// restart does what `kubectl rollout restart` does: stamp the pod template, so the
// workload's controller rolls its pods.
func (r *PluginChainReconciler) restart(ctx context.Context, w chainWorkload) error {
	var obj client.Object
	switch w.Kind {
	case "Deployment":
		obj = &appsv1.Deployment{}
	case "StatefulSet":
		obj = &appsv1.StatefulSet{}
	case "DaemonSet":
		obj = &appsv1.DaemonSet{}
	default:
		return fmt.Errorf("cannot roll a %s", w.Kind)
	}
	obj.SetNamespace(w.Namespace)
	obj.SetName(w.Name)
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{annotationRestartedAt: now().Format(time.RFC3339)}}}}})
	if err != nil {
		return fmt.Errorf("encoding restart patch: %w", err)
	}
	if err := r.Client.Patch(ctx, obj, client.RawPatch(types.StrategicMergePatchType, patch)); err != nil {
		return fmt.Errorf("patching %s %s/%s: %w", w.Kind, w.Namespace, w.Name, err)
	}
	return nil
}

func (r *PluginChainReconciler) event(chain *v1alpha1.PluginChain, eventType, reason, action, format string, args ...any) {
	if r.Events != nil {
		r.Events.Eventf(chain, nil, eventType, reason, action, format, args...)
	}
}
