// Package webhook is corsmesh's Kubernetes plumbing: the admission server that calls the
// injector, the informer-backed view of the cluster it reads, the controllers that keep
// injected pods and policy statuses current, and their metrics and events.
package webhook

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/corsmesh/corsmesh/injector"
)

// Metrics are the webhook's Prometheus metrics.
type Metrics struct {
	Requests *prometheus.CounterVec
	Injected prometheus.Counter
	Skipped  *prometheus.CounterVec
	Errors   *prometheus.CounterVec
	Latency  *prometheus.HistogramVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "corsmesh_webhook_requests_total",
			Help: "Admission requests, by webhook (mutate-pods, validate-policies).",
		}, []string{"webhook"}),
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
		// Buckets from 50µs: the handler's own work is sub-millisecond, and a histogram
		// starting at 100ms (as Istio's does) could not show it.
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "corsmesh_webhook_handler_duration_seconds",
			Help:    "Time spent handling one admission request, by webhook.",
			Buckets: []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1},
		}, []string{"webhook"}),
	}
	for _, c := range []prometheus.Collector{m.Requests, m.Injected, m.Skipped, m.Errors, m.Latency} {
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
)

var errorReasons = []string{errMalformed, errDecode, errClusterRead, errMutate}
