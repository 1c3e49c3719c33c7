package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// podLister lists the pods of a namespace that a selector matches. The pods are shared
// with the cache: read them, never modify them.
type podLister interface {
	Pods(ctx context.Context, namespace string, sel labels.Selector) ([]*corev1.Pod, error)
}

// readerPods lists through a client.Reader (a test's fake client, or a cache whose pod
// informer is not one shared informer).
type readerPods struct{ reader client.Reader }

func (r readerPods) Pods(ctx context.Context, namespace string, sel labels.Selector) ([]*corev1.Pod, error) {
	var pods corev1.PodList
	if err := r.reader.List(ctx, &pods, client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: sel}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	out := make([]*corev1.Pod, len(pods.Items))
	for i := range pods.Items {
		out[i] = &pods.Items[i]
	}
	return out, nil
}

// informerPods lists straight from the pod informer's store by its namespace index. The
// cache's List copies each pod into the list it returns, even without deep copies: with
// 1,000 pods that copy was two thirds of a PluginChain status reconcile, and a chain's
// status is reconciled about once a second while its pods are being created.
type informerPods struct{ indexer toolscache.Indexer }

func (p informerPods) Pods(_ context.Context, namespace string, sel labels.Selector) ([]*corev1.Pod, error) {
	objs, err := p.indexer.ByIndex(toolscache.NamespaceIndex, namespace)
	if err != nil {
		return nil, fmt.Errorf("pods of namespace %s: %w", namespace, err)
	}
	var out []*corev1.Pod
	for _, o := range objs {
		pod, ok := o.(*corev1.Pod)
		if !ok {
			return nil, fmt.Errorf("the pod informer holds a %T", o)
		}
		if sel.Matches(labels.Set(pod.Labels)) {
			out = append(out, pod)
		}
	}
	return out, nil
}

// cachePods reads the cache's pod informer store when it is one shared informer indexed
// by namespace, and otherwise through reader.
func cachePods(ctx context.Context, c cache.Cache, reader client.Reader) (podLister, error) {
	inf, err := c.GetInformer(ctx, &corev1.Pod{})
	if err != nil {
		return nil, fmt.Errorf("pod informer: %w", err)
	}
	if shared, ok := inf.(toolscache.SharedIndexInformer); ok {
		if _, indexed := shared.GetIndexer().GetIndexers()[toolscache.NamespaceIndex]; indexed {
			return informerPods{indexer: shared.GetIndexer()}, nil
		}
	}
	return readerPods{reader: reader}, nil
}
