package proxy

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// appView is what the app saw of the requests that reached it.
type appView struct {
	mu       sync.Mutex
	requests []*http.Request
	bodies   []string
}

// handler records a request whose body arrived whole; one cut off mid-body (the proxy
// closing the connection on a client's broken framing) is not a request the app can act on.
func (v *appView) handler(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	v.mu.Lock()
	v.requests = append(v.requests, r)
	v.bodies = append(v.bodies, string(body))
	v.mu.Unlock()
	w.Header().Set("Access-Control-Allow-Origin", "*")
	io.WriteString(w, "app")
}

func (v *appView) reset() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.requests, v.bodies = nil, nil
}

func (v *appView) seen() ([]*http.Request, []string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.requests, v.bodies
}

// What reaches the app is what the policy was chosen for, less the client's hop.
func TestRequestsReachTheAppAsThePolicySawThem(t *testing.T) {
	var app appView
	upstream := startUpstream(t, http.HandlerFunc(app.handler))
	config := `{"version":1,"ports":[{"port":8080,
		"cors":{"allowOrigins":[{"exact":"http://default.example"}]},
		"hosts":[{"names":["a.svc"],"cors":{"allowOrigins":[{"exact":"http://a.example"}]}}]}]}`
	addr, _, _ := startProxy(t, []byte(config), Options{Upstream: upstream, PolicyPort: 8080})
	tests := []struct {
		name, request string
		wantAllow     string // allow-origin the client gets
		check         func(t *testing.T, r *http.Request, body string)
	}{
		{
			name:      "absolute-form: the policy and the app both go by the URI's host",
			request:   "GET http://a.svc/p HTTP/1.1\nHost: b.svc\nOrigin: http://a.example\n\n",
			wantAllow: "http://a.example",
			check: func(t *testing.T, r *http.Request, _ string) {
				if r.Host != "a.svc" {
					t.Errorf("the app got Host %q, want a.svc", r.Host)
				}
			},
		},
		{
			name:      "absolute-form: a Host naming the allowed host does not lend its policy",
			request:   "GET http://b.svc/p HTTP/1.1\nHost: a.svc\nOrigin: http://a.example\n\n",
			wantAllow: "",
			check: func(t *testing.T, r *http.Request, _ string) {
				if r.Host != "b.svc" {
					t.Errorf("the app got Host %q, want b.svc", r.Host)
				}
			},
		},
		{
			name:      "a body without Content-Type gets none",
			request:   "POST / HTTP/1.1\nHost: a.svc\nOrigin: http://a.example\nContent-Length: 3\n\nabc",
			wantAllow: "http://a.example",
			check: func(t *testing.T, r *http.Request, body string) {
				if ct, ok := r.Header["Content-Type"]; ok || body != "abc" {
					t.Errorf("the app got Content-Type %q and body %q, want none and abc", ct, body)
				}
			},
		},
		{
			name:      "a chunked body without Content-Type gets none",
			request:   "POST / HTTP/1.1\nHost: a.svc\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\n",
			wantAllow: "",
			check: func(t *testing.T, r *http.Request, body string) {
				if ct, ok := r.Header["Content-Type"]; ok || body != "abc" {
					t.Errorf("the app got Content-Type %q and body %q, want none and abc", ct, body)
				}
			},
		},
		{
			name:      "headers named in Connection stay on the client's hop",
			request:   "GET / HTTP/1.1\nHost: a.svc\nConnection: X-Secret, keep-alive\nX-Secret: 1\nX-Kept: 2\n\n",
			wantAllow: "",
			check: func(t *testing.T, r *http.Request, _ string) {
				if got := r.Header.Get("X-Secret"); got != "" {
					t.Errorf("the app got X-Secret %q", got)
				}
				if got := r.Header.Get("X-Kept"); got != "2" {
					t.Errorf("the app got X-Kept %q, want 2", got)
				}
			},
		},
		{
			name:    "Upgrade without Connection: upgrade does not reach the app",
			request: "GET /ws HTTP/1.1\nHost: a.svc\nUpgrade: websocket\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\n\n",
			check: func(t *testing.T, r *http.Request, _ string) {
				if got := r.Header.Get("Upgrade"); got != "" {
					t.Errorf("the app got Upgrade %q over a pooled connection", got)
				}
			},
		},
		{
			name:    "a later HTTP/1.x goes on as HTTP/1.1",
			request: "GET / HTTP/1.2\nHost: a.svc\n\n",
			check: func(t *testing.T, r *http.Request, _ string) {
				if r.Proto != "HTTP/1.1" {
					t.Errorf("the app got %s, want HTTP/1.1", r.Proto)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app.reset()
			resp := rawExchange(t, addr, tt.request)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tt.wantAllow {
				t.Errorf("allow-origin %q, want %q", got, tt.wantAllow)
			}
			assertOneCORSAuthority(t, resp)
			requests, bodies := app.seen()
			if len(requests) != 1 {
				t.Fatalf("the app saw %d requests, want 1", len(requests))
			}
			tt.check(t, requests[0], bodies[0])
		})
	}
}

// Request smuggling: whatever framing a client tries, the app sees at most the requests a
// strict front proxy would, bodies intact, and a framing the proxy cannot be sure of is a
// 400 counted as the client's, never a 502 on the app's account.
func TestSmugglingAttemptsAreRefused(t *testing.T) {
	var app appView
	upstream := startUpstream(t, http.HandlerFunc(app.handler))
	addr, _, metrics := startProxy(t, seedConfig(t), Options{Upstream: upstream, PolicyPort: 8080})
	const smuggled = "GET /smuggled HTTP/1.1\nHost: x\n\n"
	tests := []struct {
		name, request string
		wantStatus    []int    // the statuses read back, in order
		wantBodies    []string // the bodies the app got, in order
	}{
		{"CL.TE", "POST / HTTP/1.1\nHost: x\nContent-Length: 6\nTransfer-Encoding: chunked\n\n0\n\n" + smuggled, []int{400}, nil},
		{"TE.CL", "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\nContent-Length: 3\n\n8\nSMUGGLED\n0\n\n", []int{400}, nil},
		{"TE with a space before the colon", "POST / HTTP/1.1\nHost: x\nTransfer-Encoding : chunked\nContent-Length: 5\n\n0\n\n" + smuggled, []int{400}, nil},
		{"TE identity beside CL", "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: identity\nContent-Length: 5\n\nabcde", []int{400}, nil},
		{"TE xchunked", "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: xchunked\nContent-Length: 5\n\nabcde", []int{400}, nil},
		{"TE chunked twice", "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\nTransfer-Encoding: chunked\n\n0\n\n", []int{400}, nil},
		{"TE chunked, gzip", "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked, gzip\n\n0\n\n", []int{400}, nil},
		{"two Content-Lengths", "POST / HTTP/1.1\nHost: x\nContent-Length: 3\nContent-Length: 30\n\nabc", []int{400}, nil},
		{"Content-Length list", "POST / HTTP/1.1\nHost: x\nContent-Length: 3, 3\n\nabc", []int{400}, nil},
		{"Content-Length with a sign", "POST / HTTP/1.1\nHost: x\nContent-Length: +3\n\nabc", []int{400}, nil},
		{"obs-fold hiding a TE", "POST / HTTP/1.1\nHost: x\nX-Fold: a\n Transfer-Encoding: chunked\nContent-Length: 3\n\nabc", []int{200}, []string{"abc"}},
		{"bare CR ending a line", "GET / HTTP/1.1\rHost: x\n\n", []int{400}, nil},
		{"bare CR inside a value", "GET / HTTP/1.1\nHost: x\nX-A: a\rTransfer-Encoding: chunked\n\n", []int{400}, nil},
		{"NUL in a value", "GET / HTTP/1.1\nHost: x\nX-A: a\x00b\n\n", []int{400}, nil},
		{"a space in a header name", "GET / HTTP/1.1\nHost: x\nX-Foo Bar: 1\n\n", []int{400}, nil},
		{"a slash in a header name", "GET / HTTP/1.1\nHost: x\nX-Foo/Bar: 1\n\n", []int{400}, nil},
		{"a bad chunk size", "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\nzz\nab\n0\n\n", []int{400}, nil},
		{"a chunk size overflowing 64 bits", "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n1ffffffffffffffff\nabc\n0\n\n", []int{400}, nil},
		{"a chunk longer than it says", "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n3\nabcxyz\n0\n\n", []int{400}, nil},
		{"HTTP/1.3 without Host", "GET / HTTP/1.3\n\n", []int{400}, nil},
		{"HTTP/1.0 without Host", "GET / HTTP/1.0\n\n", []int{200}, []string{""}},
		{"a chunk extension", "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n3;ext=1\nabc\n0\n\n", []int{200}, []string{"abc"}},
		{"pipelined after a Content-Length body", "POST / HTTP/1.1\nHost: x\nContent-Length: 3\n\nabc" + smuggled, []int{200, 200}, []string{"abc", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app.reset()
			before := metrics.clientErrors[clientMalformed].Load()
			conn, br := dialProxy(t, addr)
			sendRaw(t, conn, tt.request)
			for i, want := range tt.wantStatus {
				resp := readResponse(t, br)
				if resp.StatusCode != want {
					t.Errorf("answer %d: status %d, want %d", i, resp.StatusCode, want)
				}
				assertOneCORSAuthority(t, resp)
			}
			requests, bodies := app.seen()
			if strings.Join(bodies, "|") != strings.Join(tt.wantBodies, "|") || len(requests) != len(tt.wantBodies) {
				t.Errorf("the app saw %d requests with bodies %q, want %q", len(requests), bodies, tt.wantBodies)
			}
			wantErrors := uint64(0)
			for _, s := range tt.wantStatus {
				if s == 400 {
					wantErrors++
				}
			}
			if got := metrics.clientErrors[clientMalformed].Load() - before; got != wantErrors {
				t.Errorf("malformed client errors +%d, want +%d", got, wantErrors)
			}
			for i := range metrics.upstreamErrors {
				if n := metrics.upstreamErrors[i].Load(); n != 0 {
					t.Errorf("upstream errors %q = %d: the client's error was put on the app", upstreamErrorLabels[i], n)
				}
			}
		})
	}
}

// The header block is bounded in bytes, however it is spent: thousands of tiny fields
// within the bound go through, one byte over it is a 431 counted as the client's.
func TestHeaderLimits(t *testing.T) {
	var app appView
	upstream := startUpstream(t, http.HandlerFunc(app.handler))
	addr, _, metrics := startProxy(t, seedConfig(t), Options{Upstream: upstream, PolicyPort: 8080, MaxHeaderBytes: 16 << 10})
	many := strings.Repeat("a: b\n", 2000) // 2,000 fields, 10 KB
	resp := rawExchange(t, addr, "GET / HTTP/1.1\nHost: x\n"+many+"\n")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("2,000 fields within the bound: %s, want 200", resp.Status)
	}
	if requests, _ := app.seen(); len(requests) != 1 || len(requests[0].Header.Values("A")) != 2000 {
		t.Errorf("the app did not get the 2,000 fields")
	}
	resp = rawExchange(t, addr, "GET / HTTP/1.1\nHost: x\nX-Big: "+strings.Repeat("a", 16<<10)+"\n\n")
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a header block over the bound: %s, want 431", resp.Status)
	}
	assertOneCORSAuthority(t, resp)
	if n := metrics.clientErrors[clientHeaderTooLarge].Load(); n != 1 {
		t.Errorf("header_too_large = %d, want 1", n)
	}
}
