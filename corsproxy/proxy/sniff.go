package proxy

import (
	"bytes"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// interceptedConn is a redirected client connection. It carries its upstream to the
// request handler (nil when unknown) and looks at the first bytes the client sends: a
// connection that does not open with an HTTP/1.x request (TLS, HTTP/2 cleartext, a
// database's binary protocol, on a port the injector could not tell from HTTP) is handed
// to a plain TCP tunnel to its original destination instead of failing to parse. Not on
// a port with a CORS policy: there the proxy is the only CORS authority, and what it
// cannot read gets a 400 that shows the misconfiguration.
type interceptedConn struct {
	net.Conn
	upstream *upstream
	proxy    *Proxy
	sniffed  bool        // the first bytes were looked at; read by the server's goroutine only
	tunneled atomic.Bool // the connection belongs to a tunnel now: the server lets go of it

	// While a request's body is read, each read gets bodyIdle to bring something, and the
	// first failure is kept in bodyErr, so the request's failure is put on the client.
	// The server's next deadline (the idle wait, a hijack's none) ends this. Both belong
	// to the server's goroutine.
	bodyIdle time.Duration
	bodyErr  error
	body     clientBody // the request's body stream, wrapped to keep its failure in bodyErr

	released atomic.Bool // its place under the connection cap was given back

	// continued is a request whose header went to the app ahead of its body, between
	// the server's ExpectHandler and the handler (see expectContinue).
	continued *continued
}

// release closes the connection and gives its place under the cap back, once.
func (c *interceptedConn) release() error {
	if c.released.Swap(true) {
		return nil
	}
	c.proxy.conns.release()
	if c.continued != nil {
		c.continued.close() // the server read no body for it: the client left or failed
	}
	return c.Conn.Close()
}

// startBody puts reads under the body's idle timeout until the server sets its next deadline.
func (c *interceptedConn) startBody(idle time.Duration) {
	c.bodyIdle, c.bodyErr = idle, nil
}

// watchBody wraps req's body stream, if it has one, so that its failure (a broken chunk,
// a client gone mid-body) is kept in bodyErr: the server reads the stream, not the
// connection, and reports it to nobody.
func (c *interceptedConn) watchBody(req *fasthttp.Request) {
	stream := req.BodyStream()
	if stream == nil {
		return
	}
	c.body = clientBody{r: stream, conn: c}
	req.SetBodyStream(&c.body, req.Header.ContentLength())
}

type clientBody struct {
	r    io.Reader
	conn *interceptedConn
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && b.conn.bodyErr == nil {
		b.conn.bodyErr = err
	}
	return n, err
}

func (c *interceptedConn) Read(p []byte) (int, error) {
	if c.bodyIdle > 0 {
		if err := c.Conn.SetReadDeadline(time.Now().Add(c.bodyIdle)); err != nil {
			return 0, err
		}
	}
	n, err := c.Conn.Read(p)
	if err != nil && c.bodyIdle > 0 && c.bodyErr == nil {
		c.bodyErr = err
	}
	if c.sniffed || n == 0 {
		return n, err
	}
	c.sniffed = true
	if startsLikeHTTP1(p[:n]) || c.upstream == nil || c.proxy.routes.Load().HasPolicy(c.upstream.port) {
		return n, err
	}
	c.tunneled.Store(true)
	first := append([]byte(nil), p[:n]...)
	go c.proxy.tunnelTCP(c, first)
	return 0, io.EOF // the server sees a client that left, and closes what it thinks is its
}

func (c *interceptedConn) Write(p []byte) (int, error) { return yieldAfterWrite(c.Conn, p) }

// Close, and the deadlines, do nothing once a tunnel owns the connection.
func (c *interceptedConn) Close() error {
	if c.tunneled.Load() {
		return nil
	}
	return c.release()
}

func (c *interceptedConn) SetDeadline(t time.Time) error {
	c.bodyIdle = 0
	if c.tunneled.Load() {
		return nil
	}
	return c.Conn.SetDeadline(t)
}

func (c *interceptedConn) SetReadDeadline(t time.Time) error {
	c.bodyIdle = 0
	if c.tunneled.Load() {
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *interceptedConn) SetWriteDeadline(t time.Time) error {
	if c.tunneled.Load() {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}

// startsLikeHTTP1 reports whether a connection's first bytes can open an HTTP/1.x
// request: a method (upper-case letters; every registered method is) and then a space,
// but not HTTP/2's "PRI * HTTP/2.0" preface. Bytes that end before the space still count,
// so that a request split across reads is not taken for something else.
func startsLikeHTTP1(b []byte) bool {
	if bytes.HasPrefix(b, http2Preface) || (len(b) < len(http2Preface) && bytes.HasPrefix(http2Preface, b) && len(b) >= 4) {
		return false
	}
	for i, ch := range b {
		switch {
		case ch >= 'A' && ch <= 'Z':
			continue
		case ch == ' ' && i > 0:
			return true
		}
		return false
	}
	return len(b) > 0
}

var http2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// tunnelTCP connects the client to its original destination and copies bytes both ways,
// starting with what the client already sent. No HTTP and no CORS: the proxy stays out.
func (p *Proxy) tunnelTCP(c *interceptedConn, first []byte) {
	client, up := c.Conn, c.upstream
	defer c.release()
	_ = client.SetDeadline(time.Time{}) // the server's header timeout must not cut it short
	p.metrics.tcpTunnels.Add(1)
	app, err := net.DialTimeout("tcp", up.addr.String(), p.opts.DialTimeout)
	if err != nil {
		p.metrics.upstreamErrors[upstreamConnect].Add(1)
		p.opts.Logger.Debug("tcp tunnel: dial failed", "upstream", up.addr.String(), "err", err)
		return
	}
	defer app.Close()
	if _, err := app.Write(first); err != nil {
		return
	}
	splice(client, app)
}
