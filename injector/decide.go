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
	// Assumed lists what an Offline Resolver assumed about objects found nowhere.
	Assumed []Assumption
	// Chains are the PluginChains ("namespace/name") that select the pod with CORS.
	Chains []string
	// Config is the policy the proxy will enforce; Ports the ports it intercepts.
	Config *config.Config
	Ports  []int32
	// Stamp names the Resolver and its revision when it started deciding, for
	// Resolver.Current (empty unless the Resolver is Watched).
	Stamp string
}

// Purpose says which question a decision answers.
type Purpose int

const (
	// ForAdmission: the pod is being created; one already carrying the sidecar is left as it is.
	ForAdmission Purpose = iota
	// ForResync: the pod runs with the sidecar; the decision is the one it would get if
	// created now (config sync compares its Config and Ports with what the pod carries).
	ForResync
)

// Injector builds the mutation and validates policy objects. It is safe for concurrent use.
type Injector struct {
	opts  Options
	cache *injectedCache // the injected containers, by their inputs
}

// CompiledChain is a PluginChain with its selectors compiled (Err says why they do not
// compile; the chain then selects nothing).
type CompiledChain struct {
	Chain            *v1alpha1.PluginChain
	Pods, Namespaces labels.Selector
	Err              error

	resourceVersion string // of Chain when compiled
}

// Selects reports whether the chain selects a pod with these labels in a namespace with
// these labels.
func (c *CompiledChain) Selects(podLabels, namespaceLabels labels.Labels) bool {
	return c.Err == nil && c.Pods.Matches(podLabels) && c.Namespaces.Matches(namespaceLabels)
}

// CompileChain compiles a chain's selectors; nil selects everything, as in osm-edge.
func CompileChain(c *v1alpha1.PluginChain) CompiledChain {
	cc := CompiledChain{Chain: c, resourceVersion: c.ResourceVersion}
	if cc.Pods, cc.Err = selector(c.Spec.Selectors.PodSelector); cc.Err != nil {
		cc.Err = fmt.Errorf("spec.selectors.podSelector: %w", cc.Err)
	} else if cc.Namespaces, cc.Err = selector(c.Spec.Selectors.NamespaceSelector); cc.Err != nil {
		cc.Err = fmt.Errorf("spec.selectors.namespaceSelector: %w", cc.Err)
	}
	return cc
}

// New returns an Injector.
func New(opts Options) *Injector {
	return &Injector{opts: opts, cache: newInjectedCache(maxInjectedEntries)}
}

// Options returns the injector's options.
func (in *Injector) Options() Options { return in.opts }

// Monitors reports whether the mesh reaches namespace ns: labelled monitored-by the
// mesh, and neither a system namespace nor the webhook's own. It is the one statement of
// that rule: Decide gives the reason when it does not hold, the webhook caches Services
// only where it does, and the chain status counts only its pods.
func (o Options) Monitors(ns *corev1.Namespace) bool {
	return ns != nil && o.reservedNamespace(ns.Name) == "" && ns.Labels[LabelMonitoredBy] == o.MeshName
}

// reservedNamespace is why the mesh never reaches namespace name, whatever its labels
// ("" when it may).
func (o Options) reservedNamespace(name string) Reason {
	switch {
	case slices.Contains(o.SystemNamespaces, name):
		return ReasonSystemNamespace
	case name == o.OwnNamespace:
		return ReasonOwnNamespace
	}
	return ""
}

// Decide evaluates the injection decision (README, "How injection is decided") for a pod
// in namespace ns (the pod's own Namespace field is empty at admission for generated
// names; the request's is used).
func (r *Resolver) Decide(ctx context.Context, pod *corev1.Pod, ns string, purpose Purpose) (*Decision, error) {
	d := &Decision{}
	if r.opts.Watched {
		// Read before anything else: a change made while deciding makes the stamp stale.
		d.Stamp = r.stamp(r.Revision())
	}
	opts := r.in.opts
	if reason := opts.reservedNamespace(ns); reason != "" {
		return d.skip(reason, ns), nil
	}
	switch {
	case pod.Spec.HostNetwork:
		return d.skip(ReasonHostNetwork), nil
	case runsOnWindows(pod):
		return d.skip(ReasonWindows), nil
	case purpose == ForAdmission && (pod.Annotations[AnnotationStatus] != "" || hasContainer(pod, ProxyContainerName)):
		return d.skip(ReasonAlreadyInjected), nil
	}
	namespace, err := r.namespace(ctx, ns, d)
	if err != nil {
		return nil, err
	}
	if namespace == nil {
		return d.skip(ReasonNamespaceNotFound, ns), nil
	}
	if !opts.Monitors(namespace) {
		return d.skip(ReasonNamespaceNotMonitored, ns, opts.MeshName, LabelMonitoredBy, namespace.Labels[LabelMonitoredBy], ns), nil
	}
	if optedOut(pod, namespace, d) {
		return d, nil
	}
	if level := namespace.Labels[LabelPodSecurityEnforce]; level == "baseline" || level == "restricted" {
		return d.skip(ReasonPodSecurity, ns, level, LabelPodSecurityEnforce), nil
	}
	policy, err := r.PluginPolicy(ctx)
	if err != nil {
		return nil, err
	}
	if policy.State == PluginPolicyAssumedOn {
		d.Assumed = append(d.Assumed, Assumption{Kind: AssumedPluginPolicyOn, Namespace: policy.Namespace})
	}
	if !policy.Enabled {
		d.Reason, d.Message = ReasonPluginPolicyDisabled, policy.Message()
		return d, nil
	}

	chains, err := r.selectingChains(ctx, pod, namespace, d)
	if err != nil {
		return nil, err
	}
	if len(chains) == 0 {
		return d.skip(ReasonNoChain), nil
	}
	corsPlugins, err := r.corsPlugins(ctx, chains, d)
	if err != nil || len(corsPlugins) == 0 {
		return d, err
	}
	for _, c := range chains {
		d.Chains = append(d.Chains, c.Namespace+"/"+c.Name)
	}
	if err := r.resolvePorts(ctx, pod, ns, corsPlugins, d); err != nil {
		return nil, err
	}
	if len(d.Ports) == 0 {
		return d.skip(ReasonNoHTTPPorts), nil
	}
	d.Inject = true
	return d, nil
}

// optedOut applies osm-edge's annotation: on the pod it decides; on the namespace it
// decides unless the pod says enabled. It records the skip in d.
func optedOut(pod *corev1.Pod, ns *corev1.Namespace, d *Decision) bool {
	podValue, podSet := pod.Annotations[AnnotationSidecarInjection]
	if podSet {
		enabled, ok := parseEnabled(podValue)
		switch {
		case !ok:
			d.skip(ReasonInvalidAnnotation, "pod", AnnotationSidecarInjection, podValue)
		case !enabled:
			d.skip(ReasonPodOptedOut, AnnotationSidecarInjection, podValue)
		}
		return d.Reason != ""
	}
	if nsValue, ok := ns.Annotations[AnnotationSidecarInjection]; ok {
		enabled, valid := parseEnabled(nsValue)
		switch {
		case !valid:
			d.skip(ReasonInvalidAnnotation, "namespace", AnnotationSidecarInjection, nsValue)
		case !enabled:
			d.skip(ReasonNamespaceOptedOut, ns.Name, AnnotationSidecarInjection, nsValue)
		}
	}
	return d.Reason != ""
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
func (r *Resolver) selectingChains(ctx context.Context, pod *corev1.Pod, ns *corev1.Namespace, d *Decision) ([]*v1alpha1.PluginChain, error) {
	var out []*v1alpha1.PluginChain
	err := r.EachChainSelecting(ctx, pod.Labels, ns.Labels, func(c *CompiledChain) {
		if c.Err != nil {
			d.Warnings = append(d.Warnings, warnChainIgnored(c.Chain, c.Err))
			return
		}
		out = append(out, c.Chain)
	})
	return out, err
}

// EachChainSelecting calls fn, in list order, with each compiled chain whose selectors
// match a pod with podLabels in a namespace with nsLabels, and each whose selectors do not
// compile (nothing can be said of them: the caller reports them). It reads the chain
// index, so only the chains that may select the pod are matched. The chains are shared:
// read them.
func (r *Resolver) EachChainSelecting(ctx context.Context, podLabels, nsLabels map[string]string, fn func(*CompiledChain)) error {
	cs, err := r.compiledChains(ctx)
	if err != nil {
		return err
	}
	pods, namespaces := labels.Set(podLabels), labels.Set(nsLabels)
	for c := range cs.candidates(podLabels) {
		if c.Err != nil || c.Selects(pods, namespaces) {
			fn(c)
		}
	}
	return nil
}

// selector treats a nil selector as "everything", as osm-edge does.
func selector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(s)
}

// corsPlugins returns the names of the CORS plugins the chains serve on inbound-http.
// Anything else a chain mounts is reported, never silently used.
func (r *Resolver) corsPlugins(ctx context.Context, chains []*v1alpha1.PluginChain, d *Decision) ([]string, error) {
	var names, missing []string
	for _, c := range chains {
		mounts, err := r.Mounts(ctx, c)
		if err != nil {
			return nil, err
		}
		for _, m := range mounts {
			switch {
			case m.State != MountServed:
				if m.State == MountMissing {
					missing = append(missing, m.Name)
				}
				d.Warnings = append(d.Warnings, warnMount(c, m))
			case !slices.Contains(names, m.Name):
				names = append(names, m.Name)
			}
		}
	}
	switch {
	case len(names) > 0:
	case len(missing) > 0:
		d.skip(ReasonPluginNotFound, strings.Join(missing, ", "))
	default:
		d.skip(ReasonNoCORSPlugin, v1alpha1.ChainInboundHTTP)
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

// runsOnWindows reports a pod meant for Windows nodes, by its OS field or, before that
// field, its node selector.
func runsOnWindows(pod *corev1.Pod) bool {
	if pod.Spec.OS != nil {
		return pod.Spec.OS.Name == corev1.Windows
	}
	return pod.Spec.NodeSelector[corev1.LabelOSStable] == string(corev1.Windows)
}
