package webhook

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/corsmesh/corsmesh/corsproxy/config"
	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

const pluginConfigName = "corsmesh-pluginconfig-status"

// PluginConfigReconciler writes a PluginConfig's Accepted condition: whether corsmesh uses
// it, and if not, why (osm-edge never said; a typo in a plugin name went unnoticed).
type PluginConfigReconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	Client   client.Client
	Injector *injector.Injector
	Cluster  injector.Cluster
}

// SetupWithManager registers the controller. Besides the PluginConfig itself: the others
// naming the same Services (who wins a conflict), the Services (do they exist) and the
// Plugins (do they exist, are they CORS).
func (r *PluginConfigReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named(pluginConfigName).
		WithOptions(controllerOptions()).
		// Generation only: our own status writes must not wake us up again.
		For(&v1alpha1.PluginConfig{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.PluginConfig{}, handler.EnqueueRequestsFromMapFunc(r.configsSharingDestinations), builder.WithPredicates(notInitialList(), predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(r.configsForService), builder.WithPredicates(notInitialList(), existenceChanged())).
		Watches(&v1alpha1.Plugin{}, handler.EnqueueRequestsFromMapFunc(r.configsForPlugin), builder.WithPredicates(notInitialList(), specChanged())).
		Complete(r)
}

// existenceChanged passes creations and deletions only.
func existenceChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(event.UpdateEvent) bool { return false }}
}

// configsSharingDestinations maps a PluginConfig to every PluginConfig naming one of its
// Services: a change to one can make another win or lose.
func (r *PluginConfigReconciler) configsSharingDestinations(ctx context.Context, o client.Object) []reconcile.Request {
	pc, ok := o.(*v1alpha1.PluginConfig)
	if !ok {
		return nil
	}
	return r.configsNaming(ctx, injector.DestinationKeys(pc))
}

func (r *PluginConfigReconciler) configsForService(ctx context.Context, o client.Object) []reconcile.Request {
	return r.configsNaming(ctx, []string{o.GetNamespace() + "/" + o.GetName()})
}

// configsForPlugin maps a Plugin to the PluginConfigs of it and, since whether it is CORS
// decides conflicts, to those sharing a Service with them.
func (r *PluginConfigReconciler) configsForPlugin(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1alpha1.PluginConfigList
	if err := r.Client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		logf.FromContext(ctx).Error(err, "listing PluginConfigs")
		return nil
	}
	var keys []string
	for i := range list.Items {
		if list.Items[i].Spec.Plugin == o.GetName() {
			keys = append(keys, injector.DestinationKeys(&list.Items[i])...)
		}
	}
	return r.configsNaming(ctx, keys)
}

// configsNaming lists the PluginConfigs naming any of the Services, through the index.
func (r *PluginConfigReconciler) configsNaming(ctx context.Context, serviceKeys []string) []reconcile.Request {
	seen := map[reconcile.Request]bool{}
	var reqs []reconcile.Request
	for _, key := range serviceKeys {
		var list v1alpha1.PluginConfigList
		if err := r.Client.List(ctx, &list, client.MatchingFields{IndexPluginConfigDestination: key}, client.UnsafeDisableDeepCopy); err != nil {
			logf.FromContext(ctx).Error(err, "listing PluginConfigs", "service", key)
			continue
		}
		for i := range list.Items {
			if req := requestFor(&list.Items[i]); !seen[req] {
				seen[req] = true
				reqs = append(reqs, req)
			}
		}
	}
	return reqs
}

// Reconcile computes one PluginConfig's Accepted condition and writes it when it changed.
func (r *PluginConfigReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var pc v1alpha1.PluginConfig
	if err := r.Client.Get(ctx, req.NamespacedName, &pc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	facts, err := r.facts(ctx, &pc)
	if err != nil {
		return ctrl.Result{}, err
	}
	cond := desiredPluginConfigCondition(&pc, facts)
	next := pc.DeepCopy()
	meta.SetStatusCondition(&next.Status.Conditions, cond)
	next.Status.ObservedGeneration = pc.Generation
	if equality.Semantic.DeepEqual(pc.Status, next.Status) {
		return ctrl.Result{}, nil
	}
	// The optimistic lock keeps a stale cache from overwriting a newer status; a conflict
	// is retried with the fresh object.
	if err := r.Client.Status().Patch(ctx, next, client.MergeFromWithOptions(&pc, client.MergeFromWithOptimisticLock{})); err != nil {
		return ctrl.Result{}, fmt.Errorf("updating status of PluginConfig %s: %w", req.NamespacedName, err)
	}
	logf.FromContext(ctx).V(1).Info("status updated", "accepted", cond.Status, "reason", cond.Reason)
	return ctrl.Result{}, nil
}

// pluginConfigFacts is what the Accepted condition depends on besides the PluginConfig.
type pluginConfigFacts struct {
	// PluginFound and PluginIsCORS describe the Plugin spec.plugin names.
	PluginFound, PluginIsCORS bool
	// MissingServices are the "namespace/name" of destinationRefs naming no Service.
	MissingServices []string
	// Winners maps each Service ("namespace/name") for which another PluginConfig is in
	// effect to that one ("namespace/name").
	Winners map[string]string
}

func (r *PluginConfigReconciler) facts(ctx context.Context, pc *v1alpha1.PluginConfig) (pluginConfigFacts, error) {
	var f pluginConfigFacts
	isCORS := r.corsPluginLookup(ctx)
	var err error
	if f.PluginFound, f.PluginIsCORS, err = isCORS(pc.Spec.Plugin); err != nil {
		return f, err
	}
	for _, key := range injector.DestinationKeys(pc) {
		ns, name, _ := strings.Cut(key, "/")
		var svc corev1.Service
		switch err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &svc); {
		case apierrors.IsNotFound(err):
			f.MissingServices = append(f.MissingServices, key)
		case err != nil:
			return f, fmt.Errorf("getting Service %s: %w", key, err)
		}
		configs, err := r.Cluster.PluginConfigsFor(ctx, ns, name)
		if err != nil {
			return f, err
		}
		winner, err := effectivePluginConfig(configs, isCORS)
		if err != nil {
			return f, err
		}
		if winner != nil && (winner.Namespace != pc.Namespace || winner.Name != pc.Name) {
			if f.Winners == nil {
				f.Winners = map[string]string{}
			}
			f.Winners[key] = winner.Namespace + "/" + winner.Name
		}
	}
	return f, nil
}

// corsPluginLookup returns a lookup of Plugins by name, memoized for one reconcile.
func (r *PluginConfigReconciler) corsPluginLookup(ctx context.Context) func(name string) (found, cors bool, err error) {
	type answer struct{ found, cors bool }
	memo := map[string]answer{}
	return func(name string) (bool, bool, error) {
		if a, ok := memo[name]; ok {
			return a.found, a.cors, nil
		}
		p, err := r.Cluster.Plugin(ctx, name)
		if err != nil {
			return false, false, err
		}
		a := answer{found: p != nil, cors: p != nil && r.Injector.IsCORSPlugin(p)}
		memo[name] = a
		return a.found, a.cors, nil
	}
}

// effectivePluginConfig is the PluginConfig in effect for a Service among those naming it,
// as the injector chooses: the oldest (ComparePluginConfigs) of an existing CORS Plugin
// whose config is valid; invalid ones are skipped, not winners.
func effectivePluginConfig(configs []*v1alpha1.PluginConfig, isCORS func(name string) (found, cors bool, err error)) (*v1alpha1.PluginConfig, error) {
	sorted := slices.Clone(configs)
	slices.SortFunc(sorted, injector.ComparePluginConfigs)
	for _, c := range sorted {
		_, cors, err := isCORS(c.Spec.Plugin)
		if err != nil {
			return nil, err
		}
		if cors && configError(c) == nil {
			return c, nil
		}
	}
	return nil, nil
}

// configError is the policy's validation error; an absent config is the empty policy.
func configError(c *v1alpha1.PluginConfig) error {
	raw := c.Spec.Config.Raw
	if len(raw) == 0 {
		raw = []byte("{}")
	}
	_, err := config.ParseCORS(raw)
	return err
}

// desiredPluginConfigCondition is the Accepted condition for a PluginConfig. The checks run
// in the order a user fixes things: the plugin, its config, then where it applies.
func desiredPluginConfigCondition(pc *v1alpha1.PluginConfig, f pluginConfigFacts) metav1.Condition {
	rejected := func(reason, format string, args ...any) metav1.Condition {
		return metav1.Condition{Type: v1alpha1.ConditionAccepted, Status: metav1.ConditionFalse, ObservedGeneration: pc.Generation,
			Reason: reason, Message: fmt.Sprintf(format, args...)}
	}
	keys := injector.DestinationKeys(pc)
	switch {
	case !f.PluginFound:
		return rejected(v1alpha1.ReasonPluginNotFound, "Plugin %q does not exist", pc.Spec.Plugin)
	case !f.PluginIsCORS:
		return rejected(v1alpha1.ReasonUnsupportedPlugin, "corsmesh does not implement Plugin %q (only CORS): this configuration is not applied", pc.Spec.Plugin)
	case configError(pc) != nil:
		return rejected(v1alpha1.ReasonInvalid, "%s", configErrorMessage(configError(pc)))
	case len(keys) == 0:
		return rejected(v1alpha1.ReasonInvalid, "spec.destinationRefs: names no Service")
	case len(f.MissingServices) > 0:
		msg := fmt.Sprintf("%s not found", plural("Service", f.MissingServices))
		if rest := without(keys, f.MissingServices); len(rest) > 0 {
			msg += fmt.Sprintf("; the policy applies to %s", plural("Service", rest))
		}
		return rejected(v1alpha1.ReasonDestinationNotFound, "%s", msg)
	case len(f.Winners) > 0:
		var msgs []string
		for _, svc := range slices.Sorted(maps.Keys(f.Winners)) {
			msgs = append(msgs, fmt.Sprintf("PluginConfig %s is older and in effect for Service %s", f.Winners[svc], svc))
		}
		return rejected(v1alpha1.ReasonConflict, "%s", strings.Join(msgs, "; "))
	}
	return metav1.Condition{Type: v1alpha1.ConditionAccepted, Status: metav1.ConditionTrue, ObservedGeneration: pc.Generation,
		Reason: v1alpha1.ReasonAccepted, Message: fmt.Sprintf("CORS policy in effect for %s", plural("Service", keys))}
}

// configErrorMessage names each invalid field by its path under spec.config.
func configErrorMessage(err error) string {
	var list config.ErrorList
	if !errors.As(err, &list) {
		return "spec.config: " + err.Error()
	}
	msgs := make([]string, len(list))
	for i, fe := range list {
		path := "spec.config"
		if fe.Field != "" && fe.Field != "(document)" {
			path += "." + fe.Field
		}
		msgs[i] = path + ": " + fe.Detail
	}
	return strings.Join(msgs, "; ")
}

// plural renders "Service a" or "Services a, b".
func plural(noun string, items []string) string {
	if len(items) == 1 {
		return noun + " " + items[0]
	}
	return noun + "s " + strings.Join(items, ", ")
}

func without(items, drop []string) []string {
	var out []string
	for _, it := range items {
		if !slices.Contains(drop, it) && !slices.Contains(out, it) {
			out = append(out, it)
		}
	}
	return out
}
