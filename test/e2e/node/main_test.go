// Package node runs corsmesh on the sandbox's real node, installed as users install it
// (kubectl apply -k manifests/overlays/default: the webhook's image, two replicas, behind
// its Service; cert-manager issuing its certificate): the kubelet runs the injected pods
// from the images of `make images`, with containerd, runc, the CNI bridge, kube-proxy and
// CoreDNS. One sandbox and one install serve the whole package; each test works in
// namespaces of its own, and TestUninstall, last, removes corsmesh.
//
//	go -C test test -count=1 ./e2e/node -v
//
// It needs root, the node's binaries (hack/build-controlplane.sh) and the images (make
// images sandbox-images); without them it skips, except with CI=true, where it fails.
package node

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corsmesh/corsmesh/test/sandbox"
)

var env sandbox.Main

func TestMain(m *testing.M) {
	os.Exit(env.RunMain(m, sandbox.Options{Node: true}))
}

// The images the tests run: the node's DNS, the guide's curl and pipy stand-ins, ours.
var images = []string{sandbox.CoreDNSImage, "docker.io/curlimages/curl:latest", "docker.io/flomesh/pipy:latest",
	"ghcr.io/corsmesh/corsmesh-webhook:v0.1.0", "ghcr.io/corsmesh/corsproxy:v0.1.0", "ghcr.io/corsmesh/corsproxy-init:v0.1.0"}

// clientNamespace holds the curl pod every test calls its app from (not monitored).
const clientNamespace = "e2e-client"

var (
	installOnce sync.Once
	installErr  error
	clientPod   string
)

// installed returns the package's sandbox with corsmesh installed in it, plugin policy on
// (the guide's meshconfig patch), the guide's cors-policy Plugin and a running curl client.
func installed(t *testing.T) *sandbox.Sandbox {
	t.Helper()
	s := env.Require(t)
	sandbox.RequireServed(t, s, images...)
	installOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer cancel()
		installErr = install(ctx, s)
	})
	if installErr != nil {
		t.Fatalf("installing corsmesh: %v%s", installErr, s.Diagnose())
	}
	return s
}

func install(ctx context.Context, s *sandbox.Sandbox) error {
	if err := s.InstallInCluster(ctx, sandbox.DefaultOverlay); err != nil {
		return err
	}
	steps := [][]string{
		{"patch", "meshconfig", "osm-mesh-config", "-n", sandbox.OSMNamespace, "--type=merge", "-p", `{"spec":{"featureFlags":{"enablePluginPolicy":true}}}`},
		{"apply", "-f", "manifests/samples/plugin.yaml"},
		{"create", "namespace", clientNamespace},
	}
	for _, args := range steps {
		if out, err := s.Kubectl(ctx, args...); err != nil {
			return fmt.Errorf("%w\n%s", err, out)
		}
	}
	if err := s.WaitForNamespace(ctx, clientNamespace); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"apply", "-n", clientNamespace, "-f", "manifests/samples/curl.yaml"},
		{"wait", "--for=condition=ready", "pod", "-l", "app=curl", "-n", clientNamespace, "--timeout=4m"},
	} {
		if out, err := s.Kubectl(ctx, args...); err != nil {
			return fmt.Errorf("%w\n%s", err, out)
		}
	}
	out, err := s.Kubectl(ctx, "get", "pods", "-n", clientNamespace, "-l", "app=curl", "-o", "jsonpath={.items[0].metadata.name}")
	if err != nil {
		return err
	}
	clientPod = strings.TrimSpace(out)
	return nil
}

// apply applies yaml with kubectl and fails the test when it fails.
func apply(t *testing.T, ctx context.Context, s *sandbox.Sandbox, yaml string) {
	t.Helper()
	if out, stderr, err := s.KubectlIO(ctx, []byte(yaml), "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s%s\n%s", err, out, stderr, yaml)
	}
}

// monitoredNamespace creates a namespace monitored by the mesh, deleted when the test ends.
func monitoredNamespace(t *testing.T, ctx context.Context, s *sandbox.Sandbox, name string) {
	t.Helper()
	s.MustKubectl(t, ctx, "create", "namespace", name)
	t.Cleanup(func() { _, _ = s.Kubectl(context.Background(), "delete", "namespace", name, "--wait=false") })
	s.MustKubectl(t, ctx, "label", "namespace", name, "openservicemesh.io/monitored-by=osm")
	if err := s.WaitForNamespace(ctx, name); err != nil {
		t.Fatal(err)
	}
}

// app is a pipy-ok app (the guide's pipy one-liner) in namespace NS: a Service web on 8080,
// a PluginChain selecting its pods and a PluginConfig allowing Origin.
type app struct {
	NS     string
	Origin string
}

// policy is the app's PluginChain (the guide's cors-policy Plugin on inbound-http) and its
// PluginConfig for Service web.
func (a app) policy() string {
	return fmt.Sprintf(`kind: PluginChain
apiVersion: plugin.flomesh.io/v1alpha1
metadata: {name: web, namespace: %[1]s}
spec:
  chains: [{name: inbound-http, plugins: [cors-policy]}]
  selectors:
    podSelector: {matchLabels: {app: web}}
    namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: %[1]s}}
---
`, a.NS) + a.config("web")
}

// config is a PluginConfig for the app's Service named service: Origin, GET and POST.
func (a app) config(service string) string {
	return fmt.Sprintf(`kind: PluginConfig
apiVersion: plugin.flomesh.io/v1alpha1
metadata: {name: %[3]s, namespace: %[1]s}
spec:
  plugin: cors-policy
  destinationRefs: [{kind: Service, name: %[3]s, namespace: %[1]s}]
  config:
    allowOrigins: [{exact: %[2]q}]
    allowMethods: [GET, POST]
`, a.NS, a.Origin, service)
}

// service is the app's Service web on 8080.
func (a app) service() string { return a.serviceOn("web", 8080) }

// serviceOn is a Service selecting the app's pods on port (the same target port).
func (a app) serviceOn(name string, port int) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %s, namespace: %s}
spec:
  selector: {app: web}
  ports: [{name: http, port: %d, targetPort: %d}]
`, name, a.NS, port, port)
}

// podTemplate is the pipy container, with HTTP probes on its own port (8080, which the init
// container redirects to the proxy) and the given annotations on the pod.
func (a app) podTemplate(annotations string) string {
	return fmt.Sprintf(`    metadata:
      labels: {app: web}
      annotations: {%s}
    spec:
      containers:
      - name: pipy
        image: flomesh/pipy:latest
        ports: [{name: http, containerPort: 8080}]
        command:
        - pipy
        - -e
        - |
          pipy()
          .listen(8080)
          .serveHTTP(new Message('Hi, I am PIPY-OK v1!'))
        readinessProbe:
          httpGet: {path: /, port: 8080}
          periodSeconds: 1
        livenessProbe:
          httpGet: {path: /, port: 8080}
          periodSeconds: 2
          failureThreshold: 2
`, annotations)
}

// deployment is a one-replica Deployment web of the app.
func (a app) deployment(annotations string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: %s}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
%s`, a.NS, a.podTemplate(annotations))
}

// deploy creates the app's monitored namespace, its Service, policy and Deployment (pod
// annotations as YAML flow entries) and returns its pod's name once rolled out.
func (a app) deploy(t *testing.T, ctx context.Context, s *sandbox.Sandbox, annotations string) string {
	t.Helper()
	monitoredNamespace(t, ctx, s, a.NS)
	apply(t, ctx, s, a.service()+"---\n"+a.policy()+"---\n"+a.deployment(annotations))
	return waitRollout(t, ctx, s, a.NS)
}

// waitRollout waits for the Deployment's rollout and returns its one current pod's name.
func waitRollout(t *testing.T, ctx context.Context, s *sandbox.Sandbox, ns string) string {
	t.Helper()
	s.MustKubectl(t, ctx, "rollout", "status", "-n", ns, "deployment/web", "--timeout=4m")
	// Pods of the old ReplicaSet may still be terminating: the Running, undeleted one.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out := s.MustKubectl(t, ctx, "get", "pods", "-n", ns, "-l", "app=web", "-o",
			`jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.metadata.deletionTimestamp}{"\n"}{end}`)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if f := strings.Fields(lines[0]); len(lines) == 1 && len(f) == 2 && f[1] == "Running" {
			return f[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("want one Running pod of deployment web in %s, got:\n%s", ns, out)
		}
		time.Sleep(time.Second)
	}
}

// initContainers lists a pod's init container names.
func initContainers(t *testing.T, ctx context.Context, s *sandbox.Sandbox, ns, pod string) string {
	t.Helper()
	return s.MustKubectl(t, ctx, "get", "pod", "-n", ns, pod, "-o", "jsonpath={.spec.initContainers[*].name}")
}

// curlApp calls http://web.<ns>:8080/ from the client pod with an Origin and returns the
// answer (status line and headers lower-cased).
func curlApp(t *testing.T, ctx context.Context, s *sandbox.Sandbox, ns, origin string) string {
	t.Helper()
	return curlPod(t, ctx, s, "http://web."+ns+":8080/", "-H", "Origin: "+origin)
}

// curlPod calls url from the client pod (curl -si and args) and returns the answer
// (status line and headers lower-cased); it fails the test when curl fails.
func curlPod(t *testing.T, ctx context.Context, s *sandbox.Sandbox, url string, args ...string) string {
	t.Helper()
	all := append(slices.Clone(args), "-si", "--max-time", "10", url)
	out, err := s.CurlFromPod(ctx, clientNamespace, clientPod, all...)
	if err != nil {
		t.Fatalf("curl %s from the client: %v\n%s%s", strings.Join(all, " "), err, out, s.Diagnose())
	}
	return strings.ToLower(strings.ReplaceAll(out, "\r\n", "\n"))
}

// allows reports whether an answer (from curlApp) allows origin.
func allows(answer, origin string) bool {
	return strings.Contains(answer, "access-control-allow-origin: "+strings.ToLower(origin))
}
