package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// maxReviewBytes bounds a request body; the API server sends at most a few megabytes.
const maxReviewBytes = 7 << 20

// reviewHandler serves AdmissionReview requests for an admission.Handler. Unlike
// controller-runtime's admission.Webhook, which answers malformed input with HTTP 200
// and an error inside the review, it answers it with an HTTP 4xx and a plain message:
// the API server never sends such requests, so whoever did should see a client error.
type reviewHandler struct {
	name    string
	handler admission.Handler
	metrics *Metrics
	log     logr.Logger
}

func (h *reviewHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	h.metrics.Requests.WithLabelValues(h.name).Inc()
	defer func() { h.metrics.Latency.WithLabelValues(h.name).Observe(time.Since(start).Seconds()) }()

	review, status, err := readReview(w, r)
	if err != nil {
		h.metrics.Errors.WithLabelValues(errMalformed).Inc()
		h.log.Info("rejected malformed admission request", "status", status, "err", err.Error(), "remote", r.RemoteAddr)
		http.Error(w, err.Error(), status)
		return
	}
	req := admission.Request{AdmissionRequest: *review.Request}
	resp := h.handle(r.Context(), req)
	if err := resp.Complete(req); err != nil {
		h.metrics.Errors.WithLabelValues(errMutate).Inc()
		resp = admission.Errored(http.StatusInternalServerError, fmt.Errorf("encoding the patch: %w", err))
		resp.UID = req.UID
	}
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: &resp.AdmissionResponse}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(&out); err != nil {
		h.log.Error(err, "writing admission response")
	}
}

// handle calls the handler, turning a panic into an error response: one bad object must
// not take the webhook down for every other pod in the cluster.
func (h *reviewHandler) handle(ctx context.Context, req admission.Request) (resp admission.Response) {
	defer func() {
		if p := recover(); p != nil {
			h.metrics.Errors.WithLabelValues(errMutate).Inc()
			h.log.Error(fmt.Errorf("panic: %v", p), "admission handler panicked", "uid", req.UID, "kind", req.Kind.Kind)
			resp = admission.Errored(http.StatusInternalServerError, fmt.Errorf("internal error handling %s %s/%s", req.Kind.Kind, req.Namespace, req.Name))
		}
	}()
	return h.handler.Handle(ctx, req)
}

// readReview reads and checks an AdmissionReview; on failure it returns the HTTP status.
func readReview(w http.ResponseWriter, r *http.Request) (*admissionv1.AdmissionReview, int, error) {
	if r.Method != http.MethodPost {
		return nil, http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed: send an AdmissionReview with POST", r.Method)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("content type %q not supported: want application/json", r.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxReviewBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes", maxReviewBytes)
		}
		return nil, http.StatusBadRequest, fmt.Errorf("reading request body: %w", err)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("malformed AdmissionReview: %w", err)
	}
	switch {
	case review.APIVersion != admissionv1.SchemeGroupVersion.String() || review.Kind != "AdmissionReview":
		return nil, http.StatusBadRequest, fmt.Errorf("want apiVersion %s, kind AdmissionReview; got %q, %q", admissionv1.SchemeGroupVersion, review.APIVersion, review.Kind)
	case review.Request == nil:
		return nil, http.StatusBadRequest, errors.New("AdmissionReview has no request")
	case review.Request.UID == "":
		return nil, http.StatusBadRequest, errors.New("AdmissionReview request has no uid")
	}
	return &review, 0, nil
}
