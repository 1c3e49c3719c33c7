package integration

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// corsmeshctl inject's output is what `kubectl apply` accepts: the guide's pipy workloads,
// injected offline with the guide's policies, pass a server-side dry run against the real
// API server (its schema validation, defaulting and admission, our webhook included).
func TestOfflineInjectionApplies(t *testing.T) {
	s := sb(t)
	ctx := testContext(t, 2*time.Minute)
	cmd := exec.CommandContext(ctx, binaries(t, s)["cmd/corsmeshctl"], "inject", "-f", "manifests/samples/pipy.yaml", "-n", "offline",
		"--policies", "manifests/samples/plugin.yaml", "--policies", "manifests/samples/pluginchain.yaml", "--policies", "manifests/samples/pluginconfig.yaml")
	cmd.Dir = s.RepoRoot
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("corsmeshctl inject: %v\n%s", err, stderr.String())
	}
	t.Logf("corsmeshctl inject said:\n%s", stderr.String())
	if strings.Count(stdout.String(), "corsproxy-init") < 2 {
		t.Fatalf("the two pipy-ok Deployments were not injected:\n%s", stdout.String())
	}
	if out, errOut, err := s.KubectlIO(ctx, nil, "create", "namespace", "offline"); err != nil {
		t.Fatalf("%v: %s%s", err, out, errOut)
	}
	t.Cleanup(func() { _, _ = s.Kubectl(t.Context(), "delete", "namespace", "offline", "--wait=false") })
	out, errOut, err := s.KubectlIO(ctx, stdout.Bytes(), "apply", "--dry-run=server", "--validate=strict", "-n", "offline", "-f", "-")
	if err != nil {
		t.Fatalf("kubectl apply --dry-run=server rejected the injected output: %v\n%s%s", err, out, errOut)
	}
	for _, want := range []string{"deployment.apps/pipy-ok-v1 created (server dry run)", "deployment.apps/pipy-ok-v2 created (server dry run)"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl apply said %q, want %q", out, want)
		}
	}
}
