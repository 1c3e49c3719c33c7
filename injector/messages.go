package injector

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	configv1alpha2 "github.com/corsmesh/corsmesh/injector/api/config/v1alpha2"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"

	"github.com/corsmesh/corsmesh/corsproxy/config"
)

// What the Resolver's answers say to people, rendered here and nowhere else: admission
// warnings and Events, the status conditions and corsmeshctl all read the same words.

// reasonFormats render a skipped pod's Reason; skip passes the arguments.
var reasonFormats = map[Reason]string{
	ReasonSystemNamespace:       "namespace %s is a system namespace",
	ReasonOwnNamespace:          "namespace %s is corsmesh's own",
	ReasonNamespaceNotFound:     "namespace %s not found",
	ReasonNamespaceNotMonitored: "namespace %s is not monitored by mesh %q (label %s=%q; run `corsmeshctl namespace add %s`)",
	ReasonHostNetwork:           "the pod uses the host's network: redirecting its traffic would redirect the node's",
	ReasonWindows:               "the pod runs on Windows (spec.os.name or a kubernetes.io/os node selector): the proxy and its iptables rules are Linux-only",
	ReasonAlreadyInjected:       "the pod already has the corsproxy sidecar",
	ReasonPodOptedOut:           "pod annotation %s=%s",
	ReasonNamespaceOptedOut:     "namespace %s has %s=%s and the pod does not say enabled",
	ReasonInvalidAnnotation:     "%s annotation %s=%q: want enabled, disabled, yes, no, true or false",
	ReasonPodSecurity:           "namespace %s enforces Pod Security %q, which rejects the init container's NET_ADMIN capability: the pod runs without CORS (label the namespace %s=privileged to inject)",
	ReasonNoChain:               "no PluginChain selects the pod",
	ReasonNoCORSPlugin:          "the PluginChains selecting the pod mount no CORS plugin on %s",
	ReasonPluginNotFound:        "the PluginChains selecting the pod name Plugins that do not exist: %s",
	ReasonNoHTTPPorts:           "no Service selects the pod on a TCP port the proxy can serve, so there is nothing to intercept",
}

// skip records that the pod is not injected, and why.
func (d *Decision) skip(reason Reason, args ...any) *Decision {
	d.Inject, d.Reason, d.Message = false, reason, fmt.Sprintf(reasonFormats[reason], args...)
	return d
}

// Message says whether plugin policy is on, and how to turn it on when it is off.
func (p PluginPolicy) Message() string {
	name := configv1alpha2.MeshConfigName
	switch p.State {
	case PluginPolicyNoMesh:
		return fmt.Sprintf("plugin policy is off: MeshConfig %s/%s does not exist (create it with spec.featureFlags.enablePluginPolicy: true)", p.Namespace, name)
	case PluginPolicyFlagOff:
		return fmt.Sprintf("plugin policy is off in MeshConfig %s/%s (spec.featureFlags.enablePluginPolicy: false); turn it on with: %s", p.Namespace, name, EnablePluginPolicyCommand(p.Namespace))
	case PluginPolicyAssumedOn:
		return fmt.Sprintf("MeshConfig %s/%s is not in the input: treating plugin policy as on (spec.featureFlags.enablePluginPolicy: true)", p.Namespace, name)
	}
	return fmt.Sprintf("plugin policy is on in MeshConfig %s/%s", p.Namespace, name)
}

// EnablePluginPolicyCommand is the osm-edge guide's command that turns plugin policy on,
// with its $osm_namespace filled in.
func EnablePluginPolicyCommand(namespace string) string {
	return fmt.Sprintf(`kubectl patch meshconfig %s -n %s -p '{"spec":{"featureFlags":{"enablePluginPolicy":true}}}' --type=merge`, configv1alpha2.MeshConfigName, namespace)
}

// AssumptionKind is what an Offline Resolver assumed.
type AssumptionKind string

const (
	AssumedMonitoredNamespace AssumptionKind = "monitored-namespace"
	AssumedPluginPolicyOn     AssumptionKind = "plugin-policy-on"
)

// Assumption is one thing an Offline Resolver assumed about an object found nowhere.
type Assumption struct {
	Kind AssumptionKind
	// Name and Mesh: the namespace assumed monitored by the mesh.
	Name, Mesh string
	// Namespace: where the MeshConfig assumed to turn plugin policy on would be.
	Namespace string
}

// Message says what was assumed.
func (a Assumption) Message() string {
	if a.Kind == AssumedPluginPolicyOn {
		return PluginPolicy{State: PluginPolicyAssumedOn, Namespace: a.Namespace}.Message()
	}
	return fmt.Sprintf("namespace %s is not in the input, the policies or the cluster read: treating it as monitored by mesh %q (%s=%s)", a.Name, a.Mesh, LabelMonitoredBy, a.Mesh)
}

// Message says what becomes of the mount, the same words everywhere.
func (m Mount) Message() string {
	switch m.State {
	case MountServed:
		return fmt.Sprintf("CORS plugin %q served on %s", m.Name, m.ChainName)
	case MountMissing:
		return fmt.Sprintf("Plugin %q does not exist", m.Name)
	case MountNotCORS:
		return fmt.Sprintf("Plugin %q is not implemented by corsmesh (only CORS is) and is not applied", m.Name)
	default:
		return fmt.Sprintf("CORS plugin %q on chain %s is not applied (CORS is served on %s only)", m.Name, m.ChainName, v1alpha1.ChainInboundHTTP)
	}
}

func warnMount(c *v1alpha1.PluginChain, m Mount) string {
	return fmt.Sprintf("PluginChain %s/%s: %s", c.Namespace, c.Name, m.Message())
}

func warnChainIgnored(c *v1alpha1.PluginChain, err error) string {
	return fmt.Sprintf("PluginChain %s/%s ignored: %v", c.Namespace, c.Name, err)
}

func warnConfigInvalid(c *v1alpha1.PluginConfig, err error) string {
	return fmt.Sprintf("PluginConfig %s/%s ignored: spec.config: %v", c.Namespace, c.Name, err)
}

func warnConfigOverridden(c *v1alpha1.PluginConfig, service string, winner *v1alpha1.PluginConfig) string {
	return fmt.Sprintf("PluginConfig %s/%s ignored for Service %s: %s/%s is older and wins", c.Namespace, c.Name, service, winner.Namespace, winner.Name)
}

func warnPluginNotServed(c *v1alpha1.PluginConfig, service string) string {
	return fmt.Sprintf("PluginConfig %s/%s in effect for Service %s configures Plugin %q, which no PluginChain selecting the pod serves: no CORS on that Service", c.Namespace, c.Name, service, c.Spec.Plugin)
}

func warnNoPolicyYet() string {
	return "no PluginConfig applies to the Services selecting the pod yet: the proxy passes traffic through until one does (no restart needed)"
}

// Condition is an Accepted condition's status, reason and message.
type Condition struct {
	Accepted bool
	Reason   string
	Message  string
}

// Condition is the chain's Accepted condition: True when it serves a CORS plugin on
// inbound-http (listing what else it mounts and corsmesh ignores), False with the most
// useful reason otherwise; plugin policy off comes first.
func (s ChainStatus) Condition() Condition {
	if s.Compiled.Err != nil {
		return Condition{Reason: v1alpha1.ReasonInvalid, Message: s.Compiled.Err.Error()}
	}
	var ignored []string
	states := map[MountState]bool{}
	for _, m := range s.Mounts {
		states[m.State] = true
		if m.State != MountServed {
			ignored = append(ignored, m.Message())
		}
	}
	var c Condition
	if served := s.Served(); len(served) > 0 {
		c = Condition{Accepted: true, Reason: v1alpha1.ReasonAccepted,
			Message: fmt.Sprintf("CORS plugin %s served on %s", strings.Join(served, ", "), v1alpha1.ChainInboundHTTP)}
	} else {
		switch {
		case states[MountMissing]:
			c.Reason = v1alpha1.ReasonPluginNotFound
		case states[MountWrongChain]:
			c.Reason = v1alpha1.ReasonUnsupportedChain
		default:
			c.Reason = v1alpha1.ReasonUnsupportedPlugin
		}
		c.Message = fmt.Sprintf("no CORS plugin is mounted on %s, so no pod is injected for this chain", v1alpha1.ChainInboundHTTP)
	}
	if len(ignored) > 0 {
		c.Message += "; ignored: " + strings.Join(ignored, "; ")
	}
	if !s.Policy.Enabled {
		// Nothing is injected meanwhile: say so first, and what the chain will do once on.
		c = Condition{Reason: v1alpha1.ReasonPluginPolicyDisabled, Message: s.Policy.Message() + "; once on: " + c.Message}
	}
	return c
}

// Condition is the PluginConfig's Accepted condition. The checks run in the order a user
// fixes things: the plugin, its config, then where it applies.
func (s PluginConfigStatus) Condition() Condition {
	pc := s.Config
	rejected := func(reason, format string, args ...any) Condition {
		return Condition{Reason: reason, Message: fmt.Sprintf(format, args...)}
	}
	switch {
	case s.State == ConfigPluginNotFound:
		return rejected(v1alpha1.ReasonPluginNotFound, "Plugin %q does not exist", pc.Spec.Plugin)
	case s.State == ConfigNotCORS:
		return rejected(v1alpha1.ReasonUnsupportedPlugin, "corsmesh does not implement Plugin %q (only CORS): this configuration is not applied", pc.Spec.Plugin)
	case s.State == ConfigInvalid:
		return rejected(v1alpha1.ReasonInvalid, "%s", configErrorMessage(s.Err))
	case len(s.Services) == 0:
		return rejected(v1alpha1.ReasonInvalid, "spec.destinationRefs: names no Service")
	case len(s.MissingServices) > 0:
		msg := fmt.Sprintf("%s not found", plural("Service", s.MissingServices))
		if rest := without(s.Services, s.MissingServices); len(rest) > 0 {
			msg += fmt.Sprintf("; the policy applies to %s", plural("Service", rest))
		}
		return rejected(v1alpha1.ReasonDestinationNotFound, "%s", msg)
	case len(s.Winners) > 0:
		var msgs []string
		for _, svc := range slices.Sorted(maps.Keys(s.Winners)) {
			msgs = append(msgs, fmt.Sprintf("PluginConfig %s is older and in effect for Service %s", s.Winners[svc], svc))
		}
		return rejected(v1alpha1.ReasonConflict, "%s", strings.Join(msgs, "; "))
	}
	return Condition{Accepted: true, Reason: v1alpha1.ReasonAccepted, Message: fmt.Sprintf("CORS policy in effect for %s", plural("Service", s.Services))}
}

// configErrorMessage names each invalid field by its path under spec.config.
func configErrorMessage(err error) string {
	var list config.ErrorList
	if !errors.As(err, &list) {
		return "spec.config: " + err.Error()
	}
	msgs := make([]string, len(list))
	for i, fe := range list {
		path := "spec.config"
		if fe.Field != "" && fe.Field != "(document)" {
			path += "." + fe.Field
		}
		msgs[i] = path + ": " + fe.Detail
	}
	return strings.Join(msgs, "; ")
}

// plural renders "Service a" or "Services a, b".
func plural(noun string, items []string) string {
	if len(items) == 1 {
		return noun + " " + items[0]
	}
	return noun + "s " + strings.Join(items, ", ")
}

func without(items, drop []string) []string {
	var out []string
	for _, it := range items {
		if !slices.Contains(drop, it) && !slices.Contains(out, it) {
			out = append(out, it)
		}
	}
	return out
}
