package injector

import (
	"encoding/json"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

// A Service's DNS names are prefixes of one string: one string and the slice, where each
// name was a string of its own, for every Service of a shared port at every admission.
func TestServiceHostNamesShareOneString(t *testing.T) {
	tests := []struct {
		name, ns, domain string
		want             []string
	}{
		{"web", "shop", "cluster.local", []string{"web", "web.shop", "web.shop.svc", "web.shop.svc.cluster.local"}},
		{"a", "b", "corp.example", []string{"a", "a.b", "a.b.svc", "a.b.svc.corp.example"}},
		{"web", "shop", "", []string{"web", "web.shop", "web.shop.svc", "web.shop.svc."}},
	}
	for _, tt := range tests {
		in := &Injector{opts: Options{ClusterDomain: tt.domain}}
		if got := in.serviceHostNames(tt.name, tt.ns); !slices.Equal(got, tt.want) {
			t.Errorf("%s.%s (domain %q): names %q, want %q", tt.name, tt.ns, tt.domain, got, tt.want)
		}
		if n := testing.AllocsPerRun(100, func() { hostNamesKept(in, tt.name, tt.ns) }); n != 2 {
			t.Errorf("%s.%s: %.0f allocations, want 2 (the longest name and the slice)", tt.name, tt.ns, n)
		}
	}
}

// hostNamesKept returns the names from a frame of its own, so that they are allocated as
// in resolvePorts (where they are kept in the config), not on the test's stack.
//
//go:noinline
func hostNamesKept(in *Injector, name, ns string) []string { return in.serviceHostNames(name, ns) }

// A port that is intercepted costs no allocation: the "Service x port n" of the warnings
// is formatted only for a warning. The warnings themselves still name the port.
func TestTargetPortFormatsOnlyForAWarning(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{
		Name: "app", Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: 8080}},
	}}}}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "pipy"}}
	in := New(DefaultOptions())
	tests := []struct {
		name    string
		port    corev1.ServicePort
		want    int32
		warning string // "" when intercepted
	}{
		{name: "numeric target", port: corev1.ServicePort{Port: 80, TargetPort: intstr.FromInt32(8080)}, want: 8080},
		{name: "named target", port: corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("web")}, want: 8080},
		{name: "no target", port: corev1.ServicePort{Port: 8080}, want: 8080},
		{name: "appProtocol http", port: corev1.ServicePort{Port: 80, AppProtocol: ptr.To("http"), TargetPort: intstr.FromInt32(8080)}, want: 8080},
		{name: "missing named target", port: corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("api")},
			warning: `Service shop port 80 not intercepted: no container port named "api"`},
		{name: "gRPC by name", port: corev1.ServicePort{Name: "grpc-api", Port: 81, TargetPort: intstr.FromInt32(8080)},
			warning: `Service shop port 81 not intercepted: its name "grpc-api" says grpc`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &Decision{}
			got, ok := in.targetPort(pod, svc, tt.port, d)
			if tt.warning != "" {
				if ok || len(d.Warnings) != 1 || len(d.Warnings[0]) < len(tt.warning) || d.Warnings[0][:len(tt.warning)] != tt.warning {
					t.Fatalf("got %d, %v, warnings %q; want a warning starting %q", got, ok, d.Warnings, tt.warning)
				}
				return
			}
			if !ok || got != tt.want || len(d.Warnings) != 0 {
				t.Fatalf("got %d, %v, warnings %q; want %d intercepted", got, ok, d.Warnings, tt.want)
			}
			if n := testing.AllocsPerRun(100, func() { in.targetPort(pod, svc, tt.port, d) }); n != 0 {
				t.Errorf("%.0f allocations for an intercepted port, want 0", n)
			}
		})
	}
}

// A policy's comparison key is its JSON, encoded when the PluginConfig's version is parsed
// and not again per admission: the second read of an unchanged PluginConfig encodes
// nothing, and the key is what encoding the policy gives.
func TestPolicyKeyEncodedOncePerVersion(t *testing.T) {
	tests := []struct{ name, cfg string }{
		{"origins", `{"allowOrigins":[{"exact":"https://a.example"}],"allowCredentials":true}`},
		{"empty", `{}`},
		{"no config", ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pc := &v1alpha1.PluginConfig{
				ObjectMeta: metav1.ObjectMeta{Namespace: "pipy", Name: "cors", ResourceVersion: "7"},
				Spec:       v1alpha1.PluginConfigSpec{Plugin: "cors-policy", Config: runtime.RawExtension{Raw: []byte(tt.cfg)}},
			}
			r := &Resolver{}
			first := r.parsedPolicy(pc)
			if first.err != nil {
				t.Fatal(first.err)
			}
			want, err := json.Marshal(first.policy)
			if err != nil {
				t.Fatal(err)
			}
			if first.key != string(want) {
				t.Errorf("key %s, want %s", first.key, want)
			}
			if n := testing.AllocsPerRun(100, func() { r.parsedPolicy(pc) }); n != 0 {
				t.Errorf("%.0f allocations reading a parsed policy again, want 0", n)
			}
		})
	}
}
