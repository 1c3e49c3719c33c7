package slim_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
	"github.com/corsmesh/corsmesh/injector/injectortest"
	"github.com/corsmesh/corsmesh/webhook/internal/webhooktest"
	"github.com/corsmesh/corsmesh/webhook/slim"
)

const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

var created = metav1.NewTime(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))

// bulkyMeta is metadata as the API server returns it, with what nobody here reads.
func bulkyMeta(ns, name string, annotations map[string]string) metav1.ObjectMeta {
	a := map[string]string{lastApplied: `{"a":"whole copy of the object"}`, "helm.sh/chart": "x-1.0"}
	for k, v := range annotations {
		a[k] = v
	}
	return metav1.ObjectMeta{
		Namespace: ns, Name: name, GenerateName: name + "-", UID: types.UID("u-" + name), ResourceVersion: "42", Generation: 3,
		CreationTimestamp: created, Labels: map[string]string{"app.kubernetes.io/managed-by": "Helm"}, Annotations: a,
		Finalizers:    []string{"example.com/keep"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
	}
}

// keptMeta is what objectMeta keeps of bulkyMeta: the annotations given are corsmesh's or
// osm-edge's.
func keptMeta(ns, name string, annotations map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Namespace: ns, Name: name, UID: types.UID("u-" + name), ResourceVersion: "42", Generation: 3,
		CreationTimestamp: created, Annotations: annotations,
	}
}

// TestTransforms: each kind keeps every field its readers read, and loses the bulk.
func TestTransforms(t *testing.T) {
	appProtocol := "http"
	osmOptOut := map[string]string{injector.AnnotationSidecarInjection: "disabled"}
	tests := []struct {
		name      string
		transform toolscache.TransformFunc
		in, want  any
	}{{
		name:      "Service: selector and ports (name, protocol, appProtocol, port, targetPort)",
		transform: slim.Service,
		in: &corev1.Service{
			TypeMeta:   metav1.TypeMeta{Kind: "Service", APIVersion: "v1"},
			ObjectMeta: bulkyMeta("pipy", "pipy-ok", nil),
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": "pipy-ok"},
				Ports: []corev1.ServicePort{
					{Name: "http", Protocol: corev1.ProtocolTCP, AppProtocol: &appProtocol, Port: 80, TargetPort: intstr.FromString("web"), NodePort: 30080},
					{Name: "metrics", Protocol: corev1.ProtocolTCP, Port: 9090, TargetPort: intstr.FromInt32(9090)},
				},
				ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"}, Type: corev1.ServiceTypeNodePort,
				IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicySingleStack),
				SessionAffinity: corev1.ServiceAffinityNone, InternalTrafficPolicy: ptr.To(corev1.ServiceInternalTrafficPolicyCluster),
				ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster,
			},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "203.0.113.1"}}}},
		},
		want: &corev1.Service{
			TypeMeta:   metav1.TypeMeta{Kind: "Service", APIVersion: "v1"},
			ObjectMeta: keptMeta("pipy", "pipy-ok", nil),
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": "pipy-ok"},
				Ports: []corev1.ServicePort{
					{Name: "http", Protocol: corev1.ProtocolTCP, AppProtocol: &appProtocol, Port: 80, TargetPort: intstr.FromString("web")},
					{Name: "metrics", Protocol: corev1.ProtocolTCP, Port: 9090, TargetPort: intstr.FromInt32(9090)},
				},
			},
		},
	}, {
		name:      "Namespace: labels and the opt-out annotation",
		transform: slim.Namespace,
		in: &corev1.Namespace{
			ObjectMeta: func() metav1.ObjectMeta {
				m := bulkyMeta("", "pipy", osmOptOut)
				m.Labels = map[string]string{injector.LabelMonitoredBy: "osm", injector.LabelPodSecurityEnforce: "privileged"}
				return m
			}(),
			Spec:   corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}},
			Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive},
		},
		want: &corev1.Namespace{ObjectMeta: func() metav1.ObjectMeta {
			m := keptMeta("", "pipy", osmOptOut)
			m.Labels = map[string]string{injector.LabelMonitoredBy: "osm", injector.LabelPodSecurityEnforce: "privileged"}
			return m
		}()},
	}, {
		name:      "Plugin: name and corsmesh.io/implements, not the script",
		transform: slim.Plugin,
		in: &v1alpha1.Plugin{
			ObjectMeta: bulkyMeta("", "my-cors", map[string]string{injector.AnnotationImplements: "cors"}),
			Spec:       v1alpha1.PluginSpec{Priority: ptr.To(165.0), PipyScript: "((pipy) => pipy)()"},
			Status:     v1alpha1.PluginStatus{ObservedGeneration: 3},
		},
		want: &v1alpha1.Plugin{ObjectMeta: keptMeta("", "my-cors", map[string]string{injector.AnnotationImplements: "cors"})},
	}, {
		name:      "PluginChain: spec, status and the restart annotations",
		transform: slim.PluginChain,
		in: &v1alpha1.PluginChain{
			ObjectMeta: bulkyMeta("pipy", "chain", map[string]string{"corsmesh.io/restart-workloads": "true"}),
			Spec: v1alpha1.PluginChainSpec{
				Chains:    []v1alpha1.ChainPluginSpec{{Name: v1alpha1.ChainInboundHTTP, Plugins: []string{"cors-policy"}}},
				Selectors: v1alpha1.ChainSelectorSpec{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "pipy-ok"}}},
			},
			Status: v1alpha1.PluginChainStatus{ObservedGeneration: 3, SelectedPods: 2},
		},
		want: &v1alpha1.PluginChain{
			ObjectMeta: keptMeta("pipy", "chain", map[string]string{"corsmesh.io/restart-workloads": "true"}),
			Spec: v1alpha1.PluginChainSpec{
				Chains:    []v1alpha1.ChainPluginSpec{{Name: v1alpha1.ChainInboundHTTP, Plugins: []string{"cors-policy"}}},
				Selectors: v1alpha1.ChainSelectorSpec{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "pipy-ok"}}},
			},
			Status: v1alpha1.PluginChainStatus{ObservedGeneration: 3, SelectedPods: 2},
		},
	}, {
		name:      "PluginConfig: spec (plugin, destinations, policy) and status",
		transform: slim.PluginConfig,
		in: &v1alpha1.PluginConfig{
			ObjectMeta: bulkyMeta("pipy", "cors", nil),
			Spec: v1alpha1.PluginConfigSpec{Plugin: "cors-policy", Config: runtime.RawExtension{Raw: []byte(`{"allowOrigins":["*"]}`)},
				DestinationRefs: []v1alpha1.DestinationRef{{Kind: v1alpha1.DestinationKindService, Name: "pipy-ok", Namespace: "pipy"}}},
			Status: v1alpha1.PluginConfigStatus{ObservedGeneration: 3},
		},
		want: &v1alpha1.PluginConfig{
			ObjectMeta: keptMeta("pipy", "cors", nil),
			Spec: v1alpha1.PluginConfigSpec{Plugin: "cors-policy", Config: runtime.RawExtension{Raw: []byte(`{"allowOrigins":["*"]}`)},
				DestinationRefs: []v1alpha1.DestinationRef{{Kind: v1alpha1.DestinationKindService, Name: "pipy-ok", Namespace: "pipy"}}},
			Status: v1alpha1.PluginConfigStatus{ObservedGeneration: 3},
		},
	}, {
		name:      "Pod: labels, owners, containers' names, app containers' ports, host network, OS, phase, corsmesh's conditions",
		transform: slim.Pod,
		in: &corev1.Pod{
			ObjectMeta: func() metav1.ObjectMeta {
				m := bulkyMeta("pipy", "pipy-ok-v1-abc", map[string]string{injector.AnnotationStatus: "{}", injector.AnnotationConfig: "{}"})
				m.Labels = map[string]string{"app": "pipy-ok"}
				m.OwnerReferences = []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "pipy-ok-v1", Controller: ptr.To(true)}}
				m.DeletionTimestamp = &created
				return m
			}(),
			Spec: corev1.PodSpec{
				InitContainers: []corev1.Container{{
					Name: "corsproxy", Image: "corsproxy:1", Args: []string{"--config=x"},
					RestartPolicy:  ptr.To(corev1.ContainerRestartPolicyAlways),
					Ports:          []corev1.ContainerPort{{Name: "corsproxy-admin", ContainerPort: 15000}},
					ReadinessProbe: &corev1.Probe{PeriodSeconds: 1},
				}},
				Containers: []corev1.Container{{
					Name: "pipy", Image: "flomesh/pipy", Command: []string{"pipy"},
					Env:   []corev1.EnvVar{{Name: "A", Value: "b"}},
					Ports: []corev1.ContainerPort{{Name: "pipy", ContainerPort: 8080}},
				}},
				Volumes:            []corev1.Volume{{Name: "data"}},
				HostNetwork:        true,
				OS:                 &corev1.PodOS{Name: corev1.Linux},
				NodeSelector:       map[string]string{corev1.LabelOSStable: "linux", "disk": "ssd"},
				ServiceAccountName: "pipy",
			},
			Status: corev1.PodStatus{
				Phase: corev1.PodRunning,
				Conditions: []corev1.PodCondition{
					{Type: corev1.PodReady, Status: corev1.ConditionTrue},
					{Type: "corsmesh.io/RestartRequired", Status: corev1.ConditionTrue, Message: "restart"},
				},
				PodIP:             "10.0.0.1",
				ContainerStatuses: []corev1.ContainerStatus{{Name: "pipy", Ready: true}},
			},
		},
		want: &corev1.Pod{
			ObjectMeta: func() metav1.ObjectMeta {
				m := keptMeta("pipy", "pipy-ok-v1-abc", map[string]string{injector.AnnotationStatus: "{}", injector.AnnotationConfig: "{}"})
				m.Labels = map[string]string{"app": "pipy-ok"}
				m.OwnerReferences = []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "pipy-ok-v1", Controller: ptr.To(true)}}
				m.DeletionTimestamp = &created
				return m
			}(),
			Spec: corev1.PodSpec{
				InitContainers: []corev1.Container{{Name: "corsproxy"}},
				Containers:     []corev1.Container{{Name: "pipy", Ports: []corev1.ContainerPort{{Name: "pipy", ContainerPort: 8080}}}},
				HostNetwork:    true,
				OS:             &corev1.PodOS{Name: corev1.Linux},
				NodeSelector:   map[string]string{corev1.LabelOSStable: "linux"},
			},
			Status: corev1.PodStatus{
				Phase:      corev1.PodRunning,
				Conditions: []corev1.PodCondition{{Type: "corsmesh.io/RestartRequired", Status: corev1.ConditionTrue, Message: "restart"}},
			},
		},
	}, {
		name:      "ReplicaSet metadata: key, uid, resourceVersion and the controller reference only",
		transform: slim.ReplicaSetMetadata,
		in: &metav1.PartialObjectMetadata{
			TypeMeta: metav1.TypeMeta{Kind: "ReplicaSet", APIVersion: "apps/v1"},
			ObjectMeta: func() metav1.ObjectMeta {
				m := bulkyMeta("pipy", "pipy-ok-v1-5d8f7c9b7d", map[string]string{"deployment.kubernetes.io/revision": "2"})
				m.OwnerReferences = []metav1.OwnerReference{
					{APIVersion: "example.com/v1", Kind: "Keeper", Name: "k"},
					{APIVersion: "apps/v1", Kind: "Deployment", Name: "pipy-ok-v1", UID: "u-dep", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)},
				}
				return m
			}(),
		},
		want: &metav1.PartialObjectMetadata{
			TypeMeta: metav1.TypeMeta{Kind: "ReplicaSet", APIVersion: "apps/v1"},
			ObjectMeta: metav1.ObjectMeta{
				Namespace: "pipy", Name: "pipy-ok-v1-5d8f7c9b7d", UID: "u-pipy-ok-v1-5d8f7c9b7d", ResourceVersion: "42",
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "pipy-ok-v1", UID: "u-dep", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
			},
		},
	}, {
		name:      "ReplicaSet metadata without a controller",
		transform: slim.ReplicaSetMetadata,
		in:        &metav1.PartialObjectMetadata{ObjectMeta: bulkyMeta("pipy", "solo", nil)},
		want:      &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: "pipy", Name: "solo", UID: "u-solo", ResourceVersion: "42"}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.transform(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !equality.Semantic.DeepEqual(got, tc.want) {
				t.Errorf("\n got %s\nwant %s", asJSON(t, got), asJSON(t, tc.want))
			}
			// A tombstone passes unchanged.
			tomb := toolscache.DeletedFinalStateUnknown{Key: "pipy/gone", Obj: tc.in}
			if out, _ := tc.transform(tomb); !reflect.DeepEqual(out, any(tomb)) {
				t.Errorf("a tombstone was changed")
			}
		})
	}
}

func asJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestResolverDecidesTheSameOnSlimObjects: the Resolver answers every question the same
// over the seed guide's cluster as stored (with kubectl's last-applied-configuration and
// status on every object) and over the same cluster as the cache keeps it.
func TestResolverDecidesTheSameOnSlimObjects(t *testing.T) {
	full := webhooktest.SeedCluster(t)
	injectortest.Each(full, func(o metav1.Object) {
		a := o.GetAnnotations()
		if a == nil {
			a = map[string]string{}
		}
		a[lastApplied] = `{"apiVersion":"v1","kind":"Whatever","metadata":{"name":"` + o.GetName() + `"}}`
		o.SetAnnotations(a)
		o.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "kubectl"}})
	})
	for _, svc := range full.ServiceList {
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs = "10.96.0.10", []string{"10.96.0.10"}
	}
	slimmed := &injector.Objects{
		Namespaces:  each(t, full.Namespaces, slim.Namespace),
		ServiceList: each(t, full.ServiceList, slim.Service),
		Chains:      each(t, full.Chains, slim.PluginChain),
		Configs:     each(t, full.Configs, slim.PluginConfig),
		Plugins:     each(t, full.Plugins, slim.Plugin),
		MeshConfigs: full.MeshConfigs,
	}
	in := webhooktest.Injector()
	fullR := injector.NewResolver(in, full, injector.ResolverOptions{})
	slimR := injector.NewResolver(in, slimmed, injector.ResolverOptions{})

	var seed corev1.Pod
	if err := yaml.Unmarshal([]byte(webhooktest.SeedPod), &seed); err != nil {
		t.Fatal(err)
	}
	seed.Name = "pipy-ok-v1-abc"
	_, injected, err := fullR.Inject(t.Context(), seed.DeepCopy(), "pipy")
	if err != nil || injected == nil {
		t.Fatalf("the seed pod is not injected: %v", err)
	}
	windows := seed.DeepCopy()
	windows.Spec.NodeSelector = map[string]string{corev1.LabelOSStable: "windows"}
	optedOut := seed.DeepCopy()
	optedOut.Annotations = map[string]string{injector.AnnotationSidecarInjection: "disabled", lastApplied: "{}"}
	pods := []struct {
		name    string
		pod     *corev1.Pod
		purpose injector.Purpose
		reason  injector.Reason
	}{
		{"the seed pod, for admission", &seed, injector.ForAdmission, ""},
		{"the seed pod injected, for resync", injected, injector.ForResync, ""},
		{"the seed pod injected, for admission", injected, injector.ForAdmission, injector.ReasonAlreadyInjected},
		{"a Windows pod", windows, injector.ForAdmission, injector.ReasonWindows},
		{"a pod opted out", optedOut, injector.ForAdmission, injector.ReasonPodOptedOut},
	}
	for _, tc := range pods {
		t.Run(tc.name, func(t *testing.T) {
			want, err := fullR.Decide(t.Context(), tc.pod, "pipy", tc.purpose)
			if err != nil {
				t.Fatal(err)
			}
			slimPod, err := slim.Pod(tc.pod.DeepCopy())
			if err != nil {
				t.Fatal(err)
			}
			got, err := slimR.Decide(t.Context(), slimPod.(*corev1.Pod), "pipy", tc.purpose)
			if err != nil {
				t.Fatal(err)
			}
			if want.Reason != tc.reason || (tc.reason == "" && !want.Inject) {
				t.Fatalf("over the full objects: inject %v, reason %q; want reason %q", want.Inject, want.Reason, tc.reason)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("over the slim objects:\n got %s\nwant %s", asJSON(t, got), asJSON(t, want))
			}
		})
	}

	for i, c := range full.Chains {
		want, err := fullR.Chain(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := slimR.Chain(t.Context(), slimmed.Chains[i])
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Mounts, want.Mounts) || got.Policy != want.Policy || got.Condition() != want.Condition() {
			t.Errorf("PluginChain %s: slim %+v, full %+v", c.Name, got, want)
		}
	}
	for i, c := range full.Configs {
		want, err := fullR.PluginConfig(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := slimR.PluginConfig(t.Context(), slimmed.Configs[i])
		if err != nil {
			t.Fatal(err)
		}
		if got.State != want.State || !reflect.DeepEqual(got.Services, want.Services) ||
			!reflect.DeepEqual(got.MissingServices, want.MissingServices) || !reflect.DeepEqual(got.Winners, want.Winners) ||
			got.Condition() != want.Condition() {
			t.Errorf("PluginConfig %s: slim %+v, full %+v", c.Name, got, want)
		}
	}
}

// each transforms copies of objs.
func each[T any, P interface {
	*T
	DeepCopy() P
}](t *testing.T, objs []P, transform toolscache.TransformFunc) []P {
	t.Helper()
	out := make([]P, len(objs))
	for i, o := range objs {
		got, err := transform(o.DeepCopy())
		if err != nil {
			t.Fatal(err)
		}
		out[i] = got.(P)
	}
	return out
}
