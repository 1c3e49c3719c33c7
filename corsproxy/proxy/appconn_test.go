package proxy

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestAppClosingIdleConnections: an app that closes keep-alive connections after a short
// idle time (Node.js, uvicorn, gunicorn do, after seconds) must not turn the next request
// into a 502, whatever its method; a connection the app keeps stays in use.
func TestAppClosingIdleConnections(t *testing.T) {
	cases := []struct {
		name        string
		appIdle     time.Duration // the app's keep-alive idle timeout; 0: none
		pause       time.Duration // between requests
		wantAppConn func(n int32) bool
	}{
		{"the app closed the idle connection", 2 * staleCheckAfter, 4 * staleCheckAfter, func(n int32) bool { return n == 4 }},
		{"the app keeps it: reused after a pause", 0, 2 * staleCheckAfter, func(n int32) bool { return n == 1 }},
		{"no pause: reused", 0, 0, func(n int32) bool { return n == 1 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var conns atomic.Int32
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			app := &http.Server{
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					body, _ := io.ReadAll(r.Body)
					io.WriteString(w, r.Method+" "+string(body))
				}),
				IdleTimeout: tc.appIdle,
				ConnState: func(_ net.Conn, s http.ConnState) {
					if s == http.StateNew {
						conns.Add(1)
					}
				},
			}
			go app.Serve(ln)
			t.Cleanup(func() { app.Close() })
			addr, _, metrics := startProxy(t, seedConfig(t), Options{Upstream: ln.Addr().(*net.TCPAddr).AddrPort(), PolicyPort: 8080})

			client := &http.Client{Timeout: 10 * time.Second}
			for i, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
				if i > 0 {
					time.Sleep(tc.pause)
				}
				req, err := http.NewRequest(method, "http://"+addr+"/", strings.NewReader("body"))
				if err != nil {
					t.Fatal(err)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				got := readBody(t, resp)
				if resp.StatusCode != http.StatusOK || got != method+" body" {
					t.Errorf("%s after %v: %d %q, want 200 %q", method, tc.pause, resp.StatusCode, got, method+" body")
				}
			}
			if n := metrics.upstreamErrors[upstreamOther].Load(); n != 0 {
				t.Errorf("%d upstream errors, want none", n)
			}
			if n := conns.Load(); !tc.wantAppConn(n) {
				t.Errorf("%d connections to the app for 4 requests", n)
			}
		})
	}
}
