package slim_test

import (
	"encoding/json"
	"fmt"
	"runtime"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
	"github.com/corsmesh/corsmesh/webhook/internal/webhooktest"
	"github.com/corsmesh/corsmesh/webhook/slim"
)

// BenchmarkCachedBytes measures the live heap an informer's store holds per object, as
// stored (managed fields stripped, the cache's default) and slim: B/object. Each
// iteration decodes 2,000 objects from the JSON the API server sends and adds them to a
// store indexed by namespace, as the webhook's informers do.
func BenchmarkCachedBytes(b *testing.B) {
	const n = 2000
	kinds := []struct {
		name      string
		doc       func(i int) any
		decode    func([]byte) (any, error)
		transform toolscache.TransformFunc
	}{
		{"Service/headless", func(i int) any { return benchService(i, false) }, decodeAs[corev1.Service], slim.Service},
		{"Service/kubectl-applied", func(i int) any { return benchService(i, true) }, decodeAs[corev1.Service], slim.Service},
		{"Pod/injected-running", func(i int) any { return benchPod(b, i) }, decodeAs[corev1.Pod], slim.Pod},
		{"PluginChain/kubectl-applied", func(i int) any { return benchChain(b, i) }, decodeAs[v1alpha1.PluginChain], slim.PluginChain},
		{"ReplicaSet/metadata", benchReplicaSet, decodeAs[metav1.PartialObjectMetadata], slim.ReplicaSetMetadata},
	}
	for _, k := range kinds {
		docs := make([][]byte, n)
		for i := range docs {
			var err error
			if docs[i], err = json.Marshal(k.doc(i)); err != nil {
				b.Fatal(err)
			}
		}
		for _, mode := range []struct {
			name      string
			transform toolscache.TransformFunc
		}{{"stored", stripManagedFields}, {"slim", k.transform}} {
			b.Run(k.name+"/"+mode.name, func(b *testing.B) {
				var perObject float64
				for b.Loop() {
					perObject = storeBytes(b, docs, k.decode, mode.transform)
				}
				b.ReportMetric(perObject, "B/object")
				b.ReportMetric(float64(len(docs[0])), "JSON-B/object")
			})
		}
	}
}

func storeBytes(b *testing.B, docs [][]byte, decode func([]byte) (any, error), transform toolscache.TransformFunc) float64 {
	store := toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, d := range docs {
		obj, err := decode(d)
		if err != nil {
			b.Fatal(err)
		}
		if obj, err = transform(obj); err != nil {
			b.Fatal(err)
		}
		if err := store.Add(obj); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(store)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(len(docs))
}

func decodeAs[T any](doc []byte) (any, error) {
	var obj T
	err := json.Unmarshal(doc, &obj)
	return &obj, err
}

func stripManagedFields(obj any) (any, error) {
	if o, ok := obj.(metav1.Object); ok {
		o.SetManagedFields(nil)
	}
	return obj, nil
}

// benchReplicaSet is the metadata of a Deployment's ReplicaSet as the API server sends it
// to a metadata watch: the pod template's labels, the Deployment controller's annotations.
func benchReplicaSet(i int) any {
	name := fmt.Sprintf("bench-web-%04d", i)
	return &metav1.PartialObjectMetadata{
		TypeMeta: metav1.TypeMeta{Kind: "PartialObjectMetadata", APIVersion: "meta.k8s.io/v1"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "bench-ours", Name: name + "-5d8f7c9b7d", UID: "0a1b2c3d-0000-4000-8000-000000000002", ResourceVersion: "123456",
			Generation: 1, CreationTimestamp: metav1.Now(),
			Labels: map[string]string{"app": name, "version": "v1", "pod-template-hash": "5d8f7c9b7d"},
			Annotations: map[string]string{"deployment.kubernetes.io/desired-replicas": "3", "deployment.kubernetes.io/max-replicas": "4",
				"deployment.kubernetes.io/revision": "1"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: name,
				UID: "0a1b2c3d-0000-4000-8000-000000000001", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
		},
	}
}

// benchService is one of hack/bench/webhook's Services as the API server stores it;
// applied by kubectl, it also carries its last-applied-configuration.
func benchService(i int, applied bool) *corev1.Service {
	svc := &corev1.Service{
		TypeMeta: metav1.TypeMeta{Kind: "Service", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("svc-%d", i), Namespace: fmt.Sprintf("ns-%d", i%100),
			UID: "0a1b2c3d-0000-4000-8000-000000000002", ResourceVersion: fmt.Sprint(100000 + i), CreationTimestamp: metav1.Now(),
		},
		Spec: corev1.ServiceSpec{
			Selector:  map[string]string{"app": fmt.Sprintf("app-%d", i)},
			Ports:     []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
			ClusterIP: corev1.ClusterIPNone, ClusterIPs: []string{corev1.ClusterIPNone}, Type: corev1.ServiceTypeClusterIP,
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicySingleStack),
			SessionAffinity: corev1.ServiceAffinityNone, InternalTrafficPolicy: ptr.To(corev1.ServiceInternalTrafficPolicyCluster),
		},
	}
	if applied {
		applied, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "Service", "metadata": map[string]any{"name": svc.Name, "namespace": svc.Namespace}, "spec": map[string]any{"selector": svc.Spec.Selector, "ports": svc.Spec.Ports}})
		svc.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": string(applied)}
	}
	return svc
}

// benchPod is the seed guide's pod injected and running, as the API server stores it.
func benchPod(b *testing.B, i int) *corev1.Pod {
	var pod corev1.Pod
	if err := yaml.Unmarshal([]byte(webhooktest.SeedPod), &pod); err != nil {
		b.Fatal(err)
	}
	r := injector.NewResolver(webhooktest.Injector(), webhooktest.SeedCluster(b), injector.ResolverOptions{})
	_, injected, err := r.Inject(b.Context(), &pod, "pipy")
	if err != nil || injected == nil {
		b.Fatalf("the seed pod is not injected: %v", err)
	}
	injected.Name, injected.Namespace, injected.UID = fmt.Sprintf("pipy-ok-v1-%d", i), "pipy", "0a1b2c3d-0000-4000-8000-000000000003"
	injected.Spec.NodeName, injected.Spec.ServiceAccountName = "node-1", "default"
	now := metav1.Now()
	injected.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.0.7", HostIP: "10.0.0.1", StartTime: &now, QOSClass: corev1.PodQOSBurstable}
	for _, t := range []corev1.PodConditionType{"PodReadyToStartContainers", corev1.PodInitialized, corev1.PodReady, corev1.ContainersReady, corev1.PodScheduled} {
		injected.Status.Conditions = append(injected.Status.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	for _, c := range injected.Spec.Containers {
		injected.Status.ContainerStatuses = append(injected.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: "sha256:0123456789abcdef", ContainerID: "containerd://0123456789abcdef", Ready: true,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	return injected
}

// benchChain is one of hack/bench/webhook's PluginChains, applied by kubectl, with the
// status the webhook writes.
func benchChain(b *testing.B, i int) *v1alpha1.PluginChain {
	c := webhooktest.SeedCluster(b).Chains[0].DeepCopy()
	c.Name, c.UID, c.ResourceVersion, c.Generation = fmt.Sprintf("chain-%d", i), "0a1b2c3d-0000-4000-8000-000000000004", fmt.Sprint(200000+i), 1
	c.Spec.Selectors.PodSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", i)}}
	applied, err := json.Marshal(map[string]any{"apiVersion": v1alpha1.GroupVersion.String(), "kind": "PluginChain", "metadata": map[string]any{"name": c.Name, "namespace": c.Namespace}, "spec": c.Spec})
	if err != nil {
		b.Fatal(err)
	}
	c.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": string(applied)}
	c.Status = v1alpha1.PluginChainStatus{ObservedGeneration: 1, Conditions: []metav1.Condition{{
		Type: v1alpha1.ConditionAccepted, Status: metav1.ConditionTrue, Reason: "Accepted", ObservedGeneration: 1, LastTransitionTime: metav1.Now(),
		Message: "serves CORS plugin cors-policy on inbound-http to the pods it selects",
	}}}
	return c
}
