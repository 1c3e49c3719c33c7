package controllers

import (
	"context"
	"errors"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/corsmesh/corsmesh/webhook/informers"
	"github.com/corsmesh/corsmesh/webhook/slim"
)

// A ReplicaSet's controller is read from the cache of the monitored namespaces'
// ReplicaSets, and live only where the cache does not hold it: a namespace it does not
// cache, or a ReplicaSet it has not heard of.
func TestReplicaSetController(t *testing.T) {
	rsMeta := func(ns, name string, owner *metav1.OwnerReference) *metav1.PartialObjectMetadata {
		rs := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: "1"}}
		rs.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))
		if owner != nil {
			rs.OwnerReferences = []metav1.OwnerReference{*owner}
		}
		return rs
	}
	dep := func(name string) *metav1.OwnerReference {
		r := ctlControllerRef("apps/v1", "Deployment", name)
		return &r
	}
	cached := []*metav1.PartialObjectMetadata{rsMeta("pipy", "web-1", dep("web")), rsMeta("pipy", "solo-1", nil)}
	rsCache := ctlReplicaSetCache(t, cached, "pipy")
	// The API server: what the cache holds, and what it has not heard of yet.
	liveObjs := []client.Object{
		&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "pipy", Name: "web-1", OwnerReferences: []metav1.OwnerReference{*dep("web")}}},
		&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "pipy", Name: "new-1", OwnerReferences: []metav1.OwnerReference{*dep("new")}}},
		&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "api-1", OwnerReferences: []metav1.OwnerReference{*dep("api")}}},
	}
	tests := []struct {
		name      string
		cache     ReplicaSetCache
		key       types.NamespacedName
		failLive  bool
		want      string // the controller's name; "" none
		liveReads int
		wantErr   bool
	}{
		{"cached, of a Deployment", rsCache, types.NamespacedName{Namespace: "pipy", Name: "web-1"}, false, "web", 0, false},
		{"cached, of no controller", rsCache, types.NamespacedName{Namespace: "pipy", Name: "solo-1"}, false, "", 0, false},
		{"not yet cached", rsCache, types.NamespacedName{Namespace: "pipy", Name: "new-1"}, false, "new", 1, false},
		{"namespace not cached", rsCache, types.NamespacedName{Namespace: "other", Name: "api-1"}, false, "api", 1, false},
		{"nowhere", rsCache, types.NamespacedName{Namespace: "pipy", Name: "gone"}, false, "", 1, false},
		{"no cache", nil, types.NamespacedName{Namespace: "pipy", Name: "web-1"}, false, "web", 1, false},
		{"live read fails", rsCache, types.NamespacedName{Namespace: "other", Name: "api-1"}, true, "", 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := ctlClient(t, liveObjs...)
			reads := 0
			live := interceptor.NewClient(c, interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				reads++
				if tc.failLive {
					return errors.New("connection refused")
				}
				return c.Get(ctx, key, obj, opts...)
			}})
			owner, err := replicaSetController(t.Context(), tc.cache, live, tc.key)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			got := ""
			if owner != nil {
				got = owner.Name
			}
			if got != tc.want || reads != tc.liveReads {
				t.Errorf("controller %q after %d live reads, want %q after %d", got, reads, tc.want, tc.liveReads)
			}
		})
	}
}

// ctlReplicaSetCache is the webhook's ReplicaSets' cache (slimmed) holding the given
// ReplicaSets of the watched namespaces, synced.
func ctlReplicaSetCache(t *testing.T, rss []*metav1.PartialObjectMetadata, watched ...string) *informers.NamespacedInformer {
	t.Helper()
	return ctlNamespacedCache(t, rss, informers.NamespacedOptions{Example: &metav1.PartialObjectMetadata{}, Transform: slim.ReplicaSetMetadata}, nil, watched...)
}
