package controllers

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Both listers return the pods of one namespace that the selector matches; the informer's
// returns the store's own objects, uncopied.
func TestPodListers(t *testing.T) {
	pod := func(ns, name string, l map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: l}}
	}
	pods := []*corev1.Pod{
		pod("pipy", "ok-1", map[string]string{"app": "pipy-ok"}),
		pod("pipy", "ok-2", map[string]string{"app": "pipy-ok", "version": "v2"}),
		pod("pipy", "curl", map[string]string{"app": "curl"}),
		pod("pipy", "bare", nil),
		pod("web", "ok-1", map[string]string{"app": "pipy-ok"}),
	}
	store := toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc})
	objs := make([]client.Object, len(pods))
	for i, p := range pods {
		if err := store.Add(p); err != nil {
			t.Fatal(err)
		}
		objs[i] = p.DeepCopy()
	}
	c, _ := ctlClient(t, objs...)
	listers := map[string]podLister{"client": readerPods{reader: c}, "informer": informerPods{indexer: store}}

	for _, tc := range []struct {
		namespace, selector string
		want                []string
	}{
		{"pipy", "app=pipy-ok", []string{"ok-1", "ok-2"}},
		{"pipy", "app in (pipy-ok, curl),version!=v2", []string{"curl", "ok-1"}},
		{"pipy", "", []string{"bare", "curl", "ok-1", "ok-2"}},
		{"web", "app=pipy-ok", []string{"ok-1"}},
		{"empty", "", nil},
	} {
		sel, err := labels.Parse(tc.selector)
		if err != nil {
			t.Fatal(err)
		}
		for name, l := range listers {
			got, err := l.Pods(t.Context(), tc.namespace, sel)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			var names []string
			for _, p := range got {
				if p.Namespace != tc.namespace {
					t.Errorf("%s: %s/%s listed for namespace %s", name, p.Namespace, p.Name, tc.namespace)
				}
				names = append(names, p.Name)
				if _, isInformer := l.(informerPods); isInformer && !slices.Contains(pods, p) {
					t.Errorf("informer: %s/%s is a copy, not the store's object", p.Namespace, p.Name)
				}
			}
			slices.Sort(names)
			if !slices.Equal(names, tc.want) {
				t.Errorf("%s: pods of %s matching %q = %v, want %v", name, tc.namespace, tc.selector, names, tc.want)
			}
		}
	}
}

// A manager's cache has one shared pod informer indexed by namespace: the controllers read
// its store.
func TestCachePodsReadsTheInformer(t *testing.T) {
	mgr := ctlManager(t)
	l, err := cachePods(t.Context(), mgr.GetCache(), mgr.GetClient())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l.(informerPods); !ok {
		t.Errorf("cachePods = %T, want informerPods", l)
	}
}
