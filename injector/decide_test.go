package injector_test

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

// Every way a pod is not injected, each with its reason; the seed's pipy-ok-v1 pod in the
// seed's cluster is the starting point, and each case changes one thing.
func TestSkipReasons(t *testing.T) {
	tests := []struct {
		name    string
		ns      string
		pod     func(*corev1.Pod)
		cluster func(*injector.Objects)
		want    injector.Reason
		message string // a part of the message the user sees
	}{
		{name: "system namespace", ns: "kube-system", want: injector.ReasonSystemNamespace},
		{name: "own namespace", ns: "corsmesh-system", want: injector.ReasonOwnNamespace},
		{name: "namespace missing", ns: "nowhere", want: injector.ReasonNamespaceNotFound},
		{name: "namespace not monitored", cluster: func(o *injector.Objects) { delete(o.Namespaces[0].Labels, injector.LabelMonitoredBy) },
			want: injector.ReasonNamespaceNotMonitored, message: "corsmeshctl namespace add pipy"},
		{name: "namespace monitored by another mesh", cluster: func(o *injector.Objects) { o.Namespaces[0].Labels[injector.LabelMonitoredBy] = "other" },
			want: injector.ReasonNamespaceNotMonitored},
		{name: "host network", pod: func(p *corev1.Pod) { p.Spec.HostNetwork = true }, want: injector.ReasonHostNetwork},
		{name: "Windows pod (spec.os)", pod: func(p *corev1.Pod) { p.Spec.OS = &corev1.PodOS{Name: corev1.Windows} },
			want: injector.ReasonWindows, message: "Linux-only"},
		{name: "Windows pod (node selector)", pod: func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"kubernetes.io/os": "windows"} },
			want: injector.ReasonWindows},
		{name: "already injected (status annotation)", pod: func(p *corev1.Pod) { p.Annotations = map[string]string{injector.AnnotationStatus: "{}"} },
			want: injector.ReasonAlreadyInjected},
		{name: "already injected (sidecar present)", pod: func(p *corev1.Pod) {
			p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: injector.ProxyContainerName})
		}, want: injector.ReasonAlreadyInjected},
		{name: "pod opted out: disabled", pod: annotate("disabled"), want: injector.ReasonPodOptedOut},
		{name: "pod opted out: no", pod: annotate("no"), want: injector.ReasonPodOptedOut},
		{name: "pod opted out: false", pod: annotate("False"), want: injector.ReasonPodOptedOut},
		{name: "pod annotation invalid", pod: annotate("maybe"), want: injector.ReasonInvalidAnnotation, message: "maybe"},
		{name: "namespace opted out", cluster: annotateNS("disabled"), want: injector.ReasonNamespaceOptedOut},
		{name: "namespace annotation invalid", cluster: annotateNS("sometimes"), want: injector.ReasonInvalidAnnotation},
		{name: "pod security baseline", cluster: podSecurity("baseline"), want: injector.ReasonPodSecurity, message: "NET_ADMIN"},
		{name: "pod security restricted", cluster: podSecurity("restricted"), want: injector.ReasonPodSecurity},
		{name: "plugin policy off", cluster: func(o *injector.Objects) { o.MeshConfigs[0].Spec.FeatureFlags.EnablePluginPolicy = false },
			want: injector.ReasonPluginPolicyDisabled, message: `kubectl patch meshconfig osm-mesh-config -n corsmesh-system -p '{"spec":{"featureFlags":{"enablePluginPolicy":true}}}' --type=merge`},
		{name: "no MeshConfig: plugin policy off, as in osm-edge", cluster: func(o *injector.Objects) { o.MeshConfigs = nil },
			want: injector.ReasonPluginPolicyDisabled, message: "MeshConfig corsmesh-system/osm-mesh-config does not exist"},
		{name: "a MeshConfig of another namespace does not count", cluster: func(o *injector.Objects) { o.MeshConfigs[0].Namespace = "osm-system" },
			want: injector.ReasonPluginPolicyDisabled},
		{name: "no chain selects the pod", pod: func(p *corev1.Pod) { p.Labels["app"] = "other" }, want: injector.ReasonNoChain},
		{name: "namespace selector does not match", cluster: func(o *injector.Objects) {
			o.Chains[0].Spec.Selectors.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "web"}}
		}, want: injector.ReasonNoChain},
		{name: "chain mounts a plugin we do not implement", cluster: func(o *injector.Objects) {
			o.Plugins = append(o.Plugins, &v1alpha1.Plugin{ObjectMeta: metav1.ObjectMeta{Name: "rate-limit"}})
			o.Chains[0].Spec.Chains[0].Plugins = []string{"rate-limit"}
		}, want: injector.ReasonNoCORSPlugin, message: "no CORS plugin"},
		{name: "CORS plugin on another chain", cluster: func(o *injector.Objects) { o.Chains[0].Spec.Chains[0].Name = "outbound-http" },
			want: injector.ReasonNoCORSPlugin},
		{name: "chain names a Plugin that does not exist", cluster: func(o *injector.Objects) { o.Plugins = nil },
			want: injector.ReasonPluginNotFound, message: "cors-policy"},
		{name: "no Service selects the pod", cluster: func(o *injector.Objects) { o.ServiceList = nil }, want: injector.ReasonNoHTTPPorts},
	}
	in := injector.New(testOptions())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, w := loadCase(t, filepath.Join("testdata", "inject", "seed-pipy-ok-v1.yaml"))
			ns := w.Namespace
			if tt.ns != "" {
				ns = tt.ns
			}
			if tt.pod != nil {
				tt.pod(w.Pod)
			}
			if tt.cluster != nil {
				tt.cluster(objs)
			}
			d, err := injector.NewResolver(in, objs, injector.ResolverOptions{}).Decide(context.Background(), w.Pod, ns, injector.ForAdmission)
			if err != nil {
				t.Fatal(err)
			}
			if d.Inject || d.Reason != tt.want {
				t.Fatalf("inject=%v reason=%q (%s), want skipped for %q", d.Inject, d.Reason, d.Message, tt.want)
			}
			if !strings.Contains(d.Message, tt.message) || d.Message == "" {
				t.Errorf("message %q does not say %q", d.Message, tt.message)
			}
		})
	}
}

func annotate(value string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Annotations = map[string]string{injector.AnnotationSidecarInjection: value}
	}
}

func annotateNS(value string) func(*injector.Objects) {
	return func(o *injector.Objects) {
		o.Namespaces[0].Annotations = map[string]string{injector.AnnotationSidecarInjection: value}
	}
}

func podSecurity(level string) func(*injector.Objects) {
	return func(o *injector.Objects) { o.Namespaces[0].Labels[injector.LabelPodSecurityEnforce] = level }
}

// A pod-level "enabled" wins over a namespace that opted out, as in osm-edge.
func TestPodEnabledOverridesNamespaceOptOut(t *testing.T) {
	for _, value := range []string{"enabled", "yes", "true"} {
		objs, w := loadCase(t, filepath.Join("testdata", "inject", "seed-pipy-ok-v1.yaml"))
		annotateNS("disabled")(objs)
		annotate(value)(w.Pod)
		d, err := injector.NewResolver(injector.New(testOptions()), objs, injector.ResolverOptions{}).Decide(context.Background(), w.Pod, w.Namespace, injector.ForAdmission)
		if err != nil || !d.Inject {
			t.Errorf("%s: inject=%v reason=%s err=%v, want injected", value, d.Inject, d.Reason, err)
		}
	}
}

// Unimplemented plugins beside the CORS one are reported, and the CORS one still applies.
func TestUnimplementedPluginBesideCORSIsReported(t *testing.T) {
	objs, w := loadCase(t, filepath.Join("testdata", "inject", "seed-pipy-ok-v1.yaml"))
	objs.Plugins = append(objs.Plugins, &v1alpha1.Plugin{ObjectMeta: metav1.ObjectMeta{Name: "token-auth"}})
	objs.Chains[0].Spec.Chains[0].Plugins = append(objs.Chains[0].Spec.Chains[0].Plugins, "token-auth")
	d, err := injector.NewResolver(injector.New(testOptions()), objs, injector.ResolverOptions{}).Decide(context.Background(), w.Pod, w.Namespace, injector.ForAdmission)
	if err != nil || !d.Inject {
		t.Fatalf("inject=%v reason=%s err=%v", d.Inject, d.Reason, err)
	}
	if !strings.Contains(strings.Join(d.Warnings, "\n"), `Plugin "token-auth" is not implemented`) {
		t.Errorf("warnings %q do not report token-auth", d.Warnings)
	}
}

// Compiled selectors are cached per resourceVersion: an edited chain takes effect at once.
func TestEditedChainTakesEffect(t *testing.T) {
	objs, w := loadCase(t, filepath.Join("testdata", "inject", "seed-pipy-ok-v1.yaml"))
	in := injector.New(testOptions())
	objs.Chains[0].ResourceVersion = "1"
	if d, _ := injector.NewResolver(in, objs, injector.ResolverOptions{}).Decide(context.Background(), w.Pod, w.Namespace, injector.ForAdmission); !d.Inject {
		t.Fatalf("version 1 should inject: %s", d.Reason)
	}
	edited := objs.Chains[0].DeepCopy()
	edited.ResourceVersion = "2"
	edited.Spec.Selectors.PodSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "other"}}
	objs.Chains[0] = edited
	if d, _ := injector.NewResolver(in, objs, injector.ResolverOptions{}).Decide(context.Background(), w.Pod, w.Namespace, injector.ForAdmission); d.Inject || d.Reason != injector.ReasonNoChain {
		t.Errorf("version 2 no longer selects the pod, got inject=%v reason=%s", d.Inject, d.Reason)
	}
}

// Desired recomputes an injected pod's policy: a PluginConfig edit shows up in it.
func TestDesiredFollowsPluginConfigEdits(t *testing.T) {
	objs, w := loadCase(t, filepath.Join("testdata", "inject", "seed-pipy-ok-v1.yaml"))
	in := injector.New(testOptions())
	objs.Configs[0].ResourceVersion = "1" // parsed once per version, as from an informer
	_, pod, err := injector.NewResolver(in, objs, injector.ResolverOptions{}).Inject(context.Background(), w.Pod, w.Namespace)
	if err != nil || pod == nil {
		t.Fatal(err)
	}
	objs.Configs[0] = objs.Configs[0].DeepCopy()
	objs.Configs[0].ResourceVersion = "2"
	objs.Configs[0].Spec.Config.Raw = []byte(`{"allowOrigins":[{"exact":"http://edited.example"}]}`)
	d, err := injector.NewResolver(in, objs, injector.ResolverOptions{}).Decide(context.Background(), pod, w.Namespace, injector.ForResync)
	if err != nil || !d.Inject {
		t.Fatalf("desired: %+v %v", d, err)
	}
	if got := d.Config.Ports[0].CORS.AllowOrigins[0].Exact; got != "http://edited.example" {
		t.Errorf("desired origin = %q, want the edited one", got)
	}
	status, err := injector.ParseStatus(pod)
	if err != nil || status == nil || len(status.Ports) != 1 || status.Ports[0] != 8080 {
		t.Errorf("status = %+v, %v", status, err)
	}
}

// A port whose name says it is not HTTP/1.1 (Istio's convention, and what Helm charts
// write), or that is a server-first protocol's well-known port, is not intercepted unless
// appProtocol (or, for the number, an http name) says HTTP; the others on the pod still are.
func TestNonHTTPPortsAreLeftAlone(t *testing.T) {
	tests := []struct {
		name        string
		portName    string
		port        int32 // default 5432
		appProtocol *string
		intercepted bool
	}{
		{name: "mysql", portName: "mysql"},
		{name: "tcp-postgresql (Bitnami's chart)", portName: "tcp-postgresql"},
		{name: "grpc", portName: "grpc-api"},
		{name: "https", portName: "https"},
		{name: "Redis, upper case", portName: "Redis"},
		{name: "grpc-web is HTTP/1.1", portName: "grpc-web", intercepted: true},
		{name: "http", portName: "http-alt", intercepted: true},
		{name: "a name that says nothing", portName: "metrics", intercepted: true},
		{name: "appProtocol overrides the name", portName: "tcp-app", appProtocol: ptr.To("http"), intercepted: true},
		{name: "MySQL's port, unnamed (the server speaks first)", portName: "", port: 3306},
		{name: "MySQL's port, named http", portName: "http", port: 3306, intercepted: true},
	}
	in := injector.New(testOptions())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, w := loadCase(t, filepath.Join("testdata", "inject", "seed-pipy-ok-v1.yaml"))
			svc := objs.ServiceList[0].DeepCopy()
			svc.Name = "extra"
			port := cmp.Or(tt.port, 5432)
			svc.Spec.Ports = []corev1.ServicePort{{Name: tt.portName, Port: port, TargetPort: intstr.FromInt32(port), AppProtocol: tt.appProtocol}}
			objs.ServiceList = append(objs.ServiceList, svc)
			d, err := injector.NewResolver(in, objs, injector.ResolverOptions{}).Decide(context.Background(), w.Pod, w.Namespace, injector.ForAdmission)
			if err != nil {
				t.Fatal(err)
			}
			if !d.Inject || !slices.Contains(d.Ports, 8080) {
				t.Fatalf("inject=%v ports=%v (%s): the seed's HTTP port must still be intercepted", d.Inject, d.Ports, d.Message)
			}
			if got := slices.Contains(d.Ports, port); got != tt.intercepted {
				t.Errorf("port %d named %q intercepted = %v, want %v (warnings %q)", port, tt.portName, got, tt.intercepted, d.Warnings)
			}
			warned := slices.ContainsFunc(d.Warnings, func(w string) bool { return strings.Contains(w, fmt.Sprintf("port %d not intercepted", port)) })
			if warned == tt.intercepted {
				t.Errorf("warnings %q: want one about port %d exactly when it is left alone", d.Warnings, port)
			}
		})
	}
}

// A pod that is meant to finish (a Job's) gets a warning when the proxy would be a regular
// container, which never exits; as a native sidecar it stops with the app.
func TestRunToCompletionPodsWarnWithoutNativeSidecar(t *testing.T) {
	tests := []struct {
		name          string
		restartPolicy corev1.RestartPolicy
		native        string // the pod's corsmesh.io/native-sidecar; "" for the default (native)
		wantWarning   bool
	}{
		{"Job pod, legacy sidecar", corev1.RestartPolicyNever, "false", true},
		{"OnFailure, legacy sidecar", corev1.RestartPolicyOnFailure, "false", true},
		{"Job pod, native sidecar", corev1.RestartPolicyNever, "", false},
		{"long-running pod, legacy sidecar", corev1.RestartPolicyAlways, "false", false},
	}
	in := injector.New(testOptions())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, w := loadCase(t, filepath.Join("testdata", "inject", "seed-pipy-ok-v1.yaml"))
			w.Pod.Spec.RestartPolicy = tt.restartPolicy
			if tt.native != "" {
				w.Pod.Annotations = map[string]string{injector.AnnotationNativeSidecar: tt.native}
			}
			d, _, err := injector.NewResolver(in, objs, injector.ResolverOptions{}).Inject(context.Background(), w.Pod, w.Namespace)
			if err != nil || !d.Inject {
				t.Fatalf("inject=%v err=%v", d != nil && d.Inject, err)
			}
			warned := slices.ContainsFunc(d.Warnings, func(w string) bool { return strings.Contains(w, "never completes") })
			if warned != tt.wantWarning {
				t.Errorf("warnings %q: want the never-completes warning %v", d.Warnings, tt.wantWarning)
			}
		})
	}
}

// TestOptionsMonitors: the rule the webhook caches Services by and the chain status counts
// pods by; Decide's namespace reasons follow it (TestDecide).
func TestOptionsMonitors(t *testing.T) {
	opts := injector.DefaultOptions()
	ns := func(name, mesh string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{injector.LabelMonitoredBy: mesh}}}
	}
	tests := []struct {
		name string
		ns   *corev1.Namespace
		want bool
	}{
		{"labelled", ns("app", opts.MeshName), true},
		{"other mesh", ns("app", opts.MeshName+"-other"), false},
		{"unlabelled", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, false},
		{"own namespace, labelled", ns(opts.OwnNamespace, opts.MeshName), false},
		{"system namespace, labelled", ns(opts.SystemNamespaces[0], opts.MeshName), false},
		{"absent", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := opts.Monitors(tt.ns); got != tt.want {
				t.Errorf("Monitors = %t, want %t", got, tt.want)
			}
		})
	}
}
