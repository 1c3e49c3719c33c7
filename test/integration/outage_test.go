package integration

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/test/sandbox"
)

// TestWebhookOutage stops the webhook: with failurePolicy Fail (the manifests') pod
// creation in a monitored namespace is refused; patched to Ignore, pods are created
// without the proxy. Everything is restored afterwards, and injection works again.
func TestWebhookOutage(t *testing.T) {
	s := sb(t)
	ctx := testContext(t, 2*time.Minute)
	app := corsApp{Namespace: "outage", App: "outage-web", Port: 8080, Origin: "https://outage.example"}
	app.installMonitored(t, ctx, s)

	if got := failurePolicy(t, ctx, s); got != admissionregistrationv1.Fail {
		t.Fatalf("MutatingWebhookConfiguration %s has failurePolicy %s, want Fail", sandbox.MutatingWebhookConfigurationName, got)
	}
	seq := 0
	createPod := func() (*corev1.Pod, error) {
		seq++
		return s.Clientset.CoreV1().Pods(app.Namespace).Create(ctx, app.pod(fmt.Sprintf("pod-%d", seq)), metav1.CreateOptions{})
	}

	if err := s.StopWebhook(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Restore, whatever happened: Fail, and a running webhook.
		ctx := context.Background()
		if err := setFailurePolicy(ctx, s, admissionregistrationv1.Fail); err != nil {
			t.Errorf("restoring failurePolicy: %v", err)
		}
		if s.WebhookServer() == nil {
			if err := s.StartWebhook(ctx); err != nil {
				t.Errorf("restarting the webhook: %v", err)
			}
		}
	})

	t.Run("failurePolicy Fail refuses pods", func(t *testing.T) {
		pod, err := createPod()
		if err == nil {
			t.Fatalf("pod %s created with the webhook down and failurePolicy Fail", pod.Name)
		}
		if !sandbox.IsWebhookUnavailable(err) {
			t.Errorf("error %v: want the API server failing to call the webhook", err)
		}
		t.Logf("refused as expected: %v", err)
	})

	t.Run("failurePolicy Ignore admits them uninjected", func(t *testing.T) {
		if err := setFailurePolicy(ctx, s, admissionregistrationv1.Ignore); err != nil {
			t.Fatal(err)
		}
		// The API server picks the change up from its informer.
		var pod *corev1.Pod
		eventually(t, ctx, 30*time.Second, "creating a pod with failurePolicy Ignore", func() error {
			var err error
			pod, err = createPod()
			return err
		})
		requireNotInjected(t, pod)
	})

	t.Run("restored: Fail and the webhook running again inject", func(t *testing.T) {
		if err := setFailurePolicy(ctx, s, admissionregistrationv1.Fail); err != nil {
			t.Fatal(err)
		}
		if err := s.StartWebhook(ctx); err != nil {
			t.Fatal(err)
		}
		// The API server may briefly still see Ignore; an injected pod proves both.
		eventually(t, ctx, 30*time.Second, "an injected pod after the restore", func() error {
			pod, err := createPod()
			if err != nil {
				return err
			}
			if len(injectionTraces(pod)) == 0 {
				return errors.New("pod " + pod.Name + " not injected")
			}
			return nil
		})
		if got := failurePolicy(t, ctx, s); got != admissionregistrationv1.Fail {
			t.Errorf("failurePolicy %s after the restore", got)
		}
	})
}

func failurePolicy(t *testing.T, ctx context.Context, s *sandbox.Sandbox) admissionregistrationv1.FailurePolicyType {
	t.Helper()
	var m admissionregistrationv1.MutatingWebhookConfiguration
	if err := s.Client.Get(ctx, types.NamespacedName{Name: sandbox.MutatingWebhookConfigurationName}, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Webhooks) != 1 || m.Webhooks[0].FailurePolicy == nil {
		t.Fatalf("MutatingWebhookConfiguration %s: %d webhooks, failurePolicy unset", m.Name, len(m.Webhooks))
	}
	return *m.Webhooks[0].FailurePolicy
}

// setFailurePolicy patches the pod webhook's failurePolicy, as an operator would with
// kubectl patch --type=json.
func setFailurePolicy(ctx context.Context, s *sandbox.Sandbox, policy admissionregistrationv1.FailurePolicyType) error {
	m := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: sandbox.MutatingWebhookConfigurationName}}
	patch := fmt.Sprintf(`[{"op":"replace","path":"/webhooks/0/failurePolicy","value":%q}]`, policy)
	return s.Client.Patch(ctx, m, client.RawPatch(types.JSONPatchType, []byte(patch)))
}
