package controllers

import (
	"context"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
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
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

const pluginConfigName = "corsmesh-pluginconfig-status"

// unwatchedRecheck is how often a PluginConfig naming a Service of a namespace no Services
// informer watches (one the mesh does not monitor) is computed again: whether that Service
// exists is read live, and nothing tells the controller when it comes or goes.
const unwatchedRecheck = time.Minute

// namespaceWatcher is a Services informer that watches some namespaces only.
type namespaceWatcher interface {
	Watches(namespace string) bool
}

// PluginConfigReconciler writes a PluginConfig's Accepted condition: whether corsmesh uses
// it, and if not, why (osm-edge never said; a typo in a plugin name went unnoticed).
type PluginConfigReconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	Client   client.Client
	Resolver *injector.Resolver
	// Services are watched through this informer (nil: the manager's cache).
	Services cache.Informer
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
		WatchesRawSource(serviceSource(mgr, r.Services, handler.EnqueueRequestsFromMapFunc(r.configsForService), notInitialList(), existenceChanged())).
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

// configsNaming lists the PluginConfigs naming any of the Services, through the
// Resolver's index.
func (r *PluginConfigReconciler) configsNaming(ctx context.Context, serviceKeys []string) []reconcile.Request {
	seen := map[reconcile.Request]bool{}
	var reqs []reconcile.Request
	for _, key := range serviceKeys {
		ns, name, _ := strings.Cut(key, "/")
		configs, err := r.Resolver.Cluster().PluginConfigsFor(ctx, ns, name)
		if err != nil {
			logf.FromContext(ctx).Error(err, "listing PluginConfigs", "service", key)
			continue
		}
		for _, c := range configs {
			if req := requestFor(c); !seen[req] {
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
	status, err := r.Resolver.PluginConfig(ctx, &pc)
	if err != nil {
		return ctrl.Result{}, err
	}
	cond := acceptedCondition(status.Condition(), pc.Generation)
	_, changed, err := patchStatus(ctx, r.Client, &pc, func(next *v1alpha1.PluginConfig) {
		meta.SetStatusCondition(&next.Status.Conditions, cond)
		next.Status.ObservedGeneration = pc.Generation
	})
	if err != nil {
		return ctrl.Result{}, err
	}
	if changed {
		logf.FromContext(ctx).V(1).Info("status updated", "accepted", cond.Status, "reason", cond.Reason)
	}
	if w, ok := r.Services.(namespaceWatcher); ok {
		for _, key := range status.Services {
			if ns, _, _ := strings.Cut(key, "/"); !w.Watches(ns) {
				return ctrl.Result{RequeueAfter: unwatchedRecheck}, nil
			}
		}
	}
	return ctrl.Result{}, nil
}
