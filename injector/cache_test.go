package injector

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// derivedCache recomputes exactly when the object it is asked about differs from the one
// it computed for: another resourceVersion, or no resourceVersion at all.
func TestDerivedCacheRecomputesOnlyOnChange(t *testing.T) {
	obj := func(rv, label string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "svc", ResourceVersion: rv, Labels: map[string]string{"v": label}}}
	}
	v1 := obj("1", "one")
	v2 := obj("2", "two")

	var c derivedCache[string]
	computed := false
	compute := func(s *corev1.Service) func() string {
		return func() string { computed = true; return s.Labels["v"] }
	}
	for _, tc := range []struct {
		step     string
		get      func() *corev1.Service
		computed bool
		want     string
	}{
		{"first sight", func() *corev1.Service { return v1 }, true, "one"},
		{"the same pointer again", func() *corev1.Service { return v1 }, false, "one"},
		{"a copy of the same version (a copying reader)", func() *corev1.Service { return v1.DeepCopy() }, false, "one"},
		{"the original pointer after the copy", func() *corev1.Service { return v1 }, false, "one"},
		{"a new version", func() *corev1.Service { return v2 }, true, "two"},
		{"the new version again", func() *corev1.Service { return v2 }, false, "two"},
		{"an old version's pointer", func() *corev1.Service { return v1 }, true, "one"},
		{"changed in place with a new resourceVersion", func() *corev1.Service {
			v1.ResourceVersion, v1.Labels["v"] = "3", "three"
			return v1
		}, true, "three"},
		{"without a resourceVersion (from a file)", func() *corev1.Service { return obj("", "file") }, true, "file"},
		{"again without a resourceVersion", func() *corev1.Service { return obj("", "file") }, true, "file"},
	} {
		computed = false
		s := tc.get()
		if got := c.get(s, compute(s)); got != tc.want || computed != tc.computed {
			t.Errorf("%s: got %q (computed %v), want %q (computed %v)", tc.step, got, computed, tc.want, tc.computed)
		}
	}

	if n := len(c.entries); n != 1 {
		t.Errorf("%d entries cached for one object, want 1", n)
	}
}
