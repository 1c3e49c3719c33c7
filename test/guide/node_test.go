package guide

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/test/gobuild"
	"github.com/corsmesh/corsmesh/test/sandbox"
)

// TestGuideVerbatimOnNode is the guide as a user runs it: corsmesh installed with
// `kubectl apply -k manifests/overlays/default` on a cluster with a real node, then every
// bash block of manifests/testdata/cors-plugin.md run verbatim in its order (osm being
// corsmeshctl), the restart the PluginChain's status asks for, and both curl checks from
// the curl pod printing what the guide shows.
func TestGuideVerbatimOnNode(t *testing.T) {
	s := sandbox.ForTest(t, sandbox.Options{Node: true})
	sandbox.RequireServed(t, s, sandbox.GuideImages...)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	bins, err := gobuild.Builder{Root: s.RepoRoot}.Build(ctx, t.TempDir(), "cmd/corsmeshctl")
	if err != nil {
		t.Fatal(err)
	}
	corsmeshctl := bins["cmd/corsmeshctl"]
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
			t.Errorf("the check at line %d of the guide:\n%s\ngot:\n%s%s", c.Step.Line, strings.Join(c.Diffs, "\n"), c.Got, s.Diagnose())
		}
	}
	// The pods that answered run on the node with the sidecar.
	var pods corev1.PodList
	if err := s.Client.List(ctx, &pods, client.InNamespace("pipy")); err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue // one from before the restart, on its way out
		}
		if p.Status.Phase != corev1.PodRunning || p.Spec.NodeName == "" || p.Annotations[injector.AnnotationStatus] == "" {
			t.Errorf("pod %s: %s on node %q, status annotation %q: want Running on the node with the sidecar", p.Name, p.Status.Phase, p.Spec.NodeName, p.Annotations[injector.AnnotationStatus])
		}
	}
}
