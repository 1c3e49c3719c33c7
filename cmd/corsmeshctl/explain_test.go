package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/corsmesh/corsmesh/injector"
)

// guideFiles are the guide's manifests as kubectl applies them (-n pipy for pipy.yaml).
func guideFiles() []string {
	var args []string
	for _, f := range []string{"namespaces.yaml", "pipy.yaml", "plugin.yaml", "pluginchain.yaml", "pluginconfig.yaml"} {
		args = append(args, "-f", filepath.Join("..", "..", "manifests", "samples", f))
	}
	return args
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExplain(t *testing.T) {
	wildcardConfig := writeFile(t, "wildcard.yaml", `apiVersion: plugin.flomesh.io/v1alpha1
kind: PluginConfig
metadata: {name: cors-policy-config, namespace: pipy}
spec:
  plugin: cors-policy
  destinationRefs: [{kind: Service, name: pipy-ok, namespace: pipy}]
  config:
    allowOrigins: [{exact: "https://app.example.org"}, {wildcard: "https://*.example.com"}]
    refusedPreflight: answer
`)
	reportOnlyConfig := writeFile(t, "report-only.yaml", `apiVersion: plugin.flomesh.io/v1alpha1
kind: PluginConfig
metadata: {name: cors-policy-config, namespace: pipy}
spec:
  plugin: cors-policy
  destinationRefs: [{kind: Service, name: pipy-ok, namespace: pipy}]
  config: {allowOrigins: [{exact: "https://app.example.org"}], reportOnly: true}
`)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string // lines or fragments of stdout, in order
		wantErr  string
	}{
		{
			name:     "the guide's first curl",
			args:     []string{"--service", "pipy-ok", "--origin", "http://www.bbb.com"},
			wantCode: 0,
			want: []string{
				"pod:          Deployment pipy/pipy-ok-v1 (from the input), selected by Service pipy-ok",
				`request:      GET port 8080, Host "pipy-ok.pipy", Origin "http://www.bbb.com"`,
				"service:      pipy/pipy-ok",
				"pluginconfig: pipy/cors-policy-config",
				`matched:      spec.config.allowOrigins[2] (prefix: "http://www.bbb.com")`,
				"decision:     allowed",
				"access-control-allow-origin: http://www.bbb.com",
				"access-control-expose-headers: Content-Encoding,Kuma-Revision",
				"preflight:    not needed for this request; one would be answered by the proxy, 200, with:",
				"access-control-max-age: 86400",
			},
		},
		{
			name:     "a preflighted request by pod",
			args:     []string{"--pod", "pipy-ok-v2", "--origin", "http://www.aaa.com", "--method", "PATCH", "--header", "X-Foo-Bar-1: 1"},
			wantCode: 0,
			want:     []string{"Deployment pipy/pipy-ok-v2", `allowOrigins[1] (exact: "http://www.aaa.com")`, "decision:     allowed", "preflight:    answered by the proxy, 200"},
		},
		{
			name:     "a refused origin",
			args:     []string{"--service", "pipy-ok", "--origin", "https://evil.example"},
			wantCode: 1,
			want: []string{
				`matched:      none: no allowOrigins entry matches; tried [0] regex "http.*://www.test.cn", [1] exact "http://www.aaa.com", [2] prefix "http://www.bbb.com"`,
				"decision:     refused (not_allowed)",
				"                vary: Origin",
				"preflight:    not needed for this request; one would be forwarded to the app; the proxy sets:",
			},
		},
		{
			name:     "a method the policy does not allow",
			args:     []string{"--service", "pipy-ok", "--origin", "http://www.aaa.com", "--method", "PUT"},
			wantCode: 1,
			want:     []string{"decision:     refused by the browser: method PUT is not in access-control-allow-methods"},
		},
		{
			name:     "a header the policy does not allow",
			args:     []string{"--service", "pipy-ok", "--origin", "http://www.aaa.com", "--header", "X-Other"},
			wantCode: 1,
			want:     []string{"decision:     refused by the browser: header x-other is not in access-control-allow-headers"},
		},
		{
			name:     "null",
			args:     []string{"--service", "pipy-ok", "--origin", "null"},
			wantCode: 1,
			want:     []string{`matched:      none: "null" is allowed only by an exact: "null" entry`},
		},
		{
			name:     "wildcard",
			args:     []string{"--service", "pipy-ok", "--origin", "https://a.b.example.com", "-f", wildcardConfig},
			wantCode: 0,
			want:     []string{`matched:      spec.config.allowOrigins[1] (wildcard: "https://*.example.com")`, "decision:     allowed"},
		},
		{
			name:     "wildcard: a refused preflight answered by the proxy",
			args:     []string{"--service", "pipy-ok", "--origin", "https://example.com.evil.com", "--method", "DELETE", "-f", wildcardConfig},
			wantCode: 1,
			want:     []string{"decision:     refused (not_allowed)", "preflight:    answered by the proxy, 403, with:"},
		},
		{
			name:     "report-only",
			args:     []string{"--service", "pipy-ok", "--origin", "https://evil.example", "-f", reportOnlyConfig},
			wantCode: 1,
			want: []string{
				"decision:     report-only: the policy would say refused (not_allowed); the proxy changes no response and counts it as would-refuse",
				"actual:       forwarded, the app's response unchanged",
			},
		},
		{
			name:     "a Service without a policy",
			args:     []string{"--service", "pipy-ok-v1", "--origin", "http://www.aaa.com"},
			wantCode: 1,
			want:     []string{"decision:     no CORS policy for port 8080 and Host \"pipy-ok-v1.pipy\""},
		},
		{name: "no origin", args: []string{"--service", "pipy-ok"}, wantCode: 2, wantErr: "--origin ORIGIN is required"},
		{name: "pod and service", args: []string{"--service", "pipy-ok", "--pod", "x", "--origin", "http://a.com"}, wantCode: 2, wantErr: "one of them"},
		{name: "unknown Service", args: []string{"--service", "nope", "--origin", "http://a.com"}, wantCode: 2, wantErr: "Service pipy/nope is not in the input"},
		{name: "unknown pod", args: []string{"--pod", "nope", "--origin", "http://a.com"}, wantCode: 2, wantErr: "no Pod or workload pipy/nope"},
		{name: "bad method", args: []string{"--service", "pipy-ok", "--origin", "http://a.com", "--method", "GE T"}, wantCode: 2, wantErr: "is not an HTTP method"},
		{name: "bad port", args: []string{"--service", "pipy-ok", "--origin", "http://a.com", "--port", "70000"}, wantCode: 2, wantErr: "is not a port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{"explain", "-n", "pipy"}, guideFiles()...), tt.args...)
			code, stdout, stderr := runCLI(t, "", args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout, stderr)
			}
			rest := stdout
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("stdout lacks %q (after the lines before it):\n%s", w, stdout)
				}
				rest = rest[i+len(w):]
			}
			if tt.wantErr != "" && !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("stderr = %q, want %q", stderr, tt.wantErr)
			}
		})
	}
}

func TestExplainDiff(t *testing.T) {
	edited := writeFile(t, "edited.yaml", `apiVersion: plugin.flomesh.io/v1alpha1
kind: PluginConfig
metadata: {name: cors-policy-config, namespace: pipy}
spec:
  plugin: cors-policy
  destinationRefs: [{kind: Service, name: pipy-ok, namespace: pipy}, {kind: Service, name: pipy-ok-v2, namespace: pipy}]
  config:
    allowOrigins: [{exact: "http://www.aaa.com"}, {wildcard: "http://*.bbb.com"}]
`)
	args := append(append([]string{"explain", "-n", "pipy"}, guideFiles()...), "--diff", edited,
		"--origin", "http://www.aaa.com", "--origin", "http://www.bbb.com", "--origin", "http://www.bbb.com.evil.net", "--origin", "https://www.test.cn")
	code, stdout, stderr := runCLI(t, "", args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := `PluginConfig pipy/cors-policy-config (edited):
  Service pipy/pipy-ok: http://www.bbb.com.evil.net allowed -> refused
  Service pipy/pipy-ok: https://www.test.cn allowed -> refused
  Service pipy/pipy-ok-v2: http://www.aaa.com refused -> allowed
  Service pipy/pipy-ok-v2: http://www.bbb.com refused -> allowed
`
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
}

// An injected pod read from the cluster is explained with the policy of its annotation,
// and its proxy's refusals are shown.
func TestExplainLivePod(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop", Labels: map[string]string{"app": "web"}, Annotations: map[string]string{
			injector.AnnotationConfig: `{"version":1,"ports":[{"port":3000,"cors":{"allowOrigins":[{"wildcard":"https://*.shop.example"}]}}]}`,
		}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web"}, {Name: "corsproxy", Ports: []corev1.ContainerPort{{Name: injector.AdminPortName, ContainerPort: 15000}}}}},
	}
	useFakeClient(t, pod)
	saved := readDebugCORS
	t.Cleanup(func() { readDebugCORS = saved })
	readDebugCORS = func(_ context.Context, _ string, p *corev1.Pod) ([]byte, error) {
		if p.Name != "web-1" {
			t.Errorf("read /debug/cors of %s", p.Name)
		}
		return []byte(`{"since":"2026-12-01T09:00:00Z","refused":{"not_allowed":7},"top":[{"origin":"https://shop.example.evil.com","reason":"not_allowed","port":3000,"count":7,"last":"2026-12-01T09:30:00Z"}]}`), nil
	}
	code, stdout, stderr := runCLI(t, "", "explain", "--from-cluster", "-n", "shop", "--pod", "web-1", "--origin", "https://shop.example.evil.com")
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"pod:          Pod shop/web-1 (from the cluster)",
		"decision:     refused (not_allowed)",
		"refusals:     since 2026-12-01T09:00:00Z, by reason map[not_allowed:7]",
		"7× https://shop.example.evil.com (not_allowed) port 3000",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
}
