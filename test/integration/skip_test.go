package integration

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/corsmesh/corsmesh/injector"
)

// TestNotInjected checks the pods corsmesh must leave alone, each next to a positive
// control: the same app, chain and policy inject an ordinary pod.
func TestNotInjected(t *testing.T) {
	s := sb(t)
	ctx := testContext(t, 2*time.Minute)
	cs, _, warns := clients(t, s)

	const monitored, unmonitored, restricted = "skip-monitored", "skip-unmonitored", "skip-restricted"
	namespace(t, ctx, s, monitored, true, nil)
	namespace(t, ctx, s, unmonitored, false, nil)
	namespace(t, ctx, s, restricted, true, map[string]string{injector.LabelPodSecurityEnforce: "restricted"})
	apps := map[string]corsApp{}
	for _, ns := range []string{monitored, unmonitored, restricted} {
		app := corsApp{Namespace: ns, App: "web-" + ns, Port: 8080, Origin: "https://app.example"}
		app.install(t, ctx, s)
		apps[ns] = app
	}

	create := func(t *testing.T, pod *corev1.Pod) *corev1.Pod {
		t.Helper()
		warns.reset()
		stored, err := cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating pod %s/%s: %v", pod.Namespace, pod.Name, err)
		}
		if w := warns.all(); len(w) > 0 {
			t.Logf("warnings: %q", w)
		}
		return stored
	}

	t.Run("control: an ordinary pod is injected", func(t *testing.T) {
		stored := create(t, apps[monitored].pod("control"))
		requireInjected(t, stored, 8080)
	})

	t.Run("pod annotated sidecar-injection disabled", func(t *testing.T) {
		pod := apps[monitored].pod("opted-out")
		pod.Annotations = map[string]string{injector.AnnotationSidecarInjection: "disabled"}
		stored := create(t, pod)
		requireNotInjected(t, stored)
		// Asked for: no warning.
		if w := warns.containing("corsmesh"); len(w) > 0 {
			t.Errorf("warnings for an opted-out pod: %q", w)
		}
	})

	t.Run("namespace not monitored", func(t *testing.T) {
		stored := create(t, apps[unmonitored].pod("unmonitored"))
		requireNotInjected(t, stored)
		if w := warns.containing("corsmesh"); len(w) > 0 {
			t.Errorf("warnings for a pod of an unmonitored namespace: %q", w)
		}
	})

	t.Run("hostNetwork pod", func(t *testing.T) {
		pod := apps[monitored].pod("host-network")
		pod.Spec.HostNetwork = true
		stored := create(t, pod)
		requireNotInjected(t, stored)
		// Selected, yet skipped: the user is told why.
		if len(warns.containing("host")) == 0 {
			t.Errorf("no admission warning about the host network; warnings %q", warns.all())
		}
	})

	t.Run("namespace enforcing the restricted Pod Security Standard", func(t *testing.T) {
		// A pod the restricted level admits, so that what decides is corsmesh: injecting
		// NET_ADMIN would get the pod rejected by PodSecurity.
		pod := apps[restricted].pod("restricted")
		pod.Spec.SecurityContext = &corev1.PodSecurityContext{
			RunAsNonRoot:   ptr.To(true),
			RunAsUser:      ptr.To[int64](1000),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		}
		pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		}
		stored := create(t, pod)
		requireNotInjected(t, stored)
		netAdmin := warns.containing("NET_ADMIN")
		if len(netAdmin) == 0 {
			t.Fatalf("no admission warning mentioning NET_ADMIN; warnings %q", warns.all())
		}
		if !strings.Contains(strings.Join(netAdmin, "\n"), "restricted") {
			t.Errorf("the warning does not name the enforced level: %q", netAdmin)
		}
	})
}
