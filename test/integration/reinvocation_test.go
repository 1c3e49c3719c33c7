package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/test/sandbox"
)

// webhookName is the MutatingWebhookConfiguration's webhook, as the manifests name it.
const webhookName = "inject.corsmesh.io"

// TestInjectedPodAdmittedOnce checks that injecting a pod does not make the API server
// call the webhook twice: the ServiceAccount admission plugin re-runs after a webhook
// changes a pod and adds the token mount to containers that lack one; had it changed our
// containers, reinvocationPolicy IfNeeded would call us again for every pod.
func TestInjectedPodAdmittedOnce(t *testing.T) {
	s := sb(t)
	ctx := testContext(t, 2*time.Minute)
	cs, _, _ := clients(t, s)

	const ns = "admitted-once"
	namespace(t, ctx, s, ns, true, nil)
	app := corsApp{Namespace: ns, App: "web", Port: 8080, Origin: "https://app.example"}
	app.install(t, ctx, s)
	waitForServiceAccount(t, ctx, cs, ns)

	// Other tests' leftovers (a ReplicaSet in a namespace being deleted) could create a pod
	// meanwhile; one stray call is told apart by trying again, a reinvocation is not.
	var calls float64
	var stored *corev1.Pod
	for attempt := 1; attempt <= 3; attempt++ {
		before := webhookCalls(t, ctx, s)
		pod, err := cs.CoreV1().Pods(ns).Create(ctx, app.pod(fmt.Sprintf("once-%d", attempt)), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating pod: %v", err)
		}
		stored = pod
		if calls = webhookCalls(t, ctx, s) - before; calls == 1 {
			break
		}
		t.Logf("attempt %d: %.0f webhook calls for one pod", attempt, calls)
	}
	requireInjected(t, stored, app.Port)
	if calls != 1 {
		t.Errorf("the API server called %s %.0f times for one injected pod, want 1 (reinvoked after another plugin changed the pod?)", webhookName, calls)
	}

	// The mechanism: our containers hide the token path behind our empty volume, and the
	// app's container still gets its token.
	for _, c := range append(append([]corev1.Container{}, stored.Spec.InitContainers...), stored.Spec.Containers...) {
		mount := tokenMount(c)
		ours := c.Name == injector.InitContainerName || c.Name == injector.ProxyContainerName
		switch {
		case mount == "":
			t.Errorf("container %s: nothing mounted at %s", c.Name, injector.ServiceAccountTokenPath)
		case ours && mount != injector.NoTokenVolumeName:
			t.Errorf("container %s: %s mounted from %s, want %s (no API token for the proxy)", c.Name, injector.ServiceAccountTokenPath, mount, injector.NoTokenVolumeName)
		case !ours && mount == injector.NoTokenVolumeName:
			t.Errorf("the app's container %s lost its ServiceAccount token", c.Name)
		}
	}
}

func tokenMount(c corev1.Container) string {
	for _, m := range c.VolumeMounts {
		if m.MountPath == injector.ServiceAccountTokenPath {
			return m.Name
		}
	}
	return ""
}

// webhookCalls reads how often the API server has called corsmesh's webhook, from its own
// metric apiserver_admission_webhook_admission_duration_seconds_count.
func webhookCalls(t *testing.T, ctx context.Context, s *sandbox.Sandbox) float64 {
	t.Helper()
	return apiServerCounter(t, ctx, s, "apiserver_admission_webhook_admission_duration_seconds_count", map[string]string{"name": webhookName})
}

// apiServerCounter sums the API server's samples of a metric carrying all of the given
// label values (0 before the first sample).
func apiServerCounter(t *testing.T, ctx context.Context, s *sandbox.Sandbox, metric string, labels map[string]string) float64 {
	t.Helper()
	samples, err := s.APIServerMetrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, smp := range samples {
		if smp.Name == metric && containsLabels(smp.Labels, labels) {
			total += smp.Value
		}
	}
	return total
}

func containsLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}
