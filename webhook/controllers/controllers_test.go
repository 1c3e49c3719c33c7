package controllers

import (
	"context"
	"fmt"
	"net/http"
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
)

// SetupControllers registers the pod index and the three controllers on a manager that is
// never started (the REST mapping is static, so no API server is needed). Twice, as an
// integration suite starting two webhook servers in one process would.
func TestSetupControllers(t *testing.T) {
	scheme, err := kubecluster.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
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
		if err := Setup(context.Background(), mgr, clientResolver(ctlInjector(), mgr.GetCache()), nil, logr.Discard()); err != nil {
			t.Fatalf("SetupControllers: %v", err)
		}
	}
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

// enqueueAfter turns a burst of events into one request, added only once the delay passed.
func TestEnqueueAfterBatchesABurst(t *testing.T) {
	ctx := context.Background()
	mapped := 0
	toChain := func(context.Context, client.Object) []reconcile.Request {
		mapped++
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: "pipy", Name: "chain"}}}
	}
	burst := func(h handler.EventHandler, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		for i := range 50 {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "pipy", Name: fmt.Sprintf("p%d", i)}}
			h.Create(ctx, event.CreateEvent{Object: pod}, q)
			h.Update(ctx, event.UpdateEvent{ObjectOld: pod, ObjectNew: pod}, q)
			h.Delete(ctx, event.DeleteEvent{Object: pod}, q)
		}
	}
	newQueue := func() workqueue.TypedRateLimitingInterface[reconcile.Request] {
		q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
		t.Cleanup(q.ShutDown)
		return q
	}

	// Not before the delay.
	later := newQueue()
	burst(enqueueAfter(time.Hour, toChain), later)
	if mapped != 200 {
		t.Errorf("mapped %d objects for 50 creates, updates (old and new) and deletes, want 200", mapped)
	}
	if n := later.Len(); n != 0 {
		t.Errorf("%d requests ready before the delay, want 0", n)
	}

	// After it, once.
	soon := newQueue()
	burst(enqueueAfter(10*time.Millisecond, toChain), soon)
	if err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return soon.Len() > 0, nil
	}); err != nil {
		t.Fatal("the request never became ready")
	}
	time.Sleep(50 * time.Millisecond) // anything else would be ready by now too
	if n := soon.Len(); n != 1 {
		t.Errorf("%d requests ready for a burst on one chain, want 1", n)
	}
	if req, _ := soon.Get(); req.Name != "chain" {
		t.Errorf("request %v", req)
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
