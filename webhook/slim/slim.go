// Package slim holds the webhook cache's transforms: of each object its informers keep,
// only what the injector's Resolver and the webhook's controllers read. The informers hold
// every namespace, PluginChain, PluginConfig and Plugin of the cluster, and the Services,
// pods and ReplicaSets' metadata of the monitored namespaces, for the life of the
// process, so whatever is dropped here is memory saved per object; what is kept is
// listed, field by field, with its reader.
//
// The cached objects are read and patched, never written back whole: the controllers write
// with merge patches computed between a cached object and a changed copy of it (so a field
// dropped here is absent from both and never appears in a patch), or with patches they
// build themselves. An Update of a cached object would erase what is dropped here; read the
// object live (the manager's APIReader) before ever writing one whole.
//
// Each transform passes anything that is not its kind (a tombstone) through unchanged.
package slim

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

var (
	_ toolscache.TransformFunc = Service
	_ toolscache.TransformFunc = Namespace
	_ toolscache.TransformFunc = Pod
	_ toolscache.TransformFunc = PluginChain
	_ toolscache.TransformFunc = PluginConfig
	_ toolscache.TransformFunc = Plugin
	_ toolscache.TransformFunc = ReplicaSetMetadata
)

// readPrefixes are the annotation prefixes anything here reads: corsmesh's own
// (corsmesh.io/status and cors-config on pods, implements on Plugins, the restart request
// and record on PluginChains) and osm-edge's sidecar-injection opt-out on pods and
// namespaces. Other annotations (kubectl's last-applied-configuration, a copy of the whole
// object, above all) are nobody's business here.
var readPrefixes = []string{"corsmesh.io/", "openservicemesh.io/"}

// objectMeta keeps, of an object's metadata:
//   - namespace and name: every lookup and the informers' keys;
//   - uid and resourceVersion: Events name the object by them, the Resolver reuses a
//     compiled PluginChain while its resourceVersion holds, and the status patches carry
//     it as their optimistic lock;
//   - generation: the status controllers' observedGeneration and the predicates that
//     ignore status-only updates;
//   - creationTimestamp: the oldest valid PluginConfig for a Service wins;
//   - deletionTimestamp: terminating pods are not counted nor synced;
//   - the annotations anything here reads (readPrefixes).
//
// Labels and owner references are kept by the kinds that read them.
func objectMeta(m *metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Namespace:         m.Namespace,
		Name:              m.Name,
		UID:               m.UID,
		ResourceVersion:   m.ResourceVersion,
		Generation:        m.Generation,
		CreationTimestamp: m.CreationTimestamp,
		DeletionTimestamp: m.DeletionTimestamp,
		Annotations:       readAnnotations(m.Annotations),
	}
}

func readAnnotations(in map[string]string) map[string]string {
	var out map[string]string
	for k, v := range in {
		if readAnnotation(k) {
			if out == nil {
				out = make(map[string]string, len(in))
			}
			out[k] = v
		}
	}
	return out
}

// readAnnotation says whether an annotation's key is one anything here reads: under
// readPrefixes, or the API server's mark on the bookmark that ends a watch's initial
// events, which client-go's reflector reads off the decoded event (before any transform;
// bookmarks are never cached). A lean decoder that dropped it would leave the informer
// waiting for the end of its initial list forever.
func readAnnotation(key string) bool {
	if key == metav1.InitialEventsAnnotationKey {
		return true
	}
	for _, p := range readPrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// Service keeps a Service's selector (which pods it reaches) and ports (name, protocol,
// appProtocol, port and targetPort decide which container port is intercepted, and
// whether). Its labels, addresses, type, status and the rest are read by nobody here.
func Service(obj any) (any, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return obj, nil
	}
	ports := make([]corev1.ServicePort, len(svc.Spec.Ports))
	for i, p := range svc.Spec.Ports {
		ports[i] = corev1.ServicePort{Name: p.Name, Protocol: p.Protocol, AppProtocol: p.AppProtocol, Port: p.Port, TargetPort: p.TargetPort}
	}
	if len(ports) == 0 {
		ports = nil
	}
	return &corev1.Service{
		TypeMeta:   svc.TypeMeta,
		ObjectMeta: objectMeta(&svc.ObjectMeta),
		Spec:       corev1.ServiceSpec{Selector: svc.Spec.Selector, Ports: ports},
	}, nil
}

// Namespace keeps a namespace's labels (the mesh's monitored-by label, Pod Security's
// enforce level, and whatever a PluginChain's namespaceSelector matches) and the
// sidecar-injection annotation. Its finalizers and phase are read by nobody here.
func Namespace(obj any) (any, error) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return obj, nil
	}
	meta := objectMeta(&ns.ObjectMeta)
	meta.Labels = ns.Labels
	return &corev1.Namespace{TypeMeta: ns.TypeMeta, ObjectMeta: meta}, nil
}

// Pod keeps of a pod what the controllers and the Resolver read:
//   - labels: what Services and PluginChains select;
//   - owner references: the workload a PluginChain restarts;
//   - each container's name (the proxy's own, among the init containers as a native
//     sidecar, marks an injected pod) and the app containers' ports (a Service's named
//     targetPort);
//   - hostNetwork, the OS field and the kubernetes.io/os node selector: pods on the host
//     network or on Windows are never injected, so never counted as waiting for a restart;
//   - the phase (finished pods are not counted) and corsmesh's own conditions (config
//     sync's corsmesh.io/RestartRequired; it patches that one condition by type, so the
//     kubelet's, dropped here, are never written).
//
// The rest (commands, environment, probes, resources, volumes, container statuses, the
// kubelet's conditions) would only fill memory: every pod of the monitored namespaces is
// cached. DecodePod builds this same pod from protobuf for the pods' informer; its test
// checks the two against each other field for field.
func Pod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	meta := objectMeta(&pod.ObjectMeta)
	meta.Labels = pod.Labels
	meta.OwnerReferences = pod.OwnerReferences
	spec := corev1.PodSpec{
		InitContainers: containers(pod.Spec.InitContainers, false),
		Containers:     containers(pod.Spec.Containers, true),
		HostNetwork:    pod.Spec.HostNetwork,
		OS:             pod.Spec.OS,
	}
	if os, ok := pod.Spec.NodeSelector[corev1.LabelOSStable]; ok {
		spec.NodeSelector = map[string]string{corev1.LabelOSStable: os}
	}
	return &corev1.Pod{
		TypeMeta:   pod.TypeMeta,
		ObjectMeta: meta,
		Spec:       spec,
		Status:     corev1.PodStatus{Phase: pod.Status.Phase, Conditions: ownConditions(pod.Status.Conditions)},
	}, nil
}

func containers(cs []corev1.Container, ports bool) []corev1.Container {
	if len(cs) == 0 {
		return nil
	}
	out := make([]corev1.Container, len(cs))
	for i, c := range cs {
		out[i].Name = c.Name
		if ports {
			out[i].Ports = c.Ports
		}
	}
	return out
}

// ownConditions are the pod conditions corsmesh writes: their types are its own.
func ownConditions(cs []corev1.PodCondition) []corev1.PodCondition {
	var out []corev1.PodCondition
	for _, c := range cs {
		if ownCondition(string(c.Type)) {
			out = append(out, c)
		}
	}
	return out
}

func ownCondition(conditionType string) bool { return strings.HasPrefix(conditionType, "corsmesh.io/") }

// ReplicaSetMetadata keeps, of a ReplicaSet's metadata (the webhook caches ReplicaSets as
// metadata only), its key, uid and resourceVersion and its controller reference: the
// PluginChain controller follows a pod's ReplicaSet to its Deployment and reads nothing
// else. Labels and annotations (the pod template's, copied) are the bulk.
func ReplicaSetMetadata(obj any) (any, error) {
	rs, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return obj, nil
	}
	out := &metav1.PartialObjectMetadata{TypeMeta: rs.TypeMeta, ObjectMeta: metav1.ObjectMeta{
		Namespace: rs.Namespace, Name: rs.Name, UID: rs.UID, ResourceVersion: rs.ResourceVersion,
	}}
	if ref := metav1.GetControllerOfNoCopy(rs); ref != nil {
		out.OwnerReferences = []metav1.OwnerReference{*ref}
	}
	return out, nil
}

// PluginChain keeps a chain's spec (its selectors and mounted plugins) and status (the
// status controller compares it with what it would write, and writes only a difference).
func PluginChain(obj any) (any, error) {
	c, ok := obj.(*v1alpha1.PluginChain)
	if !ok {
		return obj, nil
	}
	return &v1alpha1.PluginChain{TypeMeta: c.TypeMeta, ObjectMeta: objectMeta(&c.ObjectMeta), Spec: c.Spec, Status: c.Status}, nil
}

// PluginConfig keeps a PluginConfig's spec (its plugin, the Services it names, the
// policy) and status (compared as a PluginChain's is).
func PluginConfig(obj any) (any, error) {
	c, ok := obj.(*v1alpha1.PluginConfig)
	if !ok {
		return obj, nil
	}
	return &v1alpha1.PluginConfig{TypeMeta: c.TypeMeta, ObjectMeta: objectMeta(&c.ObjectMeta), Spec: c.Spec, Status: c.Status}, nil
}

// Plugin keeps a Plugin's name and corsmesh.io/implements annotation, which say whether
// corsmesh implements it. Its spec (a PipyJS script corsmesh never runs, often kilobytes)
// and its status are read by nobody here.
func Plugin(obj any) (any, error) {
	p, ok := obj.(*v1alpha1.Plugin)
	if !ok {
		return obj, nil
	}
	return &v1alpha1.Plugin{TypeMeta: p.TypeMeta, ObjectMeta: objectMeta(&p.ObjectMeta)}, nil
}

// ByObject is the cache's configuration of the kinds above: each with its transform. The
// manager's default transform (managed fields stripped) covers any other kind. Pods are
// not the manager cache's: the webhook keeps them per monitored namespace, with Pod.
func ByObject() map[client.Object]cache.ByObject {
	return map[client.Object]cache.ByObject{
		&corev1.Service{}:        {Transform: Service},
		&corev1.Namespace{}:      {Transform: Namespace},
		&v1alpha1.PluginChain{}:  {Transform: PluginChain},
		&v1alpha1.PluginConfig{}: {Transform: PluginConfig},
		&v1alpha1.Plugin{}:       {Transform: Plugin},
	}
}
