package injector_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/injectortest"
)

// largeCluster is the seed's cluster grown by injectortest.Grow: chains PluginChains (none
// but the seed's selecting the pod) and services Services spread over 100 namespaces, the
// pod's own holding its share.
func largeCluster(b *testing.B, chains, services int) (*injector.Objects, *corev1.Pod, string) {
	objs, w := loadCase(b, filepath.Join("testdata", "inject", "seed-pipy-ok-v1.yaml"))
	injectortest.Grow(objs, chains, services)
	return objs, w.Pod, w.Namespace
}

// BenchmarkInject is the webhook's whole job for one typical pod in a large cluster:
// decide, build the mutation and its JSON patch. (The in-memory Objects scans its
// lists; the webhook's cache indexes Services by namespace, so this overstates that part.)
func BenchmarkInject(b *testing.B) {
	for _, size := range []struct{ chains, services int }{{1, 3}, {1000, 10000}} {
		b.Run(fmt.Sprintf("chains=%d/services=%d", size.chains, size.services), func(b *testing.B) {
			objs, pod, ns := largeCluster(b, size.chains, size.services)
			r := injector.NewResolver(injector.New(testOptions()), objs, injector.ResolverOptions{})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				d, err := r.Decide(ctx, pod, ns, injector.ForAdmission)
				if err != nil || !d.Inject {
					b.Fatalf("%v %v", d, err)
				}
				m, err := r.Injector().Mutation(pod, d)
				if err != nil {
					b.Fatal(err)
				}
				_ = m.Patch(pod)
			}
		})
	}
}
