package proxy

import (
	"net"
	"strconv"
	"sync/atomic"
	"time"
)

// connCap counts the client connections held, tunnels and hijacked ones included (the
// server's own count lets go of those).
type connCap struct{ n atomic.Int64 }

func (c *connCap) acquire(limit int) bool {
	if c.n.Add(1) > int64(limit) {
		c.n.Add(-1)
		return false
	}
	return true
}

func (c *connCap) release() { c.n.Add(-1) }

// held is the number of client connections held now.
func (c *connCap) held() int64 { return c.n.Load() }

// tooManyConns is the answer to a connection over the cap: sent without reading the
// request (there is no room to), so it says so and closes.
var tooManyConns = []byte("HTTP/1.1 503 Service Unavailable\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Length: " + strconv.Itoa(len(tooManyConnsBody)) + "\r\n" +
	"Retry-After: 1\r\n" +
	"Vary: Origin\r\n" +
	"Connection: close\r\n\r\n" + tooManyConnsBody)

const tooManyConnsBody = "corsproxy: too many client connections\n"

// refuseConn answers and closes a connection over the cap. It runs on the accepting
// goroutine, so the write may not wait: a client not reading gets the close alone.
func refuseConn(c net.Conn) {
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
	_, _ = c.Write(tooManyConns)
	_ = c.Close()
}
