package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/corsproxy/config"
	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/test/sandbox"
)

// TestPodsFollowMonitoredNamespaces checks the webhook's pods' cache against the real API
// server: it holds the pods of monitored namespaces only, started with the label; the
// webhook never watches pods cluster-wide; and the injected pods of a namespace that
// leaves the mesh still have their proxies switched to passthrough, whether the webhook
// runs then (the namespace's update) or starts after (its sweep at start).
//
// The API server's own counters cannot tell whose watch is whose (the controller manager
// watches every pod too), so the test records the webhook's requests on its connection.
func TestPodsFollowMonitoredNamespaces(t *testing.T) {
	s := sb(t)
	ctx := testContext(t, 4*time.Minute)
	requests := &apiRequests{resource: "pods"}
	restartWebhook(t, ctx, s, requests.wrap)

	ns := "podwatch-" + rand.String(5)
	app := corsApp{Namespace: ns, App: "podwatch-web", Port: 8080, Origin: "https://podwatch.example"}
	namespace(t, ctx, s, ns, false, nil)
	app.install(t, ctx, s)
	createPod := func(name string) *corev1.Pod {
		t.Helper()
		return app.create(t, ctx, s, name)
	}
	cached := func(name string) bool {
		obj, ok, err := s.WebhookServer().Pods.Get(ctx, ns, name)
		return ok && err == nil && obj != nil
	}

	requireNotInjected(t, createPod("outside"))
	time.Sleep(time.Second) // what a cluster-wide watch would take to deliver it
	if s.WebhookServer().Pods.Watches(ns) || cached("outside") {
		t.Fatalf("the pods of the unmonitored namespace %s are cached", ns)
	}

	labelMonitored(t, ctx, s, ns, true)
	eventually(t, ctx, 30*time.Second, "the pods of "+ns+" cached once it is labelled", func() error {
		if !cached("outside") {
			return fmt.Errorf("pod outside not cached; cached namespaces %v", s.WebhookServer().Pods.Namespaces())
		}
		return nil
	})
	inside := createPod("inside")
	requireInjected(t, inside, app.Port)
	if inside.Labels[injector.LabelInjected] != "true" {
		t.Errorf("injected pod labels %v, want %s=true", inside.Labels, injector.LabelInjected)
	}

	// Unlabelled: the informer stops, and config sync reaches the pod live.
	labelMonitored(t, ctx, s, ns, false)
	requirePassthrough(t, ctx, s, inside)
	eventually(t, ctx, 30*time.Second, "the pods' informer of "+ns+" stopped", func() error {
		if s.WebhookServer().Pods.Watches(ns) {
			return fmt.Errorf("cached namespaces %v", s.WebhookServer().Pods.Namespaces())
		}
		return nil
	})

	// Unlabelled while the webhook is down: its sweep at start finds the pod.
	labelMonitored(t, ctx, s, ns, true)
	// Admission takes an unmonitored namespace from its cache as final: the label must
	// have reached it (it has once the namespace's pods are followed again).
	eventually(t, ctx, 30*time.Second, "the pods of "+ns+" followed again", func() error {
		if !s.WebhookServer().Pods.Watches(ns) {
			return fmt.Errorf("cached namespaces %v", s.WebhookServer().Pods.Namespaces())
		}
		return nil
	})
	second := createPod("second")
	requireInjected(t, second, app.Port)
	if err := s.StopWebhook(); err != nil {
		t.Fatal(err)
	}
	labelMonitored(t, ctx, s, ns, false)
	time.Sleep(2 * time.Second)
	if got := annotationOrigins(t, livePod(t, ctx, s, second)); len(got) != 1 {
		t.Fatalf("origins %q changed with the webhook down: the test proves nothing", got)
	}
	if err := s.StartWebhookWrapped(ctx, requests.wrap); err != nil {
		t.Fatal(err)
	}
	requirePassthrough(t, ctx, s, second)

	// What the webhook asked of pods: per namespace, and across namespaces only the
	// injected ones by their label, never watched.
	all := requests.all()
	if !slices.ContainsFunc(all, func(r apiRequest) bool { return r.watch && r.path == "/api/v1/namespaces/"+ns+"/pods" }) {
		t.Errorf("no watch of the pods of %s among the webhook's pod requests %v", ns, all)
	}
	for _, r := range all {
		if r.path != "/api/v1/pods" {
			continue
		}
		if r.watch || r.query.Get("labelSelector") != injector.LabelInjected+"=true" {
			t.Errorf("the webhook reads every pod of the cluster: %s %s?%s", r.method, r.path, r.query.Encode())
		}
	}
}

// labelMonitored adds the namespace to the mesh, or removes it, as `corsmeshctl namespace`
// does: the monitored-by label.
func labelMonitored(t *testing.T, ctx context.Context, s *sandbox.Sandbox, ns string, monitored bool) {
	t.Helper()
	patch := `{"metadata":{"labels":{"` + injector.LabelMonitoredBy + `":null}}}`
	if monitored {
		patch = `{"metadata":{"labels":{"` + injector.LabelMonitoredBy + `":"osm"}}}`
	}
	if err := s.Client.Patch(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
}

// requirePassthrough waits for the pod's proxy config to pass its port through.
func requirePassthrough(t *testing.T, ctx context.Context, s *sandbox.Sandbox, pod *corev1.Pod) {
	t.Helper()
	eventually(t, ctx, 30*time.Second, "pod "+pod.Name+"'s proxy switched to passthrough", func() error {
		p := livePod(t, ctx, s, pod)
		cfg, err := config.Parse([]byte(p.Annotations[injector.AnnotationConfig]))
		if err != nil {
			return err
		}
		if port := cfg.Lookup(8080); port == nil || port.CORS != nil {
			return fmt.Errorf("config %s", p.Annotations[injector.AnnotationConfig])
		}
		return nil
	})
}

func livePod(t *testing.T, ctx context.Context, s *sandbox.Sandbox, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	var p corev1.Pod
	if err := s.Client.Get(ctx, client.ObjectKeyFromObject(pod), &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// apiRequests records the requests for one resource made through the connection it wraps.
type apiRequests struct {
	resource string // "pods", "replicasets"

	mu   sync.Mutex
	list []apiRequest
}

type apiRequest struct {
	method, path string
	query        url.Values
	watch        bool
}

func (r apiRequest) String() string { return r.method + " " + r.path + "?" + r.query.Encode() }

func (p *apiRequests) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		if strings.HasSuffix(req.URL.Path, "/"+p.resource) || strings.Contains(req.URL.Path, "/"+p.resource+"/") {
			q := req.URL.Query()
			p.mu.Lock()
			p.list = append(p.list, apiRequest{method: req.Method, path: req.URL.Path, query: q, watch: q.Get("watch") == "true"})
			p.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

func (p *apiRequests) all() []apiRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.list)
}
