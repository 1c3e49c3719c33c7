package main

import (
	"context"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/corsmesh/corsmesh/injector"
)

// readDebugCORS reads a pod's proxy /debug/cors through the API server's pod proxy
// (pods/proxy), so it needs neither a port-forward nor network access to the pod. Tests
// replace it.
var readDebugCORS = func(ctx context.Context, kubeconfig string, pod *corev1.Pod) ([]byte, error) {
	port := ""
	for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
		for _, p := range c.Ports {
			if p.Name == injector.AdminPortName {
				port = strconv.Itoa(int(p.ContainerPort))
			}
		}
	}
	if port == "" {
		return nil, fmt.Errorf("the pod has no %s port (not injected?)", injector.AdminPortName)
	}
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return cs.CoreV1().Pods(pod.Namespace).ProxyGet("http", pod.Name, port, "debug/cors", nil).DoRaw(ctx)
}
