package injector

import (
	"iter"
	"slices"

	"k8s.io/apimachinery/pkg/selection"
)

// chainIndex finds the compiled chains that may select a pod without matching every
// chain's selectors: with 1,000 PluginChains, walking them all was a tenth of an
// admission's CPU. A chain whose pod selector requires one label value (app=x, or app in
// (x)) is filed under that label; the others (no such requirement, or a selector that does
// not compile) are candidates for every pod. Candidates are then matched as before.
type chainIndex struct {
	byLabel map[labelValue][]int32 // indices into the list, ascending
	always  []int32                // ascending
}

type labelValue struct{ key, value string }

func indexChains(list []CompiledChain) *chainIndex {
	idx := &chainIndex{byLabel: make(map[labelValue][]int32)}
	for i := range list {
		if lv, ok := requiredLabel(&list[i]); ok {
			idx.byLabel[lv] = append(idx.byLabel[lv], int32(i))
		} else {
			idx.always = append(idx.always, int32(i))
		}
	}
	return idx
}

// requiredLabel returns a label value the chain's pod selector requires, if any.
func requiredLabel(c *CompiledChain) (labelValue, bool) {
	if c.Err != nil || c.Pods == nil {
		return labelValue{}, false
	}
	reqs, selectable := c.Pods.Requirements()
	if !selectable {
		return labelValue{}, false
	}
	for _, r := range reqs {
		switch r.Operator() {
		case selection.Equals, selection.DoubleEquals, selection.In:
			if values := r.ValuesUnsorted(); len(values) == 1 {
				return labelValue{r.Key(), values[0]}, true
			}
		}
	}
	return labelValue{}, false
}

// candidates yields, in list order, every chain that may select a pod with these labels:
// all of them without an index.
func (cs *compiledChains) candidates(podLabels map[string]string) iter.Seq[*CompiledChain] {
	return func(yield func(*CompiledChain) bool) {
		if cs.index == nil {
			for i := range cs.list {
				if !yield(&cs.list[i]) {
					return
				}
			}
			return
		}
		// Each chain is filed once, so the merged indices hold no duplicates.
		found := cs.index.always
		for k, v := range podLabels {
			if hits := cs.index.byLabel[labelValue{k, v}]; len(hits) > 0 {
				if len(found) == len(cs.index.always) {
					found = slices.Clone(found) // never append to the shared slice
				}
				found = append(found, hits...)
			}
		}
		if len(found) != len(cs.index.always) {
			slices.Sort(found)
		}
		for _, i := range found {
			if !yield(&cs.list[i]) {
				return
			}
		}
	}
}
