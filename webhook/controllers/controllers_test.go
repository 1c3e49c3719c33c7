package controllers

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/kubecluster"
	"github.com/corsmesh/corsmesh/webhook/informers"
)

// SetupControllers registers the pod index and the three controllers on a manager that is
// never started (the REST mapping is static, so no API server is needed). Twice, as an
// integration suite starting two webhook servers in one process would.
func TestSetupControllers(t *testing.T) {
	for range 2 {
		mgr := ctlManager(t)
		pods := informers.NewNamespacedInformer(informers.NamespacedOptions{Example: &corev1.Pod{}})
		replicaSets := informers.NewNamespacedInformer(informers.NamespacedOptions{Example: &metav1.PartialObjectMetadata{}})
		if err := Setup(context.Background(), mgr, clientResolver(ctlInjector(), mgr.GetCache()), nil, pods, replicaSets, logr.Discard()); err != nil {
			t.Fatalf("SetupControllers: %v", err)
		}
		if err := Setup(context.Background(), mgr, clientResolver(ctlInjector(), mgr.GetCache()), nil, nil, nil, logr.Discard()); err == nil {
			t.Errorf("SetupControllers without a pods' cache: no error")
		}
	}
}

// ctlManager is a manager that is never started: its REST mapping is static, so it needs
// no API server.
func ctlManager(t *testing.T) ctrl.Manager {
	t.Helper()
	scheme, err := kubecluster.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(&rest.Config{Host: "https://127.0.0.1:1"}, ctrl.Options{
		Scheme:  scheme,
		Logger:  logr.Discard(),
		Metrics: metricsserver.Options{BindAddress: "0"},
		MapperProvider: func(*rest.Config, *http.Client) (meta.RESTMapper, error) {
			return ctlRESTMapper(scheme), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return mgr
}

func TestIndexInjectedPod(t *testing.T) {
	tests := []struct {
		name        string
		annotations map[string]string
		want        []string
	}{
		{"injected", map[string]string{injector.AnnotationStatus: "{}"}, []string{"true"}},
		{"not injected", map[string]string{injector.AnnotationConfig: "{}"}, nil},
		{"no annotations", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := indexInjectedPod(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: tt.annotations}})
			if len(got) != len(tt.want) || (len(got) == 1 && got[0] != tt.want[0]) {
				t.Errorf("index values = %v, want %v", got, tt.want)
			}
		})
	}
}

// The predicates let through the updates that change a controller's answer, and not the
// status updates that make up most of the traffic.
func TestPredicates(t *testing.T) {
	injected := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"app": "a"},
		Annotations: map[string]string{injector.AnnotationStatus: "{}"}}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	with := func(p *corev1.Pod, edit func(*corev1.Pod)) *corev1.Pod {
		p = p.DeepCopy()
		edit(p)
		return p
	}
	statusOnly := with(injected, func(p *corev1.Pod) { p.Status.PodIP = "10.0.0.1" })
	relabelled := with(injected, func(p *corev1.Pod) { p.Labels["version"] = "v2" })
	finished := with(injected, func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded })
	plain := with(injected, func(p *corev1.Pod) { p.Annotations = nil })
	svc := &corev1.Service{Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "a"}}}
	configSync := predicate.And(predicate.NewPredicateFuncs(isInjected), metadataChanged())
	update := func(p predicate.Predicate, old, cur client.Object) bool {
		return p.Update(event.UpdateEvent{ObjectOld: old, ObjectNew: cur})
	}
	tests := []struct {
		name string
		got  bool
		want bool
	}{
		{"config sync: injected pod created", configSync.Create(event.CreateEvent{Object: injected}), true},
		{"config sync: plain pod created", configSync.Create(event.CreateEvent{Object: plain}), false},
		{"config sync: status update", update(configSync, injected, statusOnly), false},
		{"config sync: labels changed", update(configSync, injected, relabelled), true},
		{"chain: status update", update(podSelectionChanged(), injected, statusOnly), false},
		{"chain: labels changed", update(podSelectionChanged(), injected, relabelled), true},
		{"chain: pod finished", update(podSelectionChanged(), injected, finished), true},
		{"chain: sidecar appears", update(podSelectionChanged(), plain, injected), true},
		{"service: status update", update(serviceChanged(), svc, ctlEditService(svc, func(s *corev1.Service) { s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}} })), false},
		{"service: selector changed", update(serviceChanged(), svc, ctlEditService(svc, func(s *corev1.Service) { s.Spec.Selector = nil })), true},
		{"service: ports changed", update(serviceChanged(), svc, ctlEditService(svc, func(s *corev1.Service) { s.Spec.Ports = []corev1.ServicePort{{Port: 80}} })), true},
		{"pluginconfig status: Service update", update(existenceChanged(), svc, svc), false},
		{"pluginconfig status: Service deleted", existenceChanged().Delete(event.DeleteEvent{Object: svc}), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("passes = %v, want %v", tt.got, tt.want)
			}
		})
	}
}

func ctlEditService(s *corev1.Service, edit func(*corev1.Service)) *corev1.Service {
	s = s.DeepCopy()
	edit(s)
	return s
}

func ctlRESTMapper(scheme *runtime.Scheme) meta.RESTMapper {
	m := meta.NewDefaultRESTMapper(nil)
	for gvk := range scheme.AllKnownTypes() {
		scope := meta.RESTScopeNamespace
		switch gvk.Kind {
		case "Namespace", "Plugin", "Node", "PersistentVolume":
			scope = meta.RESTScopeRoot
		}
		m.Add(gvk, scope)
	}
	return m
}

// mapBatched maps a burst of events once per key, only once the delay passed, and adds
// the requests then; an event after that is mapped again.
func TestMapBatched(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var mapped []string
	toChain := func(_ context.Context, o client.Object) []reconcile.Request {
		mu.Lock()
		defer mu.Unlock()
		mapped = append(mapped, namespaceAndLabels(o))
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: "chain-" + o.GetLabels()["app"]}}}
	}
	mappedKeys := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Sorted(slices.Values(mapped))
	}
	pod := func(ns, app string, i int) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("p%d", i), Labels: map[string]string{"app": app, "pod-template-hash": "5d7f"}}}
	}
	// As controller-runtime calls a handler: with a context it cancels when the call returns.
	call := func(f func(ctx context.Context)) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		f(ctx)
	}
	burst := func(h handler.EventHandler, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		for i := range 50 {
			for _, p := range []*corev1.Pod{pod("pipy", "a", i), pod("pipy", "b", i), pod("web", "a", i)} {
				call(func(ctx context.Context) { h.Create(ctx, event.CreateEvent{Object: p}, q) })
				call(func(ctx context.Context) { h.Update(ctx, event.UpdateEvent{ObjectOld: p, ObjectNew: p}, q) })
				call(func(ctx context.Context) { h.Delete(ctx, event.DeleteEvent{Object: p}, q) })
			}
		}
	}
	newQueue := func() workqueue.TypedRateLimitingInterface[reconcile.Request] {
		q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
		t.Cleanup(q.ShutDown)
		return q
	}
	waitLen := func(q workqueue.TypedRateLimitingInterface[reconcile.Request], n int) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			return q.Len() >= n, nil
		}); err != nil {
			t.Fatalf("%d requests ready, want %d", q.Len(), n)
		}
		time.Sleep(50 * time.Millisecond) // anything else would be ready by now too
	}

	// Before the window ends: neither mapped nor added. When it ends, each key once: 450
	// events, three label sets. (The flush is called here rather than waited for: a burst
	// slower than a short window would rightly make two windows.)
	q := newQueue()
	b := newBatchMapper(time.Hour, namespaceAndLabels, toChain)
	burst(b.handler(), q)
	if got := mappedKeys(); len(got) != 0 {
		t.Errorf("mapped %v before the delay, want nothing", got)
	}
	if n := q.Len(); n != 0 {
		t.Errorf("%d requests ready before the delay, want 0", n)
	}
	b.flush(context.WithoutCancel(ctx), q)
	want := []string{"pipy/app=a,pod-template-hash=5d7f", "pipy/app=b,pod-template-hash=5d7f", "web/app=a,pod-template-hash=5d7f"}
	if got := mappedKeys(); !slices.Equal(got, want) {
		t.Errorf("mapped %q, want %q", got, want)
	}
	var reqs []string
	for q.Len() > 0 {
		req, _ := q.Get()
		reqs = append(reqs, req.String())
		q.Done(req)
	}
	slices.Sort(reqs)
	if wantReqs := []string{"pipy/chain-a", "pipy/chain-b", "web/chain-a"}; !slices.Equal(reqs, wantReqs) {
		t.Errorf("requests %q, want %q", reqs, wantReqs)
	}

	// The timer ends the window, after the handler's context was cancelled; a later event
	// opens another.
	h := mapBatched(10*time.Millisecond, namespaceAndLabels, toChain)
	for i, wantMapped := range []int{4, 5} {
		call(func(ctx context.Context) { h.Create(ctx, event.CreateEvent{Object: pod("pipy", "a", 100+i)}, q) })
		waitLen(q, 1)
		if got := mappedKeys(); len(got) != wantMapped {
			t.Errorf("event %d: %d mappings in all, want %d", i, len(got), wantMapped)
		}
		req, _ := q.Get()
		q.Done(req)
	}
}

// The batching key tells apart what chainsSelectingPod reads, namespace and labels, and
// nothing else.
func TestNamespaceAndLabels(t *testing.T) {
	pod := func(ns, name string, l map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: l}}
	}
	base := namespaceAndLabels(pod("pipy", "a", map[string]string{"app": "x", "v": "1"}))
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		same bool
	}{
		{"another name", pod("pipy", "b", map[string]string{"v": "1", "app": "x"}), true},
		{"another namespace", pod("web", "a", map[string]string{"app": "x", "v": "1"}), false},
		{"another value", pod("pipy", "a", map[string]string{"app": "x", "v": "2"}), false},
		{"a label less", pod("pipy", "a", map[string]string{"app": "x"}), false},
		{"no labels", pod("pipy", "a", nil), false},
		{"labels spelling the namespace", pod("pip", "a", map[string]string{"y/app": "x", "v": "1"}), false},
	} {
		if got := namespaceAndLabels(tc.pod) == base; got != tc.same {
			t.Errorf("%s: same key %v, want %v", tc.name, got, tc.same)
		}
	}
}

// The secondary watches ignore the objects an informer replays at start, nothing else.
func TestNotInitialList(t *testing.T) {
	p := notInitialList()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "pipy", Name: "pipy-ok"}}
	for _, tc := range []struct {
		name string
		pass bool
		got  bool
	}{
		{"replayed at start", false, p.Create(event.CreateEvent{Object: svc, IsInInitialList: true})},
		{"created later", true, p.Create(event.CreateEvent{Object: svc})},
		{"updated", true, p.Update(event.UpdateEvent{ObjectOld: svc, ObjectNew: svc})},
		{"deleted", true, p.Delete(event.DeleteEvent{Object: svc})},
	} {
		if tc.got != tc.pass {
			t.Errorf("%s: passes %v, want %v", tc.name, tc.got, tc.pass)
		}
	}
}
