package admit

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// admissionHandler serves an admission.Handler through controller-runtime's
// admission.Webhook: it decodes the AdmissionReview, recovers a panicking handler and
// encodes the response, and the webhook server counts and times each request (its
// controller_runtime_webhook_requests_total and _latency_seconds), once.
//
// One thing is added, for a measured reason: admission.Webhook answers input the API
// server never sends (another method, another content type, a body that is no
// AdmissionReview, a request without uid) with HTTP 200 and the error inside a review. The
// project's rule is that a malformed request is a 4xx, so whoever sent it sees a client
// error: such answers are rewritten to their HTTP status with a plain message. Requests
// that reach the handler pass through untouched.
type admissionHandler struct {
	hook    *admission.Webhook
	metrics *Metrics
	log     logr.Logger
}

// reachedKey marks, in a request's context, whether the request reached the handler.
type reachedKey struct{}

// NewHandler serves h, counting malformed requests and panics in metrics.
func NewHandler(h admission.Handler, metrics *Metrics, log logr.Logger) http.Handler {
	return &admissionHandler{metrics: metrics, log: log, hook: &admission.Webhook{
		// The handlers log with the request's names themselves; the default constructor's
		// per-request logger was a tenth of an admission's allocations.
		LogConstructor: func(base logr.Logger, _ *admission.Request) logr.Logger { return base },
		Handler: admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
			if req.UID == "" {
				return admission.Errored(http.StatusBadRequest, fmt.Errorf("AdmissionReview request has no uid"))
			}
			if reached, ok := ctx.Value(reachedKey{}).(*bool); ok {
				*reached = true
			}
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
	if r.Method != http.MethodPost {
		a.reject(w, r, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: send an AdmissionReview with POST", r.Method))
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		a.reject(w, r, http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q not supported: want application/json", r.Header.Get("Content-Type")))
		return
	}
	reached := new(bool)
	r = r.WithContext(context.WithValue(r.Context(), reachedKey{}, reached))
	a.hook.ServeHTTP(&malformedWriter{ResponseWriter: w, reached: reached, reject: func(code int, msg string) { a.reject(w, r, code, msg) }}, r)
}

func (a *admissionHandler) reject(w http.ResponseWriter, r *http.Request, code int, msg string) {
	a.metrics.Errors.WithLabelValues(errMalformed).Inc()
	a.log.Info("rejected malformed admission request", "status", code, "err", msg, "remote", r.RemoteAddr)
	http.Error(w, msg, code)
}

// malformedWriter passes admission.Webhook's answer through when the request reached the
// handler, and otherwise turns the error review it writes into that HTTP status.
type malformedWriter struct {
	http.ResponseWriter
	reached *bool
	reject  func(code int, msg string)
}

func (m *malformedWriter) Write(b []byte) (int, error) {
	if *m.reached {
		return m.ResponseWriter.Write(b)
	}
	code, msg := http.StatusBadRequest, "malformed AdmissionReview"
	var review admissionv1.AdmissionReview
	if json.Unmarshal(b, &review) == nil && review.Response != nil && review.Response.Result != nil {
		if c := int(review.Response.Result.Code); c >= 400 && c < 500 {
			code = c
		}
		msg += ": " + review.Response.Result.Message
	}
	m.reject(code, msg)
	return len(b), nil
}
