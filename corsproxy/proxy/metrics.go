package proxy

import (
	"fmt"
	"io"
	"sync/atomic"

	"github.com/corsmesh/corsmesh/corsproxy/cors"
)

// Metrics are the proxy's counters, exported in the Prometheus text format by the admin
// server. Plain atomics keep the sidecar free of a metrics library and the hot path cheap.
type Metrics struct {
	decisions      [len(decisionLabels)]atomic.Uint64
	passthrough    atomic.Uint64 // requests on ports or hosts without a policy
	upgrades       atomic.Uint64
	tcpTunnels     atomic.Uint64 // connections that did not speak HTTP/1.x, passed through
	upstreamErrors [len(upstreamErrorLabels)]atomic.Uint64
	clientErrors   [len(clientErrorLabels)]atomic.Uint64
	reloads        [2]atomic.Uint64 // success, failure
	configured     atomic.Bool
	refusals       Refusals
}

var decisionLabels = [...]cors.Decision{cors.NotCORS, cors.InvalidOrigin, cors.Rejected, cors.Allowed, cors.Preflight}

type upstreamError int

const (
	upstreamConnect upstreamError = iota
	upstreamTimeout
	upstreamOther
	noDestination
)

var upstreamErrorLabels = [...]string{"connect", "timeout", "other", "no_destination"}

func (m *Metrics) decision(d cors.Decision) { m.decisions[d].Add(1) }

// Reloaded counts one reload attempt.
func (m *Metrics) Reloaded(ok bool) {
	if ok {
		m.reloads[0].Add(1)
		m.configured.Store(true)
	} else {
		m.reloads[1].Add(1)
	}
}

// WriteTo writes the Prometheus text exposition.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	fmt.Fprintln(cw, "# HELP corsproxy_requests_total Requests under a CORS policy, by decision.")
	fmt.Fprintln(cw, "# TYPE corsproxy_requests_total counter")
	for i, d := range decisionLabels {
		fmt.Fprintf(cw, "corsproxy_requests_total{decision=%q} %d\n", d.String(), m.decisions[i].Load())
	}
	fmt.Fprintln(cw, "# HELP corsproxy_passthrough_requests_total Requests on ports or hosts without a policy, proxied untouched.")
	fmt.Fprintln(cw, "# TYPE corsproxy_passthrough_requests_total counter")
	fmt.Fprintf(cw, "corsproxy_passthrough_requests_total %d\n", m.passthrough.Load())
	fmt.Fprintln(cw, "# HELP corsproxy_preflights_total Preflight requests answered by the proxy.")
	fmt.Fprintln(cw, "# TYPE corsproxy_preflights_total counter")
	fmt.Fprintf(cw, "corsproxy_preflights_total %d\n", m.decisions[cors.Preflight].Load())
	fmt.Fprintln(cw, "# HELP corsproxy_rejected_origins_total Requests whose Origin the policy does not allow.")
	fmt.Fprintln(cw, "# TYPE corsproxy_rejected_origins_total counter")
	fmt.Fprintf(cw, "corsproxy_rejected_origins_total %d\n", m.decisions[cors.Rejected].Load())
	m.refusals.writeMetrics(cw)
	fmt.Fprintln(cw, "# HELP corsproxy_upgrades_total Upgraded connections (WebSocket) tunnelled to the app.")
	fmt.Fprintln(cw, "# TYPE corsproxy_upgrades_total counter")
	fmt.Fprintf(cw, "corsproxy_upgrades_total %d\n", m.upgrades.Load())
	fmt.Fprintln(cw, "# HELP corsproxy_tcp_passthrough_total Connections that did not open with HTTP/1.x (TLS, HTTP/2, other protocols), passed to the app as plain TCP.")
	fmt.Fprintln(cw, "# TYPE corsproxy_tcp_passthrough_total counter")
	fmt.Fprintf(cw, "corsproxy_tcp_passthrough_total %d\n", m.tcpTunnels.Load())
	fmt.Fprintln(cw, "# HELP corsproxy_upstream_errors_total Requests the app could not answer, by reason.")
	fmt.Fprintln(cw, "# TYPE corsproxy_upstream_errors_total counter")
	for i, label := range upstreamErrorLabels {
		fmt.Fprintf(cw, "corsproxy_upstream_errors_total{reason=%q} %d\n", label, m.upstreamErrors[i].Load())
	}
	fmt.Fprintln(cw, "# HELP corsproxy_client_errors_total Requests and connections refused as the client's fault, by reason.")
	fmt.Fprintln(cw, "# TYPE corsproxy_client_errors_total counter")
	for i, label := range clientErrorLabels {
		fmt.Fprintf(cw, "corsproxy_client_errors_total{reason=%q} %d\n", label, m.clientErrors[i].Load())
	}
	fmt.Fprintln(cw, "# HELP corsproxy_config_reloads_total Configuration loads, by result; a failed one keeps the last good policy.")
	fmt.Fprintln(cw, "# TYPE corsproxy_config_reloads_total counter")
	fmt.Fprintf(cw, "corsproxy_config_reloads_total{result=\"success\"} %d\n", m.reloads[0].Load())
	fmt.Fprintf(cw, "corsproxy_config_reloads_total{result=\"failure\"} %d\n", m.reloads[1].Load())
	return cw.n, cw.err
}

type countingWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}
