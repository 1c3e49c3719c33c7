package injector

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/corsmesh/corsmesh/corsproxy/config"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

// Reason says why a pod was not injected. The values are metric labels: keep them stable.
type Reason string

const (
	ReasonSystemNamespace       Reason = "system-namespace"
	ReasonOwnNamespace          Reason = "own-namespace"
	ReasonNamespaceNotFound     Reason = "namespace-not-found"
	ReasonNamespaceNotMonitored Reason = "namespace-not-monitored"
	ReasonHostNetwork           Reason = "host-network"
	ReasonWindows               Reason = "windows-pod"
	ReasonAlreadyInjected       Reason = "already-injected"
	ReasonPodOptedOut           Reason = "pod-opted-out"
	ReasonNamespaceOptedOut     Reason = "namespace-opted-out"
	ReasonInvalidAnnotation     Reason = "invalid-annotation"
	ReasonPodSecurity           Reason = "pod-security"
	ReasonPluginPolicyDisabled  Reason = "plugin-policy-disabled"
	ReasonNoChain               Reason = "no-chain-selects-pod"
	ReasonNoCORSPlugin          Reason = "no-cors-plugin"
	ReasonPluginNotFound        Reason = "plugin-not-found"
	ReasonNoHTTPPorts           Reason = "no-http-ports"
)

// Reasons lists every Reason, so metrics can report zero counts.
func Reasons() []Reason {
	return []Reason{ReasonSystemNamespace, ReasonOwnNamespace, ReasonNamespaceNotFound,
		ReasonNamespaceNotMonitored, ReasonHostNetwork, ReasonWindows, ReasonAlreadyInjected, ReasonPodOptedOut,
		ReasonNamespaceOptedOut, ReasonInvalidAnnotation, ReasonPodSecurity, ReasonPluginPolicyDisabled, ReasonNoChain,
		ReasonNoCORSPlugin, ReasonPluginNotFound, ReasonNoHTTPPorts}
}

// Decision is the outcome for one pod.
type Decision struct {
	// Inject is true when the pod gets the sidecar; otherwise Reason and Message say why not.
	Inject  bool
	Reason  Reason
	Message string
	// Warnings are things the user should know either way (admission warnings, Events).
	Warnings []string
	// Chains are the PluginChains ("namespace/name") that select the pod with CORS.
	Chains []string
	// Config is the policy the proxy will enforce; Ports the ports it intercepts.
	Config *config.Config
	Ports  []int32
}

func skip(reason Reason, format string, args ...any) *Decision {
	return &Decision{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Injector decides and mutates. It is safe for concurrent use.
type Injector struct {
	opts Options

	selectors derivedCache[CompiledChain]
	policies  derivedCache[parsedPolicy]
}

// CompiledChain is a PluginChain with its selectors compiled (Err says why they do not
// compile; the chain then selects nothing).
type CompiledChain struct {
	Chain            *v1alpha1.PluginChain
	Pods, Namespaces labels.Selector
	Err              error
}

// Selects reports whether the chain selects a pod with these labels in a namespace with
// these labels.
func (c *CompiledChain) Selects(podLabels, namespaceLabels labels.Labels) bool {
	return c.Err == nil && c.Pods.Matches(podLabels) && c.Namespaces.Matches(namespaceLabels)
}

// CompileChain compiles a chain's selectors; nil selects everything, as in osm-edge.
func CompileChain(c *v1alpha1.PluginChain) CompiledChain {
	cc := CompiledChain{Chain: c}
	if cc.Pods, cc.Err = selector(c.Spec.Selectors.PodSelector); cc.Err != nil {
		cc.Err = fmt.Errorf("spec.selectors.podSelector: %w", cc.Err)
	} else if cc.Namespaces, cc.Err = selector(c.Spec.Selectors.NamespaceSelector); cc.Err != nil {
		cc.Err = fmt.Errorf("spec.selectors.namespaceSelector: %w", cc.Err)
	}
	return cc
}

// New returns an Injector.
func New(opts Options) *Injector {
	return &Injector{opts: opts}
}

// Options returns the injector's options.
func (in *Injector) Options() Options { return in.opts }

// Decide evaluates the injection decision (README, "How injection is decided") for a pod in namespace ns (the pod's own
// Namespace field is empty at admission for generated names; the request's is used).
func (in *Injector) Decide(ctx context.Context, cluster Cluster, pod *corev1.Pod, ns string) (*Decision, error) {
	return in.decide(ctx, cluster, pod, ns, false)
}

// Desired is the decision for a running, already injected pod as if it were created now:
// the config sync controller compares its Config and Ports with what the pod carries.
func (in *Injector) Desired(ctx context.Context, cluster Cluster, pod *corev1.Pod, ns string) (*Decision, error) {
	return in.decide(ctx, cluster, pod, ns, true)
}

func (in *Injector) decide(ctx context.Context, cluster Cluster, pod *corev1.Pod, ns string, injected bool) (*Decision, error) {
	switch {
	case slices.Contains(in.opts.SystemNamespaces, ns):
		return skip(ReasonSystemNamespace, "namespace %s is a system namespace", ns), nil
	case ns == in.opts.OwnNamespace:
		return skip(ReasonOwnNamespace, "namespace %s is corsmesh's own", ns), nil
	case pod.Spec.HostNetwork:
		return skip(ReasonHostNetwork, "the pod uses the host's network: redirecting its traffic would redirect the node's"), nil
	case runsOnWindows(pod):
		return skip(ReasonWindows, "the pod runs on Windows (spec.os.name or a kubernetes.io/os node selector): the proxy and its iptables rules are Linux-only"), nil
	case !injected && (pod.Annotations[AnnotationStatus] != "" || hasContainer(pod, ProxyContainerName)):
		return skip(ReasonAlreadyInjected, "the pod already has the corsproxy sidecar"), nil
	}
	namespace, err := cluster.Namespace(ctx, ns)
	if err != nil {
		return nil, fmt.Errorf("reading namespace %s: %w", ns, err)
	}
	if namespace == nil {
		return skip(ReasonNamespaceNotFound, "namespace %s not found", ns), nil
	}
	if mesh := namespace.Labels[LabelMonitoredBy]; mesh != in.opts.MeshName {
		return skip(ReasonNamespaceNotMonitored, "namespace %s is not monitored by mesh %q (label %s=%q; run `corsmeshctl namespace add %s`)",
			ns, in.opts.MeshName, LabelMonitoredBy, mesh, ns), nil
	}
	if d := optedOut(pod, namespace); d != nil {
		return d, nil
	}
	if level := namespace.Labels[LabelPodSecurityEnforce]; level == "baseline" || level == "restricted" {
		return skip(ReasonPodSecurity, "namespace %s enforces Pod Security %q, which rejects the init container's NET_ADMIN capability: the pod runs without CORS (label the namespace %s=privileged to inject)",
			ns, level, LabelPodSecurityEnforce), nil
	}
	switch policy, err := in.PluginPolicy(ctx, cluster); {
	case err != nil:
		return nil, err
	case !policy.Enabled:
		return skip(ReasonPluginPolicyDisabled, "%s", policy.Message), nil
	}

	d := &Decision{}
	chains, err := in.selectingChains(ctx, cluster, pod, namespace, d)
	if err != nil || len(chains) == 0 {
		if d.Reason == "" && err == nil {
			d.Reason, d.Message = ReasonNoChain, "no PluginChain selects the pod"
		}
		return d, err
	}
	corsPlugins, err := in.corsPlugins(ctx, cluster, chains, d)
	if err != nil || len(corsPlugins) == 0 {
		return d, err
	}
	for _, c := range chains {
		d.Chains = append(d.Chains, c.Namespace+"/"+c.Name)
	}
	if err := in.resolvePorts(ctx, cluster, pod, ns, corsPlugins, d); err != nil {
		return nil, err
	}
	if len(d.Ports) == 0 {
		d.Reason = ReasonNoHTTPPorts
		d.Message = "no Service selects the pod on a TCP port the proxy can serve, so there is nothing to intercept"
		return d, nil
	}
	d.Inject = true
	return d, nil
}

// optedOut applies osm-edge's annotation: on the pod it decides; on the namespace it
// decides unless the pod says enabled.
func optedOut(pod *corev1.Pod, ns *corev1.Namespace) *Decision {
	podValue, podSet := pod.Annotations[AnnotationSidecarInjection]
	if podSet {
		enabled, ok := parseEnabled(podValue)
		switch {
		case !ok:
			return skip(ReasonInvalidAnnotation, "pod annotation %s=%q: want enabled, disabled, yes, no, true or false", AnnotationSidecarInjection, podValue)
		case !enabled:
			return skip(ReasonPodOptedOut, "pod annotation %s=%s", AnnotationSidecarInjection, podValue)
		default:
			return nil
		}
	}
	if nsValue, ok := ns.Annotations[AnnotationSidecarInjection]; ok {
		enabled, valid := parseEnabled(nsValue)
		switch {
		case !valid:
			return skip(ReasonInvalidAnnotation, "namespace annotation %s=%q: want enabled, disabled, yes, no, true or false", AnnotationSidecarInjection, nsValue)
		case !enabled:
			return skip(ReasonNamespaceOptedOut, "namespace %s has %s=%s and the pod does not say enabled", ns.Name, AnnotationSidecarInjection, nsValue)
		}
	}
	return nil
}

func parseEnabled(v string) (enabled, ok bool) {
	switch strings.ToLower(v) {
	case "enabled", "yes", "true":
		return true, true
	case "disabled", "no", "false":
		return false, true
	}
	return false, false
}

// selectingChains returns the PluginChains whose selectors match the pod and its namespace.
func (in *Injector) selectingChains(ctx context.Context, cluster Cluster, pod *corev1.Pod, ns *corev1.Namespace, d *Decision) ([]*v1alpha1.PluginChain, error) {
	all, err := in.Chains(ctx, cluster)
	if err != nil {
		return nil, err
	}
	podLabels, nsLabels := labels.Set(pod.Labels), labels.Set(ns.Labels)
	var out []*v1alpha1.PluginChain
	for i := range all {
		c := &all[i]
		if c.Err != nil {
			d.Warnings = append(d.Warnings, fmt.Sprintf("PluginChain %s/%s ignored: %v", c.Chain.Namespace, c.Chain.Name, c.Err))
			continue
		}
		if c.Selects(podLabels, nsLabels) {
			out = append(out, c.Chain)
		}
	}
	return out, nil
}

// Chains returns every PluginChain of the cluster, compiled: as the cluster keeps them
// when it can (CompiledChainLister), else compiled once per version of each chain. The
// list may be shared: read it, never modify it.
func (in *Injector) Chains(ctx context.Context, cluster Cluster) ([]CompiledChain, error) {
	if cl, ok := cluster.(CompiledChainLister); ok {
		chains, err := cl.CompiledPluginChains(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing PluginChains: %w", err)
		}
		return chains, nil
	}
	chains, err := cluster.PluginChains(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing PluginChains: %w", err)
	}
	out := make([]CompiledChain, len(chains))
	for i, c := range chains {
		out[i] = in.compiled(c)
	}
	return out, nil
}

// compiled returns a chain's selectors, compiled once per version of the chain.
func (in *Injector) compiled(c *v1alpha1.PluginChain) CompiledChain {
	cc := in.selectors.get(c, func() CompiledChain { return CompileChain(c) })
	cc.Chain = c // the cache's entry may be for a copy of the same version
	return cc
}

// ChainSelectors returns a chain's pod and namespace selectors, compiled once per version
// of the chain.
func (in *Injector) ChainSelectors(c *v1alpha1.PluginChain) (pods, namespaces labels.Selector, err error) {
	cc := in.compiled(c)
	return cc.Pods, cc.Namespaces, cc.Err
}

// selector treats a nil selector as "everything", as osm-edge does.
func selector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(s)
}

// corsPlugins returns the names of the CORS plugins the chains mount on inbound-http.
// Anything else a chain mounts is reported, never silently used.
func (in *Injector) corsPlugins(ctx context.Context, cluster Cluster, chains []*v1alpha1.PluginChain, d *Decision) ([]string, error) {
	lookup := func(name string) (*v1alpha1.Plugin, error) { return cluster.Plugin(ctx, name) }
	var names, missing []string
	for _, c := range chains {
		mounts, err := in.Mounts(c, lookup)
		if err != nil {
			return nil, err
		}
		for _, m := range mounts {
			switch {
			case m.State != MountServed:
				if m.State == MountMissing {
					missing = append(missing, m.Name)
				}
				d.Warnings = append(d.Warnings, fmt.Sprintf("PluginChain %s/%s: %s", c.Namespace, c.Name, m.Message()))
			case !slices.Contains(names, m.Name):
				names = append(names, m.Name)
			}
		}
	}
	if len(names) == 0 {
		d.Reason, d.Message = ReasonNoCORSPlugin, fmt.Sprintf("the PluginChains selecting the pod mount no CORS plugin on %s", v1alpha1.ChainInboundHTTP)
		if len(missing) > 0 {
			d.Reason, d.Message = ReasonPluginNotFound, fmt.Sprintf("the PluginChains selecting the pod name Plugins that do not exist: %s", strings.Join(missing, ", "))
		}
	}
	return names, nil
}

// IsCORSPlugin reports whether corsmesh implements the Plugin, as CORS.
func (in *Injector) IsCORSPlugin(p *v1alpha1.Plugin) bool {
	return p.Annotations[AnnotationImplements] == "cors" || slices.Contains(in.opts.CORSPluginNames, p.Name)
}

func hasContainer(pod *corev1.Pod, name string) bool {
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		if slices.ContainsFunc(list, func(c corev1.Container) bool { return c.Name == name }) {
			return true
		}
	}
	return false
}

// Forget drops a deleted chain's compiled selectors.
func (in *Injector) Forget(namespace, name string) { in.selectors.forget(namespace, name) }

// runsOnWindows reports a pod meant for Windows nodes, by its OS field or, before that
// field, its node selector.
func runsOnWindows(pod *corev1.Pod) bool {
	if pod.Spec.OS != nil {
		return pod.Spec.OS.Name == corev1.Windows
	}
	return pod.Spec.NodeSelector[corev1.LabelOSStable] == string(corev1.Windows)
}
