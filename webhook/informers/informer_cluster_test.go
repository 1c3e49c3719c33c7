package informers_test

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	fcache "k8s.io/client-go/tools/cache/testing"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
	"github.com/corsmesh/corsmesh/webhook/internal/webhooktest"
)

// The Resolver's compiled chain list, which admission walks, is kept, compiled, between changes; every add, update and
// delete the informer sees must show in the next read, with the selectors of that version.
func TestResolverChainsFollowTheInformer(t *testing.T) {
	src := fcache.NewFakeControllerSource()
	t.Cleanup(src.Shutdown)
	chain := func(name, rv, app string) *v1alpha1.PluginChain {
		return &v1alpha1.PluginChain{
			ObjectMeta: metav1.ObjectMeta{Namespace: "pipy", Name: name, ResourceVersion: rv},
			Spec: v1alpha1.PluginChainSpec{Selectors: v1alpha1.ChainSelectorSpec{
				PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
			}},
		}
	}
	src.Add(chain("a", "1", "a"))
	_, r := webhooktest.MemoryCache(t, webhooktest.SeedCluster(t), map[string]toolscache.ListerWatcher{"PluginChain": src})
	ic := r.Cluster()
	ctx := context.Background()

	// expect waits for the informer's store to hold want, then reads the list at once: it
	// must match then, not some time later (a controller reconciling a change reads it
	// right after the store has it).
	expect := func(what string, want ...string) {
		t.Helper()
		names := func(chains []*v1alpha1.PluginChain) []string {
			var out []string
			for _, c := range chains {
				out = append(out, c.Name+"="+c.Spec.Selectors.PodSelector.MatchLabels["app"])
			}
			slices.Sort(out)
			return out
		}
		// A tight loop rather than a poll: the list is read the moment the store changes.
		var stored []string
		for deadline := time.Now().Add(10 * time.Second); ; {
			objs, err := ic.PluginChains(ctx) // the informer's store, as it is now
			if err != nil {
				t.Fatal(err)
			}
			if stored = names(objs); slices.Equal(stored, want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the store holds %v, want %v", what, stored, want)
			}
		}
		compiled, err := r.Chains(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var chains []*v1alpha1.PluginChain
		for _, cc := range compiled {
			chains = append(chains, cc.Chain)
		}
		if got := names(chains); !slices.Equal(got, want) {
			t.Fatalf("%s: chains %v right after the store had %v", what, got, want)
		}
		for i, c := range chains {
			// The compiled selector is this version's.
			if cc := compiled[i]; !cc.Selects(labels.Set{"app": c.Spec.Selectors.PodSelector.MatchLabels["app"]}, labels.Set{}) {
				t.Errorf("%s: compiled chain %d is not %s's current version", what, i, c.Name)
			}
		}
	}
	expect("initial list", "a=a")
	src.Add(chain("b", "2", "b"))
	expect("after an add", "a=a", "b=b")
	src.Modify(chain("a", "3", "changed"))
	expect("after an update", "a=changed", "b=b")
	src.Delete(chain("b", "4", "b"))
	expect("after a delete", "a=changed")

	// Unchanged, reads share one list rather than listing again (once the informer's
	// delete notification has settled the delete).
	waitChainsShared(t, ctx, r, 1, "two reads without a change returned different lists")
}

// A PluginChain write that leaves its spec alone (the chain status controller's, about
// once a second during a rollout) keeps the compiled chains and every decision's stamp;
// a spec change or a delete shows in the very next read.
func TestChainStatusWritesKeepCompiledChains(t *testing.T) {
	src := fcache.NewFakeControllerSource()
	t.Cleanup(src.Shutdown)
	chain := func(name, uid, rv string, generation int64, app string, pods int32) *v1alpha1.PluginChain {
		return &v1alpha1.PluginChain{
			ObjectMeta: metav1.ObjectMeta{Namespace: "pipy", Name: name, UID: types.UID(uid), ResourceVersion: rv, Generation: generation},
			Spec: v1alpha1.PluginChainSpec{Selectors: v1alpha1.ChainSelectorSpec{
				PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
			}},
			Status: v1alpha1.PluginChainStatus{ObservedGeneration: int64(pods)},
		}
	}
	src.Add(chain("a", "uid-a", "1", 1, "a", 0))
	src.Add(chain("b", "uid-b", "2", 1, "b", 0))
	_, r := webhooktest.MemoryCache(t, webhooktest.SeedCluster(t), map[string]toolscache.ListerWatcher{"PluginChain": src})
	ic := r.Cluster()
	ctx := context.Background()

	// stored waits until the informer's store holds chain name at resourceVersion rv (or,
	// with rv empty, no longer holds it).
	stored := func(name, rv string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			objs, err := ic.PluginChains(ctx)
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(objs, func(c *v1alpha1.PluginChain) bool { return c.Name == name })
			if (rv == "" && i < 0) || (i >= 0 && objs[i].ResourceVersion == rv) {
				return
			}
		}
		t.Fatalf("the store never had %s at %q", name, rv)
	}
	selects := func(app string) []string {
		t.Helper()
		compiled, err := r.Chains(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for i := range compiled {
			if compiled[i].Selects(labels.Set{"app": app}, labels.Set{}) {
				out = append(out, compiled[i].Chain.Name)
			}
		}
		return out
	}
	stored("b", "2")
	before, _ := r.Chains(ctx)
	d, err := r.Decide(ctx, &corev1.Pod{}, "pipy", injector.ForResync)
	if err != nil || d.Stamp == "" {
		t.Fatalf("no stamp: %v", err)
	}

	for i, rv := range []string{"3", "4", "5"} {
		src.Modify(chain("a", "uid-a", rv, 1, "a", int32(i+1)))
		stored("a", rv)
	}
	if after, _ := r.Chains(ctx); len(after) != 2 || &after[0] != &before[0] {
		t.Errorf("status writes rebuilt the compiled chains")
	}
	if !r.Current(d.Stamp) {
		t.Errorf("status writes made a decision stale")
	}

	src.Modify(chain("a", "uid-a", "6", 2, "changed", 3))
	stored("a", "6")
	if got := selects("changed"); !slices.Equal(got, []string{"a"}) {
		t.Errorf("right after a spec change, chains selecting app=changed: %v", got)
	}
	if r.Current(d.Stamp) {
		t.Errorf("a decision made before a spec change is still current")
	}

	d, _ = r.Decide(ctx, &corev1.Pod{}, "pipy", injector.ForResync)
	src.Delete(chain("b", "uid-b", "7", 1, "b", 0))
	stored("b", "")
	if got := selects("b"); len(got) != 0 {
		t.Errorf("right after a delete, chains selecting app=b: %v", got)
	}
	if r.Current(d.Stamp) {
		t.Errorf("a decision made before a delete is still current")
	}
	// Once the delete is settled, reads share one list again.
	waitChainsShared(t, ctx, r, 1, "after a delete, reads never share one list again")
}

// An admission reads, of its namespace's Services, only those its index files under one
// of the pod's labels: every Service that selects the pod, once, and none that shares no
// label with it, in both shapes (monitored namespaces' informers, one of every Service).
func TestServicesSelectingReadsOnlyCandidates(t *testing.T) {
	svc := func(ns, name string, selector map[string]string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{Selector: selector}}
	}
	objs := webhooktest.SeedCluster(t)
	objs.ServiceList = append(objs.ServiceList,
		svc("pipy", "by-app", map[string]string{"app": "pipy-ok"}),
		svc("pipy", "by-app-version", map[string]string{"app": "pipy-ok", "version": "v1"}),
		svc("pipy", "by-version-v2", map[string]string{"app": "pipy-ok", "version": "v2"}),
		svc("pipy", "by-tier", map[string]string{"tier": "web"}),
		svc("pipy", "no-selector", nil),
		svc("other", "by-app-elsewhere", map[string]string{"app": "pipy-ok"}),
	)
	for _, shape := range []struct {
		name     string
		resolver func(testing.TB, *injector.Objects) *injector.Resolver
	}{
		{"monitored", webhooktest.MonitoredResolver},
		{"all-services", webhooktest.InformerResolver},
	} {
		cluster, ok := shape.resolver(t, objs).Cluster().(injector.SelectingCluster)
		if !ok {
			t.Fatalf("%s: InformerCluster does not find Services by selector", shape.name)
		}
		for _, tc := range []struct {
			name   string
			labels map[string]string
			// want are the Services that select the pod; unread those never to be read.
			want, unread []string
		}{
			{"app and version", map[string]string{"app": "pipy-ok", "version": "v1"}, []string{"by-app", "by-app-version", "pipy-ok", "pipy-ok-v1"}, []string{"by-tier", "no-selector", "by-app-elsewhere"}},
			{"version v2", map[string]string{"app": "pipy-ok", "version": "v2"}, []string{"by-app", "by-version-v2", "pipy-ok"}, []string{"by-tier", "no-selector", "by-app-elsewhere"}},
			{"tier only", map[string]string{"tier": "web"}, []string{"by-tier"}, []string{"by-app", "pipy-ok", "no-selector"}},
			{"no labels", nil, nil, []string{"by-app", "by-tier", "no-selector"}},
		} {
			got, err := cluster.ServicesSelecting(context.Background(), "pipy", tc.labels)
			if err != nil {
				t.Fatalf("%s/%s: %v", shape.name, tc.name, err)
			}
			var read, selecting []string
			for _, s := range got {
				read = append(read, s.Name)
				if injector.ServiceSelects(s, tc.labels) {
					selecting = append(selecting, s.Name)
				}
			}
			slices.Sort(selecting)
			// The seed's own Services count too: derive them from the full list.
			all, err := cluster.Services(context.Background(), "pipy")
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, s := range all {
				if injector.ServiceSelects(s, tc.labels) {
					want = append(want, s.Name)
				}
			}
			slices.Sort(want)
			if !slices.Equal(selecting, want) || len(selecting) != len(slices.Compact(slices.Clone(selecting))) {
				t.Errorf("%s/%s: selecting %q, want %q", shape.name, tc.name, selecting, want)
			}
			for _, name := range tc.want {
				if !slices.Contains(want, name) {
					t.Errorf("%s/%s: %s does not select the pod (fixture)", shape.name, tc.name, name)
				}
			}
			for _, name := range tc.unread {
				if slices.Contains(read, name) {
					t.Errorf("%s/%s: read %s, which shares no indexed label with the pod (read %q)", shape.name, tc.name, name, read)
				}
			}
		}
	}
}

// waitChainsShared waits until two reads of r's chains return one shared list of n chains.
func waitChainsShared(t *testing.T, ctx context.Context, r *injector.Resolver, n int, failure string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		first, _ := r.Chains(ctx)
		second, _ := r.Chains(ctx)
		if len(first) == n && n > 0 && &first[0] == &second[0] {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(failure)
		}
	}
}
