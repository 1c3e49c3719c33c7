package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/corsmesh/corsmesh/injector"
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
		before := webhookCalls(t, ctx, cs)
		pod, err := cs.CoreV1().Pods(ns).Create(ctx, app.pod(fmt.Sprintf("once-%d", attempt)), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating pod: %v", err)
		}
		stored = pod
		if calls = webhookCalls(t, ctx, cs) - before; calls == 1 {
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
func webhookCalls(t *testing.T, ctx context.Context, cs kubernetes.Interface) float64 {
	t.Helper()
	return apiServerCounter(t, ctx, cs, "apiserver_admission_webhook_admission_duration_seconds_count", `name="`+webhookName+`"`)
}

// apiServerCounter sums the API server's samples of a metric whose labels contain every one
// of the given `label="value"` strings (0 before the first sample).
func apiServerCounter(t *testing.T, ctx context.Context, cs kubernetes.Interface, metric string, labels ...string) float64 {
	t.Helper()
	body, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		t.Fatalf("reading the API server's metrics: %v", err)
	}
	var total float64
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric+"{") || !containsAll(line, labels) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		total += v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading the API server's metrics: %v", err)
	}
	return total
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
