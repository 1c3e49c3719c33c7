package v1alpha1

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// readTestdata returns the bytes of a file under testdata/.
func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// corsConfig is the shape of the seed's CORS config, decoded strictly to
// prove that spec.config keeps the raw object intact.
type corsConfig struct {
	AllowCredentials bool                `json:"allowCredentials"`
	AllowHeaders     []string            `json:"allowHeaders"`
	AllowMethods     []string            `json:"allowMethods"`
	AllowOrigins     []map[string]string `json:"allowOrigins"`
	ExposeHeaders    []string            `json:"exposeHeaders"`
	MaxAge           string              `json:"maxAge"`
}

func TestSeedDocumentsDecodeStrictly(t *testing.T) {
	tests := []struct {
		file  string
		obj   runtime.Object
		check func(t *testing.T, obj runtime.Object)
	}{
		{
			file: "plugin.yaml",
			obj:  &Plugin{},
			check: func(t *testing.T, obj runtime.Object) {
				p := obj.(*Plugin)
				if p.Name != "cors-policy" || p.Namespace != "" {
					t.Errorf("name/namespace = %q/%q", p.Name, p.Namespace)
				}
				if p.Spec.Priority == nil || *p.Spec.Priority != 165 {
					t.Errorf("priority = %v, want 165", p.Spec.Priority)
				}
				script := p.Spec.PipyScript
				if !strings.HasPrefix(script, "((\n  cacheTTL = val => (\n") {
					t.Errorf("pipyscript starts with %q", script[:min(len(script), 40)])
				}
				if !strings.HasSuffix(script, "\n    $=>$.chain()\n  )\n)\n)()\n") {
					t.Errorf("pipyscript ends with %q", script[max(0, len(script)-40):])
				}
				if n := strings.Count(script, "\n"); n != 121 {
					t.Errorf("pipyscript has %d lines, want 121", n)
				}
				if !strings.Contains(script, "'access-control-allow-origin': _origin") {
					t.Error("pipyscript body not preserved")
				}
			},
		},
		{
			file: "pluginchain.yaml",
			obj:  &PluginChain{},
			check: func(t *testing.T, obj runtime.Object) {
				c := obj.(*PluginChain)
				if c.Name != "cors-policy-chain" || c.Namespace != "pipy" {
					t.Errorf("name/namespace = %q/%q", c.Name, c.Namespace)
				}
				wantChains := []ChainPluginSpec{{Name: ChainInboundHTTP, Plugins: []string{"cors-policy"}}}
				if !reflect.DeepEqual(c.Spec.Chains, wantChains) {
					t.Errorf("chains = %+v, want %+v", c.Spec.Chains, wantChains)
				}
				wantPods := &metav1.LabelSelector{
					MatchLabels: map[string]string{"app": "pipy-ok"},
					MatchExpressions: []metav1.LabelSelectorRequirement{
						{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"pipy-ok"}},
					},
				}
				if !reflect.DeepEqual(c.Spec.Selectors.PodSelector, wantPods) {
					t.Errorf("podSelector = %+v, want %+v", c.Spec.Selectors.PodSelector, wantPods)
				}
				wantNS := &metav1.LabelSelector{
					MatchExpressions: []metav1.LabelSelectorRequirement{
						{Key: "openservicemesh.io/monitored-by", Operator: metav1.LabelSelectorOpIn, Values: []string{"osm"}},
					},
				}
				if !reflect.DeepEqual(c.Spec.Selectors.NamespaceSelector, wantNS) {
					t.Errorf("namespaceSelector = %+v, want %+v", c.Spec.Selectors.NamespaceSelector, wantNS)
				}
				// The selectors are usable as-is.
				sel, err := metav1.LabelSelectorAsSelector(c.Spec.Selectors.PodSelector)
				if err != nil {
					t.Fatal(err)
				}
				if got := sel.String(); got != "app=pipy-ok,app in (pipy-ok)" {
					t.Errorf("pod selector = %q", got)
				}
			},
		},
		{
			file: "pluginconfig.yaml",
			obj:  &PluginConfig{},
			check: func(t *testing.T, obj runtime.Object) {
				c := obj.(*PluginConfig)
				if c.Name != "cors-policy-config" || c.Namespace != "pipy" {
					t.Errorf("name/namespace = %q/%q", c.Name, c.Namespace)
				}
				if c.Spec.Plugin != "cors-policy" {
					t.Errorf("plugin = %q", c.Spec.Plugin)
				}
				wantRefs := []DestinationRef{{Kind: DestinationKindService, Name: "pipy-ok", Namespace: "pipy"}}
				if !reflect.DeepEqual(c.Spec.DestinationRefs, wantRefs) {
					t.Errorf("destinationRefs = %+v, want %+v", c.Spec.DestinationRefs, wantRefs)
				}
				// spec.config.Raw holds the config object as JSON, ready for a
				// strict decode by the webhook.
				dec := json.NewDecoder(bytes.NewReader(c.Spec.Config.Raw))
				dec.DisallowUnknownFields()
				var cfg corsConfig
				if err := dec.Decode(&cfg); err != nil {
					t.Fatalf("strict decode of spec.config %s: %v", c.Spec.Config.Raw, err)
				}
				want := corsConfig{
					AllowCredentials: true,
					AllowHeaders:     []string{"X-Foo-Bar-1"},
					AllowMethods:     []string{"POST", "GET", "PATCH", "DELETE"},
					AllowOrigins: []map[string]string{
						{"regex": "http.*://www.test.cn"},
						{"exact": "http://www.aaa.com"},
						{"prefix": "http://www.bbb.com"},
					},
					ExposeHeaders: []string{"Content-Encoding", "Kuma-Revision"},
					MaxAge:        "24h",
				}
				if !reflect.DeepEqual(cfg, want) {
					t.Errorf("config = %+v, want %+v", cfg, want)
				}
				if c.Spec.Config.Object != nil {
					t.Errorf("config.Object = %v, want nil (raw bytes only)", c.Spec.Config.Object)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			if err := yaml.UnmarshalStrict(readTestdata(t, tt.file), tt.obj); err != nil {
				t.Fatalf("UnmarshalStrict: %v", err)
			}
			gvk := tt.obj.GetObjectKind().GroupVersionKind()
			if gvk.GroupVersion() != GroupVersion {
				t.Errorf("apiVersion = %v, want %v", gvk.GroupVersion(), GroupVersion)
			}
			tt.check(t, tt.obj)

			// JSON round trip: what a client writes back is what it read.
			b, err := json.Marshal(tt.obj)
			if err != nil {
				t.Fatal(err)
			}
			again := reflect.New(reflect.TypeOf(tt.obj).Elem()).Interface().(runtime.Object)
			if err := yaml.UnmarshalStrict(b, again); err != nil {
				t.Fatalf("re-decode %s: %v", b, err)
			}
			if !reflect.DeepEqual(tt.obj, again) {
				t.Errorf("JSON round trip changed the object:\n got %+v\nwant %+v", again, tt.obj)
			}
		})
	}
}

func TestStrictDecodeRejectsUnknownFields(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		obj  runtime.Object
	}{
		{"plugin spec typo", "kind: Plugin\nspec:\n  script: x\n", &Plugin{}},
		{"chain plugin typo", "kind: PluginChain\nspec:\n  chains:\n  - name: inbound-http\n    plugin: [cors-policy]\n", &PluginChain{}},
		{"selector typo", "kind: PluginChain\nspec:\n  selectors:\n    podSelectors: {}\n", &PluginChain{}},
		{"destinationRef extra field", "kind: PluginConfig\nspec:\n  destinationRefs:\n  - kind: Service\n    name: a\n    port: 80\n", &PluginConfig{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := yaml.UnmarshalStrict([]byte(tt.doc), tt.obj); err == nil {
				t.Errorf("UnmarshalStrict accepted %q", tt.doc)
			}
		})
	}
}

func TestDeepCopy(t *testing.T) {
	var (
		plugin PluginConfig
		chain  PluginChain
		pi     Plugin
	)
	for name, obj := range map[string]any{"pluginconfig.yaml": &plugin, "pluginchain.yaml": &chain, "plugin.yaml": &pi} {
		if err := yaml.UnmarshalStrict(readTestdata(t, name), obj); err != nil {
			t.Fatal(err)
		}
	}
	cond := metav1.Condition{Type: ConditionAccepted, Status: metav1.ConditionTrue, Reason: ReasonAccepted, ObservedGeneration: 1}
	plugin.Status.Conditions = []metav1.Condition{cond}
	chain.Status.Conditions = []metav1.Condition{cond}
	chain.Status.SelectedPods, chain.Status.RestartHint = 2, "kubectl rollout restart -n pipy deploy/pipy-ok-v1"
	pi.Status.Conditions = []metav1.Condition{cond}

	tests := []struct {
		name   string
		obj    runtime.Object
		mutate func(copied runtime.Object)
	}{
		{"PluginConfig", &plugin, func(o runtime.Object) {
			c := o.(*PluginConfig)
			c.Spec.Config.Raw[0] = 'X'
			c.Spec.DestinationRefs[0].Name = "other"
			c.Status.Conditions[0].Status = metav1.ConditionFalse
			c.Labels = map[string]string{"x": "y"}
		}},
		{"PluginChain", &chain, func(o runtime.Object) {
			c := o.(*PluginChain)
			c.Spec.Chains[0].Plugins[0] = "other"
			c.Spec.Selectors.PodSelector.MatchLabels["app"] = "other"
			c.Spec.Selectors.NamespaceSelector.MatchExpressions[0].Values[0] = "other"
			c.Status.Conditions[0].Reason = ReasonInvalid
		}},
		{"Plugin", &pi, func(o runtime.Object) {
			p := o.(*Plugin)
			*p.Spec.Priority = 1
			p.Status.Conditions[0].Message = "changed"
		}},
		{"PluginConfigList", &PluginConfigList{Items: []PluginConfig{plugin}}, func(o runtime.Object) {
			o.(*PluginConfigList).Items[0].Spec.Config.Raw[1] = 'X'
		}},
		{"PluginChainList", &PluginChainList{Items: []PluginChain{chain}}, func(o runtime.Object) {
			o.(*PluginChainList).Items[0].Spec.Selectors.PodSelector.MatchLabels["app"] = "x"
		}},
		{"PluginList", &PluginList{Items: []Plugin{pi}}, func(o runtime.Object) {
			*o.(*PluginList).Items[0].Spec.Priority = 2
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, err := json.Marshal(tt.obj)
			if err != nil {
				t.Fatal(err)
			}
			copied := tt.obj.DeepCopyObject()
			if reflect.TypeOf(copied) != reflect.TypeOf(tt.obj) {
				t.Fatalf("DeepCopyObject returned %T", copied)
			}
			if !reflect.DeepEqual(copied, tt.obj) {
				t.Fatal("copy differs from the original")
			}
			tt.mutate(copied)
			after, err := json.Marshal(tt.obj)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Errorf("mutating the copy changed the original:\n%s\n%s", before, after)
			}
		})
	}
}

func TestScheme(t *testing.T) {
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"Plugin", "PluginList", "PluginChain", "PluginChainList", "PluginConfig", "PluginConfigList"} {
		obj, err := s.New(GroupVersion.WithKind(kind))
		if err != nil {
			t.Errorf("%s: %v", kind, err)
			continue
		}
		if got := reflect.TypeOf(obj).Elem().Name(); got != kind {
			t.Errorf("scheme maps %s to %s", kind, got)
		}
	}
	if got := Resource("pluginconfigs").String(); got != "pluginconfigs.plugin.flomesh.io" {
		t.Errorf("Resource = %q", got)
	}
}
