package injector

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	configv1alpha2 "github.com/corsmesh/corsmesh/injector/api/config/v1alpha2"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

// Resolver answers every policy question corsmesh asks about one cluster: the decision
// for a pod (at admission, at resync, offline), the PluginConfig in effect for a Service,
// what becomes of each plugin a PluginChain mounts, and the plugin-policy switch. The
// webhook, its controllers and corsmeshctl all ask it, so they cannot disagree. It keeps
// the cluster's PluginChains compiled, and parsed policies, between changes. It is safe
// for concurrent use.
type Resolver struct {
	id      string // this Resolver's, in Stamps
	in      *Injector
	cluster Cluster
	opts    ResolverOptions

	// revision counts changes of every input (Changed); chainChanges those of PluginChains.
	revision     atomic.Uint64
	chainChanges atomic.Uint64
	// chainsLeaving counts PluginChains leaving the store whose fate is not known yet
	// (ChainLeaving, ChainSettled): while any is, Chains lists afresh and no stamp is current.
	chainsLeaving atomic.Int64

	chainsMu sync.Mutex
	chains   *compiledChains

	policies derivedCache[parsedPolicy]
	// pluginPolicy is a Watched Resolver's last PluginPolicy, with the revision it was read at.
	pluginPolicy atomic.Pointer[revisedPluginPolicy]
}

type revisedPluginPolicy struct {
	revision uint64
	policy   PluginPolicy
}

// ResolverOptions say how the Resolver learns of changes and what it may assume.
type ResolverOptions struct {
	// Watched promises a call to Changed for every change of the cluster's objects, made
	// before anyone can read the changed object (an informer store's indexer, say). The
	// compiled PluginChains are then reused until the chains change; otherwise every
	// question lists them again and compiles the ones not seen before.
	Watched bool
	// Offline is corsmeshctl's injection of files: a namespace found nowhere is taken as
	// monitored by the mesh and a missing MeshConfig as plugin policy on, since injecting
	// a workload offline means the user asked for it. Decision.Assumed says so.
	Offline bool
}

// Input names a kind of object the Resolver reads, for Changed.
type Input int

const (
	InputPluginChains Input = iota
	InputOther              // namespaces, Services, PluginConfigs, Plugins, the MeshConfig
)

// NewResolver returns a Resolver reading cluster with the injector's options.
func NewResolver(in *Injector, cluster Cluster, opts ResolverOptions) *Resolver {
	return &Resolver{id: rand.Text()[:10], in: in, cluster: cluster, opts: opts}
}

// Current reports whether a decision this Resolver stamped (Decision.Stamp) still holds:
// nothing it reads has changed since. Only a Watched Resolver stamps; a stamp of another
// process (another replica, a restart) is never current.
func (r *Resolver) Current(stamp string) bool {
	return r.opts.Watched && stamp != "" && r.chainsLeaving.Load() == 0 && stamp == r.stamp(r.Revision())
}

func (r *Resolver) stamp(revision uint64) string {
	return r.id + "/" + strconv.FormatUint(revision, 10)
}

// Injector returns the injector whose options the Resolver applies.
func (r *Resolver) Injector() *Injector { return r.in }

// Cluster returns what the Resolver reads.
func (r *Resolver) Cluster() Cluster { return r.cluster }

// Changed records a change of the cluster's objects of one kind.
func (r *Resolver) Changed(what Input) {
	if what == InputPluginChains {
		r.chainChanges.Add(1)
	}
	r.revision.Add(1)
}

// ChainLeaving records that a Watched Resolver's store is taking a PluginChain out: an
// update's old version or a delete, which its store cannot tell apart when it says so.
// Until the matching ChainSettled, Chains reads the store afresh and no decision is Current,
// so a delete shows at once. It spares the compiled chains (and every stamp) a rebuild for
// each status write: the chain status controller writes pod counts about once a second
// during a rollout, and rebuilding 1,000 compiled chains cost the next admission ~1 ms.
func (r *Resolver) ChainLeaving() { r.chainsLeaving.Add(1) }

// ChainSettled ends a ChainLeaving: changed records a real change first (a new spec, a
// delete); unchanged, the chain came back with the same UID and generation (a status or
// metadata write), and what was compiled from it stands.
func (r *Resolver) ChainSettled(changed bool) {
	if changed {
		r.Changed(InputPluginChains)
	}
	r.chainsLeaving.Add(-1)
}

// Revision counts the changes recorded so far. A decision made at revision n still holds
// while Revision returns n (for a Watched Resolver).
func (r *Resolver) Revision() uint64 { return r.revision.Load() }

// Watched reports whether the Resolver is told of every change (ResolverOptions.Watched).
func (r *Resolver) Watched() bool { return r.opts.Watched }

// compiledChains is the one cache of compiled PluginChains: a snapshot, never modified.
type compiledChains struct {
	seen  uint64 // chainChanges when built
	list  []CompiledChain
	index *chainIndex // a Watched Resolver's only: the list is then reused, so indexing it pays
}

// Chains returns every PluginChain of the cluster, compiled. The list is shared until the
// next change: read it, never modify it.
func (r *Resolver) Chains(ctx context.Context) ([]CompiledChain, error) {
	cs, err := r.compiledChains(ctx)
	if err != nil {
		return nil, err
	}
	return cs.list, nil
}

func (r *Resolver) compiledChains(ctx context.Context) (*compiledChains, error) {
	r.chainsMu.Lock()
	defer r.chainsMu.Unlock()
	// Read before listing: a change made meanwhile is in the list or causes a rebuild.
	changes := r.chainChanges.Load()
	if r.opts.Watched && r.chains != nil && r.chains.seen == changes && r.chainsLeaving.Load() == 0 {
		return r.chains, nil
	}
	chains, err := r.cluster.PluginChains(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing PluginChains: %w", err)
	}
	var previous map[*v1alpha1.PluginChain]CompiledChain
	if r.chains != nil {
		// An unchanged chain is the same object (informers and Objects both keep it): only
		// changed ones are compiled again.
		previous = make(map[*v1alpha1.PluginChain]CompiledChain, len(r.chains.list))
		for _, c := range r.chains.list {
			previous[c.Chain] = c
		}
	}
	list := make([]CompiledChain, len(chains))
	for i, c := range chains {
		cc, ok := previous[c]
		if !ok || cc.resourceVersion != c.ResourceVersion || c.ResourceVersion == "" {
			cc = CompileChain(c)
		}
		list[i] = cc
	}
	cs := &compiledChains{seen: changes, list: list}
	if r.opts.Watched {
		cs.index = indexChains(list)
	}
	r.chains = cs
	return cs, nil
}

// PluginPolicy is the state of osm-edge's plugin-policy switch
// (spec.featureFlags.enablePluginPolicy of MeshConfig osm-mesh-config in the control
// plane's namespace). While it is off, PluginChains and PluginConfigs are not applied: no
// pod is injected and injected pods keep the policy they have.
type PluginPolicy struct {
	Enabled bool
	// State says why it is off, or that it was assumed on (offline).
	State PluginPolicyState
	// Namespace is where the MeshConfig is read.
	Namespace string
}

// PluginPolicyState is why plugin policy is on or off.
type PluginPolicyState string

const (
	PluginPolicyOn        PluginPolicyState = "on"
	PluginPolicyNoMesh    PluginPolicyState = "no-meshconfig"
	PluginPolicyFlagOff   PluginPolicyState = "flag-off"
	PluginPolicyAssumedOn PluginPolicyState = "assumed-on"
)

// PluginPolicy reads the switch. A missing MeshConfig is off, osm-edge's default (assumed
// on for an Offline Resolver).
//
// A Watched Resolver reads the MeshConfig again only after a change: reading it through the
// cache was 5 of an admission's allocations, for an object that changes about never. The
// revision is read first, so a change during the read leaves a revision already stale.
func (r *Resolver) PluginPolicy(ctx context.Context) (PluginPolicy, error) {
	revision := r.Revision()
	if last := r.pluginPolicy.Load(); r.opts.Watched && last != nil && last.revision == revision {
		return last.policy, nil
	}
	ns, name := r.in.opts.OwnNamespace, configv1alpha2.MeshConfigName
	mc, err := r.cluster.MeshConfig(ctx, ns, name)
	if err != nil {
		return PluginPolicy{}, fmt.Errorf("reading MeshConfig %s/%s: %w", ns, name, err)
	}
	p := PluginPolicyOf(mc, ns, r.opts.Offline)
	if r.opts.Watched {
		r.pluginPolicy.Store(&revisedPluginPolicy{revision: revision, policy: p})
	}
	return p, nil
}

// PluginPolicyOf is the switch as MeshConfig mc (nil: absent) in namespace ns sets it.
func PluginPolicyOf(mc *configv1alpha2.MeshConfig, ns string, offline bool) PluginPolicy {
	p := PluginPolicy{Namespace: ns}
	switch {
	case mc == nil && offline:
		p.Enabled, p.State = true, PluginPolicyAssumedOn
	case mc == nil:
		p.State = PluginPolicyNoMesh
	case !mc.Spec.FeatureFlags.EnablePluginPolicy:
		p.State = PluginPolicyFlagOff
	default:
		p.Enabled, p.State = true, PluginPolicyOn
	}
	return p
}

// namespace reads a namespace; an Offline Resolver assumes one found nowhere exists and is
// monitored by the mesh.
func (r *Resolver) namespace(ctx context.Context, name string, d *Decision) (*corev1.Namespace, error) {
	ns, err := r.cluster.Namespace(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("reading namespace %s: %w", name, err)
	}
	if ns != nil || !r.opts.Offline {
		return ns, nil
	}
	d.Assumed = append(d.Assumed, Assumption{Kind: AssumedMonitoredNamespace, Name: name, Mesh: r.in.opts.MeshName})
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		corev1.LabelMetadataName: name, // as the API server labels every namespace
		LabelMonitoredBy:         r.in.opts.MeshName,
	}}}, nil
}

// Inject decides for a pod at admission and, when it is injected, returns the mutated pod.
func (r *Resolver) Inject(ctx context.Context, pod *corev1.Pod, ns string) (*Decision, *corev1.Pod, error) {
	d, err := r.Decide(ctx, pod, ns, ForAdmission)
	if err != nil || !d.Inject {
		return d, nil, err
	}
	mutated, err := r.in.Mutate(pod, d)
	if err != nil {
		return nil, nil, err
	}
	return d, mutated, nil
}
