// Package admit is corsmesh's admission: the pod mutator and the policy validator, served
// through controller-runtime's admission.Webhook, and their metrics.
package admit

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/corsmesh/corsmesh/injector"
)

// Metrics are the webhook's Prometheus metrics.
// Requests and their latency are controller-runtime's webhook server's
// (controller_runtime_webhook_requests_total, controller_runtime_webhook_latency_seconds,
// by path), counted once.
type Metrics struct {
	Injected prometheus.Counter
	Skipped  *prometheus.CounterVec
	Errors   *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Injected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "corsmesh_webhook_injected_total",
			Help: "Pods given the CORS sidecar.",
		}),
		Skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "corsmesh_webhook_skipped_total",
			Help: "Pods admitted without the sidecar, by reason.",
		}, []string{"reason"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "corsmesh_webhook_errors_total",
			Help: "Admission requests that failed, by reason.",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.Injected, m.Skipped, m.Errors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Report every reason from the start, so a rate over a reason that has not happened
	// yet is zero rather than absent.
	for _, r := range injector.Reasons() {
		m.Skipped.WithLabelValues(string(r))
	}
	for _, r := range errorReasons {
		m.Errors.WithLabelValues(r)
	}
	return m, nil
}

// Error reasons, as metric labels.
const (
	errMalformed   = "malformed-request"
	errDecode      = "decode"
	errClusterRead = "cluster-read"
	errMutate      = "mutate"
	errPanic       = "panic"
	// errOverloaded: refused with 503, the request bodies' byte budget spent.
	errOverloaded = "overloaded"
)

var errorReasons = []string{errMalformed, errDecode, errClusterRead, errMutate, errPanic, errOverloaded}
