package webhook

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
	configv1alpha2 "github.com/corsmesh/corsmesh/injector/api/config/v1alpha2"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

// staleSkips are the skips an informer cache that lags the API server can cause: a
// PluginChain, Plugin, PluginConfig, Service or MeshConfig written a moment before the pod
// (`kubectl apply` of a chain and a Deployment in one file, the guide's patch and then its
// pods) may not have reached the cache when the pod is admitted. The other skips depend
// only on the pod, or on its namespace, which the cache already reads live when missing.
var staleSkips = map[injector.Reason]bool{
	injector.ReasonPluginPolicyDisabled: true,
	injector.ReasonNoChain:              true,
	injector.ReasonNoCORSPlugin:         true,
	injector.ReasonPluginNotFound:       true,
	injector.ReasonNoHTTPPorts:          true,
}

// decide is the injection decision from the cache, confirmed by a live read when the
// cache says "skip" for a reason a lagging cache can cause: a pod must not lose its sidecar
// because the webhook's informer had not yet seen the chain created just before it.
//
// The live read costs a pod of a monitored namespace that no chain selects a few API
// calls (the namespace, the MeshConfig, every PluginChain, and, only if a chain selects
// it, the Plugins, the namespace's Services and the PluginConfigs); injected pods and
// unmonitored namespaces never pay it. BenchmarkAdmissionConfirmedSkip measures it.
// When the live read fails, the cached decision stands: an API server too busy to answer
// must not also fail every pod creation in monitored namespaces.
func (m *PodMutator) decide(ctx context.Context, pod *corev1.Pod, ns string) (*injector.Decision, error) {
	d, err := m.Injector.Decide(ctx, m.Cluster, pod, ns)
	if err != nil || d.Inject || !staleSkips[d.Reason] || m.Live == nil {
		return d, err
	}
	live, err := m.Injector.Decide(ctx, m.Live, pod, ns)
	if err != nil {
		m.Metrics.Errors.WithLabelValues(errClusterRead).Inc()
		m.Log.Error(err, "confirming a skip with a live read; keeping the cached decision", "namespace", ns, "pod", podName(pod), "reason", d.Reason)
		return d, nil
	}
	if live.Inject || live.Reason != d.Reason {
		m.Log.V(1).Info("the cache lagged the API server", "namespace", ns, "pod", podName(pod), "cached", d.Reason, "live", live.Reason)
	}
	return live, nil
}

// LiveCluster is the injector's view of the cluster read straight from the API server
// (the manager's APIReader): what admission uses to confirm a skip.
type LiveCluster struct {
	Reader client.Reader
}

var _ injector.Cluster = LiveCluster{}

func (c LiveCluster) Namespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	return (&CacheCluster{Cache: c.Reader}).Namespace(ctx, name)
}

func (c LiveCluster) Services(ctx context.Context, namespace string) ([]*corev1.Service, error) {
	return (&CacheCluster{Cache: c.Reader}).Services(ctx, namespace)
}

func (c LiveCluster) PluginChains(ctx context.Context) ([]*v1alpha1.PluginChain, error) {
	return (&CacheCluster{Cache: c.Reader}).PluginChains(ctx)
}

// PluginConfigsFor filters a full list: the API server cannot select on destinationRefs.
func (c LiveCluster) PluginConfigsFor(ctx context.Context, namespace, service string) ([]*v1alpha1.PluginConfig, error) {
	var list v1alpha1.PluginConfigList
	if err := c.Reader.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("listing PluginConfigs: %w", err)
	}
	want := namespace + "/" + service
	var out []*v1alpha1.PluginConfig
	for i := range list.Items {
		for _, key := range injector.DestinationKeys(&list.Items[i]) {
			if key == want {
				out = append(out, &list.Items[i])
				break
			}
		}
	}
	return out, nil
}

func (c LiveCluster) Plugin(ctx context.Context, name string) (*v1alpha1.Plugin, error) {
	return (&CacheCluster{Cache: c.Reader}).Plugin(ctx, name)
}

func (c LiveCluster) MeshConfig(ctx context.Context, namespace, name string) (*configv1alpha2.MeshConfig, error) {
	return (&CacheCluster{Cache: c.Reader}).MeshConfig(ctx, namespace, name)
}
