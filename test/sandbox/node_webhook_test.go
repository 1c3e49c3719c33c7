package sandbox

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestNodeWebhookInCluster installs corsmesh as users do (kubectl apply -k
// manifests/overlays/default: the webhook's image behind its Service, cert-manager issuing
// its certificate, cainjector filling caBundle), applies the guide's resources and
// workloads in monitored namespaces, and checks that the pipy pod runs with the injected
// init container and native sidecar and gives the guide's two curl checks (run from the
// curl pod, as in the guide) the answers the guide shows.
func TestNodeWebhookInCluster(t *testing.T) {
	s := ForTest(t, Options{Node: true})
	RequireServed(t, s, CoreDNSImage, "docker.io/curlimages/curl:latest", "docker.io/flomesh/pipy:latest",
		"ghcr.io/corsmesh/corsmesh-webhook:v0.1.0", "ghcr.io/corsmesh/corsproxy:v0.1.0", "ghcr.io/corsmesh/corsproxy-init:v0.1.0")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	kubectl := func(args ...string) string {
		t.Helper()
		return s.MustKubectl(t, ctx, args...)
	}
	if err := s.InstallInCluster(ctx, DefaultOverlay); err != nil {
		t.Fatalf("%v%s", err, s.Diagnose())
	}

	for _, ns := range []string{"curl", "pipy"} {
		kubectl("create", "namespace", ns)
		kubectl("label", "namespace", ns, "openservicemesh.io/monitored-by=osm")
		if err := s.WaitForNamespace(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	// The guide's "Enable plugin policy mode" step.
	kubectl("patch", "meshconfig", "osm-mesh-config", "-n", OSMNamespace, "-p", `{"spec":{"featureFlags":{"enablePluginPolicy":true}}}`, "--type=merge")
	for _, f := range []string{"plugin.yaml", "pluginchain.yaml", "pluginconfig.yaml"} {
		kubectl("apply", "-f", "manifests/samples/"+f)
	}
	kubectl("apply", "-n", "curl", "-f", "manifests/samples/curl.yaml")
	kubectl("apply", "-n", "pipy", "-f", "manifests/samples/pipy.yaml")
	kubectl("wait", "--for=condition=ready", "pod", "-l", "app=curl", "-n", "curl", "--timeout=4m")
	kubectl("wait", "--for=condition=ready", "pod", "-l", "app=pipy-ok", "-n", "pipy", "--timeout=4m")
	inits := kubectl("get", "pods", "-n", "pipy", "-l", "app=pipy-ok,version=v1", "-o", "jsonpath={.items[0].spec.initContainers[*].name}")
	if !strings.Contains(inits, "corsproxy-init") || !strings.Contains(inits, "corsproxy") {
		t.Fatalf("the pipy pod was not injected: init containers %q%s", inits, s.Diagnose())
	}
	if err := s.CheckGuideAnswers(ctx); err != nil {
		t.Error(err)
	}
}
