package controllers

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
	"github.com/corsmesh/corsmesh/injector/kubecluster"
	"github.com/corsmesh/corsmesh/injector/manifest"
)

// Fixtures of the controller tests (names prefixed ctl, beside the admission tests' own).

// ctlChainCreated is when the seed's PluginChain is created: after its Deployments, as in
// the seed guide.
var ctlChainCreated = metav1.NewTime(time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC))

// ctlSeed is the seed guide's cluster and its two Deployments, from the injector's golden
// test data.
type ctlSeed struct {
	objs        *injector.Objects
	deployments []*manifest.Workload // pipy-ok-v1, pipy-ok-v2
}

func ctlLoadSeed(t *testing.T) *ctlSeed {
	t.Helper()
	s := &ctlSeed{objs: &injector.Objects{}}
	dir := filepath.Join("..", "..", "injector", "testdata", "inject")
	docs, err := manifest.ReadFiles(filepath.Join(dir, "_cluster.yaml"), filepath.Join(dir, "seed-pipy-ok-v1.yaml"), filepath.Join(dir, "seed-pipy-ok-v2.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := manifest.AddObjects(s.objs, docs); err != nil {
		t.Fatal(err)
	}
	for _, doc := range docs {
		w, err := manifest.ParseWorkload(doc)
		if err != nil {
			t.Fatal(err)
		}
		if w != nil {
			s.deployments = append(s.deployments, w)
		}
	}
	if len(s.deployments) != 2 {
		t.Fatalf("seed has %d workloads, want 2", len(s.deployments))
	}
	for _, c := range s.objs.Chains {
		c.CreationTimestamp, c.Generation = ctlChainCreated, 1
	}
	for _, c := range s.objs.Configs {
		c.CreationTimestamp, c.Generation = ctlChainCreated, 1
	}
	return s
}

// clientObjects are copies of the cluster's objects, for a fake client.
func (s *ctlSeed) clientObjects() []client.Object {
	var out []client.Object
	for _, o := range s.objs.Namespaces {
		out = append(out, o.DeepCopy())
	}
	for _, o := range s.objs.ServiceList {
		out = append(out, o.DeepCopy())
	}
	for _, o := range s.objs.Plugins {
		out = append(out, o.DeepCopy())
	}
	for _, o := range s.objs.Chains {
		out = append(out, o.DeepCopy())
	}
	for _, o := range s.objs.Configs {
		out = append(out, o.DeepCopy())
	}
	for _, o := range s.objs.MeshConfigs {
		out = append(out, o.DeepCopy())
	}
	return out
}

// deploymentObjects are the Deployments, their ReplicaSets and one pod each, created
// before the chain (so without the sidecar), as a Deployment controller would make them.
func (s *ctlSeed) deploymentObjects() []client.Object {
	var out []client.Object
	for _, w := range s.deployments {
		dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: w.Name, UID: types.UID("uid-" + w.Name)}}
		dep.Spec.Template.ObjectMeta = *w.Pod.ObjectMeta.DeepCopy()
		dep.Spec.Template.Spec = *w.Pod.Spec.DeepCopy()
		rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: w.Name + "-5d9c7b", UID: types.UID("uid-" + w.Name + "-rs"),
			OwnerReferences: []metav1.OwnerReference{ctlControllerRef("apps/v1", "Deployment", dep.Name)}}}
		pod := ctlPod(w, w.Name+"-5d9c7b-x1", ctlControllerRef("apps/v1", "ReplicaSet", rs.Name))
		out = append(out, dep, rs, pod)
	}
	return out
}

// ctlPod is a pod of the workload's template, created before the chain.
func ctlPod(w *manifest.Workload, name string, owner metav1.OwnerReference) *corev1.Pod {
	pod := w.Pod.DeepCopy()
	pod.Name, pod.Namespace = name, w.Namespace
	pod.CreationTimestamp = metav1.NewTime(ctlChainCreated.Add(-time.Hour))
	pod.Status.Phase = corev1.PodRunning
	if owner.Name != "" {
		pod.OwnerReferences = []metav1.OwnerReference{owner}
	}
	return pod
}

func ctlControllerRef(apiVersion, kind, name string) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: types.UID("uid-" + name), Controller: ptr.To(true)}
}

// injected is the pod as the webhook admits it into the seed cluster.
func (s *ctlSeed) injected(t *testing.T, in *injector.Injector, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	d, mutated, err := injector.NewResolver(in, s.objs, injector.ResolverOptions{}).Inject(context.Background(), pod, pod.Namespace)
	if err != nil || !d.Inject {
		t.Fatalf("seed pod not injected: %+v, %v", d, err)
	}
	return mutated
}

func ctlInjector() *injector.Injector {
	o := injector.DefaultOptions()
	o.ProxyImage, o.InitImage = "corsproxy:test", "corsproxy-init:test"
	return injector.New(o)
}

// ctlWrites counts the writes a reconcile makes, by kind of write and object.
type ctlWrites struct {
	mu     sync.Mutex
	counts map[string]int
}

func (w *ctlWrites) add(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.counts == nil {
		w.counts = map[string]int{}
	}
	w.counts[key]++
}

// get returns the count of writes whose key ("patch Pod pipy/x", "status Pod pipy/x")
// starts with prefix.
func (w *ctlWrites) get(prefix string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for k, c := range w.counts {
		if strings.HasPrefix(k, prefix) {
			n += c
		}
	}
	return n
}

func (w *ctlWrites) total() int { return w.get("") }

// ctlClient is a fake client with the webhook's scheme, indexes and status subresources,
// counting writes.
func ctlClient(t *testing.T, objs ...client.Object) (client.WithWatch, *ctlWrites) {
	t.Helper()
	scheme, err := kubecluster.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	writes := &ctlWrites{}
	kindOf := func(o client.Object) string {
		gvk, err := apiutil.GVKForObject(o, scheme)
		if err != nil {
			return "?"
		}
		return gvk.Kind
	}
	c := fake.NewClientBuilder().
		WithScheme(scheme).
		WithObjects(objs...).
		WithStatusSubresource(&corev1.Pod{}, &v1alpha1.PluginChain{}, &v1alpha1.PluginConfig{}, &v1alpha1.Plugin{}).
		WithInterceptorFuncs(interceptor.Funcs{
			Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
				writes.add("patch " + kindOf(obj) + " " + obj.GetNamespace() + "/" + obj.GetName())
				return c.Patch(ctx, obj, patch, opts...)
			},
			Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
				writes.add("update " + kindOf(obj) + " " + obj.GetNamespace() + "/" + obj.GetName())
				return c.Update(ctx, obj, opts...)
			},
			SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
				writes.add(sub + " " + kindOf(obj) + " " + obj.GetNamespace() + "/" + obj.GetName())
				return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
			},
			SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
				writes.add(sub + " " + kindOf(obj) + " " + obj.GetNamespace() + "/" + obj.GetName())
				return c.SubResource(sub).Update(ctx, obj, opts...)
			},
		}).
		Build()
	return c, writes
}

// ctlEvents drains the events recorded so far ("Type Reason message").
func ctlEvents(rec *events.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func ctlGet[T client.Object](t *testing.T, c client.Client, obj T, namespace, name string) T {
	t.Helper()
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: namespace, Name: name}, obj); err != nil {
		t.Fatalf("getting %s/%s: %v", namespace, name, err)
	}
	return obj
}

// clientResolver is a Resolver reading through a client (the fake one), unwatched: every
// question reads the client again.
func clientResolver(in *injector.Injector, c client.Reader) *injector.Resolver {
	return injector.NewResolver(in, kubecluster.Reader{Reader: c}, injector.ResolverOptions{})
}
