package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
)

// webhookDeployment is the webhook's Deployment in corsmesh's namespace (the manifests'
// and the chart's name).
const webhookDeployment = "corsmesh-webhook"

// checkProxyImages lists the injected pods whose proxy is not the image the webhook now
// injects (after an upgrade, until they are restarted) and the commands that restart them.
// Without the webhook's Deployment (a webhook run outside the cluster) it says nothing.
func checkProxyImages(ctx context.Context, c client.Client, o CheckOptions, add addFunc) {
	var d appsv1.Deployment
	err := c.Get(ctx, types.NamespacedName{Namespace: o.Namespace, Name: webhookDeployment}, &d)
	if apierrors.IsNotFound(err) {
		return
	}
	if err != nil {
		add(StatusWarn, "proxy images: Deployment %s/%s: %v", o.Namespace, webhookDeployment, err)
		return
	}
	current := injectedProxyImage(&d)
	if current == "" {
		add(StatusWarn, "proxy images: Deployment %s/%s sets no --proxy-image: cannot tell which image it injects", o.Namespace, webhookDeployment)
		return
	}
	var nss corev1.NamespaceList
	if err := c.List(ctx, &nss, client.MatchingLabels{injector.LabelMonitoredBy: o.Mesh}); err != nil {
		add(StatusWarn, "proxy images: listing namespaces: %v", err)
		return
	}
	var injected int
	var stale []string
	restarts := map[string]bool{}
	for _, ns := range nss.Items {
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.InNamespace(ns.Name)); err != nil {
			add(StatusWarn, "proxy images: listing pods in %s: %v", ns.Name, err)
			continue
		}
		for i := range pods.Items {
			p := &pods.Items[i]
			image, ok := proxyImage(p)
			if !ok || p.DeletionTimestamp != nil {
				continue
			}
			injected++
			if image == current {
				continue
			}
			stale = append(stale, fmt.Sprintf("%s/%s (%s)", p.Namespace, p.Name, image))
			restarts[restartCommand(p)] = true
		}
	}
	if len(stale) == 0 {
		add(StatusOK, "%d injected pod(s) run the proxy the webhook injects (%s)", injected, current)
		return
	}
	slices.Sort(stale)
	cmds := make([]string, 0, len(restarts))
	for cmd := range restarts {
		cmds = append(cmds, cmd)
	}
	slices.Sort(cmds)
	when := "restart them"
	if n, err := replacedReplicas(ctx, c, &d); err != nil {
		when = fmt.Sprintf("restart them once the webhook's rollout is over (%v)", err)
	} else if n > 0 {
		// They serve on through their preStop sleep, and the API server keeps sending them
		// admissions over the connections it holds: a pod restarted now can get the old proxy.
		when = fmt.Sprintf("%d replaced webhook replica(s) still admit pods with the previous settings; once they have exited, restart them", n)
	}
	add(StatusWarn, "%d of %d injected pod(s) run another proxy than the webhook injects (%s): %s; %s: %s",
		len(stale), injected, current, strings.Join(stale, ", "), when, strings.Join(cmds, "; "))
}

// replacedReplicas counts the webhook's replicas of a previous version that may still
// admit pods: those its Deployment has not replaced yet, and those terminating.
func replacedReplicas(ctx context.Context, c client.Client, d *appsv1.Deployment) (int, error) {
	n := int(d.Status.Replicas - d.Status.UpdatedReplicas)
	if d.Status.ObservedGeneration < d.Generation {
		// The Deployment controller has not seen the new template yet: every replica is old.
		n = int(d.Status.Replicas)
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return 0, fmt.Errorf("Deployment %s/%s: selector: %w", d.Namespace, d.Name, err)
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(d.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return 0, fmt.Errorf("listing the webhook's pods: %w", err)
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			n++
		}
	}
	return max(n, 0), nil
}

// injectedProxyImage is the image the webhook's Deployment injects: its --proxy-image
// argument, with $(VAR) references expanded from the container's env as the kubelet does.
func injectedProxyImage(d *appsv1.Deployment) string {
	for _, ctr := range d.Spec.Template.Spec.Containers {
		for _, a := range ctr.Args {
			v, ok := strings.CutPrefix(a, "--proxy-image=")
			if !ok {
				continue
			}
			for _, e := range ctr.Env {
				v = strings.ReplaceAll(v, "$("+e.Name+")", e.Value)
			}
			return v
		}
	}
	return ""
}

// proxyImage is the image of an injected pod's proxy container (a native sidecar or a
// regular container).
func proxyImage(p *corev1.Pod) (string, bool) {
	if _, ok := p.Annotations[injector.AnnotationStatus]; !ok {
		return "", false
	}
	for _, ctr := range slices.Concat(p.Spec.InitContainers, p.Spec.Containers) {
		if ctr.Name == injector.ProxyContainerName {
			return ctr.Image, true
		}
	}
	return "", false
}

// restartCommand restarts the workload that owns p, or recreates a bare pod.
func restartCommand(p *corev1.Pod) string {
	for _, ref := range p.OwnerReferences {
		if ref.Controller == nil || !*ref.Controller {
			continue
		}
		switch ref.Kind {
		case "ReplicaSet":
			// A Deployment's ReplicaSet is named <deployment>-<pod-template-hash>.
			if hash := p.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; hash != "" {
				if name, ok := strings.CutSuffix(ref.Name, "-"+hash); ok {
					return fmt.Sprintf("kubectl rollout restart deployment/%s -n %s", name, p.Namespace)
				}
			}
		case "StatefulSet", "DaemonSet":
			return fmt.Sprintf("kubectl rollout restart %s/%s -n %s", strings.ToLower(ref.Kind), ref.Name, p.Namespace)
		}
		return fmt.Sprintf("kubectl delete pod %s -n %s (owned by %s %s, which recreates it)", p.Name, p.Namespace, ref.Kind, ref.Name)
	}
	return fmt.Sprintf("recreate pod %s -n %s (it has no controller)", p.Name, p.Namespace)
}
