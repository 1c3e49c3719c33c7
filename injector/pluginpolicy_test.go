package injector

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	configv1alpha2 "github.com/corsmesh/corsmesh/injector/api/config/v1alpha2"
)

// meshConfigReads counts the MeshConfig reads of a cluster.
type meshConfigReads struct {
	*Objects
	n int
}

func (c *meshConfigReads) MeshConfig(ctx context.Context, namespace, name string) (*configv1alpha2.MeshConfig, error) {
	c.n++
	return c.Objects.MeshConfig(ctx, namespace, name)
}

// A Watched Resolver reads the MeshConfig once per revision, and again after any change
// (the flag turned off shows at once); one that is not watched reads it every time.
func TestPluginPolicyReadOncePerRevision(t *testing.T) {
	tests := []struct {
		name      string
		watched   bool
		wantReads int // after three questions, a change, and one more
	}{
		{name: "watched", watched: true, wantReads: 2},
		{name: "not watched", watched: false, wantReads: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := DefaultOptions()
			mc := &configv1alpha2.MeshConfig{ObjectMeta: metav1.ObjectMeta{Namespace: opts.OwnNamespace, Name: configv1alpha2.MeshConfigName}}
			mc.Spec.FeatureFlags.EnablePluginPolicy = true
			cluster := &meshConfigReads{Objects: &Objects{MeshConfigs: []*configv1alpha2.MeshConfig{mc}}}
			r := NewResolver(New(opts), cluster, ResolverOptions{Watched: tt.watched})
			ctx := context.Background()
			for range 3 {
				if p, err := r.PluginPolicy(ctx); err != nil || !p.Enabled || p.State != PluginPolicyOn {
					t.Fatalf("policy %+v, %v; want on", p, err)
				}
			}
			mc.Spec.FeatureFlags.EnablePluginPolicy = false
			r.Changed(InputOther)
			if p, err := r.PluginPolicy(ctx); err != nil || p.Enabled || p.State != PluginPolicyFlagOff {
				t.Fatalf("after the change: policy %+v, %v; want flag-off", p, err)
			}
			if cluster.n != tt.wantReads {
				t.Errorf("%d MeshConfig reads, want %d", cluster.n, tt.wantReads)
			}
			if tt.watched {
				if n := testing.AllocsPerRun(100, func() { _, _ = r.PluginPolicy(ctx) }); n != 0 {
					t.Errorf("%.0f allocations for an unchanged policy, want 0", n)
				}
			}
		})
	}
}
