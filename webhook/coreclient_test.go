package webhook

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/streaming"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/corsmesh/corsmesh/webhook/slim"
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

	for name, newClient := range map[string]func(*rest.Config, *http.Client) (rest.Interface, error){"coreClient": coreClient, "PodsClient": PodsClient} {
		core, err := newClient(&rest.Config{Host: srv.URL}, srv.Client())
		if err != nil {
			t.Fatal(err)
		}
		lw := toolscache.NewListWatchFromClient(core, "services", "shop", fields.Everything())
		if _, err := lw.List(metav1.ListOptions{}); err != nil {
			t.Fatalf("%s: list: %v", name, err)
		}
		if w, err := lw.Watch(metav1.ListOptions{ResourceVersion: "1"}); err == nil {
			w.Stop()
		}
		mu.Lock()
		for _, kind := range []string{"list", "watch"} {
			if got := accepts[kind]; !strings.HasPrefix(got, "application/vnd.kubernetes.protobuf") {
				t.Errorf("%s: %s asked for Accept %q, want protobuf first", name, kind, got)
			}
		}
		clear(accepts)
		mu.Unlock()
	}
}

// The pods' client decodes the pods of a protobuf list and watch as slim.Pod keeps them;
// the core client, for everything else, whole.
func TestPodsClientDecodesPodsLean(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-1", UID: "u-1", ResourceVersion: "7",
			Labels:        map[string]string{"app": "web"},
			Annotations:   map[string]string{"corsmesh.io/status": "injected", "kubectl.kubernetes.io/last-applied-configuration": "{}"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate}}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{
			Name: "web", Image: "web:1", Command: []string{"/web", "--port=8080"}, Env: []corev1.EnvVar{{Name: "MODE", Value: "prod"}},
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
		}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.7", Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	list := &corev1.PodList{ListMeta: metav1.ListMeta{ResourceVersion: "7"}, Items: []corev1.Pod{*pod}}
	info, ok := runtime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), runtime.ContentTypeProtobuf)
	if !ok {
		t.Fatal("no protobuf serializer")
	}
	encoder := scheme.Codecs.EncoderForVersion(info.Serializer, corev1.SchemeGroupVersion)
	encode := func(obj runtime.Object) []byte {
		var buf bytes.Buffer
		if err := encoder.Encode(obj, &buf); err != nil {
			t.Error(err)
		}
		return buf.Bytes()
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("watch") != "true" {
			w.Header().Set("Content-Type", runtime.ContentTypeProtobuf)
			_, _ = w.Write(encode(list))
			return
		}
		w.Header().Set("Content-Type", runtime.ContentTypeProtobuf+";stream=watch")
		enc := streaming.NewEncoder(info.StreamSerializer.Framer.NewFrameWriter(w), info.StreamSerializer.Serializer)
		if err := enc.Encode(&metav1.WatchEvent{Type: string(watch.Modified), Object: runtime.RawExtension{Raw: encode(pod)}}); err != nil {
			t.Error(err)
		}
	}))
	defer srv.Close()

	lean, err := slim.Pod(pod.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name      string
		newClient func(*rest.Config, *http.Client) (rest.Interface, error)
		want      *corev1.Pod
	}{
		{"PodsClient", PodsClient, lean.(*corev1.Pod)},
		{"coreClient", coreClient, pod},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.newClient(&rest.Config{Host: srv.URL}, srv.Client())
			if err != nil {
				t.Fatal(err)
			}
			lw := toolscache.NewListWatchFromClient(c, "pods", "shop", fields.Everything())
			got, err := lw.ListWithContext(t.Context(), metav1.ListOptions{})
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			if items := got.(*corev1.PodList).Items; len(items) != 1 || !apiequality.Semantic.DeepEqual(&items[0], tt.want) {
				t.Errorf("listed %+v, want %+v", items, tt.want)
			}
			w, err := lw.WatchWithContext(t.Context(), metav1.ListOptions{ResourceVersion: "7"})
			if err != nil {
				t.Fatalf("watch: %v", err)
			}
			defer w.Stop()
			ev := <-w.ResultChan()
			if ev.Type != watch.Modified || !apiequality.Semantic.DeepEqual(ev.Object, tt.want) {
				t.Errorf("watched %s %+v, want %+v", ev.Type, ev.Object, tt.want)
			}
		})
	}
}
