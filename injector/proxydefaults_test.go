package injector_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/corsmesh/corsmesh/injector"
)

// The webhook's default connection bound (its --proxy-max-conns) reaches the proxy's args
// when the pod does not set one, and the pod's annotation still wins.
func TestProxyMaxConnsDefault(t *testing.T) {
	tests := []struct {
		name       string
		def        int
		annotation string
		want       string // the proxy's --max-conns-per-upstream arg, "" for none
	}{
		{"no default, no annotation", 0, "", ""},
		{"the default", 2048, "", "--max-conns-per-upstream=2048"},
		{"the annotation over the default", 2048, "4096", "--max-conns-per-upstream=4096"},
		{"the annotation alone", 0, "16", "--max-conns-per-upstream=16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, w := loadCase(t, filepath.Join("testdata", "inject", "seed-pipy-ok-v1.yaml"))
			opts := testOptions()
			opts.ProxyMaxConns = tt.def
			pod := w.Pod.DeepCopy()
			delete(pod.Annotations, injector.AnnotationProxyMaxConns)
			if tt.annotation != "" {
				if pod.Annotations == nil {
					pod.Annotations = map[string]string{}
				}
				pod.Annotations[injector.AnnotationProxyMaxConns] = tt.annotation
			}
			d, mutated, err := injector.NewResolver(injector.New(opts), objs, injector.ResolverOptions{}).Inject(context.Background(), pod, w.Namespace)
			if err != nil || !d.Inject {
				t.Fatalf("decision %+v, err %v", d, err)
			}
			var args []string
			for _, c := range slices.Concat(mutated.Spec.InitContainers, mutated.Spec.Containers) {
				if c.Name == injector.ProxyContainerName {
					args = c.Args
				}
			}
			got := ""
			for _, a := range args {
				if strings.HasPrefix(a, "--max-conns-per-upstream=") {
					got = a
				}
			}
			if got != tt.want {
				t.Errorf("proxy args %q: max-conns arg %q, want %q", args, got, tt.want)
			}
		})
	}
}
