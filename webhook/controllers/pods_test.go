package controllers

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	fcache "k8s.io/client-go/tools/cache/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/webhook/informers"
	"github.com/corsmesh/corsmesh/webhook/slim"
)

// ctlPodCache is the webhook's pods' cache (slimmed, indexed) holding the given pods of the
// watched namespaces, synced.
func ctlPodCache(t *testing.T, pods []*corev1.Pod, watched ...string) *informers.NamespacedInformer {
	t.Helper()
	return ctlNamespacedCache(t, pods, informers.NamespacedOptions{Example: &corev1.Pod{}, Transform: slim.Pod}, podIndexers(), watched...)
}

// ctlNamespacedCache is a NamespacedInformer of opts (its ListWatch a fake source per
// namespace) holding the given objects of the watched namespaces, synced.
func ctlNamespacedCache[T client.Object](t *testing.T, objs []T, opts informers.NamespacedOptions, indexers toolscache.Indexers, watched ...string) *informers.NamespacedInformer {
	t.Helper()
	sources := map[string]*fcache.FakeControllerSource{}
	for _, ns := range watched {
		sources[ns] = fcache.NewFakeControllerSource()
	}
	for _, o := range objs {
		if src, ok := sources[o.GetNamespace()]; ok {
			src.Add(o.DeepCopyObject())
		}
	}
	opts.ListWatch = func(ns string) toolscache.ListerWatcher { return sources[ns] }
	cache := informers.NewNamespacedInformer(opts)
	if err := cache.AddIndexers(indexers); err != nil {
		t.Fatal(err)
	}
	for _, ns := range watched {
		cache.Follow(ns, true)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cache.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		for _, src := range sources {
			src.Shutdown()
		}
	})
	syncCtx, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	if !toolscache.WaitForCacheSync(syncCtx.Done(), cache.HasSynced) {
		t.Fatalf("the cache of %T did not sync", opts.Example)
	}
	return cache
}

// Pods of a cached namespace are read from the cache (the store's own objects when listed,
// a copy when read one by one, to be patched); those of other namespaces through the
// client, as are the injected ones by their label only (the status annotation decides,
// the label alone is anyone's to set).
func TestPodReaders(t *testing.T) {
	pod := func(ns, name string, l map[string]string, injected bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: l}}
		if injected {
			p.Annotations = map[string]string{injector.AnnotationStatus: "{}"}
			p.Labels = map[string]string{injector.LabelInjected: "true"}
			for k, v := range l {
				p.Labels[k] = v
			}
		}
		return p
	}
	pods := []*corev1.Pod{
		pod("pipy", "ok-1", map[string]string{"app": "pipy-ok"}, true),
		pod("pipy", "ok-2", map[string]string{"app": "pipy-ok", "version": "v2"}, false),
		pod("pipy", "curl", map[string]string{"app": "curl"}, false),
		pod("pipy", "bare", nil, false),
		// Injected before the label existed: only the cache's index finds it.
		{ObjectMeta: metav1.ObjectMeta{Namespace: "pipy", Name: "unlabelled", Annotations: map[string]string{injector.AnnotationStatus: "{}"}}},
		pod("web", "ok-1", map[string]string{"app": "pipy-ok"}, true),
		pod("web", "posing", map[string]string{injector.LabelInjected: "true"}, false),
	}
	objs := make([]client.Object, len(pods))
	for i, p := range pods {
		objs[i] = p.DeepCopy()
	}
	c, _ := ctlClient(t, objs...)
	cache := ctlPodCache(t, pods, "pipy")
	readers := map[string]podReader{"client": readerPods{reader: c}, "cache": cachedPods{cache: cache, live: readerPods{reader: c}}}

	for _, tc := range []struct {
		namespace, selector string
		want                []string
	}{
		{"pipy", "app=pipy-ok", []string{"ok-1", "ok-2"}},
		{"pipy", "app in (pipy-ok, curl),version!=v2", []string{"curl", "ok-1"}},
		{"pipy", "", []string{"bare", "curl", "ok-1", "ok-2", "unlabelled"}},
		{"web", "app=pipy-ok", []string{"ok-1"}},
		{"empty", "", nil},
	} {
		sel, err := labels.Parse(tc.selector)
		if err != nil {
			t.Fatal(err)
		}
		for name, r := range readers {
			got, err := r.Pods(t.Context(), tc.namespace, sel)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if names := ctlPodNames(got); !slices.Equal(names, tc.want) {
				t.Errorf("%s: pods of %s matching %q = %v, want %v", name, tc.namespace, tc.selector, names, tc.want)
			}
			if _, isCache := r.(cachedPods); isCache && tc.namespace == "pipy" {
				for _, p := range got {
					if o, _, _ := cache.Get(t.Context(), p.Namespace, p.Name); o != p {
						t.Errorf("cache: %s/%s is a copy, not the store's object", p.Namespace, p.Name)
					}
				}
			}
		}
	}

	for _, tc := range []struct {
		reader, namespace string
		want              []string
	}{
		{"client", "pipy", []string{"pipy/ok-1"}},
		{"cache", "pipy", []string{"pipy/ok-1", "pipy/unlabelled"}},
		{"client", "web", []string{"web/ok-1"}},
		{"cache", "web", nil}, // not cached: no policy change reaches it
		{"client", "", []string{"pipy/ok-1", "web/ok-1"}},
		{"cache", "", []string{"pipy/ok-1", "pipy/unlabelled"}},
	} {
		got, err := readers[tc.reader].Injected(t.Context(), tc.namespace)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range got {
			names = append(names, p.Namespace+"/"+p.Name)
		}
		slices.Sort(names)
		if !slices.Equal(names, tc.want) {
			t.Errorf("%s: injected pods of %q = %v, want %v", tc.reader, tc.namespace, names, tc.want)
		}
	}

	for _, tc := range []struct {
		key   string
		found bool
	}{{"pipy/ok-1", true}, {"pipy/gone", false}, {"web/ok-1", true}, {"web/gone", false}} {
		ns, name, _ := strings.Cut(tc.key, "/")
		for rn, r := range readers {
			got, err := r.Pod(t.Context(), types.NamespacedName{Namespace: ns, Name: name})
			if err != nil {
				t.Fatalf("%s: %s: %v", rn, tc.key, err)
			}
			if (got != nil) != tc.found {
				t.Errorf("%s: %s read %v, want found=%t", rn, tc.key, got, tc.found)
				continue
			}
			if got != nil && ns == "pipy" && rn == "cache" {
				if o, _, _ := cache.Get(t.Context(), ns, name); o == got {
					t.Errorf("cache: %s read as the store's own object, which a patch would overwrite", tc.key)
				}
			}
		}
	}
}

func ctlPodNames(pods []*corev1.Pod) []string {
	var names []string
	for _, p := range pods {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	return names
}
