package proxy

import (
	"net"
	"time"
)

// appConn is a pooled connection to the app. Before a request goes out on it after a
// pause, it checks that the app has not closed it meanwhile, and reconnects if it has.
//
// Apps close idle keep-alive connections after a few seconds (Node.js and uvicorn after 5,
// gunicorn after 2), far sooner than the pool lets them idle. fasthttp's pool does not
// notice (nothing reads an idle connection), writes the next request into the closed
// connection and reads EOF. It retries GET and HEAD; a POST, and every other request
// that is not idempotent, got 502 after a quiet spell.
type appConn struct {
	conn net.Conn
	dial func() (net.Conn, error)
	// answeredAt: when the answer to the last request began to arrive. A write with a
	// read before it (or none at all) starts a request: fasthttp's client writes a whole
	// request, body included, before it reads anything of the answer.
	answeredAt time.Time
	inRequest  bool
	// idle, when set, bounds each wait for more of an answer once it has begun: the
	// client's ReadTimeout bounds the wait for its start, and would otherwise cut a
	// streamed answer that runs longer.
	idle time.Duration
}

// staleCheckAfter is the pause after which a connection is checked before reuse: shorter
// than any app's idle timeout worth supporting, long enough that a busy connection is
// never checked (each check is one system call).
const staleCheckAfter = 100 * time.Millisecond

func (c *appConn) Write(p []byte) (int, error) {
	if !c.inRequest {
		c.inRequest = true
		if time.Since(c.answeredAt) >= staleCheckAfter && closedByPeer(c.conn) {
			fresh, err := c.dial()
			if err != nil {
				return 0, err
			}
			_ = c.conn.Close()
			c.conn = fresh
		}
	}
	return yieldAfterWrite(c.conn, p)
}

func (c *appConn) Read(p []byte) (int, error) {
	if c.idle > 0 && !c.inRequest {
		if err := c.conn.SetReadDeadline(time.Now().Add(c.idle)); err != nil {
			return 0, err
		}
	}
	n, err := c.conn.Read(p)
	if c.inRequest {
		c.inRequest = false
		c.answeredAt = time.Now()
	}
	return n, err
}

func (c *appConn) Close() error                       { return c.conn.Close() }
func (c *appConn) LocalAddr() net.Addr                { return c.conn.LocalAddr() }
func (c *appConn) RemoteAddr() net.Addr               { return c.conn.RemoteAddr() }
func (c *appConn) SetDeadline(t time.Time) error      { return c.conn.SetDeadline(t) }
func (c *appConn) SetReadDeadline(t time.Time) error  { return c.conn.SetReadDeadline(t) }
func (c *appConn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }
