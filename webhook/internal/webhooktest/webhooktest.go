// Package webhooktest holds the fixtures the webhook's packages test with: the seed
// guide's cluster and pod, and an informer cache fed from memory.
package webhooktest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/corsmesh/corsmesh/injector"
	configv1alpha2 "github.com/corsmesh/corsmesh/injector/api/config/v1alpha2"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
	"github.com/corsmesh/corsmesh/injector/kubecluster"
	"github.com/corsmesh/corsmesh/injector/manifest"
	"github.com/corsmesh/corsmesh/webhook/informers"
	"github.com/corsmesh/corsmesh/webhook/slim"
)

// repoRoot is the repository's root, found from this file.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// SeedCluster is the seed guide's cluster, from the injector's golden test data.
func SeedCluster(t testing.TB) *injector.Objects {
	t.Helper()
	docs, err := manifest.ReadFiles(filepath.Join(repoRoot(), "injector", "testdata", "inject", "_cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs := &injector.Objects{}
	if err := manifest.AddObjects(objs, docs); err != nil {
		t.Fatal(err)
	}
	return objs
}

// Injector is the injector with test images.
func Injector() *injector.Injector {
	o := injector.DefaultOptions()
	o.ProxyImage, o.InitImage = "corsproxy:test", "corsproxy-init:test"
	return injector.New(o)
}

// SeedPod is the seed guide's pipy-ok-v1 pod as its ReplicaSet creates it.
const SeedPod = `
apiVersion: v1
kind: Pod
metadata:
  generateName: pipy-ok-v1-5d8f7c9b7d-
  namespace: pipy
  labels: {app: pipy-ok, version: v1, pod-template-hash: 5d8f7c9b7d}
  ownerReferences:
  - {apiVersion: apps/v1, kind: ReplicaSet, name: pipy-ok-v1-5d8f7c9b7d, uid: 0a1b2c3d-0000-4000-8000-000000000002, controller: true}
spec:
  serviceAccountName: pipy-ok-v1
  containers:
  - name: pipy
    image: flomesh/pipy:latest
    command: [pipy, -e, "pipy().listen(8080).serveHTTP(new Message('Hi, I am PIPY-OK v1!'))"]
    ports: [{name: pipy, containerPort: 8080}]
`

// InformerResolver is what the webhook admits with: a watched Resolver over
// InformerCluster, over a real controller-runtime cache fed from memory.
func InformerResolver(tb testing.TB, objs *injector.Objects) *injector.Resolver {
	_, r := MemoryCache(tb, objs, nil)
	return r
}

// MonitoredResolver is InformerResolver as corsmesh-webhook runs it: the Services come
// from a NamespacedInformer holding only the monitored namespaces' (slimmed as the
// webhook stores them), not from an informer of every Service in the cluster.
func MonitoredResolver(tb testing.TB, objs *injector.Objects) *injector.Resolver {
	tb.Helper()
	// Only the monitored namespaces' Services are kept to list: the rest of the cluster
	// is not in the webhook's memory, so not in this one's either (benchmarks weigh it).
	opts := injector.DefaultOptions()
	byNS := map[string]*corev1.ServiceList{}
	for _, ns := range objs.Namespaces {
		if opts.Monitors(ns) {
			byNS[ns.Name] = &corev1.ServiceList{}
		}
	}
	for _, s := range objs.ServiceList {
		if l := byNS[s.Namespace]; l != nil {
			l.Items = append(l.Items, *s)
		}
	}
	services := informers.NewNamespacedInformer(informers.NamespacedOptions{
		ListWatch: func(namespace string) toolscache.ListerWatcher {
			l := byNS[namespace]
			if l == nil {
				l = &corev1.ServiceList{}
			}
			return memoryListWatch{l}
		},
		Example:   &corev1.Service{},
		Transform: slim.Service,
	})
	_, r := memoryCache(tb, objs, nil, services)
	return r
}

// MemoryCache builds and syncs an informer cache fed from memory, with a watched Resolver
// over InformerCluster on it (its indexers must be added before the informers start);
// with some kinds' objects from the given sources (by kind,
// "PluginChain" say), which tests change while the informers run.
func MemoryCache(tb testing.TB, objs *injector.Objects, sources map[string]toolscache.ListerWatcher) (cache.Cache, *injector.Resolver) {
	tb.Helper()
	return memoryCache(tb, objs, sources, nil)
}

// memoryCache is MemoryCache, with the Services read from services when it is not nil
// (started here, once the namespaces' informer has told it which are monitored).
func memoryCache(tb testing.TB, objs *injector.Objects, sources map[string]toolscache.ListerWatcher, services *informers.NamespacedInformer) (cache.Cache, *injector.Resolver) {
	tb.Helper()
	scheme, err := kubecluster.Scheme()
	if err != nil {
		tb.Fatal(err)
	}
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(corev1.SchemeGroupVersion.WithKind("Namespace"), meta.RESTScopeRoot)
	mapper.Add(corev1.SchemeGroupVersion.WithKind("Service"), meta.RESTScopeNamespace)
	mapper.Add(corev1.SchemeGroupVersion.WithKind("Pod"), meta.RESTScopeNamespace)
	mapper.Add(v1alpha1.GroupVersion.WithKind("Plugin"), meta.RESTScopeRoot)
	mapper.Add(v1alpha1.GroupVersion.WithKind("PluginChain"), meta.RESTScopeNamespace)
	mapper.Add(v1alpha1.GroupVersion.WithKind("PluginConfig"), meta.RESTScopeNamespace)
	mapper.Add(configv1alpha2.GroupVersion.WithKind("MeshConfig"), meta.RESTScopeNamespace)

	lists := map[string]kruntime.Object{
		"Namespace":    &corev1.NamespaceList{Items: values(objs.Namespaces)},
		"Plugin":       &v1alpha1.PluginList{Items: values(objs.Plugins)},
		"PluginChain":  &v1alpha1.PluginChainList{Items: values(objs.Chains)},
		"PluginConfig": &v1alpha1.PluginConfigList{Items: values(objs.Configs)},
		"MeshConfig":   &configv1alpha2.MeshConfigList{Items: values(objs.MeshConfigs)},
	}
	if services == nil {
		lists["Service"] = &corev1.ServiceList{Items: values(objs.ServiceList)}
	}
	c, err := cache.New(&rest.Config{Host: "http://127.0.0.1:1"}, cache.Options{
		Scheme:           scheme,
		Mapper:           mapper,
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject:         slim.ByObject(), // as the webhook's cache: its tests read what it keeps
		NewInformer: func(_ toolscache.ListerWatcher, obj kruntime.Object, resync time.Duration, indexers toolscache.Indexers) toolscache.SharedIndexInformer {
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
	r, _, err := informers.NewResolver(ctx, c, nil, injector.New(injector.DefaultOptions()), services)
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()
	if services != nil {
		go func() { _ = services.Start(ctx) }()
	}
	syncCtx, syncCancel := context.WithTimeout(ctx, 30*time.Second)
	defer syncCancel()
	if !c.WaitForCacheSync(syncCtx) {
		tb.Fatal("informer cache did not sync")
	}
	if services != nil && !toolscache.WaitForCacheSync(syncCtx.Done(), services.HasSynced) {
		tb.Fatal("the monitored namespaces' Service informers did not sync")
	}
	return c, r
}

func values[T any](ptrs []*T) []T {
	out := make([]T, len(ptrs))
	for i, p := range ptrs {
		out[i] = *p
	}
	return out
}

// memoryListWatch lists a fixed list and then watches forever without events.
type memoryListWatch struct{ list kruntime.Object }

func (l memoryListWatch) List(metav1.ListOptions) (kruntime.Object, error) {
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
