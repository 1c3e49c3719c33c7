package proxy

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

const seedOrigin = "http://www.bbb.com"

// What the tests' upstream saw of the last request.
type seen struct {
	mu     sync.Mutex
	method string
	uri    string
	header http.Header
	body   []byte
}

func (s *seen) handler(respond func(w http.ResponseWriter)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.method, s.uri, s.header, s.body = r.Method, r.RequestURI, r.Header.Clone(), body
		s.mu.Unlock()
		respond(w)
	})
}

func (s *seen) get() (string, string, http.Header, []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.method, s.uri, s.header, s.body
}

func TestCORSHeadersOnProxiedResponses(t *testing.T) {
	var s seen
	upstream := startUpstream(t, s.handler(func(w http.ResponseWriter) {
		// An app with CORS of its own: ours must replace it, never add a second line.
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Methods", "PUT")
		w.Header().Set("Vary", "Accept-Encoding")
		io.WriteString(w, "app")
	}))
	addr, _, metrics := startProxy(t, seedConfig(t), Options{Upstream: upstream, PolicyPort: 8080})

	tests := []struct {
		name        string
		request     string
		wantOrigin  []string // access-control-allow-origin lines
		wantCreds   string
		wantMethods []string
		wantVary    []string
		wantBody    string
		wantReached bool
	}{{
		name:        "allowed origin: ours replaces the app's, Vary appended",
		request:     "GET / HTTP/1.1\nHost: pipy-ok\nOrigin: http://www.aaa.com\n\n",
		wantOrigin:  []string{"http://www.aaa.com"},
		wantCreds:   "true",
		wantVary:    []string{"Accept-Encoding", "Origin"},
		wantBody:    "app",
		wantReached: true,
	}, {
		name:        "rejected origin: no CORS at all, the app's * does not leak",
		request:     "GET / HTTP/1.1\nHost: pipy-ok\nOrigin: http://evil.example\n\n",
		wantVary:    []string{"Accept-Encoding", "Origin"},
		wantBody:    "app",
		wantReached: true,
	}, {
		name:        "no Origin: the app answers, without its CORS headers",
		request:     "GET / HTTP/1.1\nHost: pipy-ok\n\n",
		wantVary:    []string{"Accept-Encoding", "Origin"},
		wantBody:    "app",
		wantReached: true,
	}, {
		name:        "two Origin headers: not a CORS request",
		request:     "GET / HTTP/1.1\nHost: pipy-ok\nOrigin: http://www.aaa.com\nOrigin: http://www.bbb.com\n\n",
		wantVary:    []string{"Accept-Encoding", "Origin"},
		wantBody:    "app",
		wantReached: true,
	}, {
		name:        "OPTIONS from a rejected origin goes to the app",
		request:     "OPTIONS / HTTP/1.1\nHost: pipy-ok\nOrigin: http://www.test.cn.evil.com\n\n",
		wantVary:    []string{"Accept-Encoding", "Origin"},
		wantBody:    "app",
		wantReached: true,
	}, {
		name:        "preflight answered by the proxy",
		request:     "OPTIONS /x HTTP/1.1\nHost: pipy-ok\nOrigin: https://www.test.cn\nAccess-Control-Request-Method: PATCH\n\n",
		wantOrigin:  []string{"https://www.test.cn"},
		wantCreds:   "true",
		wantMethods: []string{"POST,GET,PATCH,DELETE"},
		wantVary:    []string{"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"},
		wantBody:    "",
		wantReached: false,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.mu.Lock()
			s.method = ""
			s.mu.Unlock()
			resp := rawExchange(t, addr, tt.request)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			assertLines(t, resp, "Access-Control-Allow-Origin", tt.wantOrigin)
			assertLines(t, resp, "Access-Control-Allow-Methods", tt.wantMethods)
			if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != tt.wantCreds {
				t.Errorf("credentials = %q, want %q", got, tt.wantCreds)
			}
			assertLines(t, resp, "Vary", tt.wantVary)
			if body := readBody(t, resp); body != tt.wantBody {
				t.Errorf("body %q, want %q", body, tt.wantBody)
			}
			if method, _, _, _ := s.get(); (method != "") != tt.wantReached {
				t.Errorf("app reached = %v, want %v", method != "", tt.wantReached)
			}
		})
	}
	if got := metrics.decisions[1].Load(); got != 1 { // invalid_origin: the two-Origin request
		t.Errorf("invalid_origin count = %d, want 1", got)
	}
}

func assertLines(t *testing.T, resp *http.Response, name string, want []string) {
	t.Helper()
	got := resp.Header.Values(name)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("%s lines = %q, want %q", name, got, want)
	}
}

func TestPassthroughIsTransparent(t *testing.T) {
	var s seen
	upstream := startUpstream(t, s.handler(func(w http.ResponseWriter) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Server", "app/1.0")
		w.WriteHeader(http.StatusTeapot)
	}))
	// Policy for 8080 only; the upstream's own port has none, so it is proxied untouched.
	addr, _, metrics := startProxy(t, seedConfig(t), Options{Upstream: upstream})

	resp := rawExchange(t, addr, "PUT /a/../b//c%2F?q=1 HTTP/1.1\nHost: app.local\nOrigin: http://www.bbb.com\nX-Forwarded-For: 192.0.2.1\nContent-Length: 4\n\nbody")
	if resp.StatusCode != http.StatusTeapot {
		t.Errorf("status %d, want the app's 418", resp.StatusCode)
	}
	assertLines(t, resp, "Access-Control-Allow-Origin", []string{"*"})
	assertLines(t, resp, "Vary", nil)
	assertLines(t, resp, "Server", []string{"app/1.0"})
	method, uri, header, body := s.get()
	if method != "PUT" || uri != "/a/../b//c%2F?q=1" || string(body) != "body" {
		t.Errorf("app saw %s %s %q, want the request unchanged", method, uri, body)
	}
	if got := header.Values("X-Forwarded-For"); len(got) != 1 || got[0] != "192.0.2.1" {
		t.Errorf("X-Forwarded-For = %q: the proxy must not add forwarding headers", got)
	}
	if header.Get("Origin") != seedOrigin {
		t.Errorf("Origin not passed on: %q", header.Get("Origin"))
	}
	if metrics.passthrough.Load() != 1 {
		t.Errorf("passthrough count = %d, want 1", metrics.passthrough.Load())
	}
}

func TestUpstreamDownGets502WithCORS(t *testing.T) {
	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	addr, _, metrics := startProxy(t, seedConfig(t), Options{Upstream: dead, PolicyPort: 8080})

	allowed := rawExchange(t, addr, "GET / HTTP/1.1\nHost: pipy-ok\nOrigin: http://www.bbb.com\n\n")
	if allowed.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", allowed.StatusCode)
	}
	assertLines(t, allowed, "Access-Control-Allow-Origin", []string{seedOrigin})
	assertLines(t, allowed, "Access-Control-Expose-Headers", []string{"Content-Encoding,Kuma-Revision"})

	rejected := rawExchange(t, addr, "GET / HTTP/1.1\nHost: pipy-ok\nOrigin: http://evil.example\n\n")
	if rejected.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", rejected.StatusCode)
	}
	assertLines(t, rejected, "Access-Control-Allow-Origin", nil)
	if got := metrics.upstreamErrors[upstreamConnect].Load(); got != 2 {
		t.Errorf("connect errors = %d, want 2", got)
	}
}

func TestHostRoutesPickThePolicy(t *testing.T) {
	upstream := startUpstream(t, pipyOK())
	config := `{"version":1,"ports":[{"port":8080,
		"cors":{"allowOrigins":[{"exact":"http://default.example"}]},
		"hosts":[
			{"names":["pipy-ok","pipy-ok.pipy","pipy-ok.pipy.svc","pipy-ok.pipy.svc.cluster.local"],"cors":{"allowOrigins":[{"prefix":"http://www.bbb.com"}]}},
			{"names":["pipy-ok-v1.pipy"]}
		]}]}`
	addr, _, _ := startProxy(t, []byte(config), Options{Upstream: upstream, PolicyPort: 8080})
	tests := []struct {
		host, origin, want string
	}{
		{"pipy-ok.pipy:8080", seedOrigin, seedOrigin},
		{"PIPY-OK.pipy.svc.cluster.local.:8080", seedOrigin, seedOrigin},
		{"pipy-ok.pipy:8080", "http://default.example", ""},
		{"pipy-ok-v1.pipy:8080", seedOrigin, ""}, // a Service without a policy: untouched
		{"10.0.0.7:8080", "http://default.example", "http://default.example"},
		{"10.0.0.7:8080", seedOrigin, ""},
	}
	for _, tt := range tests {
		t.Run(tt.host+" "+tt.origin, func(t *testing.T) {
			resp := rawExchange(t, addr, fmt.Sprintf("GET / HTTP/1.1\nHost: %s\nOrigin: %s\n\n", tt.host, tt.origin))
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tt.want {
				t.Errorf("allow-origin = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMalformedRequestsGet4xx(t *testing.T) {
	var s seen
	upstream := startUpstream(t, s.handler(func(http.ResponseWriter) {}))
	addr, _, _ := startProxy(t, seedConfig(t), Options{Upstream: upstream, PolicyPort: 8080, MaxHeaderBytes: 4096})
	tests := []struct {
		name    string
		request string
		want    int
	}{
		{"Content-Length and chunked together", "POST / HTTP/1.1\nHost: x\nContent-Length: 5\nTransfer-Encoding: chunked\n\n0\n\n", 400},
		{"chunked then Content-Length", "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\ncontent-length: 5\n\n0\n\n", 400},
		{"two Content-Lengths", "POST / HTTP/1.1\nHost: x\nContent-Length: 3\nContent-Length: 4\n\nabcd", 400},
		{"unknown transfer coding", "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: gzip, chunked\n\n0\n\n", 400},
		{"header block over the limit", "GET / HTTP/1.1\nHost: x\nX-Big: " + strings.Repeat("a", 8000) + "\n\n", 431},
		{"garbage request line", "HELLO\n\n", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.mu.Lock()
			s.method = ""
			s.mu.Unlock()
			resp := rawExchange(t, addr, tt.request)
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if method, _, _, _ := s.get(); method != "" {
				t.Errorf("the app saw the request (%s); it must not", method)
			}
		})
	}
}

func TestStreamingBodies(t *testing.T) {
	releases := make(chan chan struct{}, 1) // each streamed answer waits for its test's release
	upstream := startUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/upload" {
			n, _ := io.Copy(io.Discard, r.Body)
			fmt.Fprintf(w, "%d", n)
			return
		}
		// A server-sent-events style answer: the first event must reach the client
		// before the app has finished.
		release := <-releases
		io.WriteString(w, "event: first\n\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "event: last\n\n")
	}))
	addr, _, _ := startProxy(t, seedConfig(t), Options{Upstream: upstream, PolicyPort: 8080})

	// Three paths through the proxy: a kept-alive client's answer is read in place, a
	// closing client's apart, an HTTP/1.0 client's is written unframed (endByClosing).
	for _, tc := range []struct{ client, request string }{
		{"kept alive", "GET /events HTTP/1.1\r\nHost: pipy-ok\r\nOrigin: http://www.bbb.com\r\n\r\n"},
		{"closing", "GET /events HTTP/1.1\r\nHost: pipy-ok\r\nOrigin: http://www.bbb.com\r\nConnection: close\r\n\r\n"},
		{"HTTP/1.0", "GET /events HTTP/1.0\r\nHost: pipy-ok\r\nOrigin: http://www.bbb.com\r\n\r\n"},
	} {
		request := tc.request
		t.Run("response streams to a "+tc.client+" client", func(t *testing.T) {
			release := make(chan struct{})
			releases <- release
			defer close(release)
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(conn, request)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != seedOrigin {
				t.Errorf("allow-origin = %q on a streamed response", got)
			}
			first := make([]byte, len("event: first\n\n"))
			if _, err := io.ReadFull(resp.Body, first); err != nil {
				t.Fatalf("first event did not arrive while the app was still writing: %v", err)
			}
		})
	}
	t.Run("request body streams", func(t *testing.T) {
		const size = 32 << 20
		req, _ := http.NewRequest("POST", "http://"+addr+"/upload", io.LimitReader(zeros{}, size))
		req.ContentLength = -1 // chunked
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if body := readBody(t, resp); body != fmt.Sprint(size) {
			t.Errorf("app received %s bytes, want %d", body, size)
		}
	})
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestWebSocketUpgrade(t *testing.T) {
	upstream := startUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want websocket", http.StatusBadRequest)
			return
		}
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", wsAccept(r.Header.Get("Sec-WebSocket-Key")))
		rw.Flush()
		// Echo frames back, unmasked, as a server does.
		for {
			frame, err := readWSFrame(rw.Reader)
			if err != nil {
				return
			}
			rw.Write(append([]byte{0x81, byte(len(frame))}, frame...))
			rw.Flush()
		}
	}))
	addr, _, metrics := startProxy(t, seedConfig(t), Options{Upstream: upstream, PolicyPort: 8080})

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: pipy-ok\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nOrigin: http://www.bbb.com\r\n\r\n", key)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != wsAccept(key) {
		t.Fatalf("handshake: %s accept=%q", resp.Status, resp.Header.Get("Sec-WebSocket-Accept"))
	}
	for _, msg := range []string{"hello", "through the proxy"} {
		mask := [4]byte{1, 2, 3, 4}
		frame := []byte{0x81, 0x80 | byte(len(msg))}
		frame = append(frame, mask[:]...)
		for i := range len(msg) {
			frame = append(frame, msg[i]^mask[i%4])
		}
		conn.Write(frame)
		head := make([]byte, 2)
		if _, err := io.ReadFull(br, head); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, head[1])
		if _, err := io.ReadFull(br, got); err != nil {
			t.Fatal(err)
		}
		if string(got) != msg {
			t.Errorf("echo = %q, want %q", got, msg)
		}
	}
	if metrics.upgrades.Load() != 1 {
		t.Errorf("upgrades = %d, want 1", metrics.upgrades.Load())
	}
}

func wsAccept(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// readWSFrame reads one short masked client frame and returns its payload.
func readWSFrame(r *bufio.Reader) ([]byte, error) {
	head := make([]byte, 6)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, err
	}
	payload := make([]byte, head[1]&0x7f)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, err
	}
	for i := range payload {
		payload[i] ^= head[2+i%4]
	}
	return payload, nil
}

func TestNoOriginalDestinationGets502(t *testing.T) {
	// Without --upstream and without an iptables redirect there is nowhere to forward.
	addr, _, metrics := startProxy(t, seedConfig(t), Options{})
	resp := rawExchange(t, addr, "GET / HTTP/1.1\nHost: x\n\n")
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d, want 502", resp.StatusCode)
	}
	if metrics.upstreamErrors[noDestination].Load() != 1 {
		t.Error("no_destination not counted")
	}
}
