package injector

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"gomodules.xyz/jsonpatch/v2"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/corsmesh/corsmesh/corsproxy/flags"
	"github.com/corsmesh/corsmesh/corsproxy/iptables"
)

// Status is recorded in AnnotationStatus: what was injected, so a second pass (webhook
// reinvocation, `kubectl debug` copies) recognises the pod and changes nothing.
type Status struct {
	Version        int      `json:"version"`
	InitContainers []string `json:"initContainers"`
	Containers     []string `json:"containers,omitempty"`
	Volumes        []string `json:"volumes"`
	Ports          []int32  `json:"ports"`
	NativeSidecar  bool     `json:"nativeSidecar"`
	// Resolved is the decision's Stamp: config sync leaves a pod it would only decide
	// again, unchanged, alone (Resolver.Current).
	Resolved string `json:"resolved,omitempty"`
}

// ParseStatus reads an injected pod's status annotation (nil when the pod is not injected).
func ParseStatus(pod *corev1.Pod) (*Status, error) {
	v, ok := pod.Annotations[AnnotationStatus]
	if !ok {
		return nil, nil
	}
	var s Status
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return nil, fmt.Errorf("annotation %s: %w", AnnotationStatus, err)
	}
	return &s, nil
}

// Mutation is what injection adds to a pod. Apply gives the injected pod and Patch the
// JSON patch an admission response carries, both from the additions themselves: encoding
// two whole pods and diffing them was most of an admission's cost. An Injector's
// mutations share their labels, containers and volumes with every pod of the same inputs:
// change them only by assigning new ones (Apply copies what it puts in a pod).
type Mutation struct {
	Annotations    map[string]string  // set, replacing values of the same keys
	Labels         map[string]string  // set, replacing values of the same keys
	InitContainers []corev1.Container // put first, in this order
	Containers     []corev1.Container // put first, in this order
	Volumes        []corev1.Volume    // appended

	// injected, when the fields above are its values, holds their JSON for Patch.
	injected *injected
}

// Mutate returns a copy of pod with the mutation applied: the sidecar, the init container,
// the config and status annotations and the volumes, as decided by d (which must say Inject).
func (in *Injector) Mutate(pod *corev1.Pod, d *Decision) (*corev1.Pod, error) {
	m, err := in.Mutation(pod, d)
	if err != nil {
		return nil, err
	}
	return m.Apply(pod), nil
}

// Mutation builds what injecting pod adds, as decided by d (which must say Inject). What
// only the pod's own settings reveal (its sidecar mode, say) is added to d.Warnings.
func (in *Injector) Mutation(pod *corev1.Pod, d *Decision) (*Mutation, error) {
	if !d.Inject {
		return nil, fmt.Errorf("mutate called for a pod that is not injected (%s)", d.Reason)
	}
	native, err := in.nativeSidecar(pod)
	if err != nil {
		return nil, err
	}
	if !native && pod.Spec.RestartPolicy != "" && pod.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		d.Warnings = append(d.Warnings, fmt.Sprintf("restartPolicy %s with the proxy as a regular container: it keeps running after the app exits, so the pod (a Job's, say) never completes; native sidecars (Kubernetes 1.29+, %s: \"true\") stop with the app", pod.Spec.RestartPolicy, AnnotationNativeSidecar))
	}
	parts, err := in.injected(pod, d.Ports, native)
	if err != nil {
		return nil, err
	}
	cfg, err := d.Config.MarshalString()
	if err != nil {
		return nil, err
	}

	status, err := parts.statusWithStamp(d.Stamp)
	if err != nil {
		return nil, err
	}
	return &Mutation{
		Annotations:    map[string]string{AnnotationConfig: cfg, AnnotationStatus: status},
		Labels:         parts.labels,
		InitContainers: parts.initContainers, Containers: parts.containers, Volumes: parts.volumes,
		injected: parts,
	}, nil
}

// injected returns the containers and volumes for pod's inputs, built once for each set of
// them (injectedCache).
func (in *Injector) injected(pod *corev1.Pod, ports []int32, native bool) (*injected, error) {
	var buf [128]byte
	key, cacheable := injectedKey(buf[:0], pod, ports, native)
	cacheable = cacheable && in.cache != nil
	if cacheable {
		if p := in.cache.get(key); p != nil {
			return p, nil
		}
	}
	p, err := in.buildInjected(pod, ports, native)
	if err != nil {
		return nil, err
	}
	if cacheable {
		in.cache.add(key, p)
	}
	return p, nil
}

// buildInjected builds the containers and volumes for pod's inputs.
func (in *Injector) buildInjected(pod *corev1.Pod, ports []int32, native bool) (*injected, error) {
	resources, err := in.proxyResources(pod)
	if err != nil {
		return nil, err
	}
	initC, err := in.initContainer(ports)
	if err != nil {
		return nil, err
	}
	maxConns, err := proxyMaxConns(pod)
	if err != nil {
		return nil, err
	}
	if maxConns == 0 {
		maxConns = in.opts.ProxyMaxConns
	}
	proxy := in.proxyContainer(resources, native, maxConns)
	var initContainers, containers []corev1.Container
	// The redirect must be in place, and the proxy ready, before anything of the app runs.
	if native {
		initContainers = []corev1.Container{initC, proxy}
	} else {
		initContainers, containers = []corev1.Container{initC}, []corev1.Container{proxy}
	}
	volumes := []corev1.Volume{{
		Name: ConfigVolumeName,
		VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
			Items: []corev1.DownwardAPIVolumeFile{{
				Path:     ConfigFileName,
				FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['" + AnnotationConfig + "']"},
			}},
		}},
	}, {
		Name:         NoTokenVolumeName,
		VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}, // mounted read-only: stays empty
	}}
	return newInjected(initContainers, containers, volumes, ports, native)
}

// Apply returns a copy of pod with the mutation applied.
func (m *Mutation) Apply(pod *corev1.Pod) *corev1.Pod {
	out := pod.DeepCopy()
	if out.Annotations == nil {
		out.Annotations = make(map[string]string, len(m.Annotations))
	}
	maps.Copy(out.Annotations, m.Annotations)
	out.Labels = setAll(out.Labels, m.Labels)
	if len(m.InitContainers) > 0 {
		out.Spec.InitContainers = slices.Concat(copyContainers(m.InitContainers), out.Spec.InitContainers)
	}
	if len(m.Containers) > 0 {
		out.Spec.Containers = slices.Concat(copyContainers(m.Containers), out.Spec.Containers)
	}
	for _, v := range m.Volumes {
		out.Spec.Volumes = append(out.Spec.Volumes, *v.DeepCopy())
	}
	return out
}

// copyContainers deep-copies a mutation's containers, which may share the injector's
// options (proxyResources), before they go into a pod its caller owns.
func copyContainers(cs []corev1.Container) []corev1.Container {
	out := make([]corev1.Container, len(cs))
	for i := range cs {
		cs[i].DeepCopyInto(&out[i])
	}
	return out
}

// Patch is the JSON patch (RFC 6902) that applies the mutation to pod as the API server
// encoded it. A list or map the pod leaves empty is added whole, since the request may
// carry it as absent, null or empty; otherwise each element is added in place ("add" on an
// existing annotation replaces it). The containers and volumes an Injector built go in as
// their JSON (json.RawMessage), encoded once for every pod that shares them.
func (m *Mutation) Patch(pod *corev1.Pod) []jsonpatch.Operation {
	enc := m.encoded()
	ops := make([]jsonpatch.Operation, 0, 8)
	ops = appendMapOps(ops, "/metadata/annotations", pod.Annotations, m.Annotations)
	ops = appendMapOps(ops, "/metadata/labels", pod.Labels, m.Labels)
	prepend := func(path string, existing, added []corev1.Container, each []any, list any) {
		switch {
		case len(added) == 0:
		case len(existing) == 0:
			ops = append(ops, jsonpatch.NewOperation("add", path, list))
		default:
			for i := range added {
				var v any
				if each != nil {
					v = each[i]
				} else {
					v = added[i]
				}
				ops = append(ops, jsonpatch.NewOperation("add", path+"/"+strconv.Itoa(i), v))
			}
		}
	}
	prepend("/spec/initContainers", pod.Spec.InitContainers, m.InitContainers, enc.initJSON, enc.initList)
	prepend("/spec/containers", pod.Spec.Containers, m.Containers, enc.containersJSON, enc.containersList)
	if len(pod.Spec.Volumes) == 0 {
		ops = append(ops, jsonpatch.NewOperation("add", "/spec/volumes", enc.volumesList))
	} else {
		for i := range m.Volumes {
			var v any
			if enc.volumesJSON != nil {
				v = enc.volumesJSON[i]
			} else {
				v = m.Volumes[i]
			}
			ops = append(ops, jsonpatch.NewOperation("add", "/spec/volumes/-", v))
		}
	}
	return ops
}

// encoded is the JSON of the mutation's containers and volumes when an Injector built
// them and they are still its values, else the typed lists themselves (a Mutation made or
// changed by its caller is encoded as it is).
func (m *Mutation) encoded() *injected {
	if p := m.injected; p != nil && sameSlice(m.InitContainers, p.initContainers) &&
		sameSlice(m.Containers, p.containers) && sameSlice(m.Volumes, p.volumes) {
		return p
	}
	return &injected{initList: m.InitContainers, containersList: m.Containers, volumesList: m.Volumes}
}

// sameSlice reports whether a and b are the same elements in memory.
func sameSlice[T any](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// noTokenMount hides the ServiceAccount token from an injected container (see
// NoTokenVolumeName).
var noTokenMount = corev1.VolumeMount{Name: NoTokenVolumeName, MountPath: ServiceAccountTokenPath, ReadOnly: true}

// escapeJSONPointer escapes a map key as one JSON Pointer (RFC 6901) token.
func escapeJSONPointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func (in *Injector) nativeSidecar(pod *corev1.Pod) (bool, error) {
	v, ok := pod.Annotations[AnnotationNativeSidecar]
	if !ok {
		return in.opts.NativeSidecars, nil
	}
	native, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("annotation %s=%q: want true or false", AnnotationNativeSidecar, v)
	}
	return native, nil
}

// proxyResources are the options' requests and limits, shared unless an annotation
// overrides one (copying them for every admission was 2.6 kB of its 45); Apply copies
// what it puts in a pod.
func (in *Injector) proxyResources(pod *corev1.Pod) (corev1.ResourceRequirements, error) {
	r, copied := in.opts.ProxyResources, false
	for _, o := range []struct {
		annotation string
		list       *corev1.ResourceList
		name       corev1.ResourceName
	}{
		{AnnotationProxyCPURequest, &r.Requests, corev1.ResourceCPU},
		{AnnotationProxyMemoryRequest, &r.Requests, corev1.ResourceMemory},
		{AnnotationProxyCPULimit, &r.Limits, corev1.ResourceCPU},
		{AnnotationProxyMemoryLimit, &r.Limits, corev1.ResourceMemory},
	} {
		v, ok := pod.Annotations[o.annotation]
		if !ok {
			continue
		}
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return r, fmt.Errorf("annotation %s=%q: %w", o.annotation, v, err)
		}
		if !copied {
			r, copied = *in.opts.ProxyResources.DeepCopy(), true
		}
		if *o.list == nil {
			*o.list = corev1.ResourceList{}
		}
		(*o.list)[o.name] = q
	}
	return r, nil
}

func (in *Injector) initContainer(ports []int32) (corev1.Container, error) {
	inbound := make([]int, len(ports))
	for i, p := range ports {
		inbound[i] = int(p)
	}
	opts := iptables.DefaultOptions(inbound...)
	opts.Config.ProxyPort, opts.Config.AdminPort = int(in.opts.ProxyPort), int(in.opts.AdminPort)
	if err := opts.Validate(); err != nil {
		return corev1.Container{}, fmt.Errorf("init container rules: %w", err)
	}
	return corev1.Container{
		Name:         InitContainerName,
		Image:        in.opts.InitImage,
		Command:      []string{"corsproxy-init"},
		Args:         opts.Args(),
		Resources:    *in.opts.InitResources.DeepCopy(),
		VolumeMounts: []corev1.VolumeMount{noTokenMount},
		SecurityContext: &corev1.SecurityContext{
			// iptables needs root and these two capabilities, nothing more.
			RunAsUser:                ptr.To[int64](0),
			RunAsNonRoot:             ptr.To(false),
			Privileged:               ptr.To(false),
			AllowPrivilegeEscalation: ptr.To(false),
			ReadOnlyRootFilesystem:   ptr.To(true),
			Capabilities: &corev1.Capabilities{
				Add:  []corev1.Capability{"NET_ADMIN", "NET_RAW"},
				Drop: []corev1.Capability{"ALL"},
			},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}, nil
}

// maxProxyConns is the most connections to one app port the annotation may ask for: about
// the ephemeral ports one source address has for one destination.
const maxProxyConns = 28000

// proxyMaxConns reads the per-pod bound on the proxy's connections to each app port
// (0: the proxy's own default).
func proxyMaxConns(pod *corev1.Pod) (int, error) {
	v, ok := pod.Annotations[AnnotationProxyMaxConns]
	if !ok {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxProxyConns {
		return 0, fmt.Errorf("annotation %s=%q: want a whole number of connections from 1 to %d", AnnotationProxyMaxConns, v, maxProxyConns)
	}
	return n, nil
}

// proxyEnv tells the proxy its pod's IP, the only address its admin port listens on (where
// the kubelet probes it), and its memory limit, which sizes its heap and connection cap.
func proxyEnv() []corev1.EnvVar {
	return []corev1.EnvVar{
		{Name: flags.EnvPodIP, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		{Name: flags.EnvMemoryLimit, ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{
			ContainerName: ProxyContainerName, Resource: "limits.memory", Divisor: resource.MustParse("1"), // bytes
		}}},
	}
}

func (in *Injector) proxyContainer(resources corev1.ResourceRequirements, native bool, maxConns int) corev1.Container {
	admin := intstr.FromInt32(in.opts.AdminPort)
	probe := func(path string, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: admin}},
			PeriodSeconds:    1,
			FailureThreshold: failures,
		}
	}
	c := corev1.Container{
		Name:    ProxyContainerName,
		Image:   in.opts.ProxyImage,
		Command: []string{"corsproxy"},
		Args: []string{
			flags.Arg(flags.Config, ConfigMountPath+"/"+ConfigFileName),
			flags.Arg(flags.Listen, flags.AllInterfaces(int(in.opts.ProxyPort))),
			flags.Arg(flags.AdminListen, flags.AllInterfaces(int(in.opts.AdminPort))),
		},
		Ports:          []corev1.ContainerPort{{Name: AdminPortName, ContainerPort: in.opts.AdminPort, Protocol: corev1.ProtocolTCP}},
		Env:            proxyEnv(),
		VolumeMounts:   []corev1.VolumeMount{{Name: ConfigVolumeName, MountPath: ConfigMountPath, ReadOnly: true}, noTokenMount},
		Resources:      resources,
		ReadinessProbe: probe("/readyz", 3),
		LivenessProbe: func() *corev1.Probe {
			p := probe("/healthz", 3)
			p.PeriodSeconds = 10
			return p
		}(),
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                ptr.To(in.opts.ProxyUID),
			RunAsGroup:               ptr.To(in.opts.ProxyUID),
			RunAsNonRoot:             ptr.To(true),
			Privileged:               ptr.To(false),
			AllowPrivilegeEscalation: ptr.To(false),
			ReadOnlyRootFilesystem:   ptr.To(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	if native {
		// A native sidecar: the kubelet waits for the startup probe before starting the
		// app's containers, and stops the proxy after them.
		c.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
		c.StartupProbe = probe("/readyz", 60)
	} else {
		// A regular container placed first: the kubelet runs postStart to completion before
		// starting the next container, so the app starts after the proxy is ready.
		c.Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{
			Command: []string{"corsproxy", flags.Arg(flags.WaitReady, "60s"), flags.Arg(flags.AdminListen, flags.AllInterfaces(int(in.opts.AdminPort)))},
		}}}
		// It also gets SIGTERM together with the app, while endpoints still send traffic
		// for a few seconds: it keeps accepting that long, as the app may (a native
		// sidecar is stopped only after the app has exited).
		c.Args = append(c.Args, flags.Arg(flags.DrainDelay, 5*time.Second))
	}
	if maxConns > 0 {
		c.Args = append(c.Args, flags.Arg(flags.MaxConnsPerUpstream, maxConns))
	}
	return c
}
