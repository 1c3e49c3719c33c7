package controllers

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/yaml"

	"github.com/corsmesh/corsmesh/corsproxy/config"
	"github.com/corsmesh/corsmesh/injector"
	configv1alpha2 "github.com/corsmesh/corsmesh/injector/api/config/v1alpha2"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
	"github.com/corsmesh/corsmesh/webhook/internal/webhooktest"
)

func TestProxyConfig(t *testing.T) {
	policy := &config.CORS{AllowOrigins: []config.OriginMatch{{Exact: "http://a.example"}}}
	desired := &config.Config{Version: config.Version, Ports: []config.Port{{Port: 8080, CORS: policy}, {Port: 9090, CORS: policy}}}
	tests := []struct {
		name     string
		d        *injector.Decision
		injected []int32
		want     []config.Port
	}{
		{"same ports", &injector.Decision{Inject: true, Config: desired, Ports: []int32{8080, 9090}}, []int32{9090, 8080},
			[]config.Port{{Port: 8080, CORS: policy}, {Port: 9090, CORS: policy}}},
		{"a new port is left for the restart", &injector.Decision{Inject: true, Config: desired, Ports: []int32{8080, 9090}}, []int32{8080},
			[]config.Port{{Port: 8080, CORS: policy}}},
		{"a port no Service reaches passes through", &injector.Decision{Inject: true, Config: &config.Config{Version: 1, Ports: []config.Port{{Port: 8080, CORS: policy}}}, Ports: []int32{8080}}, []int32{8080, 7070},
			[]config.Port{{Port: 7070}, {Port: 8080, CORS: policy}}},
		{"no longer injected: every port passes through", &injector.Decision{Reason: injector.ReasonNoChain}, []int32{8080, 9090},
			[]config.Port{{Port: 8080}, {Port: 9090}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := proxyConfig(tt.d, tt.injected)
			if got.Version != config.Version || !slices.EqualFunc(got.Ports, tt.want, func(a, b config.Port) bool {
				return a.Port == b.Port && a.CORS == b.CORS && len(a.Hosts) == len(b.Hosts)
			}) {
				t.Errorf("proxyConfig = %+v, want ports %+v", got, tt.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("config does not validate: %v", err)
			}
		})
	}
}

func TestNeedsAnnotationPatch(t *testing.T) {
	want := `{"version":1,"ports":[{"port":8080}]}`
	tests := []struct {
		name        string
		annotations map[string]string
		patch       bool
	}{
		{"missing", nil, true},
		{"equal", map[string]string{injector.AnnotationConfig: want}, false},
		{"differs", map[string]string{injector.AnnotationConfig: `{"version":1,"ports":[]}`}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: tt.annotations}}
			if got := needsAnnotationPatch(pod, want); got != tt.patch {
				t.Errorf("needsAnnotationPatch = %v, want %v", got, tt.patch)
			}
		})
	}
}

func TestRestartRequired(t *testing.T) {
	tests := []struct {
		name     string
		injected []int32
		d        *injector.Decision
		want     bool
		mentions []string
	}{
		{"same ports", []int32{8080}, &injector.Decision{Inject: true, Ports: []int32{8080}}, false, nil},
		{"same ports in another order", []int32{9090, 8080}, &injector.Decision{Inject: true, Ports: []int32{8080, 9090}}, false, nil},
		{"a new port", []int32{8080}, &injector.Decision{Inject: true, Ports: []int32{8080, 9090}}, true, []string{"[8080]", "[8080 9090]"}},
		{"a port gone", []int32{8080, 9090}, &injector.Decision{Inject: true, Ports: []int32{8080}}, true, []string{"[8080 9090]", "ports [8080]:"}},
		{"no longer injected: passthrough needs no restart", []int32{8080}, &injector.Decision{Reason: injector.ReasonNoChain}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, msg := restartRequired(tt.injected, tt.d)
			if got != tt.want {
				t.Fatalf("restartRequired = %v (%q), want %v", got, msg, tt.want)
			}
			for _, m := range tt.mentions {
				if !strings.Contains(msg, m) {
					t.Errorf("message %q does not mention %q", msg, m)
				}
			}
		})
	}
}

func TestRestartCondition(t *testing.T) {
	earlier := metav1.NewTime(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	now := metav1.NewTime(earlier.Add(time.Hour))
	cond := func(status corev1.ConditionStatus, msg string) *corev1.PodCondition {
		return &corev1.PodCondition{Type: PodConditionRestartRequired, Status: status, Message: msg, LastTransitionTime: earlier}
	}
	tests := []struct {
		name     string
		existing *corev1.PodCondition
		required bool
		message  string
		want     *corev1.PodCondition // nil: nothing to write
	}{
		{"never needed: no condition", nil, false, "", nil},
		{"needed now", nil, true, "m1", &corev1.PodCondition{Status: corev1.ConditionTrue, Reason: reasonPortsChanged, Message: "m1", LastTransitionTime: now}},
		{"still needed, same message", cond(corev1.ConditionTrue, "m1"), true, "m1", nil},
		{"still needed, other ports", cond(corev1.ConditionTrue, "m1"), true, "m2", &corev1.PodCondition{Status: corev1.ConditionTrue, Reason: reasonPortsChanged, Message: "m2", LastTransitionTime: earlier}},
		{"ports match again", cond(corev1.ConditionTrue, "m1"), false, "", &corev1.PodCondition{Status: corev1.ConditionFalse, Reason: reasonPortsMatch, LastTransitionTime: now}},
		{"already cleared", cond(corev1.ConditionFalse, "x"), false, "", nil},
		{"needed again", cond(corev1.ConditionFalse, "x"), true, "m1", &corev1.PodCondition{Status: corev1.ConditionTrue, Reason: reasonPortsChanged, Message: "m1", LastTransitionTime: now}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := restartCondition(tt.existing, tt.required, tt.message, now)
			if (got == nil) != (tt.want == nil) {
				t.Fatalf("restartCondition = %+v, want %+v", got, tt.want)
			}
			if got == nil {
				return
			}
			if got.Type != PodConditionRestartRequired || got.Status != tt.want.Status || got.Reason != tt.want.Reason ||
				(tt.want.Message != "" && got.Message != tt.want.Message) || !got.LastTransitionTime.Equal(&tt.want.LastTransitionTime) {
				t.Errorf("restartCondition = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// The config sync reconciler on the seed's pipy-ok-v1 pod, injected while the seed's chain
// and PluginConfig existed, after each change of the cluster.
func TestConfigSyncReconcile(t *testing.T) {
	tests := []struct {
		name string
		// change edits the cluster after the pod was injected.
		change func(t *testing.T, c client.Client)
		// wantPolicy checks the pod's config annotation (nil: must be unchanged).
		wantPolicy func(t *testing.T, cfg *config.Config)
		// wantRestart is the RestartRequired condition's status ("": absent).
		wantRestart corev1.ConditionStatus
		wantEvents  []string // prefixes, in order
		wantWrites  int
	}{
		{
			name:   "unchanged: no patch",
			change: func(*testing.T, client.Client) {},
		},
		{
			name: "PluginConfig edit changes the annotation",
			change: func(t *testing.T, c client.Client) {
				pc := ctlGet(t, c, &v1alpha1.PluginConfig{}, "pipy", "cors-policy-config")
				pc.Spec.Config = runtime.RawExtension{Raw: []byte(`{"allowOrigins":[{"exact":"http://www.ccc.com"}],"maxAge":"1h"}`)}
				ctlUpdate(t, c, pc)
			},
			wantPolicy: func(t *testing.T, cfg *config.Config) {
				p := cfg.Lookup(8080)
				if p == nil || p.CORS == nil || len(p.CORS.AllowOrigins) != 1 || p.CORS.AllowOrigins[0].Exact != "http://www.ccc.com" {
					t.Errorf("port 8080 = %+v, want the edited policy", p)
				}
			},
			wantEvents: []string{"Normal " + EventConfigUpdated},
			wantWrites: 1,
		},
		{
			name: "a Service on a new port: restart required, config kept to the intercepted port",
			change: func(t *testing.T, c client.Client) {
				ctlCreate(t, c, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "pipy", Name: "pipy-ok-admin"},
					Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "pipy-ok"}, Ports: []corev1.ServicePort{{Port: 9090, TargetPort: intstr.FromInt32(9090)}}}})
			},
			wantRestart: corev1.ConditionTrue,
			wantEvents:  []string{"Warning " + EventRestartRequired + " the CORS proxy intercepts ports [8080] but the pod's Services now reach ports [8080 9090]"},
			wantWrites:  1,
		},
		{
			name: "plugin policy turned off: the pod keeps its config, even when the chain goes",
			change: func(t *testing.T, c client.Client) {
				mc := ctlGet(t, c, &configv1alpha2.MeshConfig{}, "corsmesh-system", configv1alpha2.MeshConfigName)
				mc.Spec.FeatureFlags.EnablePluginPolicy = false
				ctlUpdate(t, c, mc)
				ctlDelete(t, c, &v1alpha1.PluginChain{ObjectMeta: metav1.ObjectMeta{Namespace: "pipy", Name: "cors-policy-chain"}})
			},
		},
		{
			name: "chain deleted: passthrough with the same ports",
			change: func(t *testing.T, c client.Client) {
				ctlDelete(t, c, &v1alpha1.PluginChain{ObjectMeta: metav1.ObjectMeta{Namespace: "pipy", Name: "cors-policy-chain"}})
			},
			wantPolicy: func(t *testing.T, cfg *config.Config) {
				if len(cfg.Ports) != 1 || cfg.Ports[0].Port != 8080 || cfg.Ports[0].CORS != nil || len(cfg.Ports[0].Hosts) != 0 {
					t.Errorf("config = %+v, want port 8080 passing through", cfg)
				}
			},
			wantEvents: []string{"Normal " + EventPassthrough + " no CORS policy applies any more (no-chain-selects-pod"},
			wantWrites: 1,
		},
		{
			name: "namespace leaves the mesh: passthrough",
			change: func(t *testing.T, c client.Client) {
				ns := ctlGet(t, c, &corev1.Namespace{}, "", "pipy")
				delete(ns.Labels, injector.LabelMonitoredBy)
				ctlUpdate(t, c, ns)
			},
			wantPolicy: func(t *testing.T, cfg *config.Config) {
				if p := cfg.Lookup(8080); p == nil || p.CORS != nil {
					t.Errorf("config = %+v, want port 8080 passing through", cfg)
				}
			},
			wantEvents: []string{"Normal " + EventPassthrough + " no CORS policy applies any more (namespace-not-monitored"},
			wantWrites: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seed := ctlLoadSeed(t)
			in := ctlInjector()
			pod := seed.injected(t, in, ctlPod(seed.deployments[0], "pipy-ok-v1-abc", metav1.OwnerReference{}))
			injectedConfig := pod.Annotations[injector.AnnotationConfig]
			c, writes := ctlClient(t, append(seed.clientObjects(), pod)...)
			rec := events.NewFakeRecorder(10)
			r := &ConfigSyncReconciler{Client: c, Resolver: clientResolver(in, c), Events: rec}
			tt.change(t, c)
			before := writes.total()

			ctlReconcile(t, r, "pipy", "pipy-ok-v1-abc")

			if got := writes.total() - before; got != tt.wantWrites {
				t.Errorf("%d writes, want %d: %v", got, tt.wantWrites, writes.counts)
			}
			got := ctlGet(t, c, &corev1.Pod{}, "pipy", "pipy-ok-v1-abc")
			annotation := got.Annotations[injector.AnnotationConfig]
			if tt.wantPolicy == nil && annotation != injectedConfig {
				t.Errorf("config annotation changed to %s", annotation)
			}
			if tt.wantPolicy != nil {
				cfg, err := config.Parse([]byte(annotation))
				if err != nil {
					t.Fatalf("config annotation %q does not parse: %v", annotation, err)
				}
				tt.wantPolicy(t, cfg)
			}
			cond := findPodCondition(got, PodConditionRestartRequired)
			if status := ctlConditionStatus(cond); status != tt.wantRestart {
				t.Errorf("RestartRequired = %q (%+v), want %q", status, cond, tt.wantRestart)
			}
			ctlCheckEvents(t, ctlEvents(rec), tt.wantEvents)

			// Level-triggered: a second pass over the same state changes nothing.
			before = writes.total()
			ctlReconcile(t, r, "pipy", "pipy-ok-v1-abc")
			if n := writes.total() - before; n != 0 {
				t.Errorf("second reconcile wrote %d times: %v", n, writes.counts)
			}
			ctlCheckEvents(t, ctlEvents(rec), nil)
		})
	}
}

// A pod needing a restart for a new port is cleared when the port goes away again.
func TestConfigSyncClearsRestartRequired(t *testing.T) {
	seed := ctlLoadSeed(t)
	in := ctlInjector()
	pod := seed.injected(t, in, ctlPod(seed.deployments[0], "pipy-ok-v1-abc", metav1.OwnerReference{}))
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	admin := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "pipy", Name: "pipy-ok-admin"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "pipy-ok"}, Ports: []corev1.ServicePort{{Port: 9090}}}}
	c, _ := ctlClient(t, append(seed.clientObjects(), pod, admin)...)
	r := &ConfigSyncReconciler{Client: c, Resolver: clientResolver(in, c)}
	ctlReconcile(t, r, "pipy", "pipy-ok-v1-abc")
	if s := ctlConditionStatus(findPodCondition(ctlGet(t, c, &corev1.Pod{}, "pipy", "pipy-ok-v1-abc"), PodConditionRestartRequired)); s != corev1.ConditionTrue {
		t.Fatalf("RestartRequired = %q, want True", s)
	}
	ctlDelete(t, c, admin)
	ctlReconcile(t, r, "pipy", "pipy-ok-v1-abc")
	got := ctlGet(t, c, &corev1.Pod{}, "pipy", "pipy-ok-v1-abc")
	if s := ctlConditionStatus(findPodCondition(got, PodConditionRestartRequired)); s != corev1.ConditionFalse {
		t.Errorf("RestartRequired = %q, want False", s)
	}
	// The patch touches our condition only: the kubelet's are left as they are.
	if s := ctlConditionStatus(findPodCondition(got, corev1.PodReady)); s != corev1.ConditionTrue {
		t.Errorf("Ready = %q, want True (conditions %s)", s, ctlJSON(got.Status.Conditions))
	}
}

// The map functions reach the injected pods a change can affect, and only those: read
// through the client (a unit test's reconciler has no pods' cache), and through a cache of
// the monitored namespace's pods, outside of which only a namespace leaving the mesh and
// the sweeps reach injected pods, listed live.
func TestConfigSyncMapping(t *testing.T) {
	seed := ctlLoadSeed(t)
	in := ctlInjector()
	injected := seed.injected(t, in, ctlPod(seed.deployments[0], "pipy-ok-v1-abc", metav1.OwnerReference{}))
	plain := ctlPod(seed.deployments[1], "pipy-ok-v2-plain", metav1.OwnerReference{})
	other := injected.DeepCopy()
	other.Namespace, other.Name, other.Labels = "elsewhere", "other", map[string]string{"app": "other", injector.LabelInjected: "true"}
	// Labelled by its author, not injected.
	posing := plain.DeepCopy()
	posing.Namespace, posing.Name, posing.Labels = "elsewhere", "posing", map[string]string{injector.LabelInjected: "true"}
	// Injected before the injector labelled pods.
	legacy := other.DeepCopy()
	legacy.Name, legacy.Labels = "legacy", map[string]string{"app": "other"}
	c, _ := ctlClient(t, append(seed.clientObjects(), injected, plain, other, posing, legacy)...)
	ctx := context.Background()
	svc := func(name string, selector map[string]string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "pipy", Name: name}, Spec: corev1.ServiceSpec{Selector: selector}}
	}
	ns := func(name string, monitored bool) *corev1.Namespace {
		n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"team": "a"}}}
		if monitored {
			n.Labels[injector.LabelMonitoredBy] = "osm"
		}
		return n
	}
	relabelled := ns("pipy", true)
	relabelled.Labels["team"] = "b"
	cached := ctlPodCache(t, []*corev1.Pod{injected, plain}, "pipy")

	for _, reader := range []struct {
		name string
		pods PodCache
	}{{"client", nil}, {"cache", cached}} {
		r := &ConfigSyncReconciler{Client: c, Resolver: clientResolver(in, c), Pods: reader.pods}
		tests := []struct {
			name string
			got  []reconcile.Request
			want []string
		}{
			{"PluginConfig: its Services' namespace", r.podsForPluginConfig(ctx, seed.objs.Configs[0]), []string{"pipy/pipy-ok-v1-abc"}},
			{"Service selecting the pod", r.podsForService(ctx, svc("s", map[string]string{"app": "pipy-ok"})), []string{"pipy/pipy-ok-v1-abc"}},
			{"Service selecting other pods", r.podsForService(ctx, svc("s", map[string]string{"app": "nope"})), nil},
			{"Service without selector", r.podsForService(ctx, svc("s", nil)), nil},
			{"Namespace relabelled in the mesh", r.podsForNamespace(ctx, ns("pipy", true), relabelled), []string{"pipy/pipy-ok-v1-abc"}},
			{"Namespace leaving the mesh: live, labelled or not", r.podsForNamespace(ctx, ns("elsewhere", true), ns("elsewhere", false)), []string{"elsewhere/legacy", "elsewhere/other"}},
			{"Namespace joining the mesh: its informer's creations", r.podsForNamespace(ctx, ns("elsewhere", false), ns("elsewhere", true)), map[bool][]string{true: {"elsewhere/other"}, false: nil}[reader.pods == nil]},
			{"Namespace staying outside", r.podsForNamespace(ctx, ns("elsewhere", false), ns("elsewhere", false)), nil},
			{"PluginChain: every cached injected pod", r.allInjectedPods(ctx, seed.objs.Chains[0]), map[bool][]string{true: {"elsewhere/other", "pipy/pipy-ok-v1-abc"}, false: {"pipy/pipy-ok-v1-abc"}}[reader.pods == nil]},
			{"MeshConfig: every injected pod", r.everyInjectedPod(ctx, seed.objs.Chains[0]), map[bool][]string{true: {"elsewhere/other", "elsewhere/other", "pipy/pipy-ok-v1-abc", "pipy/pipy-ok-v1-abc"}, false: {"elsewhere/other", "pipy/pipy-ok-v1-abc"}}[reader.pods == nil]},
		}
		for _, tt := range tests {
			t.Run(reader.name+"/"+tt.name, func(t *testing.T) {
				if got := ctlRequestNames(tt.got); !slices.Equal(got, tt.want) {
					t.Errorf("requests = %v, want %v", got, tt.want)
				}
			})
		}
	}
}

// Started, config sync queues once the injected pods outside the cached namespaces, listed
// live: those of a namespace that left the mesh while it did not run.
func TestConfigSyncSweepsOutsideTheMesh(t *testing.T) {
	seed := ctlLoadSeed(t)
	in := ctlInjector()
	injected := seed.injected(t, in, ctlPod(seed.deployments[0], "pipy-ok-v1-abc", metav1.OwnerReference{}))
	other := injected.DeepCopy()
	other.Namespace, other.Name = "elsewhere", "other"
	c, _ := ctlClient(t, append(seed.clientObjects(), injected, other)...)
	r := &ConfigSyncReconciler{Client: c, Resolver: clientResolver(in, c), Pods: ctlPodCache(t, []*corev1.Pod{injected}, "pipy")}
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	t.Cleanup(q.ShutDown)
	if err := r.sweepOutsideTheMesh(t.Context(), q); err != nil {
		t.Fatal(err)
	}
	got, _ := q.Get()
	if got.String() != "elsewhere/other" {
		t.Errorf("swept %s, want elsewhere/other", got)
	}
	q.Done(got)
	time.Sleep(100 * time.Millisecond)
	if n := q.Len(); n != 0 {
		t.Errorf("%d more requests queued, want none (pipy's pods are the cache's)", n)
	}
}

func ctlRequestNames(reqs []reconcile.Request) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, r.String())
	}
	slices.Sort(out)
	return out
}

func ctlReconcile(t *testing.T, r reconcile.Reconciler, namespace, name string) {
	t.Helper()
	req := ctrl.Request{}
	req.Namespace, req.Name = namespace, name
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatalf("reconcile %s/%s: %v", namespace, name, err)
	}
}

func ctlConditionStatus(c *corev1.PodCondition) corev1.ConditionStatus {
	if c == nil {
		return ""
	}
	return c.Status
}

// ctlCheckEvents compares recorded events with wanted prefixes, in order.
func ctlCheckEvents(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("events = %q, want %d starting %q", got, len(want), want)
		return
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("event %d = %q, want prefix %q", i, got[i], want[i])
		}
	}
}

func ctlCreate(t *testing.T, c client.Client, o client.Object) {
	t.Helper()
	if err := c.Create(context.Background(), o); err != nil {
		t.Fatal(err)
	}
}

func ctlUpdate(t *testing.T, c client.Client, o client.Object) {
	t.Helper()
	if err := c.Update(context.Background(), o); err != nil {
		t.Fatal(err)
	}
}

func ctlDelete(t *testing.T, c client.Client, o client.Object) {
	t.Helper()
	if err := c.Delete(context.Background(), o); err != nil {
		t.Fatal(err)
	}
}

// ctlJSON renders a value for failure messages.
func ctlJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// A pod this process's webhook just injected is not reconciled on its creation while
// nothing the decision read has changed; after any change, after a restart (initial list)
// and for another replica's pods it is.
func TestNotJustInjected(t *testing.T) {
	objs := webhooktest.SeedCluster(t)
	watched := injector.NewResolver(webhooktest.Injector(), objs, injector.ResolverOptions{Watched: true})
	d, pod, err := watched.Inject(t.Context(), seedPodObject(t), "pipy")
	if err != nil || !d.Inject || d.Stamp == "" {
		t.Fatalf("not injected with a stamp: %+v, %v", d, err)
	}
	pod.Namespace = "pipy"
	other := injector.NewResolver(webhooktest.Injector(), objs, injector.ResolverOptions{Watched: true})
	created := func(r *injector.Resolver, initial bool) bool {
		return notJustInjected(r).Create(event.CreateEvent{Object: pod, IsInInitialList: initial})
	}
	if created(watched, false) {
		t.Errorf("the creation of a pod injected by an unchanged resolver is reconciled")
	}
	if !created(watched, true) {
		t.Errorf("the initial list is not reconciled")
	}
	if !created(other, false) {
		t.Errorf("another replica's pod is not reconciled")
	}
	watched.Changed(injector.InputOther)
	if !created(watched, false) {
		t.Errorf("a pod decided before a change is not reconciled")
	}
	unwatched := injector.NewResolver(webhooktest.Injector(), objs, injector.ResolverOptions{})
	if d, _ := unwatched.Decide(t.Context(), seedPodObject(t), "pipy", injector.ForAdmission); d.Stamp != "" || unwatched.Current(d.Stamp) {
		t.Errorf("an unwatched resolver stamps its decisions: %q", d.Stamp)
	}
}

// seedPodObject is webhooktest.SeedPod decoded.
func seedPodObject(t *testing.T) *corev1.Pod {
	t.Helper()
	var pod corev1.Pod
	if err := yaml.Unmarshal([]byte(webhooktest.SeedPod), &pod); err != nil {
		t.Fatal(err)
	}
	return &pod
}
