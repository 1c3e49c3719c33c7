package admit

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// admittedPod is a Pod as admission reads it: only the fields the injector and PodMutator
// read on the admission path are decoded; the JSON decoder steps over the rest (the spec's
// other fields, the containers' images, commands, mounts and probes, the volumes' sources,
// the status, managedFields) without allocating. Decoding the whole pod by reflection was
// 55 of an admission's 208 allocations and 3.1 of its 25 kB (BenchmarkAdmission's pod), and
// the garbage collector those bytes feed is most of the handler's tail latency.
//
// Kept, and what reads them. A field read on the admission path that is not here reads as
// its zero value: add it here first (TestLeanDecodeDecidesAsFullDecode fails otherwise).
//
//   - apiVersion, kind, metadata.name, .namespace, .uid, .resourceVersion: the Event's
//     reference to the pod (reference.GetReference), the pod's name in logs.
//   - metadata.generateName: the pod's name in logs (podName).
//   - metadata.labels: PluginChain and Service selection; the patch (add the map or a key).
//   - metadata.annotations: opt-out, the status (already injected), the native-sidecar,
//     proxy resource and connection overrides; the patch (add the map or a key).
//   - metadata.ownerReferences: the controller the Event is recorded on (whole, small).
//   - spec.hostNetwork: the host-network skip.
//   - spec.os, spec.nodeSelector: the Windows skip (only kubernetes.io/os is read).
//   - spec.restartPolicy: the warning for a proxy run as a regular container.
//   - spec.containers[].name, .ports: already injected (a corsproxy container), a Service's
//     named target port; the patch (add the list or prepend).
//   - spec.initContainers[].name: already injected; the patch (add the list or prepend).
//     (Their ports come along, one type for both lists: init containers rarely have any.)
//   - spec.volumes: how many there are, for the patch (add the list or append); the
//     elements handed on are zero Volumes.
//
// Values of skipped fields are not type-checked, as managedFields were not before: the API
// server sends the pod it has validated, and a forged review changes only the answer its
// own sender gets. A kept field of the wrong type fails the decode as the full one did.
type admittedPod struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        struct {
		Name            string                  `json:"name,omitempty"`
		GenerateName    string                  `json:"generateName,omitempty"`
		Namespace       string                  `json:"namespace,omitempty"`
		UID             types.UID               `json:"uid,omitempty"`
		ResourceVersion string                  `json:"resourceVersion,omitempty"`
		Labels          map[string]string       `json:"labels,omitempty"`
		Annotations     map[string]string       `json:"annotations,omitempty"`
		OwnerReferences []metav1.OwnerReference `json:"ownerReferences,omitempty"`
	} `json:"metadata,omitempty"`
	Spec struct {
		HostNetwork    bool                 `json:"hostNetwork,omitempty"`
		OS             *corev1.PodOS        `json:"os,omitempty"`
		NodeSelector   map[string]string    `json:"nodeSelector,omitempty"`
		RestartPolicy  corev1.RestartPolicy `json:"restartPolicy,omitempty"`
		InitContainers []admittedContainer  `json:"initContainers,omitempty"`
		Containers     []admittedContainer  `json:"containers,omitempty"`
		Volumes        []skipJSON           `json:"volumes,omitempty"` // counted only
	} `json:"spec,omitempty"`

	// out is the pod pod returns, allocated along with the fields above.
	out corev1.Pod
}

// admittedContainer is a container as admission reads it (see admittedPod).
type admittedContainer struct {
	Name  string                 `json:"name"`
	Ports []corev1.ContainerPort `json:"ports,omitempty"`
}

// pod is the decoded pod as a corev1.Pod: the kept fields, sharing their maps and slices;
// every other field zero. Call it once.
func (p *admittedPod) pod() *corev1.Pod {
	out := &p.out
	out.TypeMeta = p.TypeMeta
	m := &p.Metadata
	out.Name, out.GenerateName, out.Namespace, out.UID, out.ResourceVersion = m.Name, m.GenerateName, m.Namespace, m.UID, m.ResourceVersion
	out.Labels, out.Annotations, out.OwnerReferences = m.Labels, m.Annotations, m.OwnerReferences
	s := &p.Spec
	out.Spec.HostNetwork, out.Spec.OS, out.Spec.NodeSelector, out.Spec.RestartPolicy = s.HostNetwork, s.OS, s.NodeSelector, s.RestartPolicy
	out.Spec.InitContainers = containers(s.InitContainers)
	out.Spec.Containers = containers(s.Containers)
	if s.Volumes != nil { // nil stays nil, as the full decode leaves an absent list
		out.Spec.Volumes = make([]corev1.Volume, len(s.Volumes))
	}
	return out
}

// containers are the decoded containers as corev1.Containers (nil for nil).
func containers(in []admittedContainer) []corev1.Container {
	if in == nil {
		return nil
	}
	out := make([]corev1.Container, len(in))
	for i, c := range in {
		out[i].Name, out[i].Ports = c.Name, c.Ports
	}
	return out
}

// skipJSON accepts any JSON value and keeps nothing of it.
type skipJSON struct{}

func (*skipJSON) UnmarshalJSON([]byte) error { return nil }
