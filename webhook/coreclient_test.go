package webhook

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
)

// The per-namespace informers list and watch in protobuf, as the manager's cache does for
// built-in kinds: JSON is what the API server sends a client that does not ask.
func TestCoreClientAsksForProtobuf(t *testing.T) {
	var mu sync.Mutex
	accepts := map[string]string{} // "list" / "watch" -> Accept
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind := "list"
		if r.URL.Query().Get("watch") == "true" {
			kind = "watch"
		}
		mu.Lock()
		accepts[kind] = r.Header.Get("Accept")
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if kind == "list" {
			_, _ = w.Write([]byte(`{"kind":"ServiceList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[]}`))
		}
	}))
	defer srv.Close()

	core, err := coreClient(&rest.Config{Host: srv.URL}, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	lw := toolscache.NewListWatchFromClient(core, "services", "shop", fields.Everything())
	if _, err := lw.List(metav1.ListOptions{}); err != nil {
		t.Fatalf("list: %v", err)
	}
	if w, err := lw.Watch(metav1.ListOptions{ResourceVersion: "1"}); err == nil {
		w.Stop()
	}
	mu.Lock()
	defer mu.Unlock()
	for _, kind := range []string{"list", "watch"} {
		if got := accepts[kind]; !strings.HasPrefix(got, "application/vnd.kubernetes.protobuf") {
			t.Errorf("%s asked for Accept %q, want protobuf first", kind, got)
		}
	}
}
