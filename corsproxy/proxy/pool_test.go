package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// heldUpstream is an app whose answers wait until release is closed, counting the TCP
// connections the proxy opens to it and the requests it holds at once.
type heldUpstream struct {
	release chan struct{}
	conns   atomic.Int32 // connections ever opened
	inside  atomic.Int32 // requests being answered now
	peak    atomic.Int32 // most requests answered at once
}

func startHeldUpstream(t *testing.T) (*heldUpstream, netip.AddrPort) {
	t.Helper()
	u := &heldUpstream{release: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := u.inside.Add(1)
			defer u.inside.Add(-1)
			for p := u.peak.Load(); n > p && !u.peak.CompareAndSwap(p, n); p = u.peak.Load() {
			}
			<-u.release
			w.Write([]byte("Hi, I am PIPY-OK v1!"))
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				u.conns.Add(1)
			}
		},
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return u, ln.Addr().(*net.TCPAddr).AddrPort()
}

// getOnNewConn sends one GET with Origin on a connection of its own and returns the
// status; safe to call from any goroutine.
func getOnNewConn(addr string) (int, error) {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second}
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Origin", seedOrigin)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// TestUpstreamPoolIsBounded: MaxConnsPerUpstream caps the connections to one app; requests
// beyond it wait for a free one instead of opening more, and get 504 (with the CORS headers
// a browser needs to show it) when none frees up in time.
func TestUpstreamPoolIsBounded(t *testing.T) {
	t.Run("excess requests wait and reuse the connections", func(t *testing.T) {
		const limit, requests = 2, 6
		app, appAddr := startHeldUpstream(t)
		addr, _, _ := startProxy(t, seedConfig(t), Options{
			Upstream: appAddr, PolicyPort: 8080,
			MaxConnsPerUpstream: limit, DialTimeout: 10 * time.Second,
		})

		var wg sync.WaitGroup
		statuses := make(chan int, requests)
		for range requests {
			wg.Go(func() {
				status, err := getOnNewConn(addr)
				if err != nil {
					t.Error(err)
				}
				statuses <- status
			})
		}
		// Every request is at the proxy once the app holds `limit` of them; give the rest
		// time to be turned into connections if the bound did not hold.
		waitFor(t, func() bool { return app.inside.Load() == limit })
		time.Sleep(300 * time.Millisecond)
		if got := app.conns.Load(); got != limit {
			t.Errorf("%d connections to the app while %d requests were waiting, want %d", got, requests, limit)
		}
		close(app.release)
		wg.Wait()
		close(statuses)
		for s := range statuses {
			if s != http.StatusOK {
				t.Errorf("status %d, want 200 for every request once the app answers", s)
			}
		}
		if got := app.conns.Load(); got != limit {
			t.Errorf("%d connections to the app after %d requests, want %d reused", got, requests, limit)
		}
		if got := app.peak.Load(); got != limit {
			t.Errorf("the app answered %d requests at once, want %d", got, limit)
		}
	})

	t.Run("no free connection in time gets 504 with CORS", func(t *testing.T) {
		app, appAddr := startHeldUpstream(t)
		addr, _, metrics := startProxy(t, seedConfig(t), Options{
			Upstream: appAddr, PolicyPort: 8080,
			MaxConnsPerUpstream: 1, DialTimeout: 200 * time.Millisecond,
		})
		held := make(chan int, 1)
		go func() {
			status, err := getOnNewConn(addr)
			if err != nil {
				t.Error(err)
			}
			held <- status
		}()
		waitFor(t, func() bool { return app.inside.Load() == 1 })

		resp := rawExchange(t, addr, "GET / HTTP/1.1\nHost: pipy-ok\nOrigin: http://www.bbb.com\n\n")
		if resp.StatusCode != http.StatusGatewayTimeout {
			t.Errorf("status %d, want 504 while the only connection is busy", resp.StatusCode)
		}
		assertLines(t, resp, "Access-Control-Allow-Origin", []string{seedOrigin})
		if got := metrics.upstreamErrors[upstreamTimeout].Load(); got != 1 {
			t.Errorf("timeout errors = %d, want 1", got)
		}
		close(app.release)
		if s := <-held; s != http.StatusOK {
			t.Errorf("held request: status %d, want 200", s)
		}
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestClosingClientsKeepAppConnections: a client that closes after its request (health
// checks, scripts, HTTP/1.0) gets "Connection: close" and a closed connection, while the
// proxy's connection to the app stays pooled for the next request.
func TestClosingClientsKeepAppConnections(t *testing.T) {
	app, appAddr := startHeldUpstream(t)
	close(app.release)
	addr, _, _ := startProxy(t, seedConfig(t), Options{Upstream: appAddr, PolicyPort: 8080})

	requests := []string{
		"GET / HTTP/1.1\nHost: pipy-ok\nConnection: close\nOrigin: http://www.bbb.com\n\n",
		"GET / HTTP/1.1\nHost: pipy-ok\nConnection: close\n\n",
		"GET / HTTP/1.0\nHost: pipy-ok\n\n",
		"GET / HTTP/1.1\nHost: pipy-ok\nConnection: close\nOrigin: http://www.bbb.com\n\n",
	}
	for _, raw := range requests {
		conn, br := dialProxy(t, addr)
		sendRaw(t, conn, raw)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		if body := readBody(t, resp); resp.StatusCode != http.StatusOK || body != "Hi, I am PIPY-OK v1!" {
			t.Errorf("%q: %d %q, want the app's answer", raw, resp.StatusCode, body)
		}
		if !resp.Close {
			t.Errorf("%q: response does not close the connection (Connection: %q)", raw, resp.Header.Get("Connection"))
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("%q: client connection still open after the response (read: %v)", raw, err)
		}
		conn.Close()
	}
	if got := app.conns.Load(); got != 1 {
		t.Errorf("%d connections to the app for %d requests from closing clients, want 1 reused", got, len(requests))
	}
}

// TestConnectionHeaderTellsTheTruth: a response says "keep-alive" only on a connection the
// proxy keeps, and a closing one says "close" alone, on proxied answers and preflights.
func TestConnectionHeaderTellsTheTruth(t *testing.T) {
	upstream := startUpstream(t, pipyOK())
	addr, _, _ := startProxy(t, seedConfig(t), Options{Upstream: upstream, PolicyPort: 8080})
	const preflight = "OPTIONS / HTTP/%s\nHost: pipy-ok\nOrigin: http://www.bbb.com\nAccess-Control-Request-Method: PATCH\n%s\n"
	const get = "GET / HTTP/%s\nHost: pipy-ok\nOrigin: http://www.bbb.com\n%s\n"
	cases := []struct {
		name, request string
		want          []string
	}{
		{"GET, kept alive", fmt.Sprintf(get, "1.1", ""), []string{"keep-alive"}},
		{"GET, client closes", fmt.Sprintf(get, "1.1", "Connection: close\n"), []string{"close"}},
		{"GET, HTTP/1.0", fmt.Sprintf(get, "1.0", ""), []string{"close"}},
		{"GET, HTTP/1.0 keep-alive", fmt.Sprintf(get, "1.0", "Connection: keep-alive\n"), []string{"keep-alive"}},
		{"preflight, kept alive", fmt.Sprintf(preflight, "1.1", ""), []string{"keep-alive"}},
		{"preflight, client closes", fmt.Sprintf(preflight, "1.1", "Connection: close\n"), []string{"close"}},
		{"preflight, HTTP/1.0", fmt.Sprintf(preflight, "1.0", ""), []string{"close"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Read the header block off the wire: net/http's reader drops "Connection: close".
			conn, br := dialProxy(t, addr)
			sendRaw(t, conn, tc.request)
			var got []string
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("reading the header: %v", err)
				}
				line = strings.TrimRight(line, "\r\n")
				if line == "" {
					break
				}
				if name, value, ok := strings.Cut(line, ":"); ok && strings.EqualFold(name, "Connection") {
					got = append(got, strings.TrimSpace(value))
				}
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("Connection lines %q, want %q", got, tc.want)
			}
		})
	}
}
