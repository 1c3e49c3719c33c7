package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/corsproxy/config"
	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

// TestRestartCatchesUp checks that a policy change made while the webhook was down reaches
// the running pods once it is back: the controllers ignore the events their informers
// replay at start, and must still reconcile every injected pod then.
func TestRestartCatchesUp(t *testing.T) {
	s := sb(t)
	ctx := testContext(t, 2*time.Minute)
	app := corsApp{Namespace: "catch-up", App: "catch-up-web", Port: 8080, Origin: "https://a.example"}
	app.installMonitored(t, ctx, s)

	pod, err := s.Clientset.CoreV1().Pods(app.Namespace).Create(ctx, app.pod("running"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := origins(requireInjected(t, pod, app.Port)); len(got) != 1 {
		t.Fatalf("origins at admission %q, want the PluginConfig's one", got)
	}

	if err := s.StopWebhook(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s.WebhookServer() == nil {
			if err := s.StartWebhook(context.Background()); err != nil {
				t.Errorf("restarting the webhook: %v", err)
			}
		}
	})
	// Deleting is not validated, so it goes through with the webhook down.
	pc := &v1alpha1.PluginConfig{ObjectMeta: metav1.ObjectMeta{Namespace: app.Namespace, Name: app.App}}
	if err := s.Client.Delete(ctx, pc); err != nil {
		t.Fatal(err)
	}
	// Long enough that a running controller would have synced it.
	time.Sleep(2 * time.Second)
	var stale corev1.Pod
	if err := s.Client.Get(ctx, client.ObjectKeyFromObject(pod), &stale); err != nil {
		t.Fatal(err)
	}
	if got := annotationOrigins(t, &stale); len(got) != 1 {
		t.Fatalf("origins %q changed with the webhook down: the test proves nothing", got)
	}

	if err := s.StartWebhook(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, 30*time.Second, "the deleted policy leaving the pod's "+injector.AnnotationConfig, func() error {
		var p corev1.Pod
		if err := s.Client.Get(ctx, client.ObjectKeyFromObject(pod), &p); err != nil {
			return err
		}
		if got := annotationOrigins(t, &p); len(got) != 0 {
			return fmt.Errorf("origins %q", got)
		}
		return nil
	})
}

func annotationOrigins(t *testing.T, pod *corev1.Pod) []string {
	t.Helper()
	cfg, err := config.Parse([]byte(pod.Annotations[injector.AnnotationConfig]))
	if err != nil {
		t.Fatalf("pod %s: %s does not parse: %v", pod.Name, injector.AnnotationConfig, err)
	}
	return origins(cfg)
}
