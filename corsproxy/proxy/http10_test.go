package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestHTTP10ClientsGetBodiesTheyCanRead: HTTP/1.0 has no chunked coding, so a body the app
// streams without a length reaches an HTTP/1.0 client unframed and ended by closing, with
// the CORS headers; a body with a length keeps it. Either way the app's connection is
// reused afterwards.
func TestHTTP10ClientsGetBodiesTheyCanRead(t *testing.T) {
	app, appAddr := startHeldUpstream(t)
	close(app.release)
	streaming := startUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "part one, ")
		w.(http.Flusher).Flush()
		io.WriteString(w, "part two")
		w.Header().Set("X-Checksum", "abc")
	}))

	cases := []struct {
		name        string
		upstream    string
		request     string
		wantBody    string
		wantLength  string
		wantAppConn bool // the held app counts its connections
	}{
		{"streamed body, no length", streaming.String(), "GET / HTTP/1.0\nHost: pipy-ok\nOrigin: http://www.bbb.com\n\n", "part one, part two", "", false},
		{"streamed body, client asks for keep-alive", streaming.String(), "GET / HTTP/1.0\nHost: pipy-ok\nConnection: keep-alive\nOrigin: http://www.bbb.com\n\n", "part one, part two", "", false},
		{"body with a length", appAddr.String(), "GET / HTTP/1.0\nHost: pipy-ok\nOrigin: http://www.bbb.com\n\n", "Hi, I am PIPY-OK v1!", "20", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, _, _ := startProxy(t, seedConfig(t), Options{Upstream: mustParseAddrPort(t, tc.upstream), PolicyPort: 8080})
			for range 2 { // the second exchange shows the app's connection was kept
				raw := exchangeUntilClosed(t, addr, tc.request)
				head, body, ok := strings.Cut(raw, "\r\n\r\n")
				if !ok {
					t.Fatalf("no header end in %q", raw)
				}
				if !strings.HasPrefix(head, "HTTP/1.1 200 OK\r\n") {
					t.Errorf("status line %q, want HTTP/1.1 200 OK", strings.SplitN(head, "\r\n", 2)[0])
				}
				lower := strings.ToLower(head)
				if strings.Contains(lower, "transfer-encoding") || strings.Contains(lower, "\r\ntrailer:") {
					t.Errorf("header has framing an HTTP/1.0 client cannot read:\n%s", head)
				}
				if !strings.Contains(lower, "\r\naccess-control-allow-origin: http://www.bbb.com") {
					t.Errorf("no CORS header in:\n%s", head)
				}
				if got := headerValue(head, "Content-Length"); got != tc.wantLength {
					t.Errorf("Content-Length %q, want %q", got, tc.wantLength)
				}
				if n := strings.Count(lower, "\r\ndate: "); n != 1 {
					t.Errorf("%d Date lines, want the app's one:\n%s", n, head)
				}
				if body != tc.wantBody {
					t.Errorf("body %q, want %q", body, tc.wantBody)
				}
			}
			if tc.wantAppConn {
				if got := app.conns.Load(); got != 1 {
					t.Errorf("%d connections to the app for two HTTP/1.0 requests, want 1", got)
				}
			}
		})
	}
}

// exchangeUntilClosed sends one request and reads until the proxy closes the connection.
func exchangeUntilClosed(t *testing.T, addr, request string) string {
	t.Helper()
	conn, br := dialProxy(t, addr)
	sendRaw(t, conn, request)
	b, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("reading until the proxy closes: %v (got %q)", err, b)
	}
	return string(b)
}

func headerValue(head, name string) string {
	for _, line := range strings.Split(head, "\r\n")[1:] {
		if n, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(n, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func mustParseAddrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

func TestUnframedHead(t *testing.T) {
	now := time.Date(2026, 11, 26, 18, 0, 0, 0, time.UTC)
	cases := []struct {
		name, app, want string // app: the response header as the app sent it
	}{
		{
			name: "framing and hop-by-hop headers go, the rest stays",
			app:  "HTTP/1.1 200 OK\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\nKeep-Alive: timeout=5\r\nX-App: 1\r\nSet-Cookie: a=1\r\nConnection: close\r\n\r\n",
			want: "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\nX-App: 1\r\nConnection: close\r\n\r\n",
		},
		{
			name: "no Date from the app: ours",
			app:  "HTTP/1.1 503 Busy\r\nContent-Type: text/plain\r\n\r\n",
			want: "HTTP/1.1 503 Busy\r\nContent-Type: text/plain\r\nDate: Thu, 26 Nov 2026 18:00:00 GMT\r\nConnection: close\r\n\r\n",
		},
		{
			name: "no reason phrase: the status's own",
			app:  "HTTP/1.1 404\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\n\r\n",
			want: "HTTP/1.1 404 Not Found\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\nConnection: close\r\n\r\n",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h fasthttp.ResponseHeader
			h.SetNoDefaultContentType(true)
			if err := h.Read(bufio.NewReader(strings.NewReader(tc.app))); err != nil {
				t.Fatal(err)
			}
			if got := string(unframedHead(&h, now)); got != tc.want {
				t.Errorf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// TestHTTP10AppIsAnsweredAsHTTP11: an app speaking HTTP/1.0 (Python's http.server does)
// reaches an HTTP/1.1 client as HTTP/1.1, its body framed for it, the connection kept.
func TestHTTP10AppIsAnsweredAsHTTP11(t *testing.T) {
	app := startRawApp(t, func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		// No length: the body ends when the connection does, as HTTP/1.0 allows.
		io.WriteString(c, "HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6\r\nContent-Type: text/plain\r\n\r\nfrom an HTTP/1.0 app")
	})
	addr, _, _ := startProxy(t, seedConfig(t), Options{Upstream: app, PolicyPort: 8080})
	conn, br := dialProxy(t, addr)
	for i := range 2 {
		resp := exchangeOn(t, conn, br, http.MethodGet, "/", "Origin: "+seedOrigin)
		if resp.Proto != "HTTP/1.1" || resp.StatusCode != http.StatusOK {
			t.Errorf("request %d: %s %d, want HTTP/1.1 200", i+1, resp.Proto, resp.StatusCode)
		}
		if body := readBody(t, resp); body != "from an HTTP/1.0 app" {
			t.Errorf("request %d: body %q", i+1, body)
		}
		if resp.Close {
			t.Fatalf("request %d: the proxy closes the client's connection for the app's", i+1)
		}
	}
}
