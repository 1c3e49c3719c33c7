package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corsmesh/corsmesh/corsproxy/cors"
)

// syncBuffer is a log destination the proxy's goroutines and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(s.b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// startLoggedProxy is startProxy with a JSON log the test reads and the admin server.
func startLoggedProxy(t *testing.T, configJSON string, upstream Options) (addr, adminAddr string, log *syncBuffer) {
	t.Helper()
	routes, err := ParseRoutes([]byte(configJSON))
	if err != nil {
		t.Fatal(err)
	}
	m := &Metrics{}
	m.Reloaded(true)
	log = &syncBuffer{}
	opts := upstream
	opts.Logger = slog.New(slog.NewJSONHandler(log, nil))
	p := New(routes, m, opts)
	admin := NewAdmin(m)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); p.Serve(ln) }()
	go admin.Serve(adminLn)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Shutdown(ctx)
		admin.Close()
		<-done
	})
	return ln.Addr().String(), adminLn.Addr().String(), log
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

func TestRefusalsAreCountedLoggedAndListed(t *testing.T) {
	upstream := startUpstream(t, pipyOK())
	addr, admin, log := startLoggedProxy(t, string(seedConfig(t)), Options{Upstream: upstream, PolicyPort: 8080})
	send := func(originLines string) {
		rawExchange(t, addr, "GET / HTTP/1.1\nHost: pipy-ok.pipy:8080\n"+originLines+"\n")
	}
	for range 3 {
		send("Origin: https://evil.example\n")
	}
	send("Origin: null\n")
	send("Origin: HTTP://WWW.AAA.COM\n")
	send("Origin: http://www.aaa.com\nOrigin: https://evil.example\n")
	send("Origin: http://" + strings.Repeat("a", cors.MaxOriginLength) + ".com\n")
	send("Origin: http://www.aaa.com\n") // allowed: none of the above

	metrics := httpGet(t, "http://"+admin+"/metrics")
	for _, want := range []string{
		`corsproxy_refused_origins_total{reason="not_allowed"} 3`,
		`corsproxy_refused_origins_total{reason="null"} 1`,
		`corsproxy_refused_origins_total{reason="invalid"} 1`,
		`corsproxy_refused_origins_total{reason="several_origins"} 1`,
		`corsproxy_refused_origins_total{reason="too_long"} 1`,
		`corsproxy_rejected_origins_total 4`, // the unlabelled counter keeps its meaning
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	lines := log.lines(t)
	if len(lines) != refusalLogBurst {
		t.Fatalf("%d log lines for 7 refusals in a burst, want %d (the burst): %v", len(lines), refusalLogBurst, lines)
	}
	first := lines[0]
	for key, want := range map[string]any{"msg": "CORS origin refused", "origin": "https://evil.example", "reason": "not_allowed", "port": float64(8080), "host": "pipy-ok.pipy:8080", "method": "GET"} {
		if first[key] != want {
			t.Errorf("log line %s = %v, want %v (line %v)", key, first[key], want, first)
		}
	}

	var debug DebugCORS
	if err := json.Unmarshal([]byte(httpGet(t, "http://"+admin+"/debug/cors")), &debug); err != nil {
		t.Fatal(err)
	}
	if len(debug.Top) != 5 {
		t.Fatalf("/debug/cors lists %d origins, want 5: %+v", len(debug.Top), debug.Top)
	}
	top := debug.Top[0]
	if top.Origin != "https://evil.example" || top.Count != 3 || top.Reason != "not_allowed" || top.Port != 8080 {
		t.Errorf("most frequent refused origin = %+v, want https://evil.example 3 times, not_allowed, port 8080", top)
	}
	if debug.Refused["too_long"] != 1 || debug.Since.IsZero() || debug.TopLimit != refusalTopN {
		t.Errorf("/debug/cors = %+v", debug)
	}
	for _, row := range debug.Top {
		if len(row.Origin) > refusalValueLimit+3 {
			t.Errorf("/debug/cors keeps %d bytes of an origin, want at most %d", len(row.Origin), refusalValueLimit+3)
		}
	}
}

func TestRefusalLogIsRateLimited(t *testing.T) {
	var out syncBuffer
	logger := slog.New(slog.NewJSONHandler(&out, nil))
	var r Refusals
	now := time.Unix(1_000_000, 0)
	for range 100 { // a flood within one instant
		r.record(logger, Refusal{Origin: []byte("https://evil.example"), Reason: cors.ReasonNotAllowed, Port: 80}, now)
	}
	if got := len(out.lines(t)); got != refusalLogBurst {
		t.Fatalf("%d lines for a flood of 100, want the burst of %d", got, refusalLogBurst)
	}
	r.record(logger, Refusal{Origin: []byte("https://evil.example"), Reason: cors.ReasonNotAllowed, Port: 80}, now.Add(refusalLogInterval))
	lines := out.lines(t)
	if len(lines) != refusalLogBurst+1 || lines[len(lines)-1]["suppressed"] != float64(100-refusalLogBurst) {
		t.Fatalf("the line after the flood = %v, want it to say %d were suppressed", lines[len(lines)-1], 100-refusalLogBurst)
	}
	if got := r.Snapshot().Refused["not_allowed"]; got != 101 {
		t.Errorf("counted %d refusals, want all 101 whatever was logged", got)
	}
}

func TestRefusalTableIsBounded(t *testing.T) {
	var r Refusals
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	now := time.Unix(1_000_000, 0)
	for i := range 20_000 {
		origin := fmt.Sprintf("https://x%d.evil.example", i)
		if i%5 == 0 {
			origin = "https://frequent.example"
		}
		r.record(logger, Refusal{Origin: []byte(origin), Reason: cors.ReasonNotAllowed, Port: 80}, now)
	}
	d := r.Snapshot()
	if len(d.Top) != refusalTopN {
		t.Fatalf("%d rows after 16,001 distinct origins, want the bound %d", len(d.Top), refusalTopN)
	}
	if top := d.Top[0]; top.Origin != "https://frequent.example" || top.Count < 4000 || top.Count-top.Overcount > 4000 {
		t.Errorf("top row = %+v, want https://frequent.example counted at least 4000 times, truly at most 4000", top)
	}
}

// app counts the requests that reach it and answers with CORS headers of its own.
type corsApp struct{ hits atomic.Int64 }

func (a *corsApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.hits.Add(1)
	w.Header().Set("Access-Control-Allow-Origin", "*")
	io.WriteString(w, "app:"+r.Method)
}

func policyConfig(cors string) string {
	return `{"version":1,"ports":[{"port":8080,"cors":` + cors + `}]}`
}

func TestReportOnlyChangesNoResponse(t *testing.T) {
	app := &corsApp{}
	upstream := startUpstream(t, app)
	addr, admin, log := startLoggedProxy(t, policyConfig(`{"reportOnly":true,"allowOrigins":[{"exact":"https://app.example"}],"allowCredentials":true}`),
		Options{Upstream: upstream, PolicyPort: 8080})
	for _, tt := range []struct{ method, origin string }{
		{"GET", "https://app.example"},
		{"OPTIONS", "https://app.example"},
		{"GET", "https://evil.example"},
		{"OPTIONS", "https://evil.example"},
	} {
		resp := rawExchange(t, addr, tt.method+" / HTTP/1.1\nHost: a\nOrigin: "+tt.origin+"\nAccess-Control-Request-Method: PUT\n\n")
		if got := resp.Header.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != "*" {
			t.Errorf("%s from %s: allow-origin = %q, want the app's own \"*\" untouched", tt.method, tt.origin, got)
		}
		if got := resp.Header.Values("Vary"); len(got) != 0 {
			t.Errorf("%s from %s: Vary = %q, want none added", tt.method, tt.origin, got)
		}
		if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != "" {
			t.Errorf("%s from %s: allow-credentials = %q, want none", tt.method, tt.origin, got)
		}
		if body := readBody(t, resp); body != "app:"+tt.method {
			t.Errorf("%s from %s: body %q, want the app's", tt.method, tt.origin, body)
		}
	}
	if app.hits.Load() != 4 {
		t.Errorf("the app saw %d requests, want all 4 (preflights included)", app.hits.Load())
	}
	metrics := httpGet(t, "http://"+admin+"/metrics")
	for _, want := range []string{
		`corsproxy_report_only_total{outcome="would_allow"} 2`,
		`corsproxy_report_only_total{outcome="would_refuse"} 2`,
		`corsproxy_refused_origins_total{reason="not_allowed"} 0`,
		`corsproxy_requests_total{decision="preflight"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	lines := log.lines(t)
	if len(lines) != 2 || lines[0]["report_only"] != true || lines[0]["origin"] != "https://evil.example" {
		t.Errorf("log = %v, want two report-only lines for https://evil.example", lines)
	}
	if !strings.Contains(httpGet(t, "http://"+admin+"/debug/cors"), `"reportOnly": true`) {
		t.Errorf("/debug/cors does not mark the report-only row")
	}
}

func TestRefusedPreflight(t *testing.T) {
	tests := []struct {
		name       string
		policy     string
		request    string
		wantStatus int
		wantApp    bool
	}{
		{
			name:       "forwarded by default, as osm-edge does",
			policy:     `{"allowOrigins":[{"exact":"https://app.example"}]}`,
			request:    "OPTIONS / HTTP/1.1\nHost: a\nOrigin: https://evil.example\nAccess-Control-Request-Method: PUT\n\n",
			wantStatus: 200, wantApp: true,
		},
		{
			name:       "answered 403 by the proxy",
			policy:     `{"allowOrigins":[{"exact":"https://app.example"}],"refusedPreflight":"answer"}`,
			request:    "OPTIONS / HTTP/1.1\nHost: a\nOrigin: https://evil.example\nAccess-Control-Request-Method: PUT\n\n",
			wantStatus: 403,
		},
		{
			name:       "strict: a plain OPTIONS from a refused origin is no preflight, so the app answers",
			policy:     `{"allowOrigins":[{"exact":"https://app.example"}],"refusedPreflight":"answer","preflight":"strict"}`,
			request:    "OPTIONS / HTTP/1.1\nHost: a\nOrigin: https://evil.example\n\n",
			wantStatus: 200, wantApp: true,
		},
		{
			name:       "an invalid origin is no CORS request and goes to the app",
			policy:     `{"allowOrigins":[{"exact":"https://app.example"}],"refusedPreflight":"answer"}`,
			request:    "OPTIONS / HTTP/1.1\nHost: a\nOrigin: HTTPS://EVIL\nAccess-Control-Request-Method: PUT\n\n",
			wantStatus: 200, wantApp: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := &corsApp{}
			addr, _, _ := startLoggedProxy(t, policyConfig(tt.policy), Options{Upstream: startUpstream(t, app), PolicyPort: 8080})
			resp := rawExchange(t, addr, tt.request)
			if resp.StatusCode != tt.wantStatus || (app.hits.Load() == 1) != tt.wantApp {
				t.Errorf("status %d, app reached %v; want %d, %v", resp.StatusCode, app.hits.Load() == 1, tt.wantStatus, tt.wantApp)
			}
			for name := range resp.Header {
				if strings.HasPrefix(strings.ToLower(name), "access-control-") {
					t.Errorf("refused preflight carries %s: %q", name, resp.Header.Values(name))
				}
			}
		})
	}
}

func TestStrictPreflightLeavesAppOptionsToTheApp(t *testing.T) {
	app := &corsApp{}
	addr, _, _ := startLoggedProxy(t, policyConfig(`{"allowOrigins":[{"exact":"https://app.example"}],"allowMethods":["PUT"],"exposeHeaders":["X-Total"],"preflight":"strict"}`),
		Options{Upstream: startUpstream(t, app), PolicyPort: 8080})

	resp := rawExchange(t, addr, "OPTIONS / HTTP/1.1\nHost: a\nOrigin: https://app.example\n\n")
	if body := readBody(t, resp); body != "app:OPTIONS" || app.hits.Load() != 1 {
		t.Errorf("plain OPTIONS: body %q, app hits %d; want the app's answer", body, app.hits.Load())
	}
	if got := resp.Header.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != "https://app.example" {
		t.Errorf("plain OPTIONS: allow-origin %q, want the actual response's https://app.example", got)
	}
	if got := resp.Header.Get("Access-Control-Allow-Methods"); got != "" {
		t.Errorf("plain OPTIONS: allow-methods %q, want none (not a preflight)", got)
	}

	resp = rawExchange(t, addr, "OPTIONS / HTTP/1.1\nHost: a\nOrigin: https://app.example\nAccess-Control-Request-Method: PUT\n\n")
	if app.hits.Load() != 1 || resp.Header.Get("Access-Control-Allow-Methods") != "PUT" {
		t.Errorf("preflight: app hits %d, allow-methods %q; want the proxy's answer", app.hits.Load(), resp.Header.Get("Access-Control-Allow-Methods"))
	}
}
