package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

func TestRestartHint(t *testing.T) {
	dep := func(ns, name string) chainWorkload {
		return chainWorkload{Kind: "Deployment", Namespace: ns, Name: name}
	}
	pod := func(ns, name string) chainWorkload { return chainWorkload{Kind: "Pod", Namespace: ns, Name: name} }
	many := make([]chainWorkload, maxHintWorkloads+3)
	for i := range many {
		many[i] = dep("a", fmt.Sprintf("d%03d", i))
	}
	tests := []struct {
		name string
		ws   []chainWorkload
		want string
	}{
		{"none", nil, ""},
		{"the seed's two Deployments", []chainWorkload{dep("pipy", "pipy-ok-v1"), dep("pipy", "pipy-ok-v2")},
			"kubectl rollout restart -n pipy deployment/pipy-ok-v1 deployment/pipy-ok-v2"},
		{"every kind, two namespaces",
			[]chainWorkload{dep("b", "web"), {Kind: "StatefulSet", Namespace: "b", Name: "db"}, pod("a", "bare"), {Kind: "DaemonSet", Namespace: "a", Name: "agent"}, pod("a", "job-x")},
			"kubectl rollout restart -n a daemonset/agent && kubectl delete pod -n a bare job-x && kubectl rollout restart -n b deployment/web statefulset/db"},
		{"too many", many, "kubectl rollout restart -n a deployment/d000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := restartHint(tt.ws)
			if tt.name == "too many" {
				if !strings.HasPrefix(got, tt.want) || !strings.HasSuffix(got, " # and 3 more workloads") || strings.Contains(got, fmt.Sprintf("d%03d", maxHintWorkloads)) {
					t.Errorf("restartHint = %q", got)
				}
				return
			}
			if got != tt.want {
				t.Errorf("restartHint =\n %q, want\n %q", got, tt.want)
			}
		})
	}
}

func TestPodWorkload(t *testing.T) {
	pod := func(owner *metav1.OwnerReference) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"}}
		if owner != nil {
			p.OwnerReferences = []metav1.OwnerReference{*owner}
		}
		return p
	}
	ref := func(apiVersion, kind, name string) *metav1.OwnerReference {
		r := ctlControllerRef(apiVersion, kind, name)
		return &r
	}
	rsOwners := map[string]*metav1.OwnerReference{
		"ns/web-7f9":   ref("apps/v1", "Deployment", "web"),
		"ns/solo-1a2":  nil,
		"ns/custom-rs": ref("example.com/v1", "Rollout", "r"),
	}
	tests := []struct {
		name string
		pod  *corev1.Pod
		want chainWorkload
	}{
		{"bare pod", pod(nil), chainWorkload{"Pod", "ns", "p"}},
		{"Deployment through its ReplicaSet", pod(ref("apps/v1", "ReplicaSet", "web-7f9")), chainWorkload{"Deployment", "ns", "web"}},
		{"ReplicaSet of its own", pod(ref("apps/v1", "ReplicaSet", "solo-1a2")), chainWorkload{"Pod", "ns", "p"}},
		{"ReplicaSet not found", pod(ref("apps/v1", "ReplicaSet", "gone")), chainWorkload{"Pod", "ns", "p"}},
		{"ReplicaSet of another controller", pod(ref("apps/v1", "ReplicaSet", "custom-rs")), chainWorkload{"Pod", "ns", "p"}},
		{"StatefulSet", pod(ref("apps/v1", "StatefulSet", "db")), chainWorkload{"StatefulSet", "ns", "db"}},
		{"DaemonSet", pod(ref("apps/v1", "DaemonSet", "agent")), chainWorkload{"DaemonSet", "ns", "agent"}},
		{"Job", pod(ref("batch/v1", "Job", "migrate")), chainWorkload{"Pod", "ns", "p"}},
		{"a StatefulSet of another group", pod(ref("example.com/v1", "StatefulSet", "x")), chainWorkload{"Pod", "ns", "p"}},
		{"owner that is not the controller", func() *corev1.Pod {
			p := pod(ref("apps/v1", "StatefulSet", "db"))
			p.OwnerReferences[0].Controller = nil
			return p
		}(), chainWorkload{"Pod", "ns", "p"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := podWorkload(tt.pod, rsOwners); got != tt.want {
				t.Errorf("podWorkload = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPendingRestarts(t *testing.T) {
	v1 := chainWorkload{Kind: "Deployment", Namespace: "pipy", Name: "pipy-ok-v1"}
	v2 := chainWorkload{Kind: "Deployment", Namespace: "pipy", Name: "pipy-ok-v2"}
	bare := chainWorkload{Kind: "Pod", Namespace: "pipy", Name: "bare"}
	tests := []struct {
		name     string
		recorded string
		want     []chainWorkload
	}{
		{"nothing recorded", "", []chainWorkload{v1, v2}},
		{"v1 done for this generation", `{"generation":2,"workloads":["Deployment/pipy/pipy-ok-v1"]}`, []chainWorkload{v2}},
		{"all done", `{"generation":2,"workloads":["Deployment/pipy/pipy-ok-v1","Deployment/pipy/pipy-ok-v2"]}`, nil},
		{"done for an older generation", `{"generation":1,"workloads":["Deployment/pipy/pipy-ok-v1","Deployment/pipy/pipy-ok-v2"]}`, []chainWorkload{v1, v2}},
		{"unreadable record", `{`, []chainWorkload{v1, v2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, record := pendingRestarts([]chainWorkload{v1, bare, v2}, tt.recorded, 2)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("pending = %v, want %v", got, tt.want)
			}
			if record.Generation != 2 {
				t.Errorf("record generation = %d, want 2", record.Generation)
			}
		})
	}
}

// The seed's order: Deployments first, then the chain. The chain's status counts their
// pods, and says how to restart them.
func TestPluginChainStatusSeedOrder(t *testing.T) {
	seed := ctlLoadSeed(t)
	in := ctlInjector()
	v1 := seed.deployments[0]
	extras := []client.Object{
		// Not counted: a namespace outside the mesh, a finished pod, and a pod the chain's
		// selector does not match.
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "outside"}},
		func() *corev1.Pod {
			p := ctlPod(v1, "outside-pod", metav1.OwnerReference{})
			p.Namespace = "outside"
			return p
		}(),
		func() *corev1.Pod {
			p := ctlPod(v1, "done", metav1.OwnerReference{})
			p.Status.Phase = corev1.PodSucceeded
			return p
		}(),
		func() *corev1.Pod {
			p := ctlPod(v1, "curl", metav1.OwnerReference{})
			p.Labels = map[string]string{"app": "curl"}
			return p
		}(),
		// Counted as selected, but a restart would not inject it: opted out.
		func() *corev1.Pod {
			p := ctlPod(v1, "opted-out", metav1.OwnerReference{})
			p.Annotations = map[string]string{injector.AnnotationSidecarInjection: "disabled"}
			return p
		}(),
	}
	c, writes := ctlClient(t, append(append(seed.clientObjects(), seed.deploymentObjects()...), extras...)...)
	r := &PluginChainReconciler{Client: c, Resolver: clientResolver(in, c)}

	ctlReconcile(t, r, "pipy", "cors-policy-chain")
	chain := ctlGet(t, c, &v1alpha1.PluginChain{}, "pipy", "cors-policy-chain")
	st := chain.Status
	if st.SelectedPods != 3 || st.PodsWithoutSidecar != 2 {
		t.Errorf("selectedPods %d, podsWithoutSidecar %d; want 3, 2", st.SelectedPods, st.PodsWithoutSidecar)
	}
	if want := "kubectl rollout restart -n pipy deployment/pipy-ok-v1 deployment/pipy-ok-v2"; st.RestartHint != want {
		t.Errorf("restartHint = %q, want %q", st.RestartHint, want)
	}
	cond := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionAccepted)
	if cond == nil || cond.Status != metav1.ConditionTrue || cond.ObservedGeneration != 1 || st.ObservedGeneration != 1 {
		t.Errorf("Accepted = %+v, observedGeneration %d", cond, st.ObservedGeneration)
	}
	if n := writes.get("patch Deployment"); n != 0 {
		t.Errorf("%d Deployment patches without the opt-in", n)
	}

	// Unchanged: no write.
	before := writes.total()
	ctlReconcile(t, r, "pipy", "cors-policy-chain")
	if n := writes.total() - before; n != 0 {
		t.Errorf("second reconcile wrote %d times: %v", n, writes.counts)
	}

	// The pods restarted, with the sidecar this time: nothing left to restart.
	for _, w := range seed.deployments {
		old := ctlGet(t, c, &corev1.Pod{}, w.Namespace, w.Name+"-5d9c7b-x1")
		ctlDelete(t, c, old)
		fresh := ctlPod(w, w.Name+"-6e0d8c-y2", ctlControllerRef("apps/v1", "ReplicaSet", w.Name+"-6e0d8c"))
		ctlCreate(t, c, seed.injected(t, in, fresh))
	}
	ctlReconcile(t, r, "pipy", "cors-policy-chain")
	st = ctlGet(t, c, &v1alpha1.PluginChain{}, "pipy", "cors-policy-chain").Status
	if st.SelectedPods != 3 || st.PodsWithoutSidecar != 0 || st.RestartHint != "" {
		t.Errorf("after the restart: selectedPods %d, podsWithoutSidecar %d, restartHint %q; want 3, 0, none", st.SelectedPods, st.PodsWithoutSidecar, st.RestartHint)
	}
}

// While osm-edge's plugin-policy switch is off, the chain's status says so and how to turn
// it on, and counts no pod as missing the sidecar (a restart would not inject it).
func TestPluginChainStatusPluginPolicyOff(t *testing.T) {
	seed := ctlLoadSeed(t)
	seed.objs.MeshConfigs[0].Spec.FeatureFlags.EnablePluginPolicy = false
	seed.objs.Chains[0].Annotations = map[string]string{AnnotationRestartWorkloads: "true"}
	c, writes := ctlClient(t, append(seed.clientObjects(), seed.deploymentObjects()...)...)
	r := &PluginChainReconciler{Client: c, Resolver: clientResolver(ctlInjector(), c)}

	ctlReconcile(t, r, "pipy", "cors-policy-chain")
	st := ctlGet(t, c, &v1alpha1.PluginChain{}, "pipy", "cors-policy-chain").Status
	cond := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionAccepted)
	if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != v1alpha1.ReasonPluginPolicyDisabled ||
		!strings.Contains(cond.Message, injector.EnablePluginPolicyCommand("corsmesh-system")) {
		t.Errorf("Accepted = %+v, want False, %s, with the command that turns it on", cond, v1alpha1.ReasonPluginPolicyDisabled)
	}
	if st.SelectedPods != 2 || st.PodsWithoutSidecar != 0 || st.RestartHint != "" {
		t.Errorf("selectedPods %d, podsWithoutSidecar %d, restartHint %q; want 2, 0, none", st.SelectedPods, st.PodsWithoutSidecar, st.RestartHint)
	}
	if n := writes.get("patch Deployment"); n != 0 {
		t.Errorf("%d Deployment restarts while plugin policy is off", n)
	}
}

// With corsmesh.io/restart-workloads: "true" the chain restarts the seed's Deployments as
// `kubectl rollout restart` does, once per generation of the chain.
func TestPluginChainAutoRestart(t *testing.T) {
	seed := ctlLoadSeed(t)
	seed.objs.Chains[0].Annotations = map[string]string{AnnotationRestartWorkloads: "true"}
	c, writes := ctlClient(t, append(seed.clientObjects(), seed.deploymentObjects()...)...)
	rec := events.NewFakeRecorder(10)
	first := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	now := first
	r := &PluginChainReconciler{Client: c, Resolver: clientResolver(ctlInjector(), c), Events: rec, Now: func() time.Time { return now }}

	restartedAt := func() []string {
		var out []string
		for _, w := range seed.deployments {
			dep := ctlGet(t, c, &appsv1.Deployment{}, w.Namespace, w.Name)
			out = append(out, dep.Spec.Template.Annotations[annotationRestartedAt])
		}
		return out
	}

	ctlReconcile(t, r, "pipy", "cors-policy-chain")
	stamp := first.Format(time.RFC3339)
	if got := restartedAt(); got[0] != stamp || got[1] != stamp {
		t.Fatalf("restartedAt = %v, want both %s", got, stamp)
	}
	ctlCheckEvents(t, ctlEvents(rec), []string{"Normal " + EventWorkloadsRestarted + " restarted deployment/pipy-ok-v1 in pipy, deployment/pipy-ok-v2 in pipy"})
	chain := ctlGet(t, c, &v1alpha1.PluginChain{}, "pipy", "cors-policy-chain")
	if rec := chain.Annotations[AnnotationRestartedWorkloads]; rec != `{"generation":1,"workloads":["Deployment/pipy/pipy-ok-v1","Deployment/pipy/pipy-ok-v2"]}` {
		t.Errorf("restart record = %s", rec)
	}

	// The pods are still those without the sidecar (the rollout takes time): no second restart.
	now = first.Add(time.Minute)
	ctlReconcile(t, r, "pipy", "cors-policy-chain")
	if got := restartedAt(); got[0] != stamp || got[1] != stamp {
		t.Errorf("restarted again: restartedAt = %v", got)
	}
	if n := writes.get("patch Deployment"); n != 2 {
		t.Errorf("%d Deployment patches, want 2", n)
	}

	// A new generation of the chain may restart once more.
	chain = ctlGet(t, c, &v1alpha1.PluginChain{}, "pipy", "cors-policy-chain")
	chain.Generation = 2
	ctlUpdate(t, c, chain)
	ctlReconcile(t, r, "pipy", "cors-policy-chain")
	if got, want := restartedAt(), now.Format(time.RFC3339); got[0] != want || got[1] != want {
		t.Errorf("after a chain change: restartedAt = %v, want %s", got, want)
	}
}

// Without the opt-in, or with anything but true, nothing is restarted.
func TestPluginChainRestartOptIn(t *testing.T) {
	for _, value := range []string{"", "false", "yes please"} {
		t.Run(value, func(t *testing.T) {
			seed := ctlLoadSeed(t)
			if value != "" {
				seed.objs.Chains[0].Annotations = map[string]string{AnnotationRestartWorkloads: value}
			}
			c, writes := ctlClient(t, append(seed.clientObjects(), seed.deploymentObjects()...)...)
			r := &PluginChainReconciler{Client: c, Resolver: clientResolver(ctlInjector(), c)}
			ctlReconcile(t, r, "pipy", "cors-policy-chain")
			if n := writes.get("patch"); n != 0 {
				t.Errorf("%d patches: %v", n, writes.counts)
			}
		})
	}
}

// The map functions: pods of the mesh's namespaces to the chains whose podSelector matches
// them, Plugins to the chains naming them.
func TestPluginChainMapping(t *testing.T) {
	seed := ctlLoadSeed(t)
	other := &v1alpha1.PluginChain{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "other"}, Spec: v1alpha1.PluginChainSpec{
		Chains:    []v1alpha1.ChainPluginSpec{{Name: "inbound-http", Plugins: []string{"cors"}}},
		Selectors: v1alpha1.ChainSelectorSpec{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
	}}
	c, _ := ctlClient(t, append(seed.clientObjects(), other)...)
	r := &PluginChainReconciler{Client: c, Resolver: clientResolver(ctlInjector(), c)}
	ctx := t.Context()
	// In the seed's monitored namespace; a chain's own namespace does not limit it.
	podWith := func(l map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "pipy", Labels: l}}
	}
	outside := podWith(map[string]string{"app": "pipy-ok"})
	outside.Namespace = "unmonitored"
	tests := []struct {
		name string
		got  []string
		want string
	}{
		{"seed pod", ctlRequestNames(r.chainsSelectingPod(ctx, podWith(map[string]string{"app": "pipy-ok"}))), "pipy/cors-policy-chain"},
		{"web pod", ctlRequestNames(r.chainsSelectingPod(ctx, podWith(map[string]string{"app": "web"}))), "web/other"},
		{"unselected pod", ctlRequestNames(r.chainsSelectingPod(ctx, podWith(nil))), ""},
		{"pod outside the mesh's namespaces", ctlRequestNames(r.chainsSelectingPod(ctx, outside)), ""},
		{"Plugin cors-policy", ctlRequestNames(r.chainsNamingPlugin(ctx, seed.objs.Plugins[0])), "pipy/cors-policy-chain"},
		{"all", ctlRequestNames(r.allChains(ctx, nil)), "pipy/cors-policy-chain,web/other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(tt.got, ","); got != tt.want {
				t.Errorf("requests = %q, want %q", got, tt.want)
			}
		})
	}
}

// A deleted chain is forgotten, without error.
func TestPluginChainDeleted(t *testing.T) {
	c, writes := ctlClient(t)
	r := &PluginChainReconciler{Client: c, Resolver: clientResolver(ctlInjector(), c)}
	ctlReconcile(t, r, "pipy", "gone")
	if writes.total() != 0 {
		t.Errorf("writes for a deleted chain: %v", writes.counts)
	}
}
