package admit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/go-logr/logr"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	kjson "sigs.k8s.io/json"

	"github.com/corsmesh/corsmesh/injector"
)

// Event reasons on pods (or their owners).
const (
	EventInjected = "CORSProxyInjected"
	EventSkipped  = "CORSProxyNotInjected"
)

// PodMutator injects the CORS sidecar into pods at creation.
type PodMutator struct {
	Resolver *injector.Resolver
	// Live confirms a skip the cache may have caused by lagging (nil: trust the cache).
	Live    *Live
	Events  events.EventRecorder // may be nil
	Metrics *Metrics
	Log     logr.Logger
}

// quietReasons are skips the user asked for or cannot act on: no warning at admission.
var quietReasons = map[injector.Reason]bool{
	injector.ReasonSystemNamespace:       true,
	injector.ReasonOwnNamespace:          true,
	injector.ReasonNamespaceNotMonitored: true,
	injector.ReasonAlreadyInjected:       true,
	injector.ReasonPodOptedOut:           true,
	injector.ReasonNamespaceOptedOut:     true,
	injector.ReasonNoChain:               true,
}

// Handle implements admission.Handler.
func (m *PodMutator) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Kind.Kind != "Pod" || req.Kind.Group != "" || req.Operation != admissionv1.Create || req.SubResource != "" {
		return admission.Allowed("corsmesh injects pods at creation only")
	}
	pod, err := requestPod(req)
	if err != nil {
		m.Metrics.Errors.WithLabelValues(errDecode).Inc()
		return admission.Errored(http.StatusBadRequest, err)
	}
	d, err := m.decide(ctx, pod, req.Namespace)
	if err != nil {
		m.Metrics.Errors.WithLabelValues(errClusterRead).Inc()
		m.Log.Error(err, "injection failed", "namespace", req.Namespace, "pod", podName(pod))
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("corsmesh: %w", err))
	}
	log := m.Log.WithValues("namespace", req.Namespace, "pod", podName(pod))
	if !d.Inject {
		m.Metrics.Skipped.WithLabelValues(string(d.Reason)).Inc()
		log.V(1).Info("not injected", "reason", d.Reason, "message", d.Message)
		resp := admission.Allowed("corsmesh: not injected: " + d.Message)
		if quietReasons[d.Reason] {
			return resp
		}
		m.event(pod, req.Namespace, corev1.EventTypeWarning, EventSkipped, "Skip", "Not injected (%s): %s", d.Reason, d.Message)
		return resp.WithWarnings(append([]string{"corsmesh: pod not injected: " + d.Message}, prefixed(d.Warnings)...)...)
	}
	mutation, err := m.Resolver.Injector().Mutation(pod, d)
	if err != nil {
		// A per-pod annotation the injector cannot read (a resource quantity, say).
		m.Metrics.Errors.WithLabelValues(errMutate).Inc()
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("corsmesh: %w", err))
	}
	ops := mutation.Patch(pod)
	m.Metrics.Injected.Inc()
	log.V(1).Info("injected", "ports", d.Ports, "chains", d.Chains)
	m.event(pod, req.Namespace, corev1.EventTypeNormal, EventInjected, "Inject", "CORS proxy injected for ports %v (PluginChains %s)", d.Ports, strings.Join(d.Chains, ", "))
	patch, err := encodePatch(ops)
	if err != nil {
		m.Metrics.Errors.WithLabelValues(errMutate).Inc()
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("corsmesh: %w", err))
	}
	resp := admission.Allowed("corsmesh: CORS proxy injected").WithWarnings(prefixed(d.Warnings)...)
	resp.Patch, resp.PatchType = patch, ptr.To(admissionv1.PatchTypeJSONPatch)
	return resp
}

// requestPod is the pod under review: decoded by the handler along with the review
// (Object.Object), or else decoded here, case-sensitively as the API server encodes it.
func requestPod(req admission.Request) (*corev1.Pod, error) {
	if pod, ok := req.Object.Object.(*corev1.Pod); ok {
		return pod, nil
	}
	var pod corev1.Pod
	if err := kjson.UnmarshalCaseSensitivePreserveInts(req.Object.Raw, &pod); err != nil {
		return nil, fmt.Errorf("decoding pod: %w", err)
	}
	return &pod, nil
}

// patchOp is one JSON patch operation as encoded: a struct, which encodes with a fraction
// of the allocations of jsonpatch.Operation's map (admission.Patched's encoding).
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

func encodePatch(ops []jsonpatch.Operation) ([]byte, error) {
	out := make([]patchOp, len(ops))
	for i, op := range ops {
		out[i] = patchOp{Op: op.Operation, Path: op.Path, Value: op.Value}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encoding the patch: %w", err)
	}
	return b, nil
}

func prefixed(warnings []string) []string {
	out := make([]string, len(warnings))
	for i, w := range warnings {
		out[i] = "corsmesh: " + w
	}
	return out
}

// event records on the pod's controller (its ReplicaSet, say) when it has one: at
// admission the pod does not exist yet, and may not even have a name.
func (m *PodMutator) event(pod *corev1.Pod, ns, eventType, reason, action, format string, args ...any) {
	if m.Events == nil {
		return
	}
	var regarding runtime.Object = pod
	for _, ref := range pod.OwnerReferences {
		if ref.Controller != nil && *ref.Controller {
			regarding = &corev1.ObjectReference{APIVersion: ref.APIVersion, Kind: ref.Kind, Name: ref.Name, UID: ref.UID, Namespace: ns}
			break
		}
	}
	if regarding == runtime.Object(pod) && pod.Name == "" {
		return // nothing to attach it to; the admission warning and metric still tell
	}
	if p, ok := regarding.(*corev1.Pod); ok && p.Namespace == "" {
		p = p.DeepCopy()
		p.Namespace = ns
		regarding = p
	}
	m.Events.Eventf(regarding, nil, eventType, reason, action, format, args...)
}

func podName(pod *corev1.Pod) string {
	if pod.Name != "" {
		return pod.Name
	}
	return pod.GenerateName + "<generated>"
}
