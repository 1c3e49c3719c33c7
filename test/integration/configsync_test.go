package integration

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/corsproxy/config"
	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

// TestConfigSync edits a PluginConfig and waits for the running pod's config annotation
// (what its proxy reads through the downward API) to follow, without re-creating the pod.
func TestConfigSync(t *testing.T) {
	s := sb(t)
	ctx := testContext(t, 2*time.Minute)
	app := corsApp{Namespace: "sync", App: "sync-web", Port: 8080, Origin: "https://a.example"}
	app.installMonitored(t, ctx, s)

	pod, err := s.Clientset.CoreV1().Pods(app.Namespace).Create(ctx, app.pod("running"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := requireInjected(t, pod, 8080)
	if got := origins(cfg); !slices.Equal(got, []string{"https://a.example"}) {
		t.Fatalf("origins at admission %q, want [https://a.example]", got)
	}

	// The edit: a second origin and a preflight cache time.
	pc := &v1alpha1.PluginConfig{ObjectMeta: metav1.ObjectMeta{Namespace: app.Namespace, Name: app.App}}
	patch := `{"spec":{"config":{"allowOrigins":[{"exact":"https://a.example"},{"exact":"https://b.example"}],"maxAge":"10m"}}}`
	if err := s.Client.Patch(ctx, pc, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
	edited := time.Now()
	var synced *corev1.Pod
	eventually(t, ctx, 30*time.Second, "the edit reaching the pod's "+injector.AnnotationConfig, func() error {
		var p corev1.Pod
		if err := s.Client.Get(ctx, client.ObjectKeyFromObject(pod), &p); err != nil {
			return err
		}
		cfg, err := config.Parse([]byte(p.Annotations[injector.AnnotationConfig]))
		if err != nil {
			return fmt.Errorf("annotation does not parse: %w", err)
		}
		if got := origins(cfg); !slices.Equal(got, []string{"https://a.example", "https://b.example"}) {
			return fmt.Errorf("origins %q", got)
		}
		if port := cfg.Lookup(8080); port == nil || string(port.CORS.MaxAge) != `"10m"` {
			return fmt.Errorf("maxAge not updated: %s", p.Annotations[injector.AnnotationConfig])
		}
		synced = &p
		return nil
	})
	t.Logf("pod config updated %s after the edit", time.Since(edited).Round(time.Millisecond))
	if synced.UID != pod.UID {
		t.Errorf("the pod was re-created (uid %s, was %s)", synced.UID, pod.UID)
	}
	// Same ports: nothing needs a restart.
	for _, c := range synced.Status.Conditions {
		if c.Type == "corsmesh.io/RestartRequired" && c.Status == corev1.ConditionTrue {
			t.Errorf("pod condition %s True after a policy-only edit: %s", c.Type, c.Message)
		}
	}
}

// TestPolicyStatus checks the Accepted conditions the controllers write on PluginConfigs
// and PluginChains: True when in effect, False with the reason otherwise.
func TestPolicyStatus(t *testing.T) {
	s := sb(t)
	ctx := testContext(t, time.Minute)
	app := corsApp{Namespace: "status", App: "status-web", Port: 8080, Origin: "https://status.example"}
	app.installMonitored(t, ctx, s)
	apply(t, ctx, s, `apiVersion: plugin.flomesh.io/v1alpha1
kind: Plugin
metadata:
  name: status-rate-limit
spec:
  priority: 10
  pipyscript: "// not CORS"
---
apiVersion: plugin.flomesh.io/v1alpha1
kind: PluginChain
metadata:
  name: not-cors
  namespace: status
spec:
  chains:
  - name: inbound-http
    plugins: [status-rate-limit]
  selectors:
    podSelector:
      matchLabels:
        app: nothing-here
---
apiVersion: plugin.flomesh.io/v1alpha1
kind: PluginChain
metadata:
  name: missing-plugin
  namespace: status
spec:
  chains:
  - name: inbound-http
    plugins: [status-no-such-plugin]
  selectors:
    podSelector:
      matchLabels:
        app: nothing-here
---
apiVersion: plugin.flomesh.io/v1alpha1
kind: PluginConfig
metadata:
  name: missing-service
  namespace: status
spec:
  plugin: cors-status-web
  destinationRefs:
  - kind: Service
    name: no-such-service
    namespace: status
  config:
    allowOrigins:
    - exact: https://status.example
`)
	t.Cleanup(func() {
		_, _ = s.Kubectl(t.Context(), "delete", "plugin", "status-rate-limit", "--ignore-not-found", "--wait=false")
	})

	for _, tc := range []struct {
		obj    client.Object
		status metav1.ConditionStatus
		reason string
	}{
		{&v1alpha1.PluginConfig{}, metav1.ConditionTrue, v1alpha1.ReasonAccepted},
		{&v1alpha1.PluginChain{}, metav1.ConditionTrue, v1alpha1.ReasonAccepted},
		{named(&v1alpha1.PluginConfig{}, "missing-service"), metav1.ConditionFalse, v1alpha1.ReasonDestinationNotFound},
		{named(&v1alpha1.PluginChain{}, "not-cors"), metav1.ConditionFalse, v1alpha1.ReasonUnsupportedPlugin},
		{named(&v1alpha1.PluginChain{}, "missing-plugin"), metav1.ConditionFalse, v1alpha1.ReasonPluginNotFound},
	} {
		obj := tc.obj
		if obj.GetName() == "" {
			obj.SetName(app.App)
		}
		obj.SetNamespace(app.Namespace)
		what := fmt.Sprintf("%T %s", obj, obj.GetName())
		eventually(t, ctx, 30*time.Second, what+" Accepted="+string(tc.status)+" ("+tc.reason+")", func() error {
			if err := s.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
				return err
			}
			var conds []metav1.Condition
			switch o := obj.(type) {
			case *v1alpha1.PluginConfig:
				conds = o.Status.Conditions
			case *v1alpha1.PluginChain:
				conds = o.Status.Conditions
			}
			c := meta.FindStatusCondition(conds, v1alpha1.ConditionAccepted)
			switch {
			case c == nil:
				return errors.New("no Accepted condition")
			case c.Status != tc.status || c.Reason != tc.reason:
				return fmt.Errorf("Accepted=%s reason %s: %s", c.Status, c.Reason, c.Message)
			case c.ObservedGeneration != obj.GetGeneration():
				return fmt.Errorf("observedGeneration %d, generation %d", c.ObservedGeneration, obj.GetGeneration())
			}
			t.Logf("%s: Accepted=%s %s: %s", what, c.Status, c.Reason, c.Message)
			return nil
		})
	}
}

func named[T client.Object](obj T, name string) T {
	obj.SetName(name)
	return obj
}

// origins lists port 8080's allowed origins.
func origins(cfg *config.Config) []string {
	port := cfg.Lookup(8080)
	if port == nil || port.CORS == nil {
		return nil
	}
	var out []string
	for _, o := range port.CORS.AllowOrigins {
		out = append(out, o.Value())
	}
	return out
}
