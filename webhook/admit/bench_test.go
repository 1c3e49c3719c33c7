package admit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
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

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/injectortest"
	"github.com/corsmesh/corsmesh/webhook/internal/webhooktest"
)

// benchReviewFile is an AdmissionReview the API server sent for the seed's pipy-ok-v1 pod
// (created by kube-controller-manager from manifests/samples/pipy.yaml: defaulted, with
// its ServiceAccount token volume, tolerations and managedFields), captured by
// `go -C hack/bench/webhook run . --pods 0 --services 0 --chains 1 --handler-bench=false
// --capture-review <file>`.
var benchReviewFile = filepath.Join("..", "..", "hack", "bench", "webhook", "testdata", "pipy-ok-v1.admissionreview.json")

// benchCluster is the seed's cluster (injector/testdata/inject/_cluster.yaml) grown as in
// injector's BenchmarkInject (injectortest.Grow): chains PluginChains (only the seed's
// selects the pod) and services Services over 100 namespaces, pipy holding its share
// (services/100) besides the seed's three.
func benchCluster(tb testing.TB, chains, services int) *injector.Objects {
	tb.Helper()
	objs := webhooktest.SeedCluster(tb)
	injectortest.Grow(objs, chains, services)
	return objs
}

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
//   - informers: what corsmesh-webhook admits through, a watched Resolver over
//     InformerCluster over a real controller-runtime informer cache fed from memory.
//
// Besides ns/op, B/op and allocs/op it reports the per-admission latency's p50 and p99
// (p50-ns, p99-ns), from every iteration's duration.
func BenchmarkAdmission(b *testing.B) {
	body := loadBenchReview(b)
	const chains, services = 1000, 10000
	for _, variant := range []struct {
		name     string
		resolver func(testing.TB, *injector.Objects) *injector.Resolver
	}{
		{"objects", func(_ testing.TB, o *injector.Objects) *injector.Resolver {
			return injector.NewResolver(injector.New(injector.DefaultOptions()), o, injector.ResolverOptions{})
		}},
		{"informers", webhooktest.InformerResolver},
	} {
		b.Run(fmt.Sprintf("cluster=%s/chains=%d/services=%d", variant.name, chains, services), func(b *testing.B) {
			resolver := variant.resolver(b, benchCluster(b, chains, services))
			m, err := NewMetrics(prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			h := NewHandler(&PodMutator{
				Resolver: resolver, Metrics: m, Log: logr.Discard(),
			}, m, logr.Discard())
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
	req := httptest.NewRequest(http.MethodPost, "/mutate-pods", bytes.NewReader(body))
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

// TestBenchClusters checks what the benchmark's informer cluster claims: it hands out the
// informers' own objects, no copies, and finds a Service's PluginConfigs through its index.
func TestBenchClusters(t *testing.T) {
	objs := benchCluster(t, 3, 300)
	ctx := context.Background()
	c := webhooktest.InformerResolver(t, objs).Cluster()
	a, err := c.Services(ctx, "pipy")
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Services(ctx, "pipy")
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 6 || len(again) != 6 { // the seed's 3 + 300/100
		t.Fatalf("%d and %d Services in pipy, want 6", len(a), len(again))
	}
	// Lists come in no particular order: compare the same Service.
	slices.SortFunc(a, func(x, y *corev1.Service) int { return strings.Compare(x.Name, y.Name) })
	slices.SortFunc(again, func(x, y *corev1.Service) int { return strings.Compare(x.Name, y.Name) })
	if &a[0].Spec.Ports[0] != &again[0].Spec.Ports[0] {
		t.Errorf("Services are copied on every read")
	}
	configs, err := c.PluginConfigsFor(ctx, "pipy", "pipy-ok")
	if err != nil || len(configs) != 1 {
		t.Errorf("PluginConfigsFor(pipy/pipy-ok) = %d configs, %v; want the seed's one through the index", len(configs), err)
	}
	chains, err := c.PluginChains(ctx)
	if err != nil || len(chains) != 3 {
		t.Errorf("PluginChains = %d, %v", len(chains), err)
	}
}

// BenchmarkAdmissionFloor is what the machine alone does to a latency's tail: a fixed
// amount of CPU work about an admission's (hashing the review 32 times) that allocates
// nothing, timed like BenchmarkAdmission. Its p99 over its p50, measured beside the
// admission's, separates what the machine adds (other processes taking the CPU, frequency
// changes) from what the handler and its garbage collection add.
func BenchmarkAdmissionFloor(b *testing.B) {
	body := loadBenchReview(b)
	durations := make([]time.Duration, 0, 1<<20)
	var sum [sha256.Size]byte
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		for range 32 {
			copy(body[len(body)-sha256.Size:], sum[:]) // chained: no round can be skipped
			sum = sha256.Sum256(body)
		}
		durations = append(durations, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(durations)
	b.ReportMetric(float64(percentile(durations, 0.50).Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(percentile(durations, 0.99).Nanoseconds()), "p99-ns")
}
