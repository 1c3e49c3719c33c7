package guide

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corsmesh/corsmesh/test/sandbox"
)

// TestGuideVerbatimOnNode is the guide as a user runs it: corsmesh installed with
// `kubectl apply -k manifests/overlays/default` on a cluster with a real node, then every
// bash block of manifests/testdata/cors-plugin.md run verbatim in its order (osm being
// corsmeshctl), the restart the PluginChain's status asks for, and both curl checks from
// the curl pod printing what the guide shows.
func TestGuideVerbatimOnNode(t *testing.T) {
	s := sandbox.ForTest(t, sandbox.Options{Node: true})
	sandbox.RequireImages(t, s, sandbox.GuideImages...)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	corsmeshctl := filepath.Join(t.TempDir(), "corsmeshctl")
	build := exec.CommandContext(ctx, "go", "build", "-o", corsmeshctl, "./cmd/corsmeshctl")
	build.Dir = s.RepoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build corsmeshctl: %v\n%s", err, out)
	}
	if err := s.InstallInCluster(ctx, sandbox.DefaultOverlay); err != nil {
		t.Fatalf("%v%s", err, s.Diagnose())
	}
	checks, err := (&Walk{Sandbox: s, Corsmeshctl: corsmeshctl, Out: t.Output()}).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(checks) != 2 {
		t.Fatalf("the guide has %d checks, want 2", len(checks))
	}
	for _, c := range checks {
		if len(c.Diffs) > 0 {
			t.Errorf("the check at %s line %d:\n%s\ngot:\n%s%s", "the guide", c.Step.Line, strings.Join(c.Diffs, "\n"), c.Got, s.Diagnose())
		}
	}
	// The pods that answered run on the node with the sidecar.
	out, err := s.Kubectl(ctx, "get", "pods", "-n", "pipy", "-o", `jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.spec.nodeName} {.spec.initContainers[*].name}{"\n"}{end}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) < 4 || f[1] != "Running" || f[2] == "" || !strings.Contains(line, "corsproxy") {
			t.Errorf("a pipy pod not Running on the node with the sidecar: %q", line)
		}
	}
}
