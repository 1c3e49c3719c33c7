package node

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/corsmesh/corsmesh/test/sandbox"
)

// Go runs the package's tests file by file in name order: this file sorts last.

// TestUninstall (last) removes corsmesh as the README says (kubectl delete -k): no object of
// corsmesh remains, and a pod created afterwards in a monitored namespace is admitted
// untouched (a webhook configuration left behind would fail it: failurePolicy Fail).
func TestUninstall(t *testing.T) {
	s := installed(t)
	ctx := testContext(t, 5*time.Minute)
	// The README's kubectl uninstall: the webhook configurations first, so that no pod
	// creation is refused meanwhile; then the rest (the CRDs go before the MeshConfig they
	// hold, hence --ignore-not-found).
	s.MustKubectl(t, ctx, "delete", "mutatingwebhookconfiguration", "corsmesh-webhook")
	s.MustKubectl(t, ctx, "delete", "validatingwebhookconfiguration", "corsmesh-policies")
	s.MustKubectl(t, ctx, "delete", "-k", sandbox.DefaultOverlay, "--ignore-not-found", "--wait=true", "--timeout=3m")
	var left []string
	for _, query := range [][]string{
		{"get", "mutatingwebhookconfigurations,validatingwebhookconfigurations,clusterroles,clusterrolebindings", "-o", "name"},
		{"get", "customresourcedefinitions", "-o", "name"},
		{"get", "namespaces", "-o", "name"},
		{"get", "all,roles,rolebindings,serviceaccounts,certificates,issuers,secrets,configmaps", "-A", "-l", "app.kubernetes.io/part-of=corsmesh", "-o", "name"},
	} {
		for _, name := range strings.Fields(s.MustKubectl(t, ctx, query...)) {
			if strings.Contains(name, "corsmesh") || strings.Contains(name, "flomesh.io") || strings.Contains(name, "openservicemesh.io") {
				left = append(left, name)
			}
		}
	}
	if len(left) > 0 {
		t.Errorf("left after kubectl delete -k %s: %s", sandbox.DefaultOverlay, strings.Join(left, ", "))
	}
	ns := "e2e-after"
	monitoredNamespace(t, ctx, s, ns)
	pod := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: after, namespace: %s, labels: {app: web}}
spec:
  schedulingGates: [{name: corsmesh.io/e2e-hold}]
  containers:
  - {name: pipy, image: flomesh/pipy:latest, ports: [{containerPort: 8080}]}
`, ns)
	if out, stderr, err := s.KubectlIO(ctx, []byte(pod), "create", "-f", "-"); err != nil {
		t.Fatalf("creating a pod after the uninstall: %v\n%s%s", err, out, stderr)
	}
	if got := s.MustKubectl(t, ctx, "get", "pod", "-n", ns, "after", "-o", "jsonpath={.spec.initContainers[*].name}{.metadata.annotations}"); strings.Contains(got, "corsproxy") || strings.Contains(got, "corsmesh.io") {
		t.Errorf("a pod created after the uninstall carries corsmesh: %s", got)
	}
}
