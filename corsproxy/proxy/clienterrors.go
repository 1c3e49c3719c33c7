package proxy

import (
	"errors"
	"net"

	"github.com/valyala/fasthttp"
)

// clientError is why a request was refused as the client's fault.
type clientError int

const (
	clientMalformed      clientError = iota // unparsable or ambiguous framing: 400
	clientTimeout                           // header or body too slow: 408
	clientHeaderTooLarge                    // 431
	clientTooManyConns                      // over the connection cap: 503, see connCap
)

var clientErrorLabels = [...]string{"malformed", "timeout", "header_too_large", "too_many_connections"}

// writeClientError answers a request the client got wrong (the server's ErrorHandler, and
// a request whose body failed on the way to the app). The connection closes after it: its
// position in the byte stream is unknown.
func (p *Proxy) writeClientError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.As(err, &small):
		p.refuse(ctx, clientHeaderTooLarge, fasthttp.StatusRequestHeaderFieldsTooLarge, "request header too large")
	case errors.As(err, &netErr) && netErr.Timeout():
		p.refuse(ctx, clientTimeout, fasthttp.StatusRequestTimeout, "request too slow")
	default:
		p.refuse(ctx, clientMalformed, fasthttp.StatusBadRequest, "malformed request")
	}
	p.opts.Logger.Debug("client error", "remote", ctx.RemoteAddr().String(), "err", err)
}

// refuse answers a client error with status and a short reason, and counts it.
func (p *Proxy) refuse(ctx *fasthttp.RequestCtx, reason clientError, status int, msg string) {
	p.metrics.clientErrors[reason].Add(1)
	ctx.Response.Reset()
	ctx.SetConnectionClose()
	ctx.Response.SetStatusCode(status)
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.Response.Header.Set("Vary", "Origin") // as every answer on a policy port says
	ctx.Response.SetBodyString("corsproxy: " + msg + "\n")
}
