package controllers

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/webhook/informers"
)

// PodCache holds the pods of the namespaces the mesh monitors, one informer per namespace
// started and stopped with its label (informers.NamespacedInformer): in a cluster most pods
// are outside the mesh, and caching them all made the webhook's CPU and memory follow the
// whole cluster's pod churn. The controllers watch pods through it and read pods of other
// namespaces live.
type PodCache interface {
	cache.Informer
	// Watches reports whether the namespace's pods are cached.
	Watches(namespace string) bool
	// Namespaces are those whose pods are cached.
	Namespaces() []string
	// List, Get and ByIndex read a namespace's cached pods; ok is false when no synced
	// informer holds the namespace (the caller reads the API server).
	List(ctx context.Context, namespace string) (objs []any, ok bool)
	Get(ctx context.Context, namespace, name string) (obj any, ok bool, err error)
	ByIndex(ctx context.Context, namespace, index, value string) (objs []any, ok bool, err error)
	AddIndexers(toolscache.Indexers) error
}

// podReader reads the pods the controllers act on. The pods it lists are shared with the
// cache: read them, never modify them.
type podReader interface {
	// Pod reads one pod (nil when there is none) as a copy the caller may change.
	Pod(ctx context.Context, key types.NamespacedName) (*corev1.Pod, error)
	// Pods lists the pods of a namespace that a selector matches.
	Pods(ctx context.Context, namespace string, sel labels.Selector) ([]*corev1.Pod, error)
	// Injected lists the injected pods of a namespace ("": of all) that the pods' cache
	// holds: the only ones a policy change can affect, since the pods of a namespace the
	// mesh does not monitor pass traffic through whatever the policy.
	Injected(ctx context.Context, namespace string) ([]*corev1.Pod, error)
}

// readerPods reads through a client.Reader: the API server (the manager's APIReader), or a
// test's fake client. It finds injected pods by their injector.LabelInjected label, which
// the API server selects: pods injected before that label existed are not among them.
type readerPods struct{ reader client.Reader }

func (r readerPods) Pod(ctx context.Context, key types.NamespacedName) (*corev1.Pod, error) {
	var pod corev1.Pod
	if err := r.reader.Get(ctx, key, &pod); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading pod %s: %w", key, err)
	}
	return &pod, nil
}

func (r readerPods) Pods(ctx context.Context, namespace string, sel labels.Selector) ([]*corev1.Pod, error) {
	return r.list(ctx, nil, client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: sel})
}

func (r readerPods) Injected(ctx context.Context, namespace string) ([]*corev1.Pod, error) {
	// A pod author can set the label too: the status annotation says what is injected.
	return r.list(ctx, isInjected, client.InNamespace(namespace), client.MatchingLabels{injector.LabelInjected: "true"})
}

// list pages through the pods (a large namespace's, or all injected pods), keeping those
// keep accepts (nil: all).
func (r readerPods) list(ctx context.Context, keep func(client.Object) bool, opts ...client.ListOption) ([]*corev1.Pod, error) {
	var out []*corev1.Pod
	page := &client.ListOptions{Limit: 500}
	for {
		var pods corev1.PodList
		if err := r.reader.List(ctx, &pods, append(opts, page, client.UnsafeDisableDeepCopy)...); err != nil {
			return nil, err
		}
		for i := range pods.Items {
			if keep == nil || keep(&pods.Items[i]) {
				out = append(out, &pods.Items[i])
			}
		}
		if pods.Continue == "" {
			return out, nil
		}
		page.Continue = pods.Continue
	}
}

// wholeNamespaces finds a namespace's injected pods by listing all its pods: also those
// injected before LabelInjected existed, at the cost of the whole namespace.
type wholeNamespaces struct{ readerPods }

func (w wholeNamespaces) Injected(ctx context.Context, namespace string) ([]*corev1.Pod, error) {
	if namespace == "" {
		return nil, errors.New("listing every pod of the cluster") // the cost this file avoids
	}
	return w.list(ctx, isInjected, client.InNamespace(namespace))
}

// cachedPods reads the pods of the namespaces the cache holds from it, uncopied (a
// PluginChain's status is reconciled about once a second while its pods are created, and
// copying each pod was most of that), and those of other namespaces live.
type cachedPods struct {
	cache PodCache
	live  readerPods
}

func (c cachedPods) Pod(ctx context.Context, key types.NamespacedName) (*corev1.Pod, error) {
	obj, ok, err := c.cache.Get(ctx, key.Namespace, key.Name)
	switch {
	case err != nil:
		return nil, fmt.Errorf("reading pod %s from the cache: %w", key, err)
	case !ok:
		return c.live.Pod(ctx, key)
	case obj == nil:
		return nil, nil
	}
	pod, isPod := obj.(*corev1.Pod)
	if !isPod {
		return nil, fmt.Errorf("the pods' cache holds a %T", obj)
	}
	return pod.DeepCopy(), nil
}

func (c cachedPods) Pods(ctx context.Context, namespace string, sel labels.Selector) ([]*corev1.Pod, error) {
	objs, ok := c.cache.List(ctx, namespace)
	if !ok {
		return c.live.Pods(ctx, namespace, sel)
	}
	pods, err := informers.Typed[corev1.Pod](objs)
	if err != nil {
		return nil, err
	}
	out := pods[:0]
	for _, pod := range pods {
		if sel.Matches(labels.Set(pod.Labels)) {
			out = append(out, pod)
		}
	}
	return out, nil
}

func (c cachedPods) Injected(ctx context.Context, namespace string) ([]*corev1.Pod, error) {
	if namespace != "" {
		return c.injectedIn(ctx, namespace)
	}
	var out []*corev1.Pod
	for _, ns := range c.cache.Namespaces() {
		pods, err := c.injectedIn(ctx, ns)
		if err != nil {
			return nil, err
		}
		out = append(out, pods...)
	}
	return out, nil
}

// injectedIn reads a namespace's injected pods through IndexPodInjected; those of a
// namespace whose informer has not synced yet are listed live.
func (c cachedPods) injectedIn(ctx context.Context, namespace string) ([]*corev1.Pod, error) {
	if !c.cache.Watches(namespace) {
		return nil, nil
	}
	objs, ok, err := c.cache.ByIndex(ctx, namespace, IndexPodInjected, "true")
	switch {
	case err != nil:
		return nil, fmt.Errorf("injected pods of namespace %s: %w", namespace, err)
	case !ok:
		return c.live.Injected(ctx, namespace)
	}
	return informers.Typed[corev1.Pod](objs)
}

// podIndexers are the pods' cache's indexes: IndexPodInjected.
func podIndexers() toolscache.Indexers {
	return toolscache.Indexers{IndexPodInjected: func(obj any) ([]string, error) {
		pod, ok := obj.(*corev1.Pod)
		if !ok {
			return nil, nil
		}
		return indexInjectedPod(pod), nil
	}}
}
