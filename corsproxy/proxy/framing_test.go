package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestResponseFramingSurvivesTheHop: whatever framing the app's response has, the client
// gets the app's status, headers and body, and the next request on the same keep-alive
// connection is answered in step (a body announced but not sent, or sent but not
// announced, would shift every later response).
func TestResponseFramingSurvivesTheHop(t *testing.T) {
	cases := []struct {
		name, method string
		app          func(w http.ResponseWriter)
		wantStatus   int
		wantBody     string
		wantHeader   map[string]string // "" means absent
	}{
		{
			name: "HEAD: Content-Length of the body it would have", method: http.MethodHead,
			app: func(w http.ResponseWriter) {
				w.Header().Set("Content-Length", "20")
				w.Header().Set("Content-Type", "text/plain")
			},
			wantStatus: http.StatusOK, wantHeader: map[string]string{"Content-Length": "20", "Content-Type": "text/plain"},
		},
		{
			name: "204 No Content", method: http.MethodGet,
			app:        func(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) },
			wantStatus: http.StatusNoContent, wantHeader: map[string]string{"Content-Length": "", "Transfer-Encoding": ""},
		},
		{
			name: "304 Not Modified keeps its validators", method: http.MethodGet,
			app: func(w http.ResponseWriter) {
				w.Header().Set("ETag", `"v1"`)
				w.WriteHeader(http.StatusNotModified)
			},
			wantStatus: http.StatusNotModified, wantHeader: map[string]string{"ETag": `"v1"`},
		},
		{
			name: "no Content-Type stays without one", method: http.MethodGet,
			app: func(w http.ResponseWriter) {
				w.Header()["Content-Type"] = nil // stop net/http from sniffing one
				io.WriteString(w, "plain bytes")
			},
			wantStatus: http.StatusOK, wantBody: "plain bytes", wantHeader: map[string]string{"Content-Type": ""},
		},
		{
			name: "chunked body", method: http.MethodGet,
			app: func(w http.ResponseWriter) {
				io.WriteString(w, "part one, ")
				w.(http.Flusher).Flush()
				io.WriteString(w, "part two")
			},
			wantStatus: http.StatusOK, wantBody: "part one, part two",
		},
		{
			name: "the app's Keep-Alive is about its hop, not the client's", method: http.MethodGet,
			app: func(w http.ResponseWriter) {
				w.Header().Set("Keep-Alive", "timeout=5") // as Node.js sends it
				io.WriteString(w, "ok")
			},
			wantStatus: http.StatusOK, wantBody: "ok", wantHeader: map[string]string{"Keep-Alive": ""},
		},
		{
			name: "app's Set-Cookie lines all pass", method: http.MethodGet,
			app: func(w http.ResponseWriter) {
				w.Header().Add("Set-Cookie", "a=1")
				w.Header().Add("Set-Cookie", "b=2")
				io.WriteString(w, "ok")
			},
			wantStatus: http.StatusOK, wantBody: "ok", wantHeader: map[string]string{"Set-Cookie": "a=1, b=2"},
		},
	}
	// A closing client's answer takes another path through the proxy (appAnswer).
	for _, closing := range []bool{false, true} {
		for _, tc := range cases {
			name := tc.name
			if closing {
				name += ", client closes"
			}
			t.Run(name, func(t *testing.T) {
				checkFraming(t, tc.method, tc.app, closing, tc.wantStatus, tc.wantBody, tc.wantHeader)
			})
		}
	}
}

func checkFraming(t *testing.T, method string, app func(http.ResponseWriter), closing bool, wantStatus int, wantBody string, wantHeader map[string]string) {
	upstream := startUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/next" {
			io.WriteString(w, "next")
			return
		}
		app(w)
	}))
	addr, _, _ := startProxy(t, seedConfig(t), Options{Upstream: upstream, PolicyPort: 8080})
	conn, br := dialProxy(t, addr)

	headers := []string{"Origin: " + seedOrigin}
	if closing {
		headers = append(headers, "Connection: close")
	}
	resp := exchangeOn(t, conn, br, method, "/", headers...)
	if resp.StatusCode != wantStatus {
		t.Errorf("status %d, want %d", resp.StatusCode, wantStatus)
	}
	if body := readBody(t, resp); body != wantBody {
		t.Errorf("body %q, want %q", body, wantBody)
	}
	for name, want := range wantHeader {
		if got := strings.Join(resp.Header.Values(name), ", "); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	assertLines(t, resp, "Access-Control-Allow-Origin", []string{seedOrigin})

	if closing {
		if _, err := br.ReadByte(); !resp.Close || err != io.EOF {
			t.Errorf("client asked to close: response Close=%v, then read %v; want Close and EOF", resp.Close, err)
		}
		return
	}
	next := exchangeOn(t, conn, br, http.MethodGet, "/next")
	if body := readBody(t, next); next.StatusCode != http.StatusOK || body != "next" {
		t.Errorf("next request on the connection: %d %q, want 200 \"next\"", next.StatusCode, body)
	}
}

// exchangeOn sends one request on conn and reads its response from br.
func exchangeOn(t *testing.T, conn net.Conn, br *bufio.Reader, method, path string, headers ...string) *http.Response {
	t.Helper()
	req := method + " " + path + " HTTP/1.1\r\nHost: pipy-ok\r\n"
	for _, h := range headers {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the response to %s %s: %v", method, path, err)
	}
	return resp
}
