package controllers

import (
	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
)

// SlimPod is the cache's transform for Pods: the controllers watch every pod of the
// cluster, and keep of each only what they and the injector read (metadata, the
// containers' names, ports and restart policies, hostNetwork, the phase and conditions).
// An injected pod is about three times smaller that way; the rest (commands, environment,
// probes, resources, volumes, container statuses) would only fill memory.
//
// The controllers patch pods with merge patches computed between a cached pod and a copy
// they changed, so what is dropped here never appears in a patch.
func SlimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // a tombstone: as it is
	}
	pod.ManagedFields = nil
	slimContainers(pod.Spec.InitContainers)
	slimContainers(pod.Spec.Containers)
	pod.Spec = corev1.PodSpec{
		InitContainers: pod.Spec.InitContainers,
		Containers:     pod.Spec.Containers,
		HostNetwork:    pod.Spec.HostNetwork,
	}
	pod.Status = corev1.PodStatus{
		Phase:      pod.Status.Phase,
		Conditions: pod.Status.Conditions,
	}
	return pod, nil
}

func slimContainers(cs []corev1.Container) {
	for i, c := range cs {
		cs[i] = corev1.Container{Name: c.Name, Ports: c.Ports, RestartPolicy: c.RestartPolicy}
	}
}

var _ toolscache.TransformFunc = SlimPod
