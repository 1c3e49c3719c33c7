package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// Client connections are bounded, upgraded ones included: one over the cap gets a clear
// 503 and is closed, and a place freed is taken again.
func TestClientConnectionsAreCapped(t *testing.T) {
	const limit = 3
	upstream := startRawApp(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.Header.Get("Upgrade") != "" {
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
			io.Copy(c, br)
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	addr, p, metrics := startProxy(t, seedConfig(t), Options{Upstream: upstream, PolicyPort: 8080, MaxClientConns: limit})

	upgraded, ubr := dialProxy(t, addr)
	sendRaw(t, upgraded, "GET /echo HTTP/1.1\nHost: pipy-ok\nConnection: Upgrade\nUpgrade: echo\n\n")
	if resp := readResponse(t, ubr); resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %s", resp.Status)
	}
	idle := make([]net.Conn, 0, limit-1)
	for range limit - 1 {
		c, _ := dialProxy(t, addr)
		idle = append(idle, c)
	}
	waitFor(t, func() bool { return p.conns.held() == limit })

	over, obr := dialProxy(t, addr)
	resp := readResponse(t, obr)
	if body := readBody(t, resp); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "too many client connections") {
		t.Errorf("over the cap: %s %q, want 503 saying why", resp.Status, body)
	}
	if _, err := obr.ReadByte(); err != io.EOF {
		t.Errorf("over the cap: connection not closed (%v)", err)
	}
	over.Close()
	if n := metrics.clientErrors[clientTooManyConns].Load(); n != 1 {
		t.Errorf("too_many_connections = %d, want 1", n)
	}

	// The tunnel still works, and its end frees its place.
	io.WriteString(upgraded, "ping")
	got := make([]byte, 4)
	if _, err := io.ReadFull(ubr, got); err != nil || string(got) != "ping" {
		t.Fatalf("tunnel echo %q, %v", got, err)
	}
	upgraded.Close()
	idle[0].Close()
	waitFor(t, func() bool { return p.conns.held() == limit-2 })
	if resp := rawExchange(t, addr, "GET / HTTP/1.1\nHost: pipy-ok\n\n"); resp.StatusCode != http.StatusOK {
		t.Errorf("under the cap again: %s", resp.Status)
	}
}
