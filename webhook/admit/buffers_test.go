package admit

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/corsmesh/corsmesh/webhook/internal/webhooktest"
)

// The body and patch buffers an admission lends are reused by the next ones: an answer
// must never carry bytes of another admission's. Reviews of different lengths (one over
// maxPooledBuffer, so never lent) and outcomes (patched with and without pod annotations,
// skipped) go through one handler, in sequence and concurrently, and each answer must be
// the one a handler that never reused a buffer gives.
func TestLentBuffersNeverLeakIntoAnotherAnswer(t *testing.T) {
	var reviews [][]byte
	for i, shape := range []struct{ labels, annotations string }{
		{"{app: pipy-ok, version: v1}", ""},
		{"{app: pipy-ok, version: v1}", "{team: web}"},
		{"{app: pipy-ok, version: v1}", "{note: " + strings.Repeat("n", 3000) + "}"},
		{"{app: pipy-ok, version: v1}", "{note: " + strings.Repeat("x", maxPooledBuffer) + "}"},
		{"{app: nothing-selects-me}", ""},
		{"{app: pipy-ok, version: v1}", "{a: b, c: d, e: f}"},
	} {
		pod := strings.Replace(webhooktest.SeedPod, "{app: pipy-ok, version: v1, pod-template-hash: 5d8f7c9b7d}", shape.labels, 1)
		if shape.annotations != "" {
			pod = strings.Replace(pod, "  namespace: pipy\n", "  namespace: pipy\n  annotations: "+shape.annotations+"\n", 1)
		}
		pod = strings.Replace(pod, "generateName: pipy-ok-v1-5d8f7c9b7d-", fmt.Sprintf("generateName: shape-%d-", i), 1)
		reviews = append(reviews, reviewFor(t, "Pod", "", "pipy", pod))
	}
	answer := func(h http.Handler, body []byte) []byte {
		req := httptest.NewRequest(http.MethodPost, "/mutate-pods", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Errorf("HTTP %d: %s", rec.Code, rec.Body)
		}
		return rec.Body.Bytes()
	}
	cluster := webhooktest.SeedCluster(t)
	want := make([][]byte, len(reviews))
	patched := 0
	for i, body := range reviews {
		fresh, _, _ := newTestHandlers(t, cluster)
		want[i] = answer(fresh, body)
		if bytes.Contains(want[i], []byte(`"patch":`)) {
			patched++
		}
	}
	if patched < 4 || patched == len(reviews) {
		t.Fatalf("%d of %d reviews patched: the shapes no longer cover patched and skipped pods", patched, len(reviews))
	}

	shared, _, _ := newTestHandlers(t, cluster)
	for round := range 3 {
		for i, body := range reviews {
			if got := answer(shared, body); !bytes.Equal(got, want[i]) {
				t.Fatalf("round %d, review %d: answer differs from a fresh handler's\ngot:  %.300s\nwant: %.300s", round, i, got, want[i])
			}
		}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for n := range 150 {
				i := (g + n) % len(reviews)
				if got := answer(shared, reviews[i]); !bytes.Equal(got, want[i]) {
					t.Errorf("goroutine %d, review %d: answer differs from a fresh handler's", g, i)
					return
				}
			}
		})
	}
	wg.Wait()
}
