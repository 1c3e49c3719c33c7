package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// upgrade forwards a request asking to switch protocols (WebSocket and the like) on a
// connection of its own to the app, its body streamed as any request's. Only if the app
// answers 101 does the client's connection become a byte tunnel to the app: CORS has nothing
// to say about the protocol switched to. Any other answer is an ordinary response, left in
// ctx.Response for the caller to apply CORS to, and the client's connection stays HTTP, so
// later requests on it still come under the policy. A 101 is returned as switched, for
// switchProtocols once the caller has set the CORS headers.
func (p *Proxy) upgrade(ctx *fasthttp.RequestCtx, up *upstream) (*switched, error) {
	app, err := net.DialTimeout("tcp", up.addr.String(), p.opts.DialTimeout)
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(app, upgradeBufferSize)
	if err = ctx.Request.Write(bw); err == nil {
		err = bw.Flush()
	}
	if err != nil {
		_ = app.Close()
		return nil, fmt.Errorf("sending the upgrade request: %w", err)
	}
	if p.opts.UpstreamTimeout > 0 {
		_ = app.SetReadDeadline(time.Now().Add(p.opts.UpstreamTimeout))
	}
	answer := &soloAnswer{app: app}
	answer.resp.StreamBody = true
	answer.resp.SkipBody = ctx.IsHead()
	br := bufio.NewReaderSize(app, p.opts.MaxHeaderBytes)
	if err := answer.resp.Read(br); err != nil {
		_ = app.Close()
		return nil, fmt.Errorf("reading the answer to the upgrade request: %w", err)
	}
	_ = app.SetReadDeadline(time.Time{})

	if answer.resp.StatusCode() != fasthttp.StatusSwitchingProtocols {
		answer.moveTo(&ctx.Response)
		return nil, nil
	}
	// The 101 is left in ctx.Response for the caller's CORS headers, then goes out by
	// switchProtocols.
	ctx.Response.Reset()
	answer.resp.Header.CopyTo(&ctx.Response.Header)
	ctx.Response.Header.SetNoDefaultContentType(true)
	return &switched{app: app, br: br}, nil
}

// switched is an app connection that has switched protocols, with what the app sent
// after its 101 still buffered.
type switched struct {
	app net.Conn
	br  *bufio.Reader
}

// switchProtocols sends the client the 101 in ctx.Response and turns its connection into
// a byte tunnel to the app.
func (p *Proxy) switchProtocols(ctx *fasthttp.RequestCtx, sw *switched) {
	p.metrics.upgrades.Add(1)
	head := append([]byte(nil), ctx.Response.Header.Header()...)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(client net.Conn) {
		defer sw.app.Close()
		if n := sw.br.Buffered(); n > 0 {
			pending, _ := sw.br.Peek(n)
			head = append(head, pending...)
		}
		if _, err := client.Write(head); err != nil {
			return
		}
		splice(client, sw.app)
	})
}

// upgradeBufferSize is the write buffer for an upgrade request's head and body: the body
// streams through it rather than being held whole.
const upgradeBufferSize = 4 << 10

// soloAnswer is the app's answer on a connection of its own (an upgrade request it
// declined, a request expecting 100-continue), which closes when the body is done.
type soloAnswer struct {
	resp fasthttp.Response
	app  net.Conn
}

// readBody reads the body of the answer whose header is in a.resp, as a stream.
func (a *soloAnswer) readBody(br *bufio.Reader, head bool) error {
	status := a.resp.StatusCode()
	if head || status == fasthttp.StatusNoContent || status == fasthttp.StatusNotModified {
		return nil
	}
	a.resp.StreamBody = true
	if err := a.resp.ReadBody(br, 0); err != nil {
		return fmt.Errorf("reading the app's answer: %w", err)
	}
	return nil
}

func (a *soloAnswer) Read(b []byte) (int, error) { return a.resp.BodyStream().Read(b) }

func (a *soloAnswer) CloseWithError(error) error {
	_ = a.resp.CloseBodyStream()
	return a.app.Close()
}

func (a *soloAnswer) moveTo(resp *fasthttp.Response) {
	a.resp.Header.CopyTo(&resp.Header)
	resp.Header.SetNoDefaultContentType(true)
	resp.Header.Del(fasthttp.HeaderConnection) // the app's, about its connection to us
	resp.Header.Del(headerKeepAlive)
	resp.Header.SetProtocol(nil) // the proxy's HTTP/1.1, whatever the app speaks
	if a.resp.BodyStream() == nil {
		resp.SetBody(a.resp.Body())
		_ = a.app.Close()
		return
	}
	resp.SetBodyStream(a, a.resp.Header.ContentLength())
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
