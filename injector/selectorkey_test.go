package injector

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// A Service is filed under one label its selector requires, the same whatever the map's
// order, so that a lookup by each of a pod's labels finds every Service selecting it once.
func TestSelectorKey(t *testing.T) {
	for _, tc := range []struct {
		name     string
		selector map[string]string
		want     string
	}{
		{"none", nil, ""},
		{"empty", map[string]string{}, ""},
		{"one", map[string]string{"app": "web"}, "app=web"},
		{"least key", map[string]string{"version": "v1", "app": "web", "tier": "x"}, "app=web"},
		{"prefixed key", map[string]string{"app": "web", "apps.example.com/name": "web"}, "app=web"},
	} {
		svc := &corev1.Service{Spec: corev1.ServiceSpec{Selector: tc.selector}}
		for range 20 { // map iteration order varies
			if got := SelectorKey(svc); got != tc.want {
				t.Fatalf("%s: SelectorKey = %q, want %q", tc.name, got, tc.want)
			}
		}
	}
}
