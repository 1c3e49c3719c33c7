package proxy

import (
	"net"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Admin serves the sidecar's own endpoints on a port iptables never redirects: the
// kubelet probes it directly and Prometheus scrapes it.
type Admin struct {
	metrics  *Metrics
	draining atomic.Bool
	server   *fasthttp.Server
}

// NewAdmin returns the admin server for metrics.
func NewAdmin(metrics *Metrics) *Admin {
	a := &Admin{metrics: metrics}
	metrics.refusals.started(time.Now())
	a.server = &fasthttp.Server{
		Handler: a.serve, Name: "corsproxy-admin", NoDefaultServerHeader: true,
		// Probes and scrapes are small and quick; anything else is not ours to wait for.
		ReadTimeout:           adminTimeout,
		WriteTimeout:          adminTimeout,
		IdleTimeout:           adminTimeout,
		ReadBufferSize:        4 << 10,
		MaxRequestBodySize:    4 << 10,
		Concurrency:           adminMaxConns,
		SecureErrorLogMessage: true,
	}
	return a
}

const (
	adminTimeout       = 5 * time.Second
	adminMaxConns      = 256
	adminMaxConnsPerIP = 16
)

// Drain makes /readyz fail, so endpoints stop routing new traffic here during shutdown.
func (a *Admin) Drain() { a.draining.Store(true) }

// Serve serves on ln until Close.
func (a *Admin) Serve(ln net.Listener) error { return a.server.Serve(ln) }

// Close stops the admin server.
func (a *Admin) Close() error { return a.server.Shutdown() }

func (a *Admin) serve(ctx *fasthttp.RequestCtx) {
	switch string(ctx.Path()) {
	case "/healthz":
		ctx.SetBodyString("ok\n")
	case "/readyz":
		switch {
		case a.draining.Load():
			ctx.Error("draining\n", fasthttp.StatusServiceUnavailable)
		case !a.metrics.configured.Load():
			ctx.Error("no valid config loaded\n", fasthttp.StatusServiceUnavailable)
		default:
			ctx.SetBodyString("ok\n")
		}
	case "/metrics":
		ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
		_, _ = a.metrics.WriteTo(ctx)
	case "/debug/cors":
		ctx.SetContentType("application/json")
		_ = a.metrics.refusals.writeDebug(ctx)
	default:
		ctx.Error("not found\n", fasthttp.StatusNotFound)
	}
}
