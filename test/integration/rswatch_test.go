package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
	"github.com/corsmesh/corsmesh/test/sandbox"
)

// TestReplicaSetsFollowMonitoredNamespaces checks, against the real API server and
// kube-controller-manager, that the PluginChain controller follows a pod without its
// sidecar to its Deployment (the chain's restart hint) through the ReplicaSets of the
// monitored namespaces, watched per namespace as metadata: the webhook never lists nor
// watches the ReplicaSets of the whole cluster, nor those of a namespace outside the mesh.
//
// As TestPodsFollowMonitoredNamespaces, it records the webhook's own requests: the
// controller manager watches every ReplicaSet too.
func TestReplicaSetsFollowMonitoredNamespaces(t *testing.T) {
	s := sb(t)
	ctx := testContext(t, 3*time.Minute)
	requests := &apiRequests{resource: "replicasets"}
	restartWebhook(t, ctx, s, requests.wrap)

	suffix := rand.String(5)
	app := corsApp{Namespace: "rswatch-" + suffix, App: "rswatch-web", Port: 8080, Origin: "https://rswatch.example"}
	outside := "rswatch-outside-" + suffix
	namespace(t, ctx, s, app.Namespace, true, nil)
	namespace(t, ctx, s, outside, false, nil)
	// Created before the chain that selects them: their pods run without the sidecar.
	for _, ns := range []string{app.Namespace, outside} {
		waitForServiceAccount(t, ctx, s.Clientset, ns)
		createDeployment(t, ctx, s, ns, app)
	}
	pod := deploymentPod(t, ctx, s, app.Namespace, app.App)
	requireNotInjected(t, pod)
	rs := metav1.GetControllerOf(pod)
	if rs == nil || rs.Kind != "ReplicaSet" {
		t.Fatalf("pod %s has controller %+v, want its ReplicaSet", pod.Name, rs)
	}

	app.install(t, ctx, s)
	want := "kubectl rollout restart -n " + app.Namespace + " deployment/" + app.App
	eventually(t, ctx, 60*time.Second, "the chain's restart hint naming the Deployment", func() error {
		var chain v1alpha1.PluginChain
		if err := s.Client.Get(ctx, client.ObjectKey{Namespace: app.Namespace, Name: app.App}, &chain); err != nil {
			return err
		}
		if chain.Status.RestartHint != want {
			return fmt.Errorf("restartHint %q, podsWithoutSidecar %d", chain.Status.RestartHint, chain.Status.PodsWithoutSidecar)
		}
		return nil
	})

	replicaSets := s.WebhookServer().ReplicaSets
	if obj, ok, err := replicaSets.Get(ctx, app.Namespace, rs.Name); err != nil || !ok || obj == nil {
		t.Errorf("ReplicaSet %s/%s not in the webhook's cache (held %t, %v); cached namespaces %v", app.Namespace, rs.Name, ok, err, replicaSets.Namespaces())
	}
	if replicaSets.Watches(outside) {
		t.Errorf("the ReplicaSets of the unmonitored namespace %s are cached", outside)
	}
	all := requests.all()
	watched := "/apis/apps/v1/namespaces/" + app.Namespace + "/replicasets"
	if !slices.ContainsFunc(all, func(r apiRequest) bool { return r.watch && r.path == watched }) {
		t.Errorf("no watch of %s among the webhook's ReplicaSet requests %v", watched, all)
	}
	for _, r := range all {
		if r.path == "/apis/apps/v1/replicasets" || strings.Contains(r.path, "/namespaces/"+outside+"/") {
			t.Errorf("the webhook reads ReplicaSets outside the mesh: %s", r)
		}
	}
}

// createDeployment creates a Deployment of one pod of the app in namespace ns.
func createDeployment(t *testing.T, ctx context.Context, s *sandbox.Sandbox, ns string, app corsApp) {
	t.Helper()
	pod := app.pod("")
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: app.App},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app.App}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: pod.Labels}, Spec: pod.Spec},
		},
	}
	if _, err := s.Clientset.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating Deployment %s/%s: %v", ns, app.App, err)
	}
}

// deploymentPod waits for the pod the controller manager creates for the app's Deployment.
func deploymentPod(t *testing.T, ctx context.Context, s *sandbox.Sandbox, ns, app string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	eventually(t, ctx, 60*time.Second, "the pod of Deployment "+ns+"/"+app, func() error {
		pods, err := s.Clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			return err
		}
		if len(pods.Items) == 0 {
			return fmt.Errorf("no pod yet")
		}
		pod = &pods.Items[0]
		return nil
	})
	return pod
}
