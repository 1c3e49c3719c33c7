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
				"kubectl rollout restart deployment/pipy-ok-v1 -n pipy; kubectl rollout restart statefulset/db -n pipy; recreate pod bare -n pipy",
			},
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
