package admit

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
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

	// patches lends the patch's buffer; the admission handler gives it back once the
	// response is written (releasePatch).
	patches buffers
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
	// The debug lines' values are built only when V(1) is on: the webhook's zap logger
	// encodes WithValues' fields at once, for every admission, though the line is dropped.
	debug := m.Log.V(1)
	if !d.Inject {
		m.Metrics.Skipped.WithLabelValues(string(d.Reason)).Inc()
		if debug.Enabled() {
			debug.Info("not injected", "namespace", req.Namespace, "pod", podName(pod), "reason", d.Reason, "message", d.Message)
		}
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
	if debug.Enabled() {
		debug.Info("injected", "namespace", req.Namespace, "pod", podName(pod), "ports", d.Ports, "chains", d.Chains)
	}
	if m.Events != nil { // its arguments (the join, the boxed ports) cost 3 allocations
		m.event(pod, req.Namespace, corev1.EventTypeNormal, EventInjected, "Inject", "CORS proxy injected for ports %v (PluginChains %s)", d.Ports, strings.Join(d.Chains, ", "))
	}
	buf := m.patches.get(patchLen(ops))
	patch, err := appendPatch(*buf, ops)
	if err != nil {
		m.patches.put(buf)
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

// releasePatch takes back the buffer of a patch Handle returned, once nothing reads it.
func (m *PodMutator) releasePatch(patch []byte) {
	if patch != nil {
		m.patches.put(&patch)
	}
}

// patchLen is about the length of the operations encoded by appendPatch: enough for the
// injector's patches, so that appendPatch does not grow its buffer.
func patchLen(ops []jsonpatch.Operation) int {
	n := 2 + 64 // the brackets, and room for a few escapes (<, >, & take six bytes each)
	for _, op := range ops {
		n += len(op.Path) + 32
		switch v := op.Value.(type) {
		case json.RawMessage:
			n += len(v)
		case string:
			n += jsonStringLen(v)
		case map[string]string:
			n += 2 // braces
			for k, s := range v {
				n += jsonStringLen(k) + jsonStringLen(s) + 2
			}
		}
	}
	return n
}

// appendPatch appends the operations to b as encoding/json would write them
// ([{"op":…,"path":…,"value":…}], value left out when nil), but copies a json.RawMessage
// value as it is, unchecked (only the injector's own encoding comes as one): the injected
// containers come encoded once for all the pods that share them (injector.Mutation.Patch),
// and encoding them by reflection was a fifth of an admission's CPU. Strings and maps of
// them (the annotations) are written here too.
func appendPatch(b []byte, ops []jsonpatch.Operation) ([]byte, error) {
	b = append(b, '[')
	for i, op := range ops {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(append(b, `{"op":`...), op.Operation)
		b = appendJSONString(append(b, `,"path":`...), op.Path)
		switch v := op.Value.(type) {
		case nil:
		case json.RawMessage:
			b = append(append(b, `,"value":`...), v...)
		case string:
			b = appendJSONString(append(b, `,"value":`...), v)
		case map[string]string:
			b = append(b, `,"value":{`...)
			keys := make([]string, 0, 8) // on the stack for the injector's two annotations
			keys = slices.AppendSeq(keys, maps.Keys(v))
			slices.Sort(keys) // as encoding/json sorts a map's keys
			for j, k := range keys {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(append(appendJSONString(b, k), ':'), v[k])
			}
			b = append(b, '}')
		default:
			enc, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("encoding the patch at %s: %w", op.Path, err)
			}
			b = append(append(b, `,"value":`...), enc...)
		}
		b = append(b, '}')
	}
	return append(b, ']'), nil
}

// jsonStringLen is about the length of s encoded as a JSON string: its quotes and the
// escapes of its double quotes (the annotations hold JSON).
func jsonStringLen(s string) int { return len(s) + strings.Count(s, `"`) + 2 }

// appendJSONString appends s encoded as encoding/json encodes a string (HTML-safe): printable
// ASCII here, escaping what it escapes; anything else through json.Marshal.
func appendJSONString(b []byte, s string) []byte {
	start := len(b)
	b = append(b, '"')
	last := 0 // s[last:i] is yet to be appended
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
			continue
		}
		if c < 0x20 || c > 0x7e {
			enc, _ := json.Marshal(s) // a string always encodes
			return append(b[:start], enc...)
		}
		b = append(b, s[last:i]...)
		if c == '"' || c == '\\' {
			b = append(b, '\\', c)
		} else {
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		last = i + 1
	}
	return append(append(b, s[last:]...), '"')
}

const hexDigits = "0123456789abcdef"

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
