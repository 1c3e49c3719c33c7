package webhook

import (
	"context"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	toolscache "k8s.io/client-go/tools/cache"
	fcache "k8s.io/client-go/tools/cache/testing"

	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

// The chain list admission walks is kept, compiled, between changes; every add, update and
// delete the informer sees must show in the next read, with the selectors of that version.
func TestInformerClusterChainsFollowTheInformer(t *testing.T) {
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
	_, ic := memoryCacheWith(t, seedCluster(t), map[string]toolscache.ListerWatcher{"PluginChain": src})
	ctx := context.Background()

	// names reads the chains until they are want (the informer delivers asynchronously).
	expect := func(what string, want ...string) {
		t.Helper()
		var got []string
		err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			chains, err := ic.PluginChains(ctx)
			if err != nil {
				return false, err
			}
			compiled, err := ic.CompiledPluginChains(ctx)
			if err != nil {
				return false, err
			}
			if len(compiled) != len(chains) {
				return false, nil
			}
			got = got[:0]
			for i, c := range chains {
				app := c.Spec.Selectors.PodSelector.MatchLabels["app"]
				// The compiled selector is this version's.
				if cc := compiled[i]; cc.Chain != c || !cc.Selects(labels.Set{"app": app}, labels.Set{}) {
					return false, nil
				}
				got = append(got, c.Name+"="+app)
			}
			slices.Sort(got)
			return slices.Equal(got, want), nil
		})
		if err != nil {
			t.Fatalf("%s: chains %v, want %v (%v)", what, got, want, err)
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
	first, _ := ic.PluginChains(ctx)
	second, _ := ic.PluginChains(ctx)
	if len(first) != 1 || &first[0] != &second[0] {
		t.Errorf("two reads without a change returned different lists")
	}
}
