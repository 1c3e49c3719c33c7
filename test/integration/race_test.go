package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
	"github.com/corsmesh/corsmesh/test/sandbox"
)

// TestPodRightAfterItsChainIsInjected creates a PluginChain and, at once, a pod it selects,
// many times over, while the webhook's PluginChain watch lags (as on a loaded node, where
// this was seen): a pod admitted before the webhook's informer has the chain must still get
// its sidecar (a user's `kubectl apply -f` of a chain and a Deployment, the guide's steps
// run by a script). Without the webhook's live confirmation of a cached "no chain selects
// the pod", every one of these pods is admitted untouched.
func TestPodRightAfterItsChainIsInjected(t *testing.T) {
	s := sb(t)
	ctx := testContext(t, 3*time.Minute)
	cs, c, _ := clients(t, s)
	// The app's Service, Plugin and PluginConfig exist first; only the chains are new.
	app := corsApp{Namespace: "race", App: "race-web", Port: 8080, Origin: "https://a.example"}
	app.installMonitored(t, ctx, s)
	if err := c.Delete(ctx, &v1alpha1.PluginChain{ObjectMeta: metav1.ObjectMeta{Namespace: app.Namespace, Name: app.App}}); err != nil {
		t.Fatalf("deleting the app's own chain: %v", err)
	}
	waitForServiceAccount(t, ctx, cs, app.Namespace)
	restartWebhook(t, ctx, s, lagWatches("pluginchains", 2*time.Second))

	const rounds = 20
	var missed []string
	for i := range rounds {
		// Each round's chain selects only its round's pod, so no earlier chain helps.
		round := fmt.Sprint(i)
		chain := &v1alpha1.PluginChain{
			ObjectMeta: metav1.ObjectMeta{Namespace: app.Namespace, Name: "round-" + round},
			Spec: v1alpha1.PluginChainSpec{
				Chains: []v1alpha1.ChainPluginSpec{{Name: v1alpha1.ChainInboundHTTP, Plugins: []string{app.plugin()}}},
				Selectors: v1alpha1.ChainSelectorSpec{
					PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": app.App, "round": round}},
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": app.Namespace}},
				},
			},
		}
		if err := c.Create(ctx, chain); err != nil {
			t.Fatalf("creating chain %s: %v", chain.Name, err)
		}
		pod := app.pod("round-" + round)
		pod.Labels["round"] = round
		got, err := cs.CoreV1().Pods(app.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating pod %s: %v", pod.Name, err)
		}
		if len(injectionTraces(got)) == 0 {
			missed = append(missed, got.Name)
		}
	}
	if len(missed) > 0 {
		t.Errorf("%d of %d pods created right after the chain selecting them were admitted without the sidecar: %v", len(missed), rounds, missed)
	}
	// Now rather than with the namespace: every admission of the package evaluates them.
	if err := c.DeleteAllOf(ctx, &v1alpha1.PluginChain{}, client.InNamespace(app.Namespace)); err != nil {
		t.Errorf("deleting the PluginChains of %s: %v", app.Namespace, err)
	}
}

// restartWebhook restarts the sandbox's webhook with its API connection wrapped by wrap,
// and restarts it unwrapped when the test ends.
func restartWebhook(t *testing.T, ctx context.Context, s *sandbox.Sandbox, wrap func(http.RoundTripper) http.RoundTripper) {
	t.Helper()
	if err := s.StopWebhook(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.StopWebhook(); err != nil {
			t.Error(err)
		}
		if err := s.StartWebhook(context.Background()); err != nil {
			t.Errorf("restarting the webhook: %v", err)
		}
	})
	if err := s.StartWebhookWrapped(ctx, wrap); err != nil {
		t.Fatal(err)
	}
}

// lagWatches delays every event of the watches of resource by d: what a webhook replica
// behind a congested connection, or starved of CPU, sees.
func lagWatches(resource string, d time.Duration) func(http.RoundTripper) http.RoundTripper {
	return func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(req)
			if err != nil || req.URL.Query().Get("watch") != "true" || !strings.HasSuffix(req.URL.Path, "/"+resource) {
				return resp, err
			}
			resp.Body = &laggingBody{ReadCloser: resp.Body, lag: d}
			return resp, nil
		})
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// laggingBody hands on what it read d after reading it.
type laggingBody struct {
	io.ReadCloser
	lag time.Duration
}

func (b *laggingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		time.Sleep(b.lag)
	}
	return n, err
}
