package injector

import (
	"fmt"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

// The index only narrows the walk: for every pod, the chains it yields that select the
// pod are exactly those a walk over every chain finds, in list order, and every chain
// whose selector does not compile is among them (its warning must not be lost).
func TestChainIndexMatchesTheWalk(t *testing.T) {
	sel := func(labels map[string]string, exprs ...metav1.LabelSelectorRequirement) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: labels, MatchExpressions: exprs}
	}
	expr := func(key string, op metav1.LabelSelectorOperator, values ...string) metav1.LabelSelectorRequirement {
		return metav1.LabelSelectorRequirement{Key: key, Operator: op, Values: values}
	}
	pods := []struct {
		name string
		sel  *metav1.LabelSelector
	}{
		{"nil selects all", nil},
		{"empty selects all", sel(nil)},
		{"app=a", sel(map[string]string{"app": "a"})},
		{"app=a again", sel(map[string]string{"app": "a"})},
		{"app=b", sel(map[string]string{"app": "b"})},
		{"app=a,tier=web", sel(map[string]string{"app": "a", "tier": "web"})},
		{"app in (a)", sel(nil, expr("app", metav1.LabelSelectorOpIn, "a"))},
		{"app in (a,b)", sel(nil, expr("app", metav1.LabelSelectorOpIn, "a", "b"))},
		{"app notin (a)", sel(nil, expr("app", metav1.LabelSelectorOpNotIn, "a"))},
		{"tier exists", sel(nil, expr("tier", metav1.LabelSelectorOpExists))},
		{"app does not exist", sel(nil, expr("app", metav1.LabelSelectorOpDoesNotExist))},
		{"tier exists, app=b", sel(map[string]string{"app": "b"}, expr("tier", metav1.LabelSelectorOpExists))},
		{"bad operator", sel(nil, expr("app", "Near", "a"))},
		{"bad label value", sel(map[string]string{"app": "not a value!"})},
	}
	var chains []*v1alpha1.PluginChain
	for i, p := range pods {
		c := &v1alpha1.PluginChain{ObjectMeta: metav1.ObjectMeta{Namespace: "pipy", Name: fmt.Sprintf("c%d", i)}}
		c.Spec.Selectors.PodSelector = p.sel
		if i%3 == 0 {
			c.Spec.Selectors.NamespaceSelector = sel(map[string]string{"team": "x"})
		}
		chains = append(chains, c)
	}
	list := make([]CompiledChain, len(chains))
	for i, c := range chains {
		list[i] = CompileChain(c)
	}
	indexed := &compiledChains{list: list, index: indexChains(list)}
	walked := &compiledChains{list: list}

	selected := func(cs *compiledChains, pod, ns labels.Set) (names, broken []string) {
		for c := range cs.candidates(pod) {
			switch {
			case c.Err != nil:
				broken = append(broken, c.Chain.Name)
			case c.Selects(pod, ns):
				names = append(names, c.Chain.Name)
			}
		}
		return names, broken
	}
	for _, pod := range []labels.Set{
		nil, {"app": "a"}, {"app": "b"}, {"app": "c"}, {"app": "a", "tier": "web"},
		{"app": "b", "tier": "db"}, {"tier": "web"}, {"other": "a"},
	} {
		for _, ns := range []labels.Set{{"team": "x"}, {"team": "y"}} {
			t.Run(pod.String()+"/"+ns.String(), func(t *testing.T) {
				wantNames, wantBroken := selected(walked, pod, ns)
				gotNames, gotBroken := selected(indexed, pod, ns)
				if !slices.Equal(gotNames, wantNames) || !slices.Equal(gotBroken, wantBroken) {
					t.Errorf("indexed: %v (broken %v); walking every chain: %v (broken %v)", gotNames, gotBroken, wantNames, wantBroken)
				}
				if len(wantBroken) != 2 {
					t.Errorf("broken chains %v, want the two whose selectors do not compile", wantBroken)
				}
			})
		}
	}
	// The index files the single-value chains by label, not among those tried for all.
	if n := len(indexed.index.always); n != 8 {
		t.Errorf("%d chains tried for every pod, want 8 (all but the 6 requiring one app value)", n)
	}
}
