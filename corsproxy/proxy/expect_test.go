package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// expectHead is a request header expecting 100-continue before its 1 MiB body.
const expectHead = "POST /upload HTTP/1.1\nHost: pipy-ok\nOrigin: " + seedOrigin + "\nExpect: 100-continue\nContent-Length: 1048576\n\n"

// The app, not the proxy, decides whether it wants a body: its final answer to the header
// alone (417, 413, 401) reaches the client in place of a 100, with the policy's CORS
// headers, and the client is never asked for the body. The proxy used to answer 100 itself
// before the app had seen anything.
func TestExpectContinueFinalAnswerIsTheApps(t *testing.T) {
	for _, tt := range []struct {
		status int
		body   string
	}{
		{http.StatusExpectationFailed, ""},
		{http.StatusRequestEntityTooLarge, "too large\n"},
		{http.StatusUnauthorized, "who are you?\n"},
	} {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			sawExpect := make(chan string, 1)
			upstream := startRawApp(t, func(c net.Conn) {
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				sawExpect <- req.Header.Get("Expect")
				fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nAccess-Control-Allow-Origin: *\r\nContent-Length: %d\r\n\r\n%s",
					tt.status, http.StatusText(tt.status), len(tt.body), tt.body)
			})
			addr, _, _ := startProxy(t, seedConfig(t), Options{Upstream: upstream, PolicyPort: 8080})
			conn, br := dialProxy(t, addr)
			sendRaw(t, conn, expectHead)
			resp := readResponse(t, br)
			if body := readBody(t, resp); resp.StatusCode != tt.status || body != tt.body {
				t.Fatalf("first answer %s %q, want the app's %d %q", resp.Status, body, tt.status, tt.body)
			}
			if got := <-sawExpect; got != "100-continue" {
				t.Errorf("the app saw Expect %q, want 100-continue: it is the app's to answer", got)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != seedOrigin {
				t.Errorf("allow-origin %q, want %q", got, seedOrigin)
			}
			assertOneCORSAuthority(t, resp)
			if !resp.Close {
				t.Errorf("the connection stays open after a final answer to a body never sent: the client may be sending it")
			}
		})
	}
}

// When the app asks for the body, the client gets its 100 only then, sends the body, and
// gets the app's answer; the connection stays usable for the next request.
func TestExpectContinueRelaysTheAppsContinue(t *testing.T) {
	for _, tt := range []struct {
		name, framing, body string
	}{
		{"content-length", "Content-Length: 11\n", "hello world"},
		{"chunked", "Transfer-Encoding: chunked\n", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var headSeen atomic.Bool
			upstream := startUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				headSeen.Store(true)
				body, err := io.ReadAll(r.Body) // net/http sends its 100 on this first read
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				fmt.Fprintf(w, "%s %q", r.Method, body)
			}))
			addr, _, _ := startProxy(t, seedConfig(t), Options{Upstream: upstream, PolicyPort: 8080})
			conn, br := dialProxy(t, addr)
			sendRaw(t, conn, "POST /upload HTTP/1.1\nHost: pipy-ok\nOrigin: "+seedOrigin+"\nExpect: 100-continue\n"+tt.framing+"\n")
			interim := readResponse(t, br)
			if interim.StatusCode != http.StatusContinue {
				t.Fatalf("first answer %s, want 100 Continue", interim.Status)
			}
			if !headSeen.Load() {
				t.Fatal("100 Continue before the app saw the request: the proxy answered for it")
			}
			io.WriteString(conn, tt.body)
			resp := readResponse(t, br)
			if body := readBody(t, resp); resp.StatusCode != http.StatusOK || body != `POST "hello world"` {
				t.Fatalf("answer %s %q, want 200 with the body the app read", resp.Status, body)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != seedOrigin {
				t.Errorf("allow-origin %q, want %q", got, seedOrigin)
			}
			assertOneCORSAuthority(t, resp)

			sendRaw(t, conn, "GET /next HTTP/1.1\nHost: pipy-ok\nOrigin: "+seedOrigin+"\n\n")
			if resp := readResponse(t, br); readBody(t, resp) != `GET ""` {
				t.Errorf("the next request on the connection got %s", resp.Status)
			}
		})
	}
}

// An app that never sends 100 (an HTTP/1.0 server, or one that reads the body first) still
// gets the body: after a short wait the proxy tells the client to go on, as a client may
// itself (RFC 9110 section 10.1.1).
func TestExpectContinueSilentAppGetsTheBody(t *testing.T) {
	upstream := startRawApp(t, func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		body, _ := io.ReadAll(req.Body)
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	})
	addr, _, _ := startProxy(t, seedConfig(t), Options{Upstream: upstream, PolicyPort: 8080})
	conn, br := dialProxy(t, addr)
	sendRaw(t, conn, "PUT /x HTTP/1.1\nHost: pipy-ok\nOrigin: "+seedOrigin+"\nExpect: 100-continue\nContent-Length: 4\n\n")
	if interim := readResponse(t, br); interim.StatusCode != http.StatusContinue {
		t.Fatalf("first answer %s, want 100 Continue", interim.Status)
	}
	io.WriteString(conn, "data")
	if resp := readResponse(t, br); resp.StatusCode != http.StatusOK || readBody(t, resp) != "data" {
		t.Fatalf("answer %s, want 200 data", resp.Status)
	}
}

// What the proxy answers itself (a preflight, a refused one, a malformed request, an app it
// cannot reach) is answered at once, without a 100 and without the app.
func TestExpectContinueAnsweredByTheProxy(t *testing.T) {
	const policy = `{"allowOrigins":[{"exact":"https://app.example"}],"allowMethods":["PUT"],"refusedPreflight":"answer"}`
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unreachable := closed.Addr().(*net.TCPAddr).AddrPort()
	closed.Close()
	for _, tt := range []struct {
		name, request string
		noApp         bool
		wantStatus    int
	}{
		{"allowed preflight", "OPTIONS / HTTP/1.1\nHost: a\nOrigin: https://app.example\nAccess-Control-Request-Method: PUT\nExpect: 100-continue\nContent-Length: 5\n\n", false, 200},
		{"refused preflight", "OPTIONS / HTTP/1.1\nHost: a\nOrigin: https://evil.example\nAccess-Control-Request-Method: PUT\nExpect: 100-continue\nContent-Length: 5\n\n", false, 403},
		{"both framings", "POST / HTTP/1.1\nHost: a\nOrigin: https://app.example\nExpect: 100-continue\nContent-Length: 5\nTransfer-Encoding: chunked\n\n", false, 400},
		{"no app", "POST / HTTP/1.1\nHost: a\nOrigin: https://app.example\nExpect: 100-continue\nContent-Length: 5\n\n", true, 502},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var reached atomic.Int32
			upstream := startRawApp(t, func(net.Conn) { reached.Add(1) })
			if tt.noApp {
				upstream = unreachable
			}
			addr, _, _ := startProxy(t, []byte(policyConfig(policy)), Options{Upstream: upstream, PolicyPort: 8080})
			conn, br := dialProxy(t, addr)
			sendRaw(t, conn, tt.request)
			resp := readResponse(t, br)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("first answer %s, want %d", resp.Status, tt.wantStatus)
			}
			if n := reached.Load(); n != 0 {
				t.Errorf("the app was reached %d times, want never", n)
			}
			if !strings.Contains(resp.Header.Get("Vary"), "Origin") {
				t.Errorf("Vary %q does not name Origin", resp.Header.Get("Vary"))
			}
		})
	}
}
