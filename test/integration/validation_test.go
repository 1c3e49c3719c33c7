package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/test/sandbox"
)

// TestPolicyValidation checks the validating webhook through the API server: an invalid
// PluginConfig is rejected with every bad field named by its path, and the guide's
// (risky, but valid) one is accepted with warnings.
func TestPolicyValidation(t *testing.T) {
	s := sb(t)
	ctx := testContext(t, time.Minute)
	_, c, warns := clients(t, s)
	namespace(t, ctx, s, "validation", false, nil)

	t.Run("invalid PluginConfig is rejected naming each field", func(t *testing.T) {
		objs, err := sandbox.DecodeYAML([]byte(`apiVersion: plugin.flomesh.io/v1alpha1
kind: PluginConfig
metadata:
  name: invalid
  namespace: validation
spec:
  plugin: cors-policy
  destinationRefs:
  - kind: Service
    name: web
    namespace: validation
  config:
    allowOrigins:
    - regex: "http(s://broken"
    - exact: http://ok.example
    maxAge: forever
    allowOrigin:
    - exact: http://typo.example
`))
		if err != nil {
			t.Fatal(err)
		}
		err = c.Create(ctx, objs[0])
		if err == nil {
			t.Fatal("an invalid PluginConfig was accepted")
		}
		if !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) {
			t.Errorf("error %v: want Invalid (or Forbidden, a denied admission)", err)
		}
		msg := err.Error()
		for _, field := range []string{
			"spec.config.allowOrigins[0].regex",
			"spec.config.maxAge",
			"spec.config.allowOrigin", // the unknown field, by its own name
		} {
			if !strings.Contains(msg, field) {
				t.Errorf("the rejection does not name %s:\n%s", field, msg)
			}
		}
		if strings.Contains(msg, "allowOrigins[1]") {
			t.Errorf("the rejection names the valid entry allowOrigins[1]:\n%s", msg)
		}
		var stored unstructured.Unstructured
		stored.SetGroupVersionKind(objs[0].GroupVersionKind())
		if err := s.Client.Get(ctx, client.ObjectKey{Namespace: "validation", Name: "invalid"}, &stored); !apierrors.IsNotFound(err) {
			t.Errorf("the rejected PluginConfig is stored (get: %v)", err)
		}
	})

	t.Run("the guide's PluginConfig is accepted with warnings", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(s.RepoRoot, "manifests", "samples", "pluginconfig.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		objs, err := sandbox.DecodeYAML(data)
		if err != nil {
			t.Fatal(err)
		}
		obj := objs[0]
		obj.SetNamespace("validation")
		obj.SetName("seed")
		warns.reset()
		// A dry run: validated and admitted exactly as a create, stored nowhere.
		if err := c.Create(ctx, obj, client.DryRunAll); err != nil {
			t.Fatalf("the guide's PluginConfig was rejected: %v", err)
		}
		got := warns.all()
		t.Logf("warnings: %q", got)
		for _, field := range []string{
			"spec.config.allowOrigins[0].regex",  // http.*://www.test.cn: unescaped dots
			"spec.config.allowOrigins[2].prefix", // http://www.bbb.com: no host boundary
		} {
			if len(warns.containing(field)) == 0 {
				t.Errorf("no warning naming %s", field)
			}
		}
	})
}
