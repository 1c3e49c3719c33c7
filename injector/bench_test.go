package injector_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/corsmesh/corsmesh/injector"
)

// largeCluster is the seed's cluster grown to chains PluginChains (none but the seed's
// selecting the pod) and services Services spread over 100 namespaces, with the pod's own
// namespace holding its share.
func largeCluster(b *testing.B, chains, services int) (*injector.Objects, *corev1.Pod, string) {
	objs, w := loadCase(b, filepath.Join("testdata", "inject", "seed-pipy-ok-v1.yaml"))
	for i := range chains - 1 {
		c := objs.Chains[0].DeepCopy()
		c.Name = fmt.Sprintf("chain-%d", i)
		c.ResourceVersion = "1" // as from an informer: compiled once, then cached
		c.Spec.Selectors.PodSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", i)}}
		objs.Chains = append(objs.Chains, c)
	}
	objs.Chains[0].ResourceVersion = "1"
	for _, c := range objs.Configs {
		c.ResourceVersion = "1"
	}
	for i := range services {
		ns := fmt.Sprintf("ns-%d", i%100)
		if i%100 == 0 {
			ns = "pipy"
		}
		objs.ServiceList = append(objs.ServiceList, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%d", i), Namespace: ns},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": fmt.Sprintf("app-%d", i)},
				Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
			},
		})
	}
	return objs, w.Pod, w.Namespace
}

// BenchmarkInject is the webhook's whole job for one typical pod in a large cluster:
// decide, build the mutation and its JSON patch. (The in-memory Objects scans its
// lists; the webhook's cache indexes Services by namespace, so this overstates that part.)
func BenchmarkInject(b *testing.B) {
	for _, size := range []struct{ chains, services int }{{1, 3}, {1000, 10000}} {
		b.Run(fmt.Sprintf("chains=%d/services=%d", size.chains, size.services), func(b *testing.B) {
			objs, pod, ns := largeCluster(b, size.chains, size.services)
			in := injector.New(testOptions())
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				d, err := in.Decide(ctx, objs, pod, ns)
				if err != nil || !d.Inject {
					b.Fatalf("%v %v", d, err)
				}
				m, err := in.Mutation(pod, d)
				if err != nil {
					b.Fatal(err)
				}
				_ = m.Patch(pod)
			}
		})
	}
}
