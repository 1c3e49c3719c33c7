package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/corsmesh/corsmesh/injector"
	configv1alpha2 "github.com/corsmesh/corsmesh/injector/api/config/v1alpha2"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
	"github.com/corsmesh/corsmesh/injector/injectortest"
)

// benchReviewFile is an AdmissionReview the API server sent for the seed's pipy-ok-v1 pod
// (created by kube-controller-manager from manifests/samples/pipy.yaml: defaulted, with
// its ServiceAccount token volume, tolerations and managedFields), captured by
// `go -C hack/bench/webhook run . --pods 0 --services 0 --chains 1 --handler-bench=false
// --capture-review <file>`.
var benchReviewFile = filepath.Join("..", "hack", "bench", "webhook", "testdata", "pipy-ok-v1.admissionreview.json")

// benchCluster is the seed's cluster (injector/testdata/inject/_cluster.yaml) grown as in
// injector's BenchmarkInject (injectortest.Grow): chains PluginChains (only the seed's
// selects the pod) and services Services over 100 namespaces, pipy holding its share
// (services/100) besides the seed's three.
func benchCluster(tb testing.TB, chains, services int) *injector.Objects {
	tb.Helper()
	objs := seedCluster(tb)
	injectortest.Grow(objs, chains, services)
	return objs
}

// fakeClientCluster is CacheCluster over controller-runtime's fake client, with the
// webhook's PluginConfig index (WithIndex). It is NOT a cache: every List marshals the
// matching objects to JSON and decodes them again (client.UnsafeDisableDeepCopy is
// accepted and ignored), so each admission pays for copying the pod's namespace's
// Services and all 1,000 PluginChains, which the real cache does not.
func fakeClientCluster(tb testing.TB, objs *injector.Objects) *CacheCluster {
	tb.Helper()
	scheme, err := Scheme()
	if err != nil {
		tb.Fatal(err)
	}
	var all []client.Object
	injectortest.Each(objs, func(m metav1.Object) {
		o := m.(client.Object).DeepCopyObject().(client.Object)
		o.SetResourceVersion("") // the fake tracker sets its own
		all = append(all, o)
	})
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(all...).
		WithIndex(&v1alpha1.PluginConfig{}, IndexPluginConfigDestination, func(o client.Object) []string {
			return injector.DestinationKeys(o.(*v1alpha1.PluginConfig))
		}).Build()
	return &CacheCluster{Cache: c}
}

// informerCacheCluster is CacheCluster over a real controller-runtime informer cache, as
// the webhook builds it (the PluginConfig field index, managed fields stripped), whose
// informers list the objects from memory instead of an API server (cache.Options.NewInformer
// swaps the ListerWatcher; everything else, the indexers and the CacheReader with its
// namespace index and UnsafeDisableDeepCopy, is controller-runtime's own).
func informerCacheCluster(tb testing.TB, objs *injector.Objects) *CacheCluster {
	c, _ := memoryCache(tb, objs)
	return &CacheCluster{Cache: c}
}

// informerCluster is InformerCluster, what the webhook admits with, over the same cache.
func informerCluster(tb testing.TB, objs *injector.Objects) *InformerCluster {
	_, ic := memoryCache(tb, objs)
	return ic
}

// memoryCache builds and syncs the in-memory informer cache, with the InformerCluster
// over it (its indexer must be added before the informers start).
func memoryCache(tb testing.TB, objs *injector.Objects) (cache.Cache, *InformerCluster) {
	tb.Helper()
	return memoryCacheWith(tb, objs, nil)
}

// memoryCacheWith is memoryCache with some kinds' objects from the given sources (by kind,
// "PluginChain" say), which tests change while the informers run.
func memoryCacheWith(tb testing.TB, objs *injector.Objects, sources map[string]toolscache.ListerWatcher) (cache.Cache, *InformerCluster) {
	tb.Helper()
	scheme, err := Scheme()
	if err != nil {
		tb.Fatal(err)
	}
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(corev1.SchemeGroupVersion.WithKind("Namespace"), meta.RESTScopeRoot)
	mapper.Add(corev1.SchemeGroupVersion.WithKind("Service"), meta.RESTScopeNamespace)
	mapper.Add(v1alpha1.GroupVersion.WithKind("Plugin"), meta.RESTScopeRoot)
	mapper.Add(v1alpha1.GroupVersion.WithKind("PluginChain"), meta.RESTScopeNamespace)
	mapper.Add(v1alpha1.GroupVersion.WithKind("PluginConfig"), meta.RESTScopeNamespace)
	mapper.Add(configv1alpha2.GroupVersion.WithKind("MeshConfig"), meta.RESTScopeNamespace)

	lists := map[string]runtime.Object{
		"Namespace":    &corev1.NamespaceList{Items: values(objs.Namespaces)},
		"Service":      &corev1.ServiceList{Items: values(objs.ServiceList)},
		"Plugin":       &v1alpha1.PluginList{Items: values(objs.Plugins)},
		"PluginChain":  &v1alpha1.PluginChainList{Items: values(objs.Chains)},
		"PluginConfig": &v1alpha1.PluginConfigList{Items: values(objs.Configs)},
		"MeshConfig":   &configv1alpha2.MeshConfigList{Items: values(objs.MeshConfigs)},
	}
	c, err := cache.New(&rest.Config{Host: "http://127.0.0.1:1"}, cache.Options{
		Scheme:           scheme,
		Mapper:           mapper,
		DefaultTransform: cache.TransformStripManagedFields(),
		NewInformer: func(_ toolscache.ListerWatcher, obj runtime.Object, resync time.Duration, indexers toolscache.Indexers) toolscache.SharedIndexInformer {
			kind := strings.TrimPrefix(fmt.Sprintf("%T", obj), "*")
			kind = kind[strings.LastIndex(kind, ".")+1:]
			if src, ok := sources[kind]; ok {
				return toolscache.NewSharedIndexInformer(src, obj, resync, indexers)
			}
			list, ok := lists[kind]
			if !ok {
				tb.Fatalf("no objects for an informer of %T", obj)
			}
			return toolscache.NewSharedIndexInformer(memoryListWatch{list}, obj, resync, indexers)
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	if err := c.IndexField(ctx, &v1alpha1.PluginConfig{}, IndexPluginConfigDestination, func(o client.Object) []string {
		return injector.DestinationKeys(o.(*v1alpha1.PluginConfig))
	}); err != nil {
		tb.Fatal(err)
	}
	ic, err := NewInformerCluster(ctx, c, nil)
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()
	syncCtx, syncCancel := context.WithTimeout(ctx, 30*time.Second)
	defer syncCancel()
	if !c.WaitForCacheSync(syncCtx) {
		tb.Fatal("informer cache did not sync")
	}
	return c, ic
}

func values[T any](ptrs []*T) []T {
	out := make([]T, len(ptrs))
	for i, p := range ptrs {
		out[i] = *p
	}
	return out
}

// memoryListWatch lists a fixed list and then watches forever without events.
type memoryListWatch struct{ list runtime.Object }

func (l memoryListWatch) List(metav1.ListOptions) (runtime.Object, error) {
	out := l.list.DeepCopyObject()
	lm, err := meta.ListAccessor(out)
	if err != nil {
		return nil, err
	}
	lm.SetResourceVersion("1000000")
	return out, nil
}

func (l memoryListWatch) Watch(o metav1.ListOptions) (watch.Interface, error) {
	if o.SendInitialEvents != nil && *o.SendInitialEvents {
		return nil, errors.New("watch-list not supported") // the reflector falls back to List
	}
	return watch.NewFake(), nil
}

// IsWatchListSemanticsUnSupported tells client-go's reflector to List, not watch-list.
func (memoryListWatch) IsWatchListSemanticsUnSupported() bool { return true }

// loadBenchReview reads the captured AdmissionReview and checks it is the seed's pod.
func loadBenchReview(tb testing.TB) []byte {
	tb.Helper()
	body, err := os.ReadFile(benchReviewFile)
	if err != nil {
		tb.Fatalf("%v (capture it with hack/bench/webhook --capture-review)", err)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		tb.Fatalf("%s: not an AdmissionReview: %v", benchReviewFile, err)
	}
	if review.Request.Namespace != "pipy" || !bytes.Contains(review.Request.Object.Raw, []byte(`"pipy-ok-v1-`)) {
		tb.Fatalf("%s: not the seed's pipy-ok-v1 pod in namespace pipy", benchReviewFile)
	}
	return body
}

// BenchmarkAdmission is one pod admission through the webhook's HTTP handler, as the
// API server drives it: POST of the AdmissionReview JSON → decode → decide (namespace,
// 1,000 PluginChains, the Services of the pod's namespace, PluginConfigs, Plugin) →
// mutate → JSON patch → encoded AdmissionReview response. Not included: TLS and HTTP/2
// (the controller-runtime server's own instrumentation), and the Event, whose recorder is
// nil here (in the webhook it is queued and written asynchronously).
//
// Clusters of 1,000 PluginChains and 10,000 Services (100 in the pod's namespace):
//
//   - objects: the in-memory injector.Objects (scans all 10,000 Services: overstates).
//   - cache: CacheCluster over a real controller-runtime informer cache fed from memory —
//     the realistic one: namespace index, field index, no deep copy on List.
//   - fakeclient: CacheCluster over controller-runtime's fake client with WithIndex. Its
//     List JSON-encodes and decodes what it returns (UnsafeDisableDeepCopy is ignored), so
//     it measures the fake client; kept to show why it is not used for the numbers.
//
// Besides ns/op, B/op and allocs/op it reports the per-admission latency's p50 and p99
// (p50-ns, p99-ns), from every iteration's duration.
func BenchmarkAdmission(b *testing.B) {
	body := loadBenchReview(b)
	const chains, services = 1000, 10000
	for _, variant := range []struct {
		name    string
		cluster func(testing.TB, *injector.Objects) injector.Cluster
	}{
		{"objects", func(_ testing.TB, o *injector.Objects) injector.Cluster { return o }},
		{"informers", func(tb testing.TB, o *injector.Objects) injector.Cluster { return informerCluster(tb, o) }},
		{"cache", func(tb testing.TB, o *injector.Objects) injector.Cluster { return informerCacheCluster(tb, o) }},
		{"fakeclient", func(tb testing.TB, o *injector.Objects) injector.Cluster { return fakeClientCluster(tb, o) }},
	} {
		b.Run(fmt.Sprintf("cluster=%s/chains=%d/services=%d", variant.name, chains, services), func(b *testing.B) {
			cluster := variant.cluster(b, benchCluster(b, chains, services))
			m, err := NewMetrics(prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			h := &reviewHandler{name: "mutate-pods", metrics: m, log: logr.Discard(), handler: &PodMutator{
				Injector: injector.New(injector.DefaultOptions()), Cluster: cluster, Metrics: m, Log: logr.Discard(),
			}}
			checkInjected(b, serve(h, body))

			durations := make([]time.Duration, 0, 1<<20)
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				rec := serve(h, body)
				durations = append(durations, time.Since(start))
				if rec.Code != http.StatusOK {
					b.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
				}
			}
			b.StopTimer()
			slices.Sort(durations)
			b.ReportMetric(float64(percentile(durations, 0.50).Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(percentile(durations, 0.99).Nanoseconds()), "p99-ns")
		})
	}
}

func serve(h http.Handler, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, PathMutatePods, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// checkInjected fails unless the response injects the sidecar on port 8080.
func checkInjected(tb testing.TB, rec *httptest.ResponseRecorder) {
	tb.Helper()
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
		tb.Fatalf("HTTP %d, not an AdmissionReview: %v\n%s", rec.Code, err, rec.Body)
	}
	patch := string(out.Response.Patch)
	if !out.Response.Allowed || !strings.Contains(patch, `"name":"corsproxy"`) || !strings.Contains(patch, "--inbound-ports=8080") {
		tb.Fatalf("not injected: allowed=%v result=%+v warnings=%q patch=%s", out.Response.Allowed, out.Response.Result, out.Response.Warnings, patch)
	}
}

// percentile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// TestBenchClusters checks what the benchmark's clusters claim: the informer cache hands
// out shallow copies of its own objects on List (UnsafeDisableDeepCopy: the Items slice is
// new, the maps and slices inside are the cache's), the fake client deep copies them
// whatever the option.
func TestBenchClusters(t *testing.T) {
	objs := benchCluster(t, 3, 300)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		c      injector.Cluster
		copies bool
	}{{"informers", informerCluster(t, objs), false}, {"cache", informerCacheCluster(t, objs), false}, {"fakeclient", fakeClientCluster(t, objs), true}} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := tc.c.Services(ctx, "pipy")
			if err != nil {
				t.Fatal(err)
			}
			again, err := tc.c.Services(ctx, "pipy")
			if err != nil {
				t.Fatal(err)
			}
			if len(a) != 6 || len(again) != 6 { // the seed's 3 + 300/100
				t.Fatalf("%d and %d Services in pipy, want 6", len(a), len(again))
			}
			// Lists come in no particular order: compare the same Service.
			slices.SortFunc(a, func(x, y *corev1.Service) int { return strings.Compare(x.Name, y.Name) })
			slices.SortFunc(again, func(x, y *corev1.Service) int { return strings.Compare(x.Name, y.Name) })
			if copied := &a[0].Spec.Ports[0] != &again[0].Spec.Ports[0]; copied != tc.copies {
				t.Errorf("List deep copies: %v, want %v", copied, tc.copies)
			}
			configs, err := tc.c.PluginConfigsFor(ctx, "pipy", "pipy-ok")
			if err != nil || len(configs) != 1 {
				t.Errorf("PluginConfigsFor(pipy/pipy-ok) = %d configs, %v; want the seed's one through the index", len(configs), err)
			}
			chains, err := tc.c.PluginChains(ctx)
			if err != nil || len(chains) != 3 {
				t.Errorf("PluginChains = %d, %v", len(chains), err)
			}
		})
	}
}
