package sandbox

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestNodeRunsGuideWorkloads runs the guide's curl and pipy workloads unchanged
// (manifests/samples, images by the names the guide gives, served by the in-process
// registry) on the node, without corsmesh, and has the curl pod call
// pipy-ok.pipy:8080: image pulls through the mirror, cluster DNS (CoreDNS) and
// kube-proxy's Service routing, as in a cluster.
func TestNodeRunsGuideWorkloads(t *testing.T) {
	s := ForTest(t, Options{Node: true})
	RequireServed(t, s, CoreDNSImage, "docker.io/curlimages/curl:latest", "docker.io/flomesh/pipy:latest")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	kubectl := func(args ...string) string {
		t.Helper()
		out, err := s.Kubectl(ctx, args...)
		if err != nil {
			pods, _ := s.Kubectl(context.Background(), "get", "pods", "-A", "-o", "wide")
			events, _ := s.Kubectl(context.Background(), "get", "events", "-A")
			t.Fatalf("%v\npods:\n%s\nevents:\n%s%s", err, pods, events, s.logTail("kubelet"))
		}
		return out
	}
	for _, ns := range []string{"curl", "pipy"} {
		kubectl("create", "namespace", ns)
		if err := s.WaitForNamespace(ctx, ns); err != nil {
			t.Fatal(err)
		}
		kubectl("apply", "-n", ns, "-f", "manifests/samples/"+ns+".yaml")
	}
	kubectl("wait", "--for=condition=ready", "pod", "-l", "app=curl", "-n", "curl", "--timeout=4m")
	kubectl("wait", "--for=condition=ready", "pod", "-l", "app=pipy-ok", "-n", "pipy", "--timeout=4m")
	client := strings.TrimSpace(kubectl("get", "pods", "-n", "curl", "-l", "app=curl", "-o", "jsonpath={.items[0].metadata.name}"))
	for _, target := range []string{"pipy-ok-v1.pipy:8080", "pipy-ok.pipy.svc.cluster.local:8080"} {
		out, err := s.CurlFromPod(ctx, "curl", client, "-si", "--max-time", "20", target)
		if err != nil {
			eps, _ := s.Kubectl(context.Background(), "get", "endpointslices", "-A")
			t.Fatalf("curl %s from the curl pod: %v\n%s\nendpoint slices:\n%s%s", target, err, out, eps, s.logTail("kube-proxy"))
		}
		if !strings.HasPrefix(out, "HTTP/1.1 200") || !strings.Contains(out, "Hi, I am PIPY-OK v") {
			t.Errorf("curl %s from the curl pod:\n%s", target, out)
		}
	}
}
