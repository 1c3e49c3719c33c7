package v1alpha1

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/util/jsonpath"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"
	"sigs.k8s.io/yaml"
)

const crdDir = "../../../manifests/crd"

type column struct{ name, typ, jsonPath string }

const acceptedPath = `.status.conditions[?(@.type=="Accepted")].status`

var crdTests = []struct {
	file      string
	kind      string
	plural    string
	scope     apiextensionsv1.ResourceScope
	shortName string
	columns   []column
	seed      string
	// want maps printer column names to their value on the seed object
	// (with an Accepted=True condition and a status filled in).
	want map[string]string
}{
	{
		file: "plugin.flomesh.io_plugins.yaml", kind: "Plugin", plural: "plugins",
		scope: apiextensionsv1.ClusterScoped, shortName: "pi", seed: "plugin.yaml",
		columns: []column{
			{"Priority", "number", ".spec.priority"},
			{"Accepted", "string", acceptedPath},
			{"Age", "date", ".metadata.creationTimestamp"},
		},
		want: map[string]string{"Priority": "165", "Accepted": "True"},
	},
	{
		file: "plugin.flomesh.io_pluginchains.yaml", kind: "PluginChain", plural: "pluginchains",
		scope: apiextensionsv1.NamespaceScoped, shortName: "pichn", seed: "pluginchain.yaml",
		columns: []column{
			{"Chain", "string", ".spec.chains[0].name"},
			{"Plugins", "string", ".spec.chains[0].plugins"},
			{"Accepted", "string", acceptedPath},
			{"Pods", "integer", ".status.selectedPods"},
			{"Without-Sidecar", "integer", ".status.podsWithoutSidecar"},
			{"Age", "date", ".metadata.creationTimestamp"},
		},
		want: map[string]string{"Chain": "inbound-http", "Plugins": `["cors-policy"]`, "Accepted": "True", "Pods": "3", "Without-Sidecar": "1"},
	},
	{
		file: "plugin.flomesh.io_pluginconfigs.yaml", kind: "PluginConfig", plural: "pluginconfigs",
		scope: apiextensionsv1.NamespaceScoped, shortName: "picfg", seed: "pluginconfig.yaml",
		columns: []column{
			{"Plugin", "string", ".spec.plugin"},
			{"Accepted", "string", acceptedPath},
			{"Age", "date", ".metadata.creationTimestamp"},
		},
		want: map[string]string{"Plugin": "cors-policy", "Accepted": "True"},
	},
}

func readCRD(t *testing.T, file string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(crdDir, file))
	if err != nil {
		t.Fatalf("%v (run hack/generate.sh)", err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(b, crd); err != nil {
		t.Fatalf("%s is not a CustomResourceDefinition: %v", file, err)
	}
	return crd
}

// structural returns the structural schema of the CRD's only version, failing
// the test if the schema is not structural (the apiserver would reject it).
func structural(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition) *structuralschema.Structural {
	t.Helper()
	v1Schema := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
	internal := &apiextensions.JSONSchemaProps{}
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v1Schema, internal, nil); err != nil {
		t.Fatal(err)
	}
	s, err := structuralschema.NewStructural(internal)
	if err != nil {
		t.Fatal(err)
	}
	if errs := structuralschema.ValidateStructural(field.NewPath("openAPIV3Schema"), s); len(errs) > 0 {
		t.Fatalf("schema is not structural: %v", errs.ToAggregate())
	}
	return s
}

// check runs what the apiserver does to a created object: it prunes fields
// the schema does not declare, then validates. It returns the pruned paths
// and the validation errors.
func check(s *structuralschema.Structural, obj map[string]any) (unknown []string, invalid []error) {
	opts := structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true}
	unknown = pruning.PruneWithOptions(obj, s, true, opts)
	res := validate.NewSchemaValidator(s.ToKubeOpenAPI(), nil, "", strfmt.Default).Validate(obj)
	return unknown, res.Errors
}

func seedObject(t *testing.T, name string) map[string]any {
	t.Helper()
	obj := map[string]any{}
	if err := yaml.Unmarshal(readTestdata(t, name), &obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

func TestCRDs(t *testing.T) {
	for _, tt := range crdTests {
		t.Run(tt.kind, func(t *testing.T) {
			crd := readCRD(t, tt.file)
			spec := crd.Spec
			if want := tt.plural + "." + GroupName; crd.Name != want {
				t.Errorf("name = %q, want %q", crd.Name, want)
			}
			if spec.Group != GroupName || spec.Names.Kind != tt.kind || spec.Names.ListKind != tt.kind+"List" || spec.Names.Plural != tt.plural {
				t.Errorf("group/names = %s %+v", spec.Group, spec.Names)
			}
			if spec.Scope != tt.scope {
				t.Errorf("scope = %s, want %s", spec.Scope, tt.scope)
			}
			if !reflect.DeepEqual(spec.Names.ShortNames, []string{tt.shortName}) {
				t.Errorf("shortNames = %v, want [%s]", spec.Names.ShortNames, tt.shortName)
			}
			if len(spec.Versions) != 1 {
				t.Fatalf("%d versions, want 1", len(spec.Versions))
			}
			v := spec.Versions[0]
			if v.Name != GroupVersion.Version || !v.Served || !v.Storage {
				t.Errorf("version %s served=%v storage=%v", v.Name, v.Served, v.Storage)
			}
			if v.Subresources == nil || v.Subresources.Status == nil {
				t.Error("no status subresource")
			}
			var got []column
			for _, c := range v.AdditionalPrinterColumns {
				got = append(got, column{c.Name, c.Type, c.JSONPath})
				if c.Description == "" && c.Name != "Age" {
					t.Errorf("printer column %s has no description", c.Name)
				}
			}
			if !reflect.DeepEqual(got, tt.columns) {
				t.Errorf("printer columns = %v, want %v", got, tt.columns)
			}

			s := structural(t, crd)
			if s.Description == "" {
				t.Error("no description on the kind")
			}

			// The seed document applies: every field it sets is declared
			// (nothing would be pruned) and it passes validation.
			obj := seedObject(t, tt.seed)
			if unknown, invalid := check(s, obj); len(unknown) > 0 || len(invalid) > 0 {
				t.Errorf("seed %s: unknown fields %v, validation errors %v", tt.seed, unknown, invalid)
			}

			// The printer columns show the expected values.
			obj["status"] = map[string]any{
				"observedGeneration": int64(1),
				"conditions": []any{map[string]any{
					"type": ConditionAccepted, "status": "True", "reason": ReasonAccepted,
					"message": "", "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": int64(1),
				}},
			}
			if tt.kind == "PluginChain" {
				st := obj["status"].(map[string]any)
				st["selectedPods"], st["podsWithoutSidecar"], st["restartHint"] = int64(3), int64(1), "kubectl rollout restart -n pipy deployment/pipy-ok-v1"
			}
			if unknown, invalid := check(s, obj); len(unknown) > 0 || len(invalid) > 0 {
				t.Errorf("seed with status: unknown fields %v, validation errors %v", unknown, invalid)
			}
			for _, c := range tt.columns {
				want, ok := tt.want[c.name]
				if !ok {
					continue
				}
				if got := evalColumn(t, c.jsonPath, obj); got != want {
					t.Errorf("column %s = %q, want %q", c.name, got, want)
				}
			}
		})
	}
}

// evalColumn prints a printer column's first result as the apiserver does.
func evalColumn(t *testing.T, path string, obj map[string]any) string {
	t.Helper()
	jp := jsonpath.New("column").AllowMissingKeys(true)
	if err := jp.Parse("{" + path + "}"); err != nil {
		t.Fatalf("column %s: %v", path, err)
	}
	results, err := jp.FindResults(obj)
	if err != nil || len(results) == 0 || len(results[0]) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if err := jp.PrintResults(&buf, results[0][:1]); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// TestCRDSchemaRejects checks that the schemas catch the mistakes they are
// meant to catch, so that the seed passing is meaningful.
func TestCRDSchemaRejects(t *testing.T) {
	crds := map[string]*structuralschema.Structural{}
	for _, tt := range crdTests {
		crds[tt.seed] = structural(t, readCRD(t, tt.file))
	}
	tests := []struct {
		name    string
		seed    string
		mutate  func(obj map[string]any)
		unknown string // a pruned path, or "" for none
		invalid string // a substring of a validation error, or "" for none
	}{
		{name: "plugin script typo", seed: "plugin.yaml", unknown: "spec.pipyScript",
			mutate: func(o map[string]any) { spec(o)["pipyScript"] = "x" }},
		{name: "priority not a number", seed: "plugin.yaml", invalid: "spec.priority",
			mutate: func(o map[string]any) { spec(o)["priority"] = "high" }},
		{name: "plugin without script is fine", seed: "plugin.yaml",
			mutate: func(o map[string]any) { delete(spec(o), "pipyscript") }},
		{name: "chain field typo", seed: "pluginchain.yaml", unknown: "spec.chains[0].plugin",
			mutate: func(o map[string]any) { chain0(o)["plugin"] = []any{"x"} }},
		{name: "unknown chain", seed: "pluginchain.yaml", invalid: "spec.chains[0].name",
			mutate: func(o map[string]any) { chain0(o)["name"] = "inbound-https" }},
		{name: "chain without plugins", seed: "pluginchain.yaml", invalid: "spec.chains[0].plugins",
			mutate: func(o map[string]any) { chain0(o)["plugins"] = []any{} }},
		{name: "no chains", seed: "pluginchain.yaml", invalid: "spec.chains",
			mutate: func(o map[string]any) { delete(spec(o), "chains") }},
		{name: "selector typo", seed: "pluginchain.yaml", unknown: "spec.selectors.podSelectors",
			mutate: func(o map[string]any) { selectors(o)["podSelectors"] = map[string]any{} }},
		{name: "Exists needs no values", seed: "pluginchain.yaml",
			mutate: func(o map[string]any) {
				selectors(o)["namespaceSelector"] = map[string]any{"matchExpressions": []any{
					map[string]any{"key": "openservicemesh.io/monitored-by", "operator": "Exists"}}}
			}},
		{name: "no selectors at all", seed: "pluginchain.yaml",
			mutate: func(o map[string]any) { spec(o)["selectors"] = map[string]any{} }},
		{name: "config stays free-form", seed: "pluginconfig.yaml",
			mutate: func(o map[string]any) { spec(o)["config"].(map[string]any)["anything"] = map[string]any{"goes": 1} }},
		{name: "config not an object", seed: "pluginconfig.yaml", invalid: "spec.config",
			mutate: func(o map[string]any) { spec(o)["config"] = "allowOrigins: x" }},
		{name: "destination not a Service", seed: "pluginconfig.yaml", invalid: "spec.destinationRefs[0].kind",
			mutate: func(o map[string]any) { spec(o)["destinationRefs"].([]any)[0].(map[string]any)["kind"] = "Pod" }},
		{name: "destination field typo", seed: "pluginconfig.yaml", unknown: "spec.destinationRefs[0].nmae",
			mutate: func(o map[string]any) { spec(o)["destinationRefs"].([]any)[0].(map[string]any)["nmae"] = "x" }},
		{name: "no plugin", seed: "pluginconfig.yaml", invalid: "spec.plugin",
			mutate: func(o map[string]any) { delete(spec(o), "plugin") }},
		{name: "unknown status field", seed: "pluginconfig.yaml", unknown: "status.currentStatus",
			mutate: func(o map[string]any) { o["status"] = map[string]any{"currentStatus": "ok"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := seedObject(t, tt.seed)
			tt.mutate(obj)
			unknown, invalid := check(crds[tt.seed], obj)
			if tt.unknown == "" && len(unknown) > 0 {
				t.Errorf("unexpected unknown fields %v", unknown)
			}
			if tt.unknown != "" && !slices.Contains(unknown, tt.unknown) {
				t.Errorf("unknown fields %v, want %s among them", unknown, tt.unknown)
			}
			msgs := fmt.Sprint(invalid)
			if tt.invalid == "" && len(invalid) > 0 {
				t.Errorf("unexpected validation errors %s", msgs)
			}
			if tt.invalid != "" && !strings.Contains(msgs, tt.invalid) {
				t.Errorf("validation errors %s, want one about %s", msgs, tt.invalid)
			}
		})
	}
}

func spec(o map[string]any) map[string]any      { return o["spec"].(map[string]any) }
func selectors(o map[string]any) map[string]any { return spec(o)["selectors"].(map[string]any) }
func chain0(o map[string]any) map[string]any {
	return spec(o)["chains"].([]any)[0].(map[string]any)
}

// TestKustomization checks that manifests/crd/kustomization.yaml lists exactly
// the CRD files.
func TestKustomization(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(crdDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
	}
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		t.Fatal(err)
	}
	// osm-edge's MeshConfig, generated from injector/api/config.
	want := []string{"config.openservicemesh.io_meshconfigs.yaml"}
	for _, tt := range crdTests {
		want = append(want, tt.file)
	}
	slices.Sort(want)
	if k.Kind != "Kustomization" || !reflect.DeepEqual(k.Resources, want) {
		t.Errorf("kustomization = %+v, want resources %v", k, want)
	}
}
