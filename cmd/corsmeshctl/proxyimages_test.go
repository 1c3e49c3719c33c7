package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
)

func webhookDeploymentInjecting(image string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "corsmesh-system", Name: webhookDeployment},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "webhook",
			Args: []string{"--mesh-name=osm", "--proxy-image=$(CORSMESH_PROXY_IMAGE)"},
			Env:  []corev1.EnvVar{{Name: "CORSMESH_PROXY_IMAGE", Value: image}},
		}}}}},
	}
}

var webhookLabels = map[string]string{"app.kubernetes.io/name": "corsmesh-webhook"}

// rollingOut is d with 2 replicas, old of them not yet of its current template.
func rollingOut(d *appsv1.Deployment, old int32) *appsv1.Deployment {
	d.Spec.Selector = &metav1.LabelSelector{MatchLabels: webhookLabels}
	d.Generation, d.Status.ObservedGeneration = 2, 2
	d.Status.Replicas, d.Status.UpdatedReplicas = 2, 2-old
	return d
}

// unobserved is d with 2 replicas and a template the Deployment controller has not seen.
func unobserved(d *appsv1.Deployment) *appsv1.Deployment {
	d = rollingOut(d, 0)
	d.Generation = 3
	return d
}

// terminatingWebhookPod is a replaced webhook replica in its preStop sleep.
func terminatingWebhookPod(name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Namespace: "corsmesh-system", Name: name, Labels: webhookLabels,
		// The fake client keeps an object being deleted only while a finalizer holds it.
		DeletionTimestamp: ptr.To(metav1.Now()), Finalizers: []string{"test.corsmesh.io/hold"},
	}}
}

// injectedPod is an injected pod whose proxy (a native sidecar) runs image, owned by owner.
func injectedPod(ns, name, image string, owner *metav1.OwnerReference, labels map[string]string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, Annotations: map[string]string{injector.AnnotationStatus: "{}"}},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: injector.InitContainerName, Image: "init"}, {Name: injector.ProxyContainerName, Image: image}},
			Containers:     []corev1.Container{{Name: "app", Image: "app"}},
		},
	}
	if owner != nil {
		p.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	return p
}

func TestCheckProxyImages(t *testing.T) {
	const (
		v1 = "ghcr.io/corsmesh/corsproxy:v0.1.0"
		v2 = "ghcr.io/corsmesh/corsproxy:v0.2.0"
	)
	monitored := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "pipy", Labels: map[string]string{injector.LabelMonitoredBy: "osm"}}}
	rs := &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "pipy-ok-v1-5d8f7c9b4", Controller: ptr.To(true)}
	sts := &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", Controller: ptr.To(true)}
	hash := map[string]string{appsv1.DefaultDeploymentUniqueLabelKey: "5d8f7c9b4"}
	tests := []struct {
		name   string
		objs   []client.Object
		status Status   // "" for no result
		want   []string // substrings of the one result
	}{
		{name: "no webhook Deployment (a webhook outside the cluster)", objs: []client.Object{monitored, injectedPod("pipy", "a", v1, rs, hash)}},
		{
			name:   "every pod current",
			objs:   []client.Object{monitored, webhookDeploymentInjecting(v2), injectedPod("pipy", "a", v2, rs, hash)},
			status: StatusOK,
			want:   []string{"1 injected pod(s) run the proxy the webhook injects (" + v2 + ")"},
		},
		{
			name: "after an upgrade",
			objs: []client.Object{monitored, webhookDeploymentInjecting(v2),
				injectedPod("pipy", "a", v1, rs, hash), injectedPod("pipy", "b", v1, rs, hash),
				injectedPod("pipy", "db-0", v1, sts, nil), injectedPod("pipy", "bare", v1, nil, nil),
				injectedPod("pipy", "new", v2, rs, hash)},
			status: StatusWarn,
			want: []string{
				"4 of 5 injected pod(s) run another proxy than the webhook injects (" + v2 + ")",
				"pipy/a (" + v1 + "), pipy/b (" + v1 + "), pipy/bare (" + v1 + "), pipy/db-0 (" + v1 + ")",
				"; restart them: kubectl rollout restart deployment/pipy-ok-v1 -n pipy; kubectl rollout restart statefulset/db -n pipy; recreate pod bare -n pipy",
			},
		},
		{
			name: "after an upgrade, while replaced webhook replicas still serve",
			objs: []client.Object{monitored, rollingOut(webhookDeploymentInjecting(v2), 1),
				terminatingWebhookPod("old-1"), injectedPod("pipy", "a", v1, rs, hash)},
			status: StatusWarn,
			want: []string{
				"1 of 1 injected pod(s) run another proxy",
				"2 replaced webhook replica(s) still admit pods with the previous settings; once they have exited, restart them: kubectl rollout restart deployment/pipy-ok-v1 -n pipy",
			},
		},
		{
			name:   "after an upgrade the Deployment controller has not seen yet",
			objs:   []client.Object{monitored, unobserved(webhookDeploymentInjecting(v2)), injectedPod("pipy", "a", v1, rs, hash)},
			status: StatusWarn,
			want:   []string{"2 replaced webhook replica(s) still admit pods"},
		},
		{
			name: "pods not injected and namespaces not monitored are not counted",
			objs: []client.Object{monitored, webhookDeploymentInjecting(v2),
				&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "pipy", Name: "plain"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}},
				injectedPod("elsewhere", "x", v1, nil, nil)},
			status: StatusOK,
			want:   []string{"0 injected pod(s)"},
		},
		{
			name:   "a Deployment without --proxy-image",
			objs:   []client.Object{monitored, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "corsmesh-system", Name: webhookDeployment}}},
			status: StatusWarn,
			want:   []string{"sets no --proxy-image"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := useFakeClient(t, tt.objs...)
			var got []Result
			checkProxyImages(context.Background(), c, DefaultCheckOptions(), func(s Status, format string, args ...any) {
				got = append(got, Result{Status: s, Message: fmt.Sprintf(format, args...)})
			})
			if tt.status == "" {
				if len(got) != 0 {
					t.Errorf("results %v, want none", got)
				}
				return
			}
			if len(got) != 1 || got[0].Status != tt.status {
				t.Fatalf("results %v, want one %s", got, tt.status)
			}
			for _, w := range tt.want {
				if !strings.Contains(got[0].Message, w) {
					t.Errorf("%q lacks %q", got[0].Message, w)
				}
			}
		})
	}
}
