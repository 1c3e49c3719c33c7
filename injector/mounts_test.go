package injector_test

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

// Mounts is the one rule for which mounted plugin counts as CORS.
func TestMounts(t *testing.T) {
	in := injector.New(testOptions())
	objs := &injector.Objects{Plugins: []*v1alpha1.Plugin{
		{ObjectMeta: metav1.ObjectMeta{Name: "cors-policy"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "my-cors", Annotations: map[string]string{injector.AnnotationImplements: "cors"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "rate-limit"}},
	}}
	chain := &v1alpha1.PluginChain{Spec: v1alpha1.PluginChainSpec{Chains: []v1alpha1.ChainPluginSpec{
		{Name: v1alpha1.ChainInboundHTTP, Plugins: []string{"cors-policy", "my-cors", "rate-limit", "typo"}},
		{Name: v1alpha1.ChainOutboundHTTP, Plugins: []string{"cors-policy"}},
	}}}
	mounts, err := injector.NewResolver(in, objs, injector.ResolverOptions{}).Mounts(t.Context(), chain)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		chain, plugin int
		state         injector.MountState
	}{
		{0, 0, injector.MountServed}, {0, 1, injector.MountServed}, {0, 2, injector.MountNotCORS},
		{0, 3, injector.MountMissing}, {1, 0, injector.MountWrongChain},
	}
	if len(mounts) != len(want) {
		t.Fatalf("%d mounts, want %d: %+v", len(mounts), len(want), mounts)
	}
	for i, w := range want {
		if m := mounts[i]; m.Chain != w.chain || m.Plugin != w.plugin || m.State != w.state || m.Message() == "" {
			t.Errorf("mount %d = %+v (%q), want spec.chains[%d].plugins[%d] %s", i, m, m.Message(), w.chain, w.plugin, w.state)
		}
	}
}
