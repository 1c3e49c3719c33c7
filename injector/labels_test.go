package injector_test

import (
	"context"
	"encoding/json"
	"maps"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/corsmesh/corsmesh/injector"
)

// An injected pod carries LabelInjected: "true" (config sync lists injected pods by it
// where it caches none), whatever labels the pod came with, and keeps its own labels.
func TestInjectedPodsAreLabelled(t *testing.T) {
	objs, w := loadCase(t, filepath.Join("testdata", "inject", "seed-pipy-ok-v1.yaml"))
	in := injector.New(testOptions())
	d, err := injector.NewResolver(in, objs, injector.ResolverOptions{}).Decide(context.Background(), w.Pod, w.Namespace, injector.ForAdmission)
	if err != nil || !d.Inject {
		t.Fatalf("decision %+v, err %v", d, err)
	}
	for _, tc := range []struct {
		name   string
		labels any // as the API server encodes metadata.labels
		want   map[string]string
	}{
		{"absent", nil, map[string]string{injector.LabelInjected: "true"}},
		{"empty", map[string]any{}, map[string]string{injector.LabelInjected: "true"}},
		{"others kept", map[string]any{"app": "pipy-ok", "example.com/a~b": "1"},
			map[string]string{"app": "pipy-ok", "example.com/a~b": "1", injector.LabelInjected: "true"}},
		{"a pod author's value replaced", map[string]any{injector.LabelInjected: "false"}, map[string]string{injector.LabelInjected: "true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var raw map[string]any
			if err := json.Unmarshal(mustJSON(t, w.Pod), &raw); err != nil {
				t.Fatal(err)
			}
			if tc.labels == nil {
				delete(meta(raw), "labels")
			} else {
				meta(raw)["labels"] = tc.labels
			}
			original := mustJSON(t, raw)
			var pod corev1.Pod
			if err := json.Unmarshal(original, &pod); err != nil {
				t.Fatal(err)
			}
			m, err := in.Mutation(&pod, d)
			if err != nil {
				t.Fatal(err)
			}
			var patched corev1.Pod
			if err := json.Unmarshal(applyPatch(t, original, m.Patch(&pod)), &patched); err != nil {
				t.Fatal(err)
			}
			applied := m.Apply(&pod)
			for name, got := range map[string]map[string]string{"patch": patched.Labels, "Apply": applied.Labels} {
				if !maps.Equal(got, tc.want) {
					t.Errorf("%s: labels %v, want %v", name, got, tc.want)
				}
			}
			if _, ok := pod.Labels[injector.LabelInjected]; ok && tc.labels == nil {
				t.Errorf("Apply labelled the original pod")
			}
		})
	}
}
