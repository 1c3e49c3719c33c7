package proxy

import (
	"io"
	"net"

	"github.com/valyala/fasthttp"
)

// tunnel hands an Upgrade request (WebSocket and the like) to the app and then copies
// bytes both ways until either side closes. CORS does not apply to upgraded protocols.
func (p *Proxy) tunnel(ctx *fasthttp.RequestCtx, up *upstream) {
	p.metrics.upgrades.Add(1)
	// The request must be serialized now: ctx is recycled before the hijack handler runs.
	head := append([]byte(nil), ctx.Request.Header.Header()...)
	body := append([]byte(nil), ctx.Request.Body()...)
	dialer := net.Dialer{Timeout: p.opts.DialTimeout}
	appConn, err := dialer.Dial("tcp", up.addr.String())
	if err != nil {
		p.writeUpstreamError(ctx, err)
		return
	}
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(client net.Conn) {
		defer appConn.Close()
		if _, err := appConn.Write(append(head, body...)); err != nil {
			return
		}
		splice(client, appConn)
	})
}

// splice copies bytes both ways until both sides are done, passing on each half-close.
func splice(client, app net.Conn) {
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(app, client)
		closeWrite(app)
		close(done)
	}()
	_, _ = io.Copy(client, app)
	closeWrite(client)
	<-done
}

// closeWrite half-closes a TCP connection so the peer sees EOF while replies still flow.
func closeWrite(c net.Conn) {
	type writeCloser interface{ CloseWrite() error }
	if wc, ok := c.(writeCloser); ok {
		_ = wc.CloseWrite()
		return
	}
	if ic, ok := c.(*interceptedConn); ok {
		closeWrite(ic.Conn)
		return
	}
	_ = c.Close()
}
