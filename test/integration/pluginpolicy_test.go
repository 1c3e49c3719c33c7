package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
	configv1alpha2 "github.com/corsmesh/corsmesh/injector/api/config/v1alpha2"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
	"github.com/corsmesh/corsmesh/test/sandbox"
)

// TestPluginPolicySwitch turns osm-edge's plugin-policy switch off and on again with the
// guide's `kubectl patch meshconfig`, against the installed MeshConfig: it keeps osm-edge's
// fields corsmesh does not read; while off a selected pod is admitted without the sidecar,
// with a warning saying how to turn it on, and the chain's status says why; once on, the
// next pod is injected and the chain counts the earlier one as needing a restart.
func TestPluginPolicySwitch(t *testing.T) {
	s := sb(t)
	ctx := testContext(t, 3*time.Minute)
	cs, c, warns := clients(t, s)
	app := corsApp{Namespace: "plugin-policy", App: "web", Port: 8080, Origin: "https://app.example"}
	app.installMonitored(t, ctx, s)
	t.Cleanup(func() {
		if err := s.SetPluginPolicy(context.Background(), true); err != nil {
			t.Errorf("turning plugin policy back on for the other tests: %v", err)
		}
	})

	// The guide's command, with its $osm_namespace.
	patch := func(on bool) {
		t.Helper()
		if _, err := s.Kubectl(ctx, "patch", "meshconfig", configv1alpha2.MeshConfigName, "-n", sandbox.OSMNamespace,
			"-p", fmt.Sprintf(`{"spec":{"featureFlags":{"enablePluginPolicy":%t}}}`, on), "--type=merge"); err != nil {
			t.Fatal(err)
		}
		eventually(t, ctx, 30*time.Second, "the webhook to see the switch", func() error {
			mc, err := s.WebhookServer().Cluster.MeshConfig(ctx, sandbox.OSMNamespace, configv1alpha2.MeshConfigName)
			if err != nil || mc == nil || mc.Spec.FeatureFlags.EnablePluginPolicy != on {
				return fmt.Errorf("MeshConfig %+v, %v", mc, err)
			}
			return nil
		})
	}

	// osm-edge's own settings apply and stay.
	if _, err := s.Kubectl(ctx, "patch", "meshconfig", configv1alpha2.MeshConfigName, "-n", sandbox.OSMNamespace, "--type=merge",
		"-p", `{"spec":{"sidecar":{"logLevel":"error"},"featureFlags":{"enableEgressPolicy":true}}}`); err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(configv1alpha2.GroupVersion.WithKind("MeshConfig"))
	if err := c.Get(ctx, client.ObjectKey{Namespace: sandbox.OSMNamespace, Name: configv1alpha2.MeshConfigName}, u); err != nil {
		t.Fatal(err)
	}
	level, _, _ := unstructured.NestedString(u.Object, "spec", "sidecar", "logLevel")
	egress, _, _ := unstructured.NestedBool(u.Object, "spec", "featureFlags", "enableEgressPolicy")
	if level != "error" || !egress {
		t.Errorf("osm-edge's fields were pruned: spec %v", u.Object["spec"])
	}

	patch(false)
	warns.reset()
	off, err := cs.CoreV1().Pods(app.Namespace).Create(ctx, app.pod("while-off"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	requireNotInjected(t, off)
	if w := warns.containing(injector.EnablePluginPolicyCommand(sandbox.OSMNamespace)); len(w) == 0 {
		t.Errorf("no admission warning saying how to turn plugin policy on; warnings %q", warns.all())
	}
	chainReason := func(want string, without int32) func() error {
		return func() error {
			var chain v1alpha1.PluginChain
			if err := c.Get(ctx, client.ObjectKey{Namespace: app.Namespace, Name: app.App}, &chain); err != nil {
				return err
			}
			cond := meta.FindStatusCondition(chain.Status.Conditions, v1alpha1.ConditionAccepted)
			if cond == nil || cond.Reason != want || chain.Status.PodsWithoutSidecar != without {
				return fmt.Errorf("Accepted %+v, podsWithoutSidecar %d", cond, chain.Status.PodsWithoutSidecar)
			}
			return nil
		}
	}
	eventually(t, ctx, 30*time.Second, "the chain to say plugin policy is off", chainReason(v1alpha1.ReasonPluginPolicyDisabled, 0))

	patch(true)
	on, err := cs.CoreV1().Pods(app.Namespace).Create(ctx, app.pod("while-on"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	requireInjected(t, on, 8080)
	eventually(t, ctx, 30*time.Second, "the chain to count the pod created while off", chainReason(v1alpha1.ReasonAccepted, 1))
}
