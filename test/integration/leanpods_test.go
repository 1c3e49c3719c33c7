package integration

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/diff"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/corsmesh/corsmesh/webhook"
	"github.com/corsmesh/corsmesh/webhook/slim"
)

// TestPodsDecodeLeanFromTheAPIServer checks the pods' lean decoding against the real API
// server's protobuf: the client the pods' informer uses lists and watches pods already as
// slim.Pod keeps them (nothing of the rest decoded), equal to slim.Pod of the live pods;
// and the webhook's pods' cache holds exactly slim.Pod of each live pod.
func TestPodsDecodeLeanFromTheAPIServer(t *testing.T) {
	s := sb(t)
	ctx := testContext(t, 3*time.Minute)
	ns := "leanpods-" + rand.String(5)
	app := corsApp{Namespace: ns, App: "leanpods-web", Port: 8080, Origin: "https://leanpods.example"}
	app.installMonitored(t, ctx, s)
	for _, name := range []string{"one", "two"} {
		requireInjected(t, app.create(t, ctx, s, name), app.Port)
	}
	slimOf := func(p *corev1.Pod) *corev1.Pod {
		out, err := slim.Pod(p)
		if err != nil {
			t.Fatal(err)
		}
		return out.(*corev1.Pod)
	}
	live := func() map[string]*corev1.Pod {
		list, err := s.Clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]*corev1.Pod{}
		for i := range list.Items {
			p := &list.Items[i]
			if len(p.Spec.Containers) == 0 || p.Spec.Containers[0].Image == "" {
				t.Fatalf("the live pod %s is not whole: %+v", p.Name, p.Spec)
			}
			p.TypeMeta = metav1.TypeMeta{}
			out[p.Name] = slimOf(p)
		}
		return out
	}
	differs := func(want, got *corev1.Pod) error {
		if !apiequality.Semantic.DeepEqual(want, got) {
			return fmt.Errorf("pod %s (-slim.Pod(live) +lean):\n%s", want.Name, diff.Diff(want, got))
		}
		return nil
	}

	hc, err := rest.HTTPClientFor(s.RestConfig)
	if err != nil {
		t.Fatal(err)
	}
	client, err := webhook.PodsClient(s.RestConfig, hc)
	if err != nil {
		t.Fatal(err)
	}
	lw := toolscache.NewListWatchFromClient(client, "pods", ns, fields.Everything())
	listed, err := lw.ListWithContext(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := live()
	items := listed.(*corev1.PodList).Items
	if len(items) != len(want) {
		t.Fatalf("listed %d pods, want %d", len(items), len(want))
	}
	for i := range items {
		for _, c := range items[i].Spec.Containers {
			if c.Image != "" {
				t.Errorf("listed pod %s decoded whole (container %s's image %q)", items[i].Name, c.Name, c.Image)
			}
		}
		if err := differs(want[items[i].Name], &items[i]); err != nil {
			t.Error(err)
		}
	}

	// A watch event of a changed pod: a label and annotations, one kept, one not.
	w, err := lw.WatchWithContext(ctx, metav1.ListOptions{ResourceVersion: listed.(*corev1.PodList).ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	patch := `{"metadata":{"labels":{"tier":"front"},"annotations":{"corsmesh.io/lean":"kept","example.com/other":"dropped"}}}`
	if _, err := s.Clientset.CoreV1().Pods(ns).Patch(ctx, "one", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("the watch ended")
			}
			pod, isPod := ev.Object.(*corev1.Pod)
			if ev.Type != watch.Modified || !isPod || pod.Name != "one" || pod.Labels["tier"] != "front" {
				continue
			}
			if err := differs(live()["one"], pod); err != nil {
				t.Errorf("watched: %v", err)
			}
		case <-ctx.Done():
			t.Fatal("no watch event of the patched pod")
		}
		break
	}

	// The webhook's cache, through its informer's transform.
	eventually(t, ctx, 30*time.Second, "the webhook's pods' cache equal to slim.Pod of the live pods", func() error {
		for name, want := range live() {
			obj, ok, err := s.WebhookServer().Pods.Get(ctx, ns, name)
			if err != nil || !ok {
				return fmt.Errorf("pod %s not cached (%v)", name, err)
			}
			if err := differs(want, obj.(*corev1.Pod)); err != nil {
				return err
			}
		}
		return nil
	})
}
