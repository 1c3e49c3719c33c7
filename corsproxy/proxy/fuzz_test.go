package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// FuzzForward sends arbitrary client bytes through the forwarding path to a real app:
// whatever they are, every request reaching the app parses cleanly with a strict parser
// (Go's), every answer the client gets parses too and carries at most one
// Access-Control-Allow-Origin, never "*", with Vary: Origin (the port has a policy), and
// no client's bytes become a 5xx on the app's account.
func FuzzForward(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: pipy-ok\r\nOrigin: http://www.bbb.com\r\n\r\n",
		"OPTIONS / HTTP/1.1\r\nHost: pipy-ok\r\nOrigin: http://www.bbb.com\r\nAccess-Control-Request-Method: PATCH\r\n\r\n",
		"POST /u HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /u HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n0\r\nT: v\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
		"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nOrigin: http://evil.example\r\n\r\n",
		"GET http://a.svc/p HTTP/1.1\r\nHost: b.svc\r\nConnection: X-A\r\nX-A: 1\r\n\r\n",
		"GET / HTTP/1.0\r\nHost: x\r\nX-Fold: a\r\n b\r\n\r\n",
		"GET / HTTP/1.2\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nz",
		"PUT / HTTP/1.1\r\nHost: x\r\nOrigin: http://www.bbb.com\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n",
		"\x16\x03\x01\x00\x05hello",
	} {
		f.Add([]byte(seed))
	}
	var (
		mu       sync.Mutex
		appError error
	)
	upstream := startRawApp(f, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, net.ErrClosed) {
					mu.Lock()
					appError = fmt.Errorf("the app could not parse what the proxy sent: %w", err)
					mu.Unlock()
				}
				return
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				return // a body the proxy cut short, on a client's broken framing
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\nAccess-Control-Allow-Credentials: true\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	addr, _, _ := startProxy(f, seedConfig(f), Options{
		Upstream: upstream, PolicyPort: 8080,
		ReadHeaderTimeout: time.Second, BodyIdleTimeout: time.Second,
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		mu.Lock()
		appError = nil
		mu.Unlock()
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write(data); err != nil {
			return // the proxy closed first: it answered what it had read
		}
		conn.(*net.TCPConn).CloseWrite()
		out, err := io.ReadAll(conn)
		if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset by peer") {
			t.Fatalf("reading the answers: %v", err)
		}
		br := bufio.NewReader(strings.NewReader(string(out)))
		for br.Buffered() > 0 || len(out) > 0 {
			if _, err := br.Peek(1); err != nil {
				break
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("an answer does not parse: %v\n%q", err, out)
			}
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				t.Fatalf("an answer's body does not parse: %v\n%q", err, out)
			}
			if resp.StatusCode < 200 {
				continue // an interim answer (100 Continue): CORS is the final answer's
			}
			if allow := resp.Header.Values("Access-Control-Allow-Origin"); len(allow) > 1 || (len(allow) == 1 && allow[0] == "*") {
				t.Fatalf("allow-origin %q\n%q", allow, out)
			}
			if !strings.Contains(strings.ToLower(strings.Join(resp.Header.Values("Vary"), ",")), "origin") {
				t.Fatalf("no Vary: Origin on %s\n%q", resp.Status, out)
			}
			if resp.StatusCode >= 500 && resp.StatusCode != http.StatusHTTPVersionNotSupported {
				t.Fatalf("%s for a client's bytes\n%q", resp.Status, out)
			}
		}
		time.Sleep(time.Millisecond) // the app's side of this input, before the next one's
		mu.Lock()
		defer mu.Unlock()
		if appError != nil {
			t.Fatal(appError)
		}
	})
}
