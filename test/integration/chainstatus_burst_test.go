package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/corsmesh/corsmesh/test/sandbox"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestChainStatusBatchesABurst checks that a burst of pod creations (a rollout, a scale-up)
// costs a PluginChain about one status write per second, not one per pod, and that the
// status still ends up counting every pod.
func TestChainStatusBatchesABurst(t *testing.T) {
	s := sb(t)
	ctx := testContext(t, 2*time.Minute)
	cs, _, _ := clients(t, s)
	app := corsApp{Namespace: "burst", App: "burst-web", Port: 8080, Origin: "https://a.example"}
	app.installMonitored(t, ctx, s)
	waitForServiceAccount(t, ctx, cs, app.Namespace)

	const pods = 60
	before := statusPatches(t, ctx, s)
	start := time.Now()
	for i := range pods {
		if _, err := cs.CoreV1().Pods(app.Namespace).Create(ctx, app.pod(fmt.Sprintf("burst-%d", i)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitForSelectedPods(t, ctx, s, app.Namespace, app.App, pods, 30*time.Second)
	elapsed := time.Since(start)
	writes := statusPatches(t, ctx, s) - before
	t.Logf("%d pods in %s: %.0f PluginChain status writes", pods, elapsed.Round(time.Millisecond), writes)
	// One per second of the burst, and the first and last may fall either side of it.
	if limit := elapsed.Seconds() + 2; writes > limit {
		t.Errorf("%.0f status writes for %d pods created over %s, want at most %.0f (one per second)", writes, pods, elapsed.Round(time.Millisecond), limit)
	}
}

// statusPatches is the API server's count of PATCH requests to pluginchains/status, all
// chains.
func statusPatches(t *testing.T, ctx context.Context, s *sandbox.Sandbox) float64 {
	t.Helper()
	return apiServerCounter(t, ctx, s, "apiserver_request_total", map[string]string{"resource": "pluginchains", "subresource": "status", "verb": "PATCH"})
}
