// Package injector decides whether a pod gets the CORS sidecar and builds the mutated pod.
// It is pure logic: what it knows of the cluster comes through the Cluster interface, which
// the webhook backs with its informers and corsmeshctl with files and a client (package
// kubecluster), and every policy answer comes from its Resolver.
package injector

import (
	"github.com/corsmesh/corsmesh/corsproxy/flags"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Labels and annotations read or written by the injector. The openservicemesh.io ones are
// osm-edge's, so `osm namespace add` and the seed's selectors keep working.
const (
	LabelMonitoredBy           = "openservicemesh.io/monitored-by"
	AnnotationSidecarInjection = "openservicemesh.io/sidecar-injection"
	LabelPodSecurityEnforce    = "pod-security.kubernetes.io/enforce"

	// AnnotationConfig holds the resolved policy (config.Config JSON) that the proxy reads
	// through a downward-API volume.
	AnnotationConfig = "corsmesh.io/cors-config"
	// AnnotationStatus records what was injected; its presence makes injection idempotent.
	AnnotationStatus = "corsmesh.io/status"
	// LabelInjected ("true") marks the pods the injector injected, beside AnnotationStatus:
	// a label can be selected by the API server, so the webhook finds injected pods in
	// namespaces whose pods it does not cache by listing only them.
	LabelInjected = "corsmesh.io/injected"
	// AnnotationNativeSidecar overrides, per pod, whether the proxy is a native sidecar.
	AnnotationNativeSidecar = "corsmesh.io/native-sidecar"
	// Per-pod overrides of the proxy's resources, as Kubernetes quantities.
	AnnotationProxyCPURequest    = "corsmesh.io/proxy-cpu-request"
	AnnotationProxyMemoryRequest = "corsmesh.io/proxy-memory-request"
	AnnotationProxyCPULimit      = "corsmesh.io/proxy-cpu-limit"
	AnnotationProxyMemoryLimit   = "corsmesh.io/proxy-memory-limit"
	// AnnotationProxyMaxConns bounds, per pod, the proxy's connections to each app port
	// (its --max-conns-per-upstream; default 1,024): one per request in flight, about
	// 34 KiB each, so an app holding more streams needs this and a larger memory limit.
	AnnotationProxyMaxConns = "corsmesh.io/proxy-max-conns"
	// AnnotationImplements on a Plugin declares it the CORS plugin whatever its name.
	AnnotationImplements = "corsmesh.io/implements"
)

// Names of what the injector adds to a pod.
const (
	InitContainerName  = "corsproxy-init"
	ProxyContainerName = "corsproxy"
	// AdminPortName names the proxy's admin port (probes, /metrics, /debug/cors).
	AdminPortName    = "corsproxy-admin"
	ConfigVolumeName = "corsproxy-config"
	ConfigMountPath  = flags.ConfigDir
	ConfigFileName   = flags.ConfigFile
	// NoTokenVolumeName is an empty volume mounted over the ServiceAccount token path in
	// the injected containers: neither talks to the API server, and a mount already at that
	// path stops the ServiceAccount admission plugin from adding the token to them after our
	// patch, which would make the API server call the webhook a second time for every pod.
	NoTokenVolumeName = "corsproxy-no-token"
	// ServiceAccountTokenPath is where the ServiceAccount admission plugin mounts the token.
	ServiceAccountTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount"
)

// Options configure the injector; DefaultOptions gives working values.
type Options struct {
	// MeshName is the value of the monitored-by label that opts a namespace in.
	MeshName string
	// OwnNamespace is the webhook's namespace, never injected.
	OwnNamespace string
	// SystemNamespaces are never injected.
	SystemNamespaces []string
	// CORSPluginNames are the Plugin names implemented natively as CORS (besides Plugins
	// annotated corsmesh.io/implements: cors).
	CORSPluginNames []string
	// ClusterDomain completes Service DNS names for Host matching.
	ClusterDomain string

	ProxyImage string
	InitImage  string
	ProxyPort  int32
	AdminPort  int32
	ProxyUID   int64
	// NativeSidecars: the cluster runs Kubernetes 1.29 or later, so the proxy is an init
	// container with restartPolicy Always that starts before, and stops after, the app.
	NativeSidecars bool
	// ProxyResources are the proxy's default requests and limits.
	ProxyResources corev1.ResourceRequirements
	InitResources  corev1.ResourceRequirements
	// ProxyMaxConns is the proxy's bound on connections to each app port when the pod's
	// AnnotationProxyMaxConns does not set one; 0 leaves the proxy's own default.
	ProxyMaxConns int
}

// MaxProxyConns is the largest connection bound a pod or the webhook's flag may set.
const MaxProxyConns = maxProxyConns

// DefaultOptions are the defaults of the webhook's flags.
func DefaultOptions() Options {
	return Options{
		MeshName:         "osm",
		OwnNamespace:     "corsmesh-system",
		SystemNamespaces: []string{"kube-system", "kube-public", "kube-node-lease"},
		CORSPluginNames:  []string{"cors-policy", "cors"},
		ClusterDomain:    "cluster.local",
		ProxyImage:       "ghcr.io/corsmesh/corsproxy:v0.1.0",
		InitImage:        "ghcr.io/corsmesh/corsproxy-init:v0.1.0",
		ProxyPort:        flags.DefaultProxyPort,
		AdminPort:        flags.DefaultAdminPort,
		ProxyUID:         1500,
		NativeSidecars:   true,
		ProxyResources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("10m"),
				corev1.ResourceMemory: resource.MustParse("16Mi"),
			},
			Limits: corev1.ResourceList{
				corev1.ResourceMemory: resource.MustParse("64Mi"),
			},
		},
		InitResources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("10m"),
				corev1.ResourceMemory: resource.MustParse("10Mi"),
			},
			Limits: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("100m"),
				corev1.ResourceMemory: resource.MustParse("50Mi"),
			},
		},
	}
}
