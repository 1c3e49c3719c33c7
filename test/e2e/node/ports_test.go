package node

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
)

// portsNamespace holds TestPortsAndHosts's app: its Services' names are the Hosts it sends.
const portsNamespace = "e2e-ports"

// multiPortApp is a pod serving three ports, one container each (the pipy stand-in, the
// last over HTTPS). 8080 is reached through two Services with different policies, told
// apart by Host; 9090 through a Service without a policy, proxied untouched; 8443 serves
// HTTPS, which the proxy cannot read, through a Service whose port name says nothing of
// it, so it is intercepted and must be passed through as plain TCP. Each container's
// readiness probe goes through the redirect, so Ready means its app answers through it.
var multiPortApp = fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: storefront, namespace: %[1]s}
spec:
  selector: {app: shop}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: admin, namespace: %[1]s}
spec:
  selector: {app: shop}
  ports: [{name: http, port: 8080, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: metrics, namespace: %[1]s}
spec:
  selector: {app: shop}
  ports: [{name: metrics, port: 9090, targetPort: 9090}]
---
apiVersion: v1
kind: Service
metadata: {name: vault, namespace: %[1]s}
spec:
  selector: {app: shop}
  ports: [{name: api, port: 8443, targetPort: web-tls}]
---
kind: PluginChain
apiVersion: plugin.flomesh.io/v1alpha1
metadata: {name: shop, namespace: %[1]s}
spec:
  chains: [{name: inbound-http, plugins: [cors-policy]}]
  selectors:
    podSelector: {matchLabels: {app: shop}}
---
kind: PluginConfig
apiVersion: plugin.flomesh.io/v1alpha1
metadata: {name: storefront, namespace: %[1]s}
spec:
  plugin: cors-policy
  destinationRefs: [{kind: Service, name: storefront, namespace: %[1]s}]
  config:
    allowOrigins: [{exact: "https://shop.example"}]
---
kind: PluginConfig
apiVersion: plugin.flomesh.io/v1alpha1
metadata: {name: admin, namespace: %[1]s}
spec:
  plugin: cors-policy
  destinationRefs: [{kind: Service, name: admin, namespace: %[1]s}]
  config:
    allowOrigins: [{exact: "https://admin.example"}]
    allowCredentials: true
---
apiVersion: v1
kind: Pod
metadata: {name: shop-0, namespace: %[1]s, labels: {app: shop}}
spec:
  containers:
  - name: web
    image: flomesh/pipy:latest
    command: [pipy, -e, "pipy().listen(8080).serveHTTP(new Message('hi from web'))"]
    ports: [{name: http, containerPort: 8080}]
    readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
  - name: metrics
    image: flomesh/pipy:latest
    command: [pipy, -e, "pipy().listen(9090).serveHTTP(new Message('hi from web'))"]
    ports: [{name: metrics, containerPort: 9090}]
    readinessProbe: {httpGet: {path: /, port: 9090}, periodSeconds: 1}
  - name: tls
    image: flomesh/pipy:latest
    # The stand-in's own flags (flomesh/pipy has no such one-liner): HTTPS, self-signed.
    command: [pipy, --tls, --listen=:8443, --message=hi from web]
    ports: [{name: web-tls, containerPort: 8443}]
    readinessProbe: {httpGet: {path: /, port: 8443, scheme: HTTPS}, periodSeconds: 1}
`, portsNamespace)

// TestPortsAndHosts: one pod, three intercepted ports, two policies on one port told apart
// by the Host the client sends, checked from the client pod through kube-proxy, CoreDNS and
// the pod's redirect; then the same over the pod's IPv6 address.
func TestPortsAndHosts(t *testing.T) {
	s := installed(t)
	ctx := testContext(t, 5*time.Minute)
	monitoredNamespace(t, ctx, s, portsNamespace)
	apply(t, ctx, s, multiPortApp)
	if out, err := s.Kubectl(ctx, "wait", "-n", portsNamespace, "--for=condition=ready", "pod/shop-0", "--timeout=3m"); err != nil {
		t.Fatalf("pod shop-0 not ready: %v\n%s%s", err, out, s.Diagnose())
	}
	if inits := initContainers(t, ctx, s, portsNamespace, "shop-0"); inits != "corsproxy-init corsproxy" {
		t.Fatalf("shop-0: init containers %q, want the init container and the native sidecar", inits)
	}
	var pod corev1.Pod
	if err := s.Client.Get(ctx, client.ObjectKey{Namespace: portsNamespace, Name: "shop-0"}, &pod); err != nil {
		t.Fatal(err)
	}
	status, err := injector.ParseStatus(&pod)
	if err != nil {
		t.Fatal(err)
	}
	for _, port := range []int32{8080, 9090, 8443} {
		if !slices.Contains(status.Ports, port) {
			t.Fatalf("port %d not intercepted (%v): the test needs each port redirected to the proxy", port, status.Ports)
		}
	}
	var podIP, podIP6 string
	for _, ip := range pod.Status.PodIPs {
		if a, err := netip.ParseAddr(ip.IP); err == nil && a.Is6() {
			podIP6 = ip.IP
		} else {
			podIP = ip.IP
		}
	}
	if podIP == "" {
		t.Fatalf("pod shop-0 has no IPv4 address: %v", pod.Status.PodIPs)
	}

	tests := []struct {
		name            string
		ipv6            bool
		url             string
		args            []string // more curl arguments
		origin          string
		wantAllowed     bool
		wantCredentials bool
	}{
		{"storefront's policy by its Service name", false, "http://storefront." + portsNamespace + "/", nil, "https://shop.example", true, false},
		{"storefront does not allow admin's origin", false, "http://storefront." + portsNamespace + ".svc.cluster.local/", nil, "https://admin.example", false, false},
		{"admin's policy by its Service name", false, "http://admin." + portsNamespace + ".svc:8080/", nil, "https://admin.example", true, true},
		// A short name resolves only in the Service's namespace: curl connects to the pod.
		{"admin does not allow storefront's origin", false, "http://admin:8080/", []string{"--resolve", "admin:8080:" + podIP}, "https://shop.example", false, false},
		{"a Host naming no Service: no CORS (two policies share the port)", false, "http://" + podIP + ":8080/", nil, "https://shop.example", false, false},
		{"port 9090 has no policy: untouched", false, "http://metrics." + portsNamespace + ":9090/", nil, "https://shop.example", false, false},
		{"IPv6: the redirect and the original destination work the same", true, "http://[" + podIP6 + "]:8080/", []string{"-g", "-H", "Host: admin." + portsNamespace + ":8080"}, "https://admin.example", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ipv6 && podIP6 == "" {
				t.Fatalf("pod shop-0 has no IPv6 address (status.podIPs): the node's pod network is dual-stack%s", s.Diagnose())
			}
			got := curlPod(t, ctx, s, tt.url, append(tt.args, "-H", "Origin: "+tt.origin)...)
			if !strings.HasPrefix(got, "http/1.1 200") || !strings.Contains(got, "hi from web") {
				t.Fatalf("not the app's answer:\n%s", got)
			}
			if allowed := allows(got, tt.origin); allowed != tt.wantAllowed {
				t.Errorf("allowed = %v, want %v:\n%s", allowed, tt.wantAllowed, got)
			}
			if creds := strings.Contains(got, "access-control-allow-credentials: true"); creds != tt.wantCredentials {
				t.Errorf("credentials = %v, want %v:\n%s", creds, tt.wantCredentials, got)
			}
		})
	}
	t.Run("HTTPS on an intercepted port without a policy: passed through", func(t *testing.T) {
		got := curlPod(t, ctx, s, "https://vault."+portsNamespace+":8443/", "-k")
		if !strings.HasPrefix(got, "http/") || !strings.Contains(got, "hi from web") {
			t.Errorf("over TLS through the redirect:\n%s", got)
		}
	})
	// Untouched means untouched: port 9090's answers carry no Vary from the proxy either.
	if got := curlPod(t, ctx, s, "http://metrics."+portsNamespace+":9090/", "-H", "Origin: https://shop.example"); strings.Contains(got, "vary:") {
		t.Errorf("port 9090 answer was modified:\n%s", got)
	}
}
