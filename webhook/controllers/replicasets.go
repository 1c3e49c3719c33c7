package controllers

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ReplicaSetCache holds the metadata of the ReplicaSets of the namespaces the mesh
// monitors, one informer per namespace (informers.NamespacedInformer, on the leader): the
// PluginChain controller follows a pod's ReplicaSet to its Deployment, and the pods it asks
// about are all in monitored namespaces. Through the manager's cache the first such read
// started a watch of every ReplicaSet of the cluster.
type ReplicaSetCache interface {
	// Get reads a ReplicaSet's metadata (*metav1.PartialObjectMetadata; nil: none); ok is
	// false when no synced informer holds the namespace (the caller reads the API server).
	Get(ctx context.Context, namespace, name string) (obj any, ok bool, err error)
}

// replicaSetController reads the controller of a ReplicaSet (nil: it has none, or there
// is no such ReplicaSet) from cache, and from live where cache does not hold it: a
// namespace not cached (yet), or a ReplicaSet the cache has not heard of yet (a pod's
// ReplicaSet is created before it, so this is rare; a hint naming the pod instead of
// its Deployment would stay until the chain's pods change again).
func replicaSetController(ctx context.Context, cache ReplicaSetCache, live client.Reader, key types.NamespacedName) (*metav1.OwnerReference, error) {
	if cache != nil {
		obj, ok, err := cache.Get(ctx, key.Namespace, key.Name)
		if err != nil {
			return nil, fmt.Errorf("reading ReplicaSet %s from the cache: %w", key, err)
		}
		if ok && obj != nil {
			rs, isMeta := obj.(*metav1.PartialObjectMetadata)
			if !isMeta {
				return nil, fmt.Errorf("the ReplicaSets' cache holds a %T", obj)
			}
			return metav1.GetControllerOf(rs), nil
		}
	}
	rs := &metav1.PartialObjectMetadata{}
	rs.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))
	switch err := live.Get(ctx, key, rs); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("getting ReplicaSet %s: %w", key, err)
	}
	return metav1.GetControllerOf(rs), nil
}
