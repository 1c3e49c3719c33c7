package integration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
	"github.com/corsmesh/corsmesh/test/sandbox"
)

// TestServicesFollowMonitoredNamespaces checks the webhook's Services cache, which holds
// the Services of monitored namespaces only, against the real API server: a namespace's
// informer starts when it is labelled and stops when it is not; a pod created right after
// the label is decided with its Services; a PluginConfig naming a Service of an
// unmonitored namespace says whether it exists; relabelling tells the controllers of the
// namespace's Services.
func TestServicesFollowMonitoredNamespaces(t *testing.T) {
	s := sb(t)
	ctx := testContext(t, 3*time.Minute)
	ns := "follow-" + rand.String(5)
	app := corsApp{Namespace: ns, App: "follow-web", Port: 8080, Origin: "https://follow.example"}
	namespace(t, ctx, s, ns, false, nil)
	app.install(t, ctx, s)

	watched := func() []string { return s.WebhookServer().Services.Namespaces() }
	if slices.Contains(watched(), ns) {
		t.Fatalf("the unmonitored namespace %s has a Services informer", ns)
	}
	// Read live: the Service exists, though no informer holds it.
	requireAccepted(t, ctx, s, ns, app.App, metav1.ConditionTrue, v1alpha1.ReasonAccepted)

	label := func(monitored bool) {
		t.Helper()
		labelMonitored(t, ctx, s, ns, monitored)
	}
	createPod := func(name string) *corev1.Pod {
		t.Helper()
		return app.create(t, ctx, s, name)
	}

	// The pod comes right after the label: its namespace's informer has just started (or
	// not yet), and the decision must still see the Service's port.
	label(true)
	requireInjected(t, createPod("right-after-label"), app.Port)
	eventually(t, ctx, 30*time.Second, "an informer for "+ns, func() error {
		if !slices.Contains(watched(), ns) {
			return fmt.Errorf("watched namespaces %v", watched())
		}
		return nil
	})

	label(false)
	eventually(t, ctx, 30*time.Second, "the informer of "+ns+" stopped", func() error {
		if slices.Contains(watched(), ns) {
			return fmt.Errorf("watched namespaces %v", watched())
		}
		return nil
	})
	requireNotInjected(t, createPod("unlabelled"))

	// While unmonitored, a PluginConfig names a Service that does not exist yet: not found
	// (read live). The Service created then is seen by no informer; relabelling replays it
	// to the PluginConfig controller as a creation.
	apply(t, ctx, s, fmt.Sprintf(`apiVersion: plugin.flomesh.io/v1alpha1
kind: PluginConfig
metadata:
  name: late
  namespace: %[1]s
spec:
  plugin: %[2]s
  destinationRefs:
  - kind: Service
    name: late
    namespace: %[1]s
  config:
    allowOrigins:
    - exact: https://late.example
`, ns, app.plugin()))
	requireAccepted(t, ctx, s, ns, "late", metav1.ConditionFalse, v1alpha1.ReasonDestinationNotFound)
	// Long enough for the reconciles the PluginConfig's creation queued (its own watch
	// and the one of PluginConfigs sharing its Services) to have run: one running after
	// the Service exists would read it live.
	time.Sleep(2 * time.Second)
	apply(t, ctx, s, fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: late
  namespace: %s
spec:
  selector:
    app: late
  ports:
  - port: 80
    targetPort: 9090
`, ns))
	if slices.Contains(watched(), ns) {
		t.Fatalf("an informer for the unmonitored %s started again: the test proves nothing", ns)
	}
	// Nothing tells the controller of it (until the next minute's recheck).
	time.Sleep(2 * time.Second)
	requireAccepted(t, ctx, s, ns, "late", metav1.ConditionFalse, v1alpha1.ReasonDestinationNotFound)
	label(true)
	requireAccepted(t, ctx, s, ns, "late", metav1.ConditionTrue, v1alpha1.ReasonAccepted)
	requireInjected(t, createPod("relabelled"), app.Port)
}

// requireAccepted waits for the PluginConfig's Accepted condition to be status, reason.
func requireAccepted(t *testing.T, ctx context.Context, s *sandbox.Sandbox, ns, name string, status metav1.ConditionStatus, reason string) {
	t.Helper()
	eventually(t, ctx, 30*time.Second, fmt.Sprintf("PluginConfig %s/%s Accepted=%s (%s)", ns, name, status, reason), func() error {
		var pc v1alpha1.PluginConfig
		if err := s.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &pc); err != nil {
			return err
		}
		c := meta.FindStatusCondition(pc.Status.Conditions, v1alpha1.ConditionAccepted)
		switch {
		case c == nil:
			return errors.New("no Accepted condition")
		case c.Status != status || c.Reason != reason:
			return fmt.Errorf("Accepted=%s reason %s: %s", c.Status, c.Reason, c.Message)
		}
		return nil
	})
}
