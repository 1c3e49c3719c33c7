package injector_test

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/corsmesh/corsmesh/injector"
	configv1alpha2 "github.com/corsmesh/corsmesh/injector/api/config/v1alpha2"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
	"github.com/corsmesh/corsmesh/injector/injectortest"
)

// statusCluster holds the Plugins cors-policy (CORS) and rate-limit, the Services pipy/a
// and pipy/b, plugin policy on, and the given PluginConfigs.
func statusCluster(configs ...*v1alpha1.PluginConfig) *injector.Objects {
	mc := &configv1alpha2.MeshConfig{ObjectMeta: metav1.ObjectMeta{Namespace: "corsmesh-system", Name: configv1alpha2.MeshConfigName}}
	mc.Spec.FeatureFlags.EnablePluginPolicy = true
	return &injector.Objects{
		Plugins: []*v1alpha1.Plugin{{ObjectMeta: metav1.ObjectMeta{Name: "cors-policy"}}, {ObjectMeta: metav1.ObjectMeta{Name: "rate-limit"}}},
		ServiceList: []*corev1.Service{
			{ObjectMeta: metav1.ObjectMeta{Namespace: "pipy", Name: "a"}},
			{ObjectMeta: metav1.ObjectMeta{Namespace: "pipy", Name: "b"}},
		},
		Configs:     configs,
		MeshConfigs: []*configv1alpha2.MeshConfig{mc},
	}
}

func TestPluginConfigCondition(t *testing.T) {
	valid := `{"allowOrigins":[{"exact":"http://a.example"}]}`
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		pc       *v1alpha1.PluginConfig
		others   []*v1alpha1.PluginConfig
		accepted bool
		reason   string
		mentions []string
	}{
		{"accepted", injectortest.PluginConfig("c", "cors-policy", valid, t0, "a"), nil, true, v1alpha1.ReasonAccepted, []string{"Service pipy/a"}},
		{"absent spec.config is the empty policy", injectortest.PluginConfig("c", "cors-policy", "", t0, "a"), nil, true, v1alpha1.ReasonAccepted, nil},
		{"plugin missing", injectortest.PluginConfig("c", "cors-polcy", valid, t0, "a"), nil, false, v1alpha1.ReasonPluginNotFound, []string{`"cors-polcy"`}},
		{"plugin not CORS", injectortest.PluginConfig("c", "rate-limit", valid, t0, "a"), nil, false, v1alpha1.ReasonUnsupportedPlugin, []string{`"rate-limit"`}},
		{"invalid config names the fields", injectortest.PluginConfig("c", "cors-policy", `{"allowOrigins":[{"regex":"("}],"maxAge":"soon"}`, t0, "a"), nil,
			false, v1alpha1.ReasonInvalid, []string{"spec.config.allowOrigins[0].regex", "spec.config.maxAge"}},
		{"config not an object", injectortest.PluginConfig("c", "cors-policy", `[1]`, t0, "a"), nil, false, v1alpha1.ReasonInvalid, []string{"spec.config"}},
		{"no destination", injectortest.PluginConfig("c", "cors-policy", valid, t0), nil, false, v1alpha1.ReasonInvalid, []string{"spec.destinationRefs"}},
		{"a Service missing", injectortest.PluginConfig("c", "cors-policy", valid, t0, "a", "nope"), nil,
			false, v1alpha1.ReasonDestinationNotFound, []string{"Service pipy/nope not found", "applies to Service pipy/a"}},
		{"conflict names the winners", injectortest.PluginConfig("c", "cors-policy", valid, t0.Add(time.Hour), "a", "b"), []*v1alpha1.PluginConfig{
			injectortest.PluginConfig("older", "cors-policy", valid, t0, "a"), injectortest.PluginConfig("old", "cors-policy", valid, t0.Add(time.Minute), "b"),
		}, false, v1alpha1.ReasonConflict, []string{"PluginConfig pipy/older is older and in effect for Service pipy/a; PluginConfig pipy/old is older and in effect for Service pipy/b"}},
		{"an older invalid or non-CORS one does not win", injectortest.PluginConfig("c", "cors-policy", valid, t0.Add(time.Hour), "a"), []*v1alpha1.PluginConfig{
			injectortest.PluginConfig("broken", "cors-policy", `{"maxAge":"soon"}`, t0, "a"), injectortest.PluginConfig("limits", "rate-limit", valid, t0, "a"),
		}, true, v1alpha1.ReasonAccepted, nil},
		{"same age: by name", injectortest.PluginConfig("c", "cors-policy", valid, t0, "a"), []*v1alpha1.PluginConfig{injectortest.PluginConfig("b", "cors-policy", valid, t0, "a")},
			false, v1alpha1.ReasonConflict, []string{"pipy/b is older"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := injector.NewResolver(injector.New(testOptions()), statusCluster(append(tt.others, tt.pc)...), injector.ResolverOptions{})
			s, err := r.PluginConfig(t.Context(), tt.pc)
			if err != nil {
				t.Fatal(err)
			}
			checkCondition(t, s.Condition(), tt.accepted, tt.reason, tt.mentions)
		})
	}
}

func TestChainCondition(t *testing.T) {
	chain := func(chains ...v1alpha1.ChainPluginSpec) *v1alpha1.PluginChain {
		return &v1alpha1.PluginChain{Spec: v1alpha1.PluginChainSpec{Chains: chains}}
	}
	on := func(name string, plugins ...string) v1alpha1.ChainPluginSpec {
		return v1alpha1.ChainPluginSpec{Name: name, Plugins: plugins}
	}
	broken := chain(on("inbound-http", "cors-policy"))
	broken.Spec.Selectors.PodSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Near"}}}
	tests := []struct {
		name      string
		chain     *v1alpha1.PluginChain
		policyOff bool
		accepted  bool
		reason    string
		mentions  []string
	}{
		{"the seed's", chain(on("inbound-http", "cors-policy")), false, true, v1alpha1.ReasonAccepted, []string{"CORS plugin cors-policy served on inbound-http"}},
		{"CORS and others: the others are listed", chain(on("inbound-http", "rate-limit", "cors-policy"), on("outbound-http", "missing")), false,
			true, v1alpha1.ReasonAccepted, []string{`ignored: Plugin "rate-limit" is not implemented`, `Plugin "missing" does not exist`}},
		{"a missing plugin", chain(on("inbound-http", "missing")), false, false, v1alpha1.ReasonPluginNotFound, []string{`Plugin "missing" does not exist`}},
		{"CORS on another chain", chain(on("inbound-tcp", "cors-policy")), false, false, v1alpha1.ReasonUnsupportedChain, []string{"served on inbound-http only"}},
		{"plugins corsmesh does not implement", chain(on("inbound-http", "rate-limit")), false, false, v1alpha1.ReasonUnsupportedPlugin, []string{`Plugin "rate-limit" is not implemented`}},
		{"a broken selector", broken, false, false, v1alpha1.ReasonInvalid, []string{"podSelector"}},
		{"plugin policy off comes first", chain(on("inbound-http", "cors-policy")), true, false, v1alpha1.ReasonPluginPolicyDisabled,
			[]string{"enablePluginPolicy", "once on: CORS plugin cors-policy served"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := statusCluster()
			objs.MeshConfigs[0].Spec.FeatureFlags.EnablePluginPolicy = !tt.policyOff
			s, err := injector.NewResolver(injector.New(testOptions()), objs, injector.ResolverOptions{}).Chain(t.Context(), tt.chain)
			if err != nil {
				t.Fatal(err)
			}
			checkCondition(t, s.Condition(), tt.accepted, tt.reason, tt.mentions)
		})
	}
}

func checkCondition(t *testing.T, got injector.Condition, accepted bool, reason string, mentions []string) {
	t.Helper()
	if got.Accepted != accepted || got.Reason != reason {
		t.Errorf("condition = %+v, want accepted=%v %s", got, accepted, reason)
	}
	for _, m := range mentions {
		if !strings.Contains(got.Message, m) {
			t.Errorf("message %q does not mention %q", got.Message, m)
		}
	}
}
