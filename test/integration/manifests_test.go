package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/corsmesh/corsmesh/test/sandbox"
)

// TestManifestsDefaultOverlay renders manifests/overlays/default (what `kubectl apply -k`
// installs on a cluster) and server-side dry-run applies every object to the API server,
// with cert-manager's CRDs installed: the API server validates each against its schema
// (CRDs, cert-manager resources, RBAC, the Deployment, the webhook configurations) and
// runs admission, storing nothing.
//
// The sandbox already runs the local overlay: the objects the overlays share are applied
// with its field manager, as an upgrade from one overlay to the other would be.
func TestManifestsDefaultOverlay(t *testing.T) {
	s := sb(t)
	ctx := testContext(t, time.Minute)
	rendered, err := s.Kustomize(ctx, "manifests/overlays/default")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := sandbox.DecodeYAML(rendered)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, obj := range objs {
		kinds = append(kinds, obj.GetKind())
	}
	for _, want := range []string{"CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
		"Deployment", "Service", "PodDisruptionBudget", "Issuer", "Certificate", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
		if !slices.Contains(kinds, want) {
			t.Errorf("the default overlay renders no %s (kinds: %v)", want, kinds)
		}
	}

	// One object at a time, so that every rejection is reported.
	for _, obj := range objs {
		name := fmt.Sprintf("%s %s", obj.GetKind(), strings.TrimPrefix(obj.GetNamespace()+"/"+obj.GetName(), "/"))
		applied := obj.DeepCopy()
		if err := s.ApplyObjects(ctx, []*unstructured.Unstructured{applied}, sandbox.ApplyOptions{DryRun: true}); err != nil {
			t.Errorf("%s: rejected: %v", name, err)
			continue
		}
		if applied.GetUID() == "" {
			t.Errorf("%s: the dry run returned no object", name)
		}
	}
	t.Logf("%d objects accepted by a server-side dry run", len(objs))
}
