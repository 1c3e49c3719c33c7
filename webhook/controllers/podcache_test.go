package controllers

import (
	"testing"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/webhook/internal/webhooktest"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// slimPod keeps exactly what the controllers and the injector read of a pod.
func TestSlimPodKeepsWhatIsRead(t *testing.T) {
	meta := metav1.ObjectMeta{
		Namespace: "pipy", Name: "pipy-ok-v1-abc", UID: "u1", ResourceVersion: "7",
		Labels:          map[string]string{"app": "pipy-ok"},
		Annotations:     map[string]string{"corsmesh.io/status": "{}", "corsmesh.io/cors-config": "{}"},
		OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "pipy-ok-v1", Controller: ptr.To(true)}},
		ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kubelet"}},
	}
	full := &corev1.Pod{
		ObjectMeta: meta,
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{
				Name: "corsproxy", Image: "corsproxy:1", Args: []string{"--config=x"},
				RestartPolicy:  ptr.To(corev1.ContainerRestartPolicyAlways),
				Ports:          []corev1.ContainerPort{{Name: "corsproxy-admin", ContainerPort: 15000}},
				ReadinessProbe: &corev1.Probe{PeriodSeconds: 1},
			}},
			Containers: []corev1.Container{{
				Name: "pipy", Image: "flomesh/pipy", Command: []string{"pipy"},
				Env:   []corev1.EnvVar{{Name: "A", Value: "b"}},
				Ports: []corev1.ContainerPort{{Name: "pipy", ContainerPort: 8080}},
			}},
			Volumes:            []corev1.Volume{{Name: "data"}},
			HostNetwork:        true,
			ServiceAccountName: "pipy",
		},
		Status: corev1.PodStatus{
			Phase:             corev1.PodRunning,
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			PodIP:             "10.0.0.1",
			ContainerStatuses: []corev1.ContainerStatus{{Name: "pipy", Ready: true}},
		},
	}
	got, err := SlimPod(full.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	wantMeta := *meta.DeepCopy()
	wantMeta.ManagedFields = nil
	want := &corev1.Pod{
		ObjectMeta: wantMeta,
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "corsproxy", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways), Ports: []corev1.ContainerPort{{Name: "corsproxy-admin", ContainerPort: 15000}}}},
			Containers:     []corev1.Container{{Name: "pipy", Ports: []corev1.ContainerPort{{Name: "pipy", ContainerPort: 8080}}}},
			HostNetwork:    true,
		},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
	if !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("slimPod:\n got %+v\nwant %+v", got, want)
	}

	// The injector decides the same for the slim pod as for the full one.
	cluster := webhooktest.SeedCluster(t)
	r := injector.NewResolver(webhooktest.Injector(), cluster, injector.ResolverOptions{})
	for name, p := range map[string]*corev1.Pod{"full": full, "slim": got.(*corev1.Pod)} {
		p = p.DeepCopy()
		p.Annotations, p.Labels = nil, map[string]string{"app": "pipy-ok", "version": "v1"}
		p.Spec.HostNetwork, p.Spec.InitContainers = false, nil
		d, err := r.Decide(t.Context(), p, "pipy", injector.ForAdmission)
		if err != nil || !d.Inject || len(d.Ports) != 1 || d.Ports[0] != 8080 {
			t.Errorf("decision for the %s pod: %+v, %v", name, d, err)
		}
	}

	// Anything else (a tombstone) passes unchanged.
	tomb := toolscache.DeletedFinalStateUnknown{Key: "pipy/gone"}
	if out, _ := SlimPod(tomb); out != any(tomb) {
		t.Errorf("a tombstone was changed")
	}
}
