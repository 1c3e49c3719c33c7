package injector

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/corsmesh/corsmesh/corsproxy/config"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

// ConfigState is what becomes of one PluginConfig for a Service.
type ConfigState string

const (
	// ConfigInEffect: the Service's policy.
	ConfigInEffect ConfigState = "in-effect"
	// ConfigPluginNotFound: spec.plugin names no Plugin.
	ConfigPluginNotFound ConfigState = "plugin-not-found"
	// ConfigNotCORS: spec.plugin names a Plugin corsmesh does not implement.
	ConfigNotCORS ConfigState = "not-cors"
	// ConfigInvalid: spec.config is not a valid CORS policy.
	ConfigInvalid ConfigState = "invalid"
	// ConfigOverridden: an older valid PluginConfig is in effect for the Service.
	ConfigOverridden ConfigState = "overridden"
)

// ServicePolicy is the PluginConfig in effect for one Service, and what became of the
// others naming it.
//
// The rule, the one place it is applied: of the PluginConfigs naming the Service whose
// spec.plugin is an existing CORS Plugin and whose spec.config is a valid policy, the
// oldest wins (creation time, then namespace/name: ComparePluginConfigs). It does not
// depend on the pod: a pod gets the winner's policy when a PluginChain selecting it serves
// the winner's plugin, and no policy on that Service otherwise.
type ServicePolicy struct {
	Namespace, Name string
	// InEffect is the winner (nil: none) and Policy its parsed spec.config.
	InEffect *v1alpha1.PluginConfig
	Policy   *config.CORS
	// policyKey is Policy's canonical JSON, which tells policies apart.
	policyKey string
	// Ignored are the other PluginConfigs naming the Service, oldest first.
	Ignored []IgnoredConfig
}

// IgnoredConfig is a PluginConfig that is not in effect for a Service, and why.
type IgnoredConfig struct {
	Config *v1alpha1.PluginConfig
	State  ConfigState
	Err    error // ConfigInvalid: what is wrong with spec.config
}

// Service resolves the PluginConfig in effect for a Service.
func (r *Resolver) Service(ctx context.Context, namespace, name string) (ServicePolicy, error) {
	sp := ServicePolicy{Namespace: namespace, Name: name}
	configs, err := r.cluster.PluginConfigsFor(ctx, namespace, name)
	if err != nil {
		return sp, fmt.Errorf("listing PluginConfigs for Service %s/%s: %w", namespace, name, err)
	}
	if len(configs) > 1 {
		configs = slices.Clone(configs) // the cluster's list may be shared
		slices.SortFunc(configs, ComparePluginConfigs)
	}
	for _, c := range configs {
		state, parsed, err := r.configState(ctx, c)
		if err != nil {
			return sp, err
		}
		if state == ConfigInEffect && sp.InEffect != nil {
			state = ConfigOverridden
		}
		if state != ConfigInEffect {
			sp.Ignored = append(sp.Ignored, IgnoredConfig{Config: c, State: state, Err: policyErr(state, c, r)})
			continue
		}
		sp.InEffect, sp.Policy, sp.policyKey = c, parsed.policy, parsed.key
	}
	return sp, nil
}

// configState classifies a PluginConfig by itself: its Plugin, then its policy (returned
// when in effect).
func (r *Resolver) configState(ctx context.Context, c *v1alpha1.PluginConfig) (ConfigState, parsedPolicy, error) {
	p, err := r.cluster.Plugin(ctx, c.Spec.Plugin)
	switch {
	case err != nil:
		return "", parsedPolicy{}, fmt.Errorf("reading Plugin %s: %w", c.Spec.Plugin, err)
	case p == nil:
		return ConfigPluginNotFound, parsedPolicy{}, nil
	case !r.in.IsCORSPlugin(p):
		return ConfigNotCORS, parsedPolicy{}, nil
	}
	parsed := r.parsedPolicy(c)
	if parsed.err != nil {
		return ConfigInvalid, parsedPolicy{}, nil
	}
	return ConfigInEffect, parsed, nil
}

func policyErr(state ConfigState, c *v1alpha1.PluginConfig, r *Resolver) error {
	if state != ConfigInvalid {
		return nil
	}
	return r.parsedPolicy(c).err
}

// parsedPolicy is a PluginConfig's spec.config, parsed once per version.
// Its key is the policy's canonical JSON, made here once: a Service's policy is compared
// with the others' on its ports at every admission, and encoding it each time was 4 of
// the decision's allocations per Service.
type parsedPolicy struct {
	policy *config.CORS
	key    string
	err    error
}

func (r *Resolver) parsedPolicy(c *v1alpha1.PluginConfig) parsedPolicy {
	return r.policies.get(c, func() parsedPolicy {
		policy, err := config.ParseCORS(ConfigDocument(c))
		if err != nil {
			return parsedPolicy{err: err}
		}
		key, err := json.Marshal(policy)
		if err != nil {
			return parsedPolicy{err: fmt.Errorf("encoding the parsed policy: %w", err)}
		}
		return parsedPolicy{policy: policy, key: string(key)}
	})
}

// ConfigDocument is a PluginConfig's spec.config as the CORS parser reads it: an absent
// spec.config is the empty policy (which allows nothing), the one place that rule lives.
func ConfigDocument(c *v1alpha1.PluginConfig) []byte {
	if len(c.Spec.Config.Raw) == 0 {
		return []byte("{}")
	}
	return c.Spec.Config.Raw
}

// ComparePluginConfigs orders PluginConfigs oldest first, then by namespace and name: the
// first valid one for a Service is the one in effect.
func ComparePluginConfigs(a, b *v1alpha1.PluginConfig) int {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		if a.CreationTimestamp.Before(&b.CreationTimestamp) {
			return -1
		}
		return 1
	}
	return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
}

// PluginConfigStatus is what corsmesh makes of one PluginConfig: its own state, and for
// each Service it names whether the Service exists and which PluginConfig is in effect there.
type PluginConfigStatus struct {
	Config *v1alpha1.PluginConfig
	// State is the PluginConfig's own: ConfigInEffect when its Plugin is CORS and its
	// policy valid (it may still lose a Service to an older one: Winners).
	State ConfigState
	Err   error // ConfigInvalid
	// Services are the "namespace/name" of the Services it names; MissingServices those
	// that do not exist.
	Services, MissingServices []string
	// Winners maps each Service ("namespace/name") where another PluginConfig is in effect
	// to that one ("namespace/name").
	Winners map[string]string
}

// PluginConfig resolves one PluginConfig's status.
func (r *Resolver) PluginConfig(ctx context.Context, pc *v1alpha1.PluginConfig) (PluginConfigStatus, error) {
	s := PluginConfigStatus{Config: pc, Services: DestinationKeys(pc)}
	var err error
	if s.State, _, err = r.configState(ctx, pc); err != nil {
		return s, err
	}
	s.Err = policyErr(s.State, pc, r)
	for _, key := range s.Services {
		ns, name, _ := strings.Cut(key, "/")
		services, err := r.cluster.Services(ctx, ns)
		if err != nil {
			return s, fmt.Errorf("listing Services in %s: %w", ns, err)
		}
		if !slices.ContainsFunc(services, func(svc *corev1.Service) bool { return svc.Name == name }) {
			s.MissingServices = append(s.MissingServices, key)
		}
		sp, err := r.Service(ctx, ns, name)
		if err != nil {
			return s, err
		}
		if w := sp.InEffect; w != nil && (w.Namespace != pc.Namespace || w.Name != pc.Name) {
			if s.Winners == nil {
				s.Winners = map[string]string{}
			}
			s.Winners[key] = w.Namespace + "/" + w.Name
		}
	}
	return s, nil
}
