package admit

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"os"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	kjson "sigs.k8s.io/json"
)

// admissionHandler serves an admission.Handler through controller-runtime's
// admission.Webhook.Handle: it recovers a panicking handler and completes the response
// (uid, status code), and the webhook server counts and times each request (its
// controller_runtime_webhook_requests_total and _latency_seconds), once.
//
// The AdmissionReview is decoded and encoded here rather than by admission.Webhook's
// ServeHTTP, for two measured reasons:
//
//   - Speed. Its decoder reads the body three times (a full json.Unmarshal to find
//     apiVersion and kind, then the review with the object kept as raw bytes), and a pod's
//     handler then decodes those bytes a fourth time: on an admission of the seed's pod with
//     1,000 PluginChains and 10,000 Services (BenchmarkAdmission) that was 30 % of the
//     handler's CPU, plus 22 % for the pod. Here the review is decoded once, case-sensitively
//     as the API server encodes it, the pod included (a PodMutator's reviews: see the pods field).
//   - Its answers to input the API server never sends (another method, another content
//     type, a body that is no AdmissionReview, a request without uid) are HTTP 200 with the
//     error inside a review. The project's rule is that a malformed request is a 4xx, so
//     whoever sent it sees a client error with a plain message.
type admissionHandler struct {
	hook    *admission.Webhook
	metrics *Metrics
	log     logr.Logger
	// pods is the handler when it is a PodMutator: the review's object is then decoded as
	// a pod along with the review, handed to it in Request.Object.Object, and its patch
	// buffer given back once the response is written.
	pods *PodMutator
	// bodies lends the buffers request bodies are read into; budget bounds their bytes.
	bodies buffers
	budget bodyBudget
	// bodyTimeout bounds reading a body (bodyReadTimeout when 0).
	bodyTimeout time.Duration
}

// NewHandler serves h, counting malformed requests and panics in metrics.
func NewHandler(h admission.Handler, metrics *Metrics, log logr.Logger) http.Handler {
	pods, _ := h.(*PodMutator)
	return &admissionHandler{metrics: metrics, log: log, pods: pods, hook: &admission.Webhook{
		// The handlers log with the request's names themselves; the default constructor's
		// per-request logger was a tenth of an admission's allocations.
		LogConstructor: func(base logr.Logger, _ *admission.Request) logr.Logger { return base },
		Handler: admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
			defer func() {
				if p := recover(); p != nil {
					metrics.Errors.WithLabelValues(errPanic).Inc()
					log.Error(fmt.Errorf("panic: %v", p), "admission handler panicked", "uid", req.UID, "kind", req.Kind.Kind)
					panic(p) // admission.Webhook answers it with a 500
				}
			}()
			return h.Handle(ctx, req)
		}),
	}}
}

func (a *admissionHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Without a read deadline a body sent a byte a minute would hold its connection, its
	// goroutine and its buffer for good: the webhook server sets none of its own. It stays
	// when the body is not read to its end, for net/http reads what is left (up to 256 KiB)
	// once the handler returns; once read, it is cleared, for net/http's background read,
	// which watches for the client going away while the handler runs, would take the
	// deadline for that. ErrNotSupported (a ResponseWriter that is no connection's, as in
	// tests) leaves reads unbounded.
	rc := http.NewResponseController(w)
	bodyTimeout := cmp.Or(a.bodyTimeout, bodyReadTimeout)
	bounded := rc.SetReadDeadline(time.Now().Add(bodyTimeout)) == nil
	if r.Method != http.MethodPost {
		a.reject(w, r, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: send an AdmissionReview with POST", r.Method))
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		a.reject(w, r, http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q not supported: want application/json", r.Header.Get("Content-Type")))
		return
	}
	// The body's buffer is reused once the response is written: decoding copies what it
	// keeps (strings, and raw objects through RawExtension.UnmarshalJSON).
	body, lent, held, err := readBody(r, &a.bodies, &a.budget)
	defer a.budget.give(held)
	defer a.bodies.put(lent)
	if err == nil && bounded {
		_ = rc.SetReadDeadline(time.Time{})
	}
	switch {
	case errors.Is(err, errBusy):
		a.metrics.Errors.WithLabelValues(errOverloaded).Inc()
		a.log.Info("refused an admission request: too many request bytes in flight", "remote", r.RemoteAddr)
		w.Header().Set("Connection", "close") // see reject
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	case errors.Is(err, os.ErrDeadlineExceeded):
		a.reject(w, r, http.StatusRequestTimeout, "malformed AdmissionReview: the body did not arrive within "+bodyTimeout.String())
		return
	case errors.Is(err, errTooLarge):
		a.reject(w, r, http.StatusRequestEntityTooLarge, "malformed AdmissionReview: "+err.Error())
		return
	case err != nil:
		a.reject(w, r, http.StatusBadRequest, "malformed AdmissionReview: "+err.Error())
		return
	}
	review, err := a.decode(body)
	if err != nil {
		a.reject(w, r, http.StatusBadRequest, "malformed AdmissionReview: "+err.Error())
		return
	}
	if review.Request == nil || review.Request.UID == "" {
		a.reject(w, r, http.StatusBadRequest, "malformed AdmissionReview: request has no uid")
		return
	}
	resp := a.hook.Handle(r.Context(), admission.Request{AdmissionRequest: *review.Request})
	// An Encoder writes from its pooled buffer, where json.Marshal would copy it out; it
	// writes nothing when encoding fails.
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: &resp.AdmissionResponse}); err != nil {
		a.log.Error(err, "writing the AdmissionReview response", "uid", review.Request.UID)
	}
	if a.pods != nil {
		a.pods.releasePatch(resp.Patch)
	}
}

// review is an AdmissionReview as received. The API server sends admission.k8s.io/v1 or
// v1beta1 (the same fields), and expects its answer in the version it sent.
type review struct {
	metav1.TypeMeta `json:",inline"`
	Request         *admissionv1.AdmissionRequest `json:"request,omitempty"`
}

// podReview is a review whose object is decoded as a pod on the way (admittedPod): the
// outer Object field hides the embedded request's raw one. The request's fields a
// PodMutator never reads are hidden too and skipped, undecoded (22 allocations, 0.9 kB an
// admission): who asks (userInfo), the kind and resource as requested (requestKind,
// requestResource; it reads kind), resource, options and oldObject (it admits creations
// only). A PodMutator that starts reading one must unhide it here. As admittedPod's,
// skipped values are not type-checked.
type podReview struct {
	metav1.TypeMeta `json:",inline"`
	Request         *struct {
		admissionv1.AdmissionRequest
		Object          *admittedPod `json:"object,omitempty"`
		UserInfo        skipJSON     `json:"userInfo"`
		RequestKind     skipJSON     `json:"requestKind"`
		RequestResource skipJSON     `json:"requestResource"`
		Resource        skipJSON     `json:"resource"`
		Options         skipJSON     `json:"options"`
		OldObject       skipJSON     `json:"oldObject"`
	} `json:"request,omitempty"`
}

// decode reads an AdmissionReview, defaulting a missing apiVersion or kind to v1's.
// For a PodMutator, the object comes decoded as a pod in Request.Object.Object; an object
// that is no pod is left raw for the handler to answer (a Pod it cannot decode is a 400
// inside the review, another kind is not its business).
func (a *admissionHandler) decode(body []byte) (*review, error) {
	var out review
	var err error
	if a.pods != nil {
		var pr podReview
		if err = kjson.UnmarshalCaseSensitivePreserveInts(body, &pr); err == nil {
			out.TypeMeta = pr.TypeMeta
			if pr.Request != nil {
				out.Request = &pr.Request.AdmissionRequest
				if pr.Request.Object != nil {
					out.Request.Object.Object = pr.Request.Object.pod()
				}
			}
		}
	}
	if a.pods == nil || err != nil {
		out = review{}
		if err := kjson.UnmarshalCaseSensitivePreserveInts(body, &out); err != nil {
			return nil, err
		}
	}
	if out.APIVersion == "" {
		out.APIVersion = admissionv1.SchemeGroupVersion.String()
	}
	if out.Kind == "" {
		out.Kind = "AdmissionReview"
	}
	if (out.APIVersion != "admission.k8s.io/v1" && out.APIVersion != "admission.k8s.io/v1beta1") || out.Kind != "AdmissionReview" {
		return nil, fmt.Errorf("%s %s is not an admission.k8s.io/v1 AdmissionReview", out.APIVersion, out.Kind)
	}
	return &out, nil
}

// reject answers a request it will not read further, and closes the connection after the
// answer: net/http would otherwise read what is left of a body under 256 KiB before
// answering, so a client that stops sending would hold back its answer, its connection
// and its goroutine until the read deadline.
func (a *admissionHandler) reject(w http.ResponseWriter, r *http.Request, code int, msg string) {
	a.metrics.Errors.WithLabelValues(errMalformed).Inc()
	a.log.Info("rejected malformed admission request", "status", code, "err", msg, "remote", r.RemoteAddr)
	w.Header().Set("Connection", "close")
	http.Error(w, msg, code)
}
