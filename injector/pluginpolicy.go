package injector

import (
	"context"
	"fmt"

	configv1alpha2 "github.com/corsmesh/corsmesh/injector/api/config/v1alpha2"
)

// PluginPolicy is the state of osm-edge's plugin-policy switch
// (spec.featureFlags.enablePluginPolicy of MeshConfig osm-mesh-config in the control
// plane's namespace). While it is off, PluginChains and PluginConfigs are not applied: no
// pod is injected and injected pods keep the policy they have.
type PluginPolicy struct {
	Enabled bool
	// Message says why it is off and how to turn it on (empty when on).
	Message string
}

// PluginPolicy reads the switch. A missing MeshConfig is off: osm-edge's default.
func (in *Injector) PluginPolicy(ctx context.Context, cluster Cluster) (PluginPolicy, error) {
	ns, name := in.opts.OwnNamespace, configv1alpha2.MeshConfigName
	mc, err := cluster.MeshConfig(ctx, ns, name)
	if err != nil {
		return PluginPolicy{}, fmt.Errorf("reading MeshConfig %s/%s: %w", ns, name, err)
	}
	switch {
	case mc == nil:
		return PluginPolicy{Message: fmt.Sprintf("plugin policy is off: MeshConfig %s/%s does not exist (create it with spec.featureFlags.enablePluginPolicy: true)", ns, name)}, nil
	case !mc.Spec.FeatureFlags.EnablePluginPolicy:
		return PluginPolicy{Message: fmt.Sprintf("plugin policy is off in MeshConfig %s/%s (spec.featureFlags.enablePluginPolicy: false); turn it on with: %s", ns, name, EnablePluginPolicyCommand(ns))}, nil
	}
	return PluginPolicy{Enabled: true}, nil
}

// EnablePluginPolicyCommand is the osm-edge guide's command that turns plugin policy on,
// with its $osm_namespace filled in.
func EnablePluginPolicyCommand(namespace string) string {
	return fmt.Sprintf(`kubectl patch meshconfig %s -n %s -p '{"spec":{"featureFlags":{"enablePluginPolicy":true}}}' --type=merge`, configv1alpha2.MeshConfigName, namespace)
}
