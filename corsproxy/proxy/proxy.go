// Package proxy is corsproxy's forwarding path: an HTTP/1.1 server on the port iptables
// redirects to, which forwards each request to the app port it was headed for and applies
// the port's CORS policy on the way.
//
// It is built on fasthttp rather than net/http's ReverseProxy: measured on this project's
// machines, ReverseProxy costs about five times nginx's CPU per proxied request, and the
// forwarding path, not the CORS decision, decides what a sidecar costs.
package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/corsmesh/corsmesh/corsproxy/cors"
	"github.com/corsmesh/corsmesh/corsproxy/origdst"
)

// Options configure a Proxy. The zero value of each field picks the default noted.
type Options struct {
	// Upstream, when set, receives every request instead of the connection's original
	// destination: for tests and for running without iptables.
	Upstream netip.AddrPort
	// PolicyPort chooses whose policy applies with Upstream (default: Upstream's port).
	PolicyPort int32

	// MaxConnsPerUpstream bounds the pooled connections to one app port (default 1024).
	MaxConnsPerUpstream int
	// UpstreamTimeout bounds the wait for the app's response to begin, and then each wait
	// for more of it, not the whole of a streamed answer (default 0: none, since a
	// transparent sidecar must not cut long polls short; the app's own timeouts apply).
	UpstreamTimeout time.Duration
	// DialTimeout bounds connecting to the app (default 2s).
	DialTimeout time.Duration
	// ReadHeaderTimeout bounds reading a request's header, from its first byte on a kept-alive
	// connection or from the accept on a new one (default 10s). Slower clients get 408.
	ReadHeaderTimeout time.Duration
	// BodyIdleTimeout bounds each wait for more of a request's body, not the whole body: an
	// upload may take as long as it keeps moving (default 60s). A stalled one gets 408.
	BodyIdleTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long (default 90s).
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header block; larger ones get 431 (default 32 KiB).
	MaxHeaderBytes int
	// MaxClientConns bounds the client connections held at once, tunnels included; those
	// over it get 503 and are closed (default 1024). Each costs memory, idle or not: this
	// is what keeps the proxy within its limit whatever clients do.
	MaxClientConns int

	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.MaxConnsPerUpstream == 0 {
		o.MaxConnsPerUpstream = 1024
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 2 * time.Second
	}
	if o.ReadHeaderTimeout == 0 {
		o.ReadHeaderTimeout = 10 * time.Second
	}
	if o.BodyIdleTimeout == 0 {
		o.BodyIdleTimeout = 60 * time.Second
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 90 * time.Second
	}
	if o.MaxHeaderBytes == 0 {
		o.MaxHeaderBytes = 32 << 10
	}
	if o.MaxClientConns == 0 {
		o.MaxClientConns = 1024
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Upstream.IsValid() && o.PolicyPort == 0 {
		o.PolicyPort = int32(o.Upstream.Port())
	}
}

// Proxy forwards HTTP/1.1 requests to the app and applies CORS policies.
type Proxy struct {
	opts    Options
	routes  atomic.Pointer[Routes]
	metrics *Metrics
	server  *fasthttp.Server

	mu        sync.Mutex
	upstreams map[netip.AddrPort]*upstream
	answers   answerPool
	conns     connCap
}

// upstream is one app address and its connection pool.
type upstream struct {
	addr   netip.AddrPort
	host   []byte // addr, for a request without a Host
	port   int32  // whose policy applies
	client *fasthttp.HostClient
}

// New returns a Proxy serving routes. Swap them later with SetRoutes.
func New(routes *Routes, metrics *Metrics, opts Options) *Proxy {
	opts.setDefaults()
	p := &Proxy{opts: opts, metrics: metrics, upstreams: make(map[netip.AddrPort]*upstream)}
	p.routes.Store(routes)
	p.server = &fasthttp.Server{
		Handler:        p.serve,
		ReadBufferSize: opts.MaxHeaderBytes,
		// The server's ReadTimeout covers the header only: once it is in, HeaderReceived
		// gives the first of the body's reads the body's idle timeout, and the connection
		// renews it before each later one (interceptedConn.Read).
		ReadTimeout: opts.ReadHeaderTimeout,
		HeaderReceived: func(*fasthttp.RequestHeader) fasthttp.RequestConfig {
			return fasthttp.RequestConfig{ReadTimeout: opts.BodyIdleTimeout}
		},
		IdleTimeout:       opts.IdleTimeout,
		ErrorHandler:      p.writeClientError,
		StreamRequestBody: true, // bodies flow through; their size is the app's business
		// "Expect: 100-continue" is the app's to answer, not the server's (expectContinue).
		ExpectHandler: p.expectContinue,
		// Read ahead of the handler at most one byte of a body (fasthttp reads up to this
		// much, and 8 KiB at most, before it): all the rest is read by the forwarding under
		// the body's idle timeout, none of it under the header's.
		MaxRequestBodySize:           1,
		NoDefaultServerHeader:        true, // transparent: the app's headers, not ours
		NoDefaultDate:                true,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
		SecureErrorLogMessage:        true, // a request's bytes (its Authorization, its cookies) stay out of the logs
		Logger:                       fasthttpLogger{opts.Logger},
	}
	return p
}

// SetRoutes swaps the policies atomically: requests already decided keep the old ones.
func (p *Proxy) SetRoutes(r *Routes) { p.routes.Store(r) }

// Serve accepts connections on ln until Shutdown.
func (p *Proxy) Serve(ln net.Listener) error {
	return p.server.Serve(&interceptListener{Listener: ln, proxy: p})
}

// Shutdown stops accepting, waits for in-flight requests to finish or ctx to end.
func (p *Proxy) Shutdown(ctx context.Context) error {
	return p.server.ShutdownWithContext(ctx)
}

// interceptListener resolves each connection's destination once, when it is accepted.
type interceptListener struct {
	net.Listener
	proxy *Proxy
}

func (l *interceptListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if !l.proxy.conns.acquire(l.proxy.opts.MaxClientConns) {
			l.proxy.metrics.clientErrors[clientTooManyConns].Add(1)
			refuseConn(conn)
			continue
		}
		return &interceptedConn{Conn: conn, upstream: l.proxy.upstreamFor(conn), proxy: l.proxy}, nil
	}
}

// yieldAfterWrite writes, then lets the other goroutines run before this one reads the
// answer. Go reads a socket before waiting for it, so reading right after sending a
// request (to the app) or a response (to a keep-alive client) mostly returns EAGAIN and
// parks: a wasted system call per exchange, 1.2–1.6 per proxied request under load
// (hack/bench/results/proxy-2026-11-26-syscalls.md). After the other connections' turn
// the answer has usually arrived. With nothing else to run it costs a few nanoseconds.
func yieldAfterWrite(c net.Conn, p []byte) (int, error) {
	n, err := c.Write(p)
	runtime.Gosched()
	return n, err
}

func (p *Proxy) upstreamFor(conn net.Conn) *upstream {
	addr, port := p.opts.Upstream, p.opts.PolicyPort
	if !addr.IsValid() {
		dst, err := origdst.Lookup(conn)
		if err != nil {
			p.opts.Logger.Warn("no original destination; requests on this connection get 502",
				"remote", conn.RemoteAddr().String(), "err", err)
			return nil
		}
		addr, port = dst, int32(dst.Port())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if u := p.upstreams[addr]; u != nil {
		return u
	}
	u := &upstream{addr: addr, host: []byte(addr.String()), port: port, client: p.newClient(addr)}
	p.upstreams[addr] = u
	return u
}

func (p *Proxy) newClient(addr netip.AddrPort) *fasthttp.HostClient {
	dialer := &net.Dialer{Timeout: p.opts.DialTimeout}
	return &fasthttp.HostClient{
		Addr: addr.String(),
		Dial: func(a string) (net.Conn, error) {
			dial := func() (net.Conn, error) { return dialer.Dial("tcp", a) }
			c, err := dial()
			if err != nil {
				return nil, err
			}
			return &appConn{conn: c, dial: dial, idle: p.opts.UpstreamTimeout}, nil
		},
		MaxConns:                 p.opts.MaxConnsPerUpstream,
		MaxIdleConnDuration:      p.opts.IdleTimeout,
		ReadTimeout:              p.opts.UpstreamTimeout,
		ReadBufferSize:           p.opts.MaxHeaderBytes,
		StreamResponseBody:       true,
		DisablePathNormalizing:   true, // the app sees the path exactly as the client sent it
		NoDefaultUserAgentHeader: true,
		// Wait for a free connection rather than failing when all are busy.
		MaxConnWaitTimeout: p.opts.DialTimeout,
	}
}

// serve handles one request: tunnel upgrades, answer preflights, forward the rest.
func (p *Proxy) serve(ctx *fasthttp.RequestCtx) {
	conn, _ := ctx.Conn().(*interceptedConn)
	if conn == nil || conn.upstream == nil {
		p.metrics.upstreamErrors[noDestination].Add(1)
		ctx.Error("corsproxy: no original destination for this connection", fasthttp.StatusBadGateway)
		return
	}
	up := conn.upstream
	conn.startBody(p.opts.BodyIdleTimeout)
	if ctx.Request.Header.ContentLength() != -2 && ctx.Request.Header.ContentLength() != 0 {
		conn.watchBody(&ctx.Request)
	}
	if ex := conn.continued; ex != nil {
		conn.continued = nil
		p.finishContinued(ctx, ex)
		return
	}
	// The server closes the client's connection after this response when the client asked
	// to (or spoke HTTP/1.0 without keep-alive); forward clears the request's mark.
	closing := ctx.Request.Header.ConnectionClose()
	if reason := prepareRequest(&ctx.Request, up); reason != "" {
		p.refuse(ctx, clientMalformed, fasthttp.StatusBadRequest, reason)
		return
	}
	policy := p.routes.Load().Policy(up.port, ctx.Request.Header.Host())
	if policy == nil {
		p.metrics.passthrough.Add(1)
		p.passThrough(ctx, up)
		return
	}

	origins := ctx.Request.Header.PeekAll(fasthttp.HeaderOrigin)
	var origin []byte
	if len(origins) > 0 {
		origin = origins[0]
	}
	decision, action := p.decideCORS(ctx, up, policy, origin, len(origins), closing)
	switch action {
	case corsAnswered:
		return
	case corsPassThrough:
		p.passThrough(ctx, up)
		return
	}

	if decision == cors.Preflight {
		writePreflight(&ctx.Response, policy, origin, closing)
		return
	}
	sw := p.forwardOrUpgrade(ctx, up)
	applyActual(&ctx.Response, policy, decision, origin, closing)
	if sw != nil {
		p.switchProtocols(ctx, sw)
		return
	}
	p.endByClosing(ctx)
}

// passThrough forwards a request and its answer untouched by CORS.
func (p *Proxy) passThrough(ctx *fasthttp.RequestCtx, up *upstream) {
	if sw := p.forwardOrUpgrade(ctx, up); sw != nil {
		p.switchProtocols(ctx, sw)
		return
	}
	p.endByClosing(ctx)
}

// forwardOrUpgrade sends the request to the app and leaves its answer, or the proxy's
// error in its place, in ctx.Response. A request to switch protocols that the app accepts
// returns the switched connection.
func (p *Proxy) forwardOrUpgrade(ctx *fasthttp.RequestCtx, up *upstream) *switched {
	if ctx.Request.Header.ConnectionUpgrade() {
		sw, err := p.upgrade(ctx, up)
		if err != nil {
			p.writeUpstreamError(ctx, err)
		}
		return sw
	}
	if err := p.forward(ctx, up); err != nil {
		p.writeUpstreamError(ctx, err)
	}
	return nil
}

// forward sends the request to the app and leaves its response in ctx.Response.
func (p *Proxy) forward(ctx *fasthttp.RequestCtx, up *upstream) error {
	if ctx.Request.Header.ConnectionClose() || !ctx.Request.Header.IsHTTP11() {
		// "Connection: close" is about the client's connection, which the server closes
		// after this response anyway; passed on, it would cost a pooled connection to the
		// app. The answer is read apart for the same reason (see appAnswer), and so that
		// an HTTP/1.0 client's can outlive ctx (see endByClosing).
		ctx.Request.Header.ResetConnectionClose()
		if !ctx.Request.Header.IsHTTP11() {
			// HTTP/1.0 closes unless asked not to; this hop is ours to keep.
			ctx.Request.Header.Set(fasthttp.HeaderConnection, "keep-alive")
		}
		answer := p.answers.get()
		if err := up.client.Do(&ctx.Request, &answer.resp); err != nil {
			answer.release()
			return err
		}
		answer.moveTo(&ctx.Response)
	} else if err := up.client.Do(&ctx.Request, &ctx.Response); err != nil {
		// A kept-alive client's answer is read in place, sparing the header copy.
		return err
	}
	// Connection handling is per hop: the app closing its connection to us says nothing
	// about the client's. A body that runs until the app closes goes to an HTTP/1.1 client
	// chunked, and to an HTTP/1.0 client until its own connection closes (endByClosing).
	if ctx.Response.Header.ConnectionClose() && (ctx.Response.Header.ContentLength() >= 0 || ctx.Request.Header.IsHTTP11()) {
		ctx.Response.Header.ResetConnectionClose()
	}
	// So is the version: an HTTP/1.0 app's answer goes out as HTTP/1.1, the proxy's own
	// (RFC 9110 section 6.2), framed for HTTP/1.1.
	ctx.Response.Header.SetProtocol(nil)
	// And the app's "Keep-Alive: timeout=5" (Node.js sends it) is about its connection to
	// us, not the client's to us, which the proxy keeps by its own idle timeout.
	if len(ctx.Response.Header.Peek(headerKeepAlive)) > 0 {
		ctx.Response.Header.Del(headerKeepAlive)
	}
	return nil
}

const headerKeepAlive = "Keep-Alive"

// writeUpstreamError answers for an app that could not: 502 when it cannot be reached,
// 504 when it did not answer in time. CORS headers are added by the caller as for any
// response, so the browser shows the real error rather than a CORS failure.
func (p *Proxy) writeUpstreamError(ctx *fasthttp.RequestCtx, err error) {
	if conn, _ := ctx.Conn().(*interceptedConn); conn != nil && conn.bodyErr != nil {
		// The request failed because the client's body did: the client's error, not the app's.
		p.writeClientError(ctx, conn.bodyErr)
		return
	}
	reason, status := upstreamOther, fasthttp.StatusBadGateway
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrNoFreeConns):
		reason, status = upstreamTimeout, fasthttp.StatusGatewayTimeout
	case errors.Is(err, fasthttp.ErrDialTimeout), isDialError(err):
		reason = upstreamConnect
	}
	p.metrics.upstreamErrors[reason].Add(1)
	p.opts.Logger.Debug("upstream error", "upstream", ctx.Conn().(*interceptedConn).upstream.addr.String(), "err", err)
	ctx.Response.Reset()
	ctx.Response.SetStatusCode(status)
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.Response.SetBodyString(fmt.Sprintf("corsproxy: upstream %s: %s\n", upstreamErrorLabels[reason], fasthttp.StatusMessage(status)))
}

func isDialError(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// corsResponseHeaders are removed from the app's responses wherever a policy applies, so
// the proxy is the only CORS authority: never two allow-origin lines, never a leaked "*".
var corsResponseHeaders = [...]string{
	"Access-Control-Allow-Origin",
	"Access-Control-Allow-Credentials",
	"Access-Control-Expose-Headers",
	"Access-Control-Allow-Methods",
	"Access-Control-Allow-Headers",
	"Access-Control-Max-Age",
	"Access-Control-Allow-Private-Network",
}

// stripAppCORS removes the app's Access-Control-* headers. Each Del scans every header,
// so one scan first finds out whether the app sent any (apps behind the proxy rarely do).
func stripAppCORS(h *fasthttp.ResponseHeader) {
	found := false
	for name := range h.All() {
		if len(name) > len(accessControlPrefix) && bytes.EqualFold(name[:len(accessControlPrefix)], []byte(accessControlPrefix)) {
			found = true
			break
		}
	}
	if !found {
		return
	}
	for _, name := range corsResponseHeaders {
		h.Del(name)
	}
}

const accessControlPrefix = "Access-Control-"

// applyActual sets the CORS headers of a proxied (or proxy-made error) response.
func applyActual(resp *fasthttp.Response, policy *cors.Policy, decision cors.Decision, origin []byte, closing bool) {
	h := &resp.Header
	stripAppCORS(h)
	h.Add(cors.HeaderVary, cors.VaryActual)
	if decision != cors.Allowed {
		return
	}
	h.SetBytesV(cors.HeaderAllowOrigin, origin)
	for _, kv := range policy.ActualHeaders() {
		h.Set(kv.Name, kv.Value)
	}
	keepAlive(resp, closing)
}

// writePreflight answers a preflight from an allowed origin without asking the app.
func writePreflight(resp *fasthttp.Response, policy *cors.Policy, origin []byte, closing bool) {
	resp.Reset()
	resp.SetStatusCode(fasthttp.StatusOK)
	h := &resp.Header
	h.SetBytesV(cors.HeaderAllowOrigin, origin)
	for _, kv := range policy.PreflightHeaders() {
		h.Set(kv.Name, kv.Value)
	}
	h.Add(cors.HeaderVary, cors.VaryPreflight)
	h.SetContentLength(0)
	keepAlive(resp, closing)
}

// keepAlive states a kept-alive connection explicitly, as osm-edge's pipy and nginx do,
// unless the connection closes after this response: then the server says "close", and
// a "keep-alive" beside it would contradict it. A 101's "Connection: Upgrade" stays.
func keepAlive(resp *fasthttp.Response, closing bool) {
	if !closing && !resp.ConnectionClose() && resp.StatusCode() != fasthttp.StatusSwitchingProtocols {
		resp.Header.Set(fasthttp.HeaderConnection, "keep-alive")
	}
}

// b2s views request bytes as a string for the decision, which neither keeps nor modifies
// them; copying would allocate on every request.
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// fasthttpLogger routes fasthttp's own messages into slog.
type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug(fmt.Sprintf(format, args...), "component", "fasthttp")
}
