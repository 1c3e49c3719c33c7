package admit

import (
	"context"
	"errors"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/kubecluster"
	"github.com/corsmesh/corsmesh/webhook/internal/webhooktest"
)

// failingReader fails every read, as an API server that does not answer.
type failingReader struct{ client.Reader }

func (failingReader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return errors.New("the API server did not answer")
}

func (failingReader) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	return errors.New("the API server did not answer")
}

// TestDecideConfirmsCachedSkips: the cache's skip stands only when the API server agrees.
// The live side is controller-runtime's fake client (a read of stored objects), the cache
// the same cluster with one kind of object not seen yet.
func TestDecideConfirmsCachedSkips(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "pipy-ok-v1-0", Labels: map[string]string{"app": "pipy-ok", "version": "v1"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "pipy", Image: "flomesh/pipy", Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
		}}},
	}
	for _, tt := range []struct {
		name       string
		lag        func(cached *injector.Objects) // what the cache has not seen yet
		live       func(t *testing.T, objs *injector.Objects) *Live
		wantInject bool
		wantReason injector.Reason
	}{
		{name: "cache lags: the chain is only on the API server", lag: func(o *injector.Objects) { o.Chains = nil }, wantInject: true},
		{name: "cache lags: the Service is only on the API server", lag: func(o *injector.Objects) { o.ServiceList = nil }, wantInject: true},
		{name: "cache lags: plugin policy turned on a moment ago", lag: func(o *injector.Objects) { o.MeshConfigs = nil }, wantInject: true},
		{name: "cache lags: the namespace was labelled a moment ago", lag: unlabelNamespaces, wantInject: true},
		{name: "cache current: the namespace belongs to another mesh", lag: unlabelNamespaces, wantReason: injector.ReasonNamespaceNotMonitored,
			live: func(t *testing.T, o *injector.Objects) *Live {
				unlabelNamespaces(o)
				return NewLive(fakeReader(t, o), webhooktest.Injector())
			}},
		{name: "cache current: no chain anywhere", lag: func(o *injector.Objects) { o.Chains = nil }, wantReason: injector.ReasonNoChain,
			live: func(t *testing.T, o *injector.Objects) *Live {
				o.Chains = nil
				return NewLive(fakeReader(t, o), webhooktest.Injector())
			}},
		{name: "live read fails: the cached skip stands", lag: func(o *injector.Objects) { o.Chains = nil }, wantReason: injector.ReasonNoChain,
			live: func(*testing.T, *injector.Objects) *Live { return NewLive(failingReader{}, webhooktest.Injector()) }},
		{name: "no live reader: the cache decides", lag: func(o *injector.Objects) { o.Chains = nil }, wantReason: injector.ReasonNoChain,
			live: func(*testing.T, *injector.Objects) *Live { return nil }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cached := webhooktest.SeedCluster(t)
			tt.lag(cached)
			var live *Live
			if tt.live != nil {
				live = tt.live(t, webhooktest.SeedCluster(t))
			} else {
				live = NewLive(fakeReader(t, webhooktest.SeedCluster(t)), webhooktest.Injector())
			}
			m, err := NewMetrics(prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			resolver := injector.NewResolver(webhooktest.Injector(), cached, injector.ResolverOptions{})
			pm := &PodMutator{Resolver: resolver, Live: live, Metrics: m, Log: logr.Discard()}
			d, err := pm.decide(t.Context(), pod.DeepCopy(), "pipy")
			if err != nil {
				t.Fatal(err)
			}
			if d.Inject != tt.wantInject || (!tt.wantInject && d.Reason != tt.wantReason) {
				t.Errorf("inject %v (%s: %s), want inject %v (%s)", d.Inject, d.Reason, d.Message, tt.wantInject, tt.wantReason)
			}
		})
	}
}

// unlabelNamespaces gives every namespace another mesh's label: the API server's
// selector (the label exists) still sends their pods here.
func unlabelNamespaces(o *injector.Objects) {
	for i, ns := range o.Namespaces {
		ns = ns.DeepCopy()
		ns.Labels[injector.LabelMonitoredBy] = "another-mesh"
		o.Namespaces[i] = ns
	}
}

// fakeReader reads objs as the API server would hold them (controller-runtime's fake
// client), metadata-only lists included.
func fakeReader(t *testing.T, objs *injector.Objects) client.Reader {
	t.Helper()
	scheme, err := kubecluster.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(kubecluster.Objects(objs)...).Build()
}
