package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
)

// A pod with three ports: 8080 is reached through two Services with different policies,
// told apart by Host; 9090 through a Service without a policy, proxied untouched; 8443
// serves HTTPS, which the proxy cannot read, through a Service whose port name says
// nothing of it, so it is intercepted and must be passed through as plain TCP.
const multiPortApp = `
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {openservicemesh.io/monitored-by: osm}
---
apiVersion: v1
kind: Service
metadata: {name: storefront, namespace: shop}
spec:
  selector: {app: shop}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: admin, namespace: shop}
spec:
  selector: {app: shop}
  ports: [{name: http, port: 8080, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: metrics, namespace: shop}
spec:
  selector: {app: shop}
  ports: [{name: metrics, port: 9090, targetPort: 9090}]
---
apiVersion: v1
kind: Service
metadata: {name: vault, namespace: shop}
spec:
  selector: {app: shop}
  ports: [{name: api, port: 8443, targetPort: web-tls}]
---
kind: Plugin
apiVersion: plugin.flomesh.io/v1alpha1
metadata: {name: cors}
spec: {priority: 1, pipyscript: ""}
---
kind: PluginChain
apiVersion: plugin.flomesh.io/v1alpha1
metadata: {name: shop, namespace: shop}
spec:
  chains: [{name: inbound-http, plugins: [cors]}]
  selectors:
    podSelector: {matchLabels: {app: shop}}
---
kind: PluginConfig
apiVersion: plugin.flomesh.io/v1alpha1
metadata: {name: storefront, namespace: shop}
spec:
  plugin: cors
  destinationRefs: [{kind: Service, name: storefront, namespace: shop}]
  config:
    allowOrigins: [{exact: "https://shop.example"}]
---
kind: PluginConfig
apiVersion: plugin.flomesh.io/v1alpha1
metadata: {name: admin, namespace: shop}
spec:
  plugin: cors
  destinationRefs: [{kind: Service, name: admin, namespace: shop}]
  config:
    allowOrigins: [{exact: "https://admin.example"}]
    allowCredentials: true
---
apiVersion: v1
kind: Pod
metadata: {name: shop-0, namespace: shop, labels: {app: shop}}
spec:
  containers:
  - name: web
    image: example.com/shop:1
    ports: [{name: http, containerPort: 8080}, {name: metrics, containerPort: 9090}, {name: web-tls, containerPort: 8443}]
`

func TestPortsAndHosts(t *testing.T) {
	s := env.Require(t)
	ctx := testContext(t, 2*time.Minute)
	if out, stderr, err := s.KubectlIO(ctx, []byte(multiPortApp), "apply", "-f", "-"); err != nil {
		t.Fatalf("%v\n%s%s", err, out, stderr)
	}
	t.Cleanup(func() {
		_, _ = s.Kubectl(context.Background(), "delete", "namespace", "shop", "--wait=false")
		_, _ = s.Kubectl(context.Background(), "delete", "plugin", "cors", "--wait=false")
	})
	var pod corev1.Pod
	if err := s.Client.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "shop-0"}, &pod); err != nil {
		t.Fatal(err)
	}
	if pod.Annotations[injector.AnnotationStatus] == "" {
		t.Fatalf("shop-0 not injected: %v", pod.Annotations)
	}
	p := runPod(t, ctx, &pod)

	tests := []struct {
		name, host, origin string
		wantAllowed        bool
		wantCredentials    bool
	}{
		{"storefront's policy by its Service name", "storefront.shop:8080", "https://shop.example", true, false},
		{"storefront does not allow admin's origin", "storefront.shop.svc.cluster.local:8080", "https://admin.example", false, false},
		{"admin's policy by its Service name", "admin.shop.svc:8080", "https://admin.example", true, true},
		{"admin does not allow storefront's origin", "admin:8080", "https://shop.example", false, false},
		{"a Host naming no Service: no CORS (two policies share the port)", p.IP.String() + ":8080", "https://shop.example", false, false},
		{"port 9090 has no policy: untouched", "metrics.shop:9090", "https://shop.example", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.ToLower(curl(t, ctx, p, tt.host, "-H", "Origin: "+tt.origin))
			if !strings.HasPrefix(got, "http/1.1 200") || !strings.Contains(got, "hi from web") {
				t.Fatalf("not the app's answer:\n%s", got)
			}
			if allowed := strings.Contains(got, "access-control-allow-origin: "+tt.origin); allowed != tt.wantAllowed {
				t.Errorf("allowed = %v, want %v:\n%s", allowed, tt.wantAllowed, got)
			}
			if creds := strings.Contains(got, "access-control-allow-credentials: true"); creds != tt.wantCredentials {
				t.Errorf("credentials = %v, want %v", creds, tt.wantCredentials)
			}
		})
	}
	t.Run("HTTPS on an intercepted port without a policy: passed through", func(t *testing.T) {
		status, err := injector.ParseStatus(&pod)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(status.Ports, 8443) {
			t.Fatalf("port 8443 not intercepted (%v): the test needs it redirected to the proxy", status.Ports)
		}
		out, err := p.ClientCommand(ctx, "curl", "-ksi", "-m", "5", "https://"+p.IP.String()+":8443/").CombinedOutput()
		got := strings.ToLower(string(out))
		if err != nil || !strings.HasPrefix(got, "http/") || !strings.Contains(got, "hi from web") {
			t.Errorf("over TLS through the redirect (err %v):\n%s\nproxy log:\n%s", err, out, p.Log(injector.ProxyContainerName))
		}
	})
	// Untouched means untouched: port 9090's answers carry no Vary from the proxy either.
	if got := strings.ToLower(curl(t, ctx, p, "metrics.shop:9090", "-H", "Origin: https://shop.example")); strings.Contains(got, "vary:") {
		t.Errorf("port 9090 answer was modified:\n%s", got)
	}
}
