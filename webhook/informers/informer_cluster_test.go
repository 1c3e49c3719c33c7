package informers_test

import (
	"context"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	toolscache "k8s.io/client-go/tools/cache"
	fcache "k8s.io/client-go/tools/cache/testing"

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

	// Unchanged, reads share one list rather than listing again.
	first, _ := r.Chains(ctx)
	second, _ := r.Chains(ctx)
	if len(first) != 1 || &first[0] != &second[0] {
		t.Errorf("two reads without a change returned different lists")
	}
}
