package v1alpha2_test

import (
	"os"
	"slices"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	configv1alpha2 "github.com/corsmesh/corsmesh/injector/api/config/v1alpha2"
)

// TestCRDKeepsOSMEdgeNames checks the generated CRD against osm-edge's own
// (cmd/osm-bootstrap/crds/config_meshconfig.yaml): the same names, scope and served
// versions, so `kubectl patch meshconfig osm-mesh-config` and osm-edge's manifests work,
// and a schema that keeps the fields corsmesh does not read.
func TestCRDKeepsOSMEdgeNames(t *testing.T) {
	b, err := os.ReadFile("../../../../manifests/crd/config.openservicemesh.io_meshconfigs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(b, &crd); err != nil {
		t.Fatal(err)
	}
	n := crd.Spec.Names
	if crd.Name != "meshconfigs.config.openservicemesh.io" || crd.Spec.Group != configv1alpha2.GroupName ||
		n.Kind != "MeshConfig" || n.Plural != "meshconfigs" || n.Singular != "meshconfig" ||
		!slices.Equal(n.ShortNames, []string{"meshconfig"}) || crd.Spec.Scope != apiextensionsv1.NamespaceScoped {
		t.Errorf("CRD %s: group %s, names %+v, scope %s: want osm-edge's", crd.Name, crd.Spec.Group, n, crd.Spec.Scope)
	}
	var served []string
	for _, v := range crd.Spec.Versions {
		if !v.Served {
			continue
		}
		served = append(served, v.Name)
		if v.Storage != (v.Name == "v1alpha2") {
			t.Errorf("version %s: storage %v, want only v1alpha2 stored", v.Name, v.Storage)
		}
		spec := v.Schema.OpenAPIV3Schema.Properties["spec"]
		flags := spec.Properties["featureFlags"]
		if !ptrTrue(spec.XPreserveUnknownFields) || !ptrTrue(flags.XPreserveUnknownFields) {
			t.Errorf("version %s: spec and spec.featureFlags must preserve unknown fields (osm-edge's other settings)", v.Name)
		}
		if flags.Properties["enablePluginPolicy"].Type != "boolean" {
			t.Errorf("version %s: spec.featureFlags.enablePluginPolicy is %q, want boolean", v.Name, flags.Properties["enablePluginPolicy"].Type)
		}
	}
	if !slices.Equal(served, []string{"v1alpha1", "v1alpha2"}) {
		t.Errorf("served versions %v, want osm-edge's v1alpha1 and v1alpha2", served)
	}
}

func ptrTrue(b *bool) bool { return b != nil && *b }
