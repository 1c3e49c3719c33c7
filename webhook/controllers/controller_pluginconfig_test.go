package controllers

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
	"github.com/corsmesh/corsmesh/injector/injectortest"
)

// The reconciler against the seed cluster plus one PluginConfig per case.
func TestPluginConfigReconcile(t *testing.T) {
	valid := `{"allowOrigins":[{"exact":"http://a.example"}]}`
	later := ctlChainCreated.Add(time.Hour)
	tests := []struct {
		name     string
		pc       *v1alpha1.PluginConfig
		reason   string
		mentions string
	}{
		{"the seed's own", nil, v1alpha1.ReasonAccepted, "CORS policy in effect for Service pipy/pipy-ok"},
		{"PluginNotFound", injectortest.PluginConfig("typo", "cors-polcy", valid, later, "pipy-ok-v1"), v1alpha1.ReasonPluginNotFound, `Plugin "cors-polcy" does not exist`},
		{"UnsupportedPlugin", injectortest.PluginConfig("limits", "rate-limit", valid, later, "pipy-ok-v1"), v1alpha1.ReasonUnsupportedPlugin, `Plugin "rate-limit"`},
		{"Invalid", injectortest.PluginConfig("bad", "cors-policy", `{"allowOrigins":[{"regex":"("}]}`, later, "pipy-ok-v1"), v1alpha1.ReasonInvalid, "spec.config.allowOrigins[0].regex: "},
		{"DestinationNotFound", injectortest.PluginConfig("lost", "cors-policy", valid, later, "pipy-ok-v3"), v1alpha1.ReasonDestinationNotFound, "Service pipy/pipy-ok-v3 not found"},
		{"Conflict: a newer one for the seed's Service", injectortest.PluginConfig("newer", "cors-policy", valid, later, "pipy-ok"), v1alpha1.ReasonConflict,
			"PluginConfig pipy/cors-policy-config is older and in effect for Service pipy/pipy-ok"},
		{"no conflict with an older invalid one", injectortest.PluginConfig("older-invalid", "cors-policy", `{"maxAge":"x"}`, ctlChainCreated.Add(-time.Hour), "pipy-ok"), v1alpha1.ReasonInvalid, "spec.config.maxAge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seed := ctlLoadSeed(t)
			objs := append(seed.clientObjects(), &v1alpha1.Plugin{ObjectMeta: metav1.ObjectMeta{Name: "rate-limit"}})
			name := "cors-policy-config"
			if tt.pc != nil {
				objs, name = append(objs, tt.pc), tt.pc.Name
			}
			c, writes := ctlClient(t, objs...)
			r := &PluginConfigReconciler{Client: c, Resolver: clientResolver(ctlInjector(), c)}

			ctlReconcile(t, r, "pipy", name)
			got := ctlGet(t, c, &v1alpha1.PluginConfig{}, "pipy", name)
			cond := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionAccepted)
			if cond == nil || cond.Reason != tt.reason || !strings.Contains(cond.Message, tt.mentions) {
				t.Fatalf("Accepted = %+v, want reason %s mentioning %q", cond, tt.reason, tt.mentions)
			}
			wantStatus := metav1.ConditionFalse
			if tt.reason == v1alpha1.ReasonAccepted {
				wantStatus = metav1.ConditionTrue
			}
			if cond.Status != wantStatus {
				t.Errorf("Accepted status = %s, want %s", cond.Status, wantStatus)
			}
			if cond.ObservedGeneration != 1 || got.Status.ObservedGeneration != 1 {
				t.Errorf("observedGeneration = %d/%d, want 1", cond.ObservedGeneration, got.Status.ObservedGeneration)
			}
			if n := writes.get("status"); n != 1 {
				t.Errorf("%d status writes, want 1", n)
			}

			// No hot loop: the same state again writes nothing.
			ctlReconcile(t, r, "pipy", name)
			if n := writes.get("status"); n != 1 {
				t.Errorf("second reconcile wrote the status again (%d writes)", n)
			}
		})
	}
}

// When the winner of a conflict goes, the loser is accepted; the change reaches it through
// the map function of the winner.
func TestPluginConfigConflictResolves(t *testing.T) {
	seed := ctlLoadSeed(t)
	newer := injectortest.PluginConfig("newer", "cors-policy", `{}`, ctlChainCreated.Add(time.Hour), "pipy-ok")
	c, _ := ctlClient(t, append(seed.clientObjects(), newer)...)
	r := &PluginConfigReconciler{Client: c, Resolver: clientResolver(ctlInjector(), c)}
	ctx := context.Background()

	winner := ctlGet(t, c, &v1alpha1.PluginConfig{}, "pipy", "cors-policy-config")
	if got := ctlRequestNames(r.configsSharingDestinations(ctx, winner)); strings.Join(got, ",") != "pipy/cors-policy-config,pipy/newer" {
		t.Errorf("configs sharing the winner's Service = %v", got)
	}
	ctlReconcile(t, r, "pipy", "newer")
	ctlDelete(t, c, winner)
	ctlReconcile(t, r, "pipy", "newer")
	got := ctlGet(t, c, &v1alpha1.PluginConfig{}, "pipy", "newer")
	if cond := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionAccepted); cond == nil || cond.Status != metav1.ConditionTrue {
		t.Errorf("Accepted = %+v, want True once the older one is gone", cond)
	}
	if got := ctlRequestNames(r.configsForPlugin(ctx, seed.objs.Plugins[0])); strings.Join(got, ",") != "pipy/newer" {
		t.Errorf("configs of Plugin cors-policy = %v", got)
	}
	if got := ctlRequestNames(r.configsForService(ctx, seed.objs.ServiceList[0])); strings.Join(got, ",") != "pipy/newer" {
		t.Errorf("configs of Service pipy-ok = %v", got)
	}
}

// watching is a Services informer watching the namespaces listed.
type watching struct {
	cache.Informer
	namespaces []string
}

func (w watching) Watches(ns string) bool { return slices.Contains(w.namespaces, ns) }

// A PluginConfig naming a Service no informer watches is computed again after a while:
// nothing else would tell it the Service came or went.
func TestPluginConfigRechecksUnwatchedServices(t *testing.T) {
	tests := []struct {
		name     string
		services cache.Informer
		want     time.Duration
	}{
		{"every Service in the manager's cache", nil, 0},
		{"the Service's namespace watched", watching{namespaces: []string{"pipy"}}, 0},
		{"the Service's namespace not watched", watching{}, unwatchedRecheck},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := ctlClient(t, ctlLoadSeed(t).clientObjects()...)
			r := &PluginConfigReconciler{Client: c, Resolver: clientResolver(ctlInjector(), c), Services: tt.services}
			res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "pipy", Name: "cors-policy-config"}})
			if err != nil {
				t.Fatal(err)
			}
			if res.RequeueAfter != tt.want {
				t.Errorf("RequeueAfter = %s, want %s", res.RequeueAfter, tt.want)
			}
		})
	}
}
