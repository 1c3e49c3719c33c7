//go:build linux

package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/corsmesh/corsmesh/test/gobuild"
)

// The policies the browser is tested against: the guide's, a wildcard one and a
// report-only one, each behind its own corsproxy.
const (
	guidePolicy = `{"allowCredentials":true,"allowHeaders":["X-Foo-Bar-1"],"allowMethods":["POST","GET","PATCH","DELETE"],` +
		`"allowOrigins":[{"regex":"http.*://www.test.cn"},{"exact":"http://www.aaa.com"},{"prefix":"http://www.bbb.com"}],` +
		`"exposeHeaders":["Content-Encoding","Kuma-Revision"],"maxAge":"24h"}`
	wildcardPolicy   = `{"allowOrigins":[{"wildcard":"http://*.wild.test"}],"exposeHeaders":["Kuma-Revision"],"allowMethods":["PATCH"],"refusedPreflight":"answer"}`
	reportOnlyPolicy = `{"reportOnly":true,"allowOrigins":[{"exact":"http://www.aaa.com"}],"allowCredentials":true}`
)

// Page origins, all served by the test's page server through the browser's host rules.
var pageHosts = []string{"www.aaa.com", "www.bbb.com", "www.test.cn", "www.test.cn.evil.com", "www.evil.test", "a.b.wild.test", "wild.test.evil.test", "notwild.test"}

// app is the service behind the proxies: it answers like the guide's pipy-ok, sends a
// header the policy exposes and one it does not, a CORS header of its own that the proxy
// must not let through, and records what reached it.
type app struct {
	mu   sync.Mutex
	hits map[string][]string // path: methods, in order
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.hits[r.URL.Path] = append(a.hits[r.URL.Path], r.Method)
	a.mu.Unlock()
	w.Header().Set("Kuma-Revision", "7")
	w.Header().Set("X-Secret", "s")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	io.WriteString(w, "Hi, I am PIPY-OK v1!")
}

func (a *app) methods(path string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.hits[path])
}

func TestBrowserCORS(t *testing.T) {
	chromium := FindChromium()
	if chromium == "" {
		// CI=true, as sandbox.OnCI reads it; that package would bring the control plane's
		// dependencies into this test's build.
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed (.ci/run installs Debian's chromium package)")
		}
		t.Skip("skipping: chromium is not installed (apt-get install chromium)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	theApp := &app{hits: make(map[string][]string)}
	appAddr := serve(t, theApp)
	pages := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<!doctype html><title>corsmesh browser test</title><p>"+r.Host)
	}))
	bins, err := gobuild.Build(ctx, t.TempDir(), "cmd/corsproxy")
	if err != nil {
		t.Fatal(err)
	}
	bin := bins["cmd/corsproxy"]
	guide := startProxy(t, bin, appAddr, guidePolicy)
	wildcard := startProxy(t, bin, appAddr, wildcardPolicy)
	reportOnly := startProxy(t, bin, appAddr, reportOnlyPolicy)

	var rules []string
	for _, h := range pageHosts {
		rules = append(rules, "MAP "+h+":80 "+pages)
	}
	rules = append(rules, "MAP pipy-ok.pipy:8080 "+guide.addr, "MAP api.wild.test:8080 "+wildcard.addr, "MAP api.report.test:8080 "+reportOnly.addr)
	profile, err := os.MkdirTemp("", "corsmesh-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(profile) })
	browser, err := Start(ctx, chromium, profile, strings.Join(rules, ", "))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { browser.Close() })

	const guideAPI, wildAPI, reportAPI = "http://pipy-ok.pipy:8080", "http://api.wild.test:8080", "http://api.report.test:8080"
	tests := []struct {
		name, page, api, init string
		// wantRead: the page reads the answer; otherwise the browser blocks it and says so.
		wantRead bool
		wantKuma string // the exposed header as the page reads it
		// wantApp: the methods that reached the app (a refused preflight stops the request).
		wantApp []string
	}{
		{name: "guide: simple GET from the prefix origin (the guide's first curl)", page: "www.bbb.com", api: guideAPI,
			wantRead: true, wantKuma: "7", wantApp: []string{"GET"}},
		{name: "guide: preflighted PATCH with the allowed header, preflight answered by the proxy (the guide's second curl)", page: "www.bbb.com", api: guideAPI,
			init: `{method: "PATCH", headers: {"X-Foo-Bar-1": "1"}}`, wantRead: true, wantKuma: "7", wantApp: []string{"PATCH"}},
		{name: "guide: credentialed GET from the exact origin", page: "www.aaa.com", api: guideAPI,
			init: `{credentials: "include"}`, wantRead: true, wantKuma: "7", wantApp: []string{"GET"}},
		{name: "guide: regex origin", page: "www.test.cn", api: guideAPI, wantRead: true, wantKuma: "7", wantApp: []string{"GET"}},
		{name: "guide: preflighted PUT, a method the policy does not allow, never reaches the app", page: "www.aaa.com", api: guideAPI,
			init: `{method: "PUT"}`},
		{name: "guide: preflighted request with a header the policy does not allow", page: "www.aaa.com", api: guideAPI,
			init: `{method: "POST", headers: {"X-Other": "1"}}`},
		{name: "guide: refused origin: the request reaches the app, the browser hides the answer (the app's own * is stripped)", page: "www.evil.test", api: guideAPI,
			wantApp: []string{"GET"}},
		{name: "guide: the regex's evil suffix is refused (regexes match whole origins)", page: "www.test.cn.evil.com", api: guideAPI,
			wantApp: []string{"GET"}},
		{name: "wildcard: subdomain labels", page: "a.b.wild.test", api: wildAPI, wantRead: true, wantKuma: "7", wantApp: []string{"GET"}},
		{name: "wildcard: the domain followed by another is refused", page: "wild.test.evil.test", api: wildAPI, wantApp: []string{"GET"}},
		{name: "wildcard: a name ending in the domain's letters is refused", page: "notwild.test", api: wildAPI, wantApp: []string{"GET"}},
		{name: "wildcard: credentials are refused without allowCredentials", page: "a.b.wild.test", api: wildAPI,
			init: `{credentials: "include"}`, wantApp: []string{"GET"}},
		{name: "guide: a refused origin's preflight is forwarded to the app (osm-edge's way), and the browser stops there", page: "www.evil.test", api: guideAPI,
			init: `{method: "PATCH"}`, wantApp: []string{"OPTIONS"}},
		{name: "wildcard: allowed origin's preflighted PATCH", page: "a.b.wild.test", api: wildAPI,
			init: `{method: "PATCH"}`, wantRead: true, wantKuma: "7", wantApp: []string{"PATCH"}},
		{name: "wildcard: refusedPreflight answer: a refused origin's preflight never reaches the app", page: "notwild.test", api: wildAPI,
			init: `{method: "PATCH"}`},
		{name: "report-only: a refused origin still reads the app's own answer", page: "www.evil.test", api: reportAPI,
			wantRead: true, wantKuma: "", wantApp: []string{"GET"}},
		{name: "report-only: an allowed origin gets no CORS headers either, so the app's * fails a credentialed read", page: "www.aaa.com", api: reportAPI,
			init: `{credentials: "include"}`, wantApp: []string{"GET"}},
	}
	open := make(map[string]*Page)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := open[tt.page]
			if page == nil {
				if page, err = browser.NewPage(ctx, "http://"+tt.page+"/"); err != nil {
					t.Fatal(err)
				}
				open[tt.page] = page
			}
			path := fmt.Sprintf("/case/%d", i)
			init := tt.init
			if init == "" {
				init = "{}"
			}
			logsBefore := len(browser.Logs())
			var got struct {
				Read   bool
				Status int
				Body   string
				Kuma   *string
				Secret *string
				Error  string
			}
			expr := fmt.Sprintf(`(async () => {
				try {
					const r = await fetch(%q, %s);
					return {Read: true, Status: r.status, Body: await r.text(), Kuma: r.headers.get("Kuma-Revision"), Secret: r.headers.get("X-Secret")};
				} catch (e) { return {Read: false, Error: String(e)}; }
			})()`, tt.api+path, init)
			if err := page.Eval(ctx, expr, &got); err != nil {
				t.Fatal(err)
			}
			if got.Read != tt.wantRead {
				t.Fatalf("page read the answer: %v (%+v), want %v", got.Read, got, tt.wantRead)
			}
			if got.Read {
				if got.Status != 200 || got.Body != "Hi, I am PIPY-OK v1!" {
					t.Errorf("page read %d %q, want 200 and the app's body", got.Status, got.Body)
				}
				if kuma := deref(got.Kuma); kuma != tt.wantKuma {
					t.Errorf("page reads Kuma-Revision = %q, want %q (exposed headers only)", kuma, tt.wantKuma)
				}
				if got.Secret != nil {
					t.Errorf("page reads X-Secret = %q, a header the policy does not expose", *got.Secret)
				}
			} else if !waitForLog(browser, logsBefore, "blocked by CORS policy") {
				t.Errorf("fetch failed (%s) but the browser logged no CORS block: %q", got.Error, browser.Logs()[logsBefore:])
			}
			if methods := theApp.methods(path); !slices.Equal(methods, tt.wantApp) {
				t.Errorf("the app saw %q, want %q", methods, tt.wantApp)
			}
		})
	}

	// The refusals above are visible on each proxy's admin port.
	var debug struct {
		Refused    map[string]uint64
		ReportOnly struct{ WouldAllow, WouldRefuse uint64 }
		Top        []struct {
			Origin, Reason string
			Count          uint64
			ReportOnly     bool
		}
	}
	getJSON(t, "http://"+guide.admin+"/debug/cors", &debug)
	if debug.Refused["not_allowed"] != 3 || !slices.ContainsFunc(debug.Top, func(r struct {
		Origin, Reason string
		Count          uint64
		ReportOnly     bool
	}) bool {
		return r.Origin == "http://www.evil.test" && r.Reason == "not_allowed"
	}) {
		t.Errorf("guide proxy's /debug/cors = %+v, want 3 not_allowed refusals, http://www.evil.test among them", debug)
	}
	getJSON(t, "http://"+reportOnly.admin+"/debug/cors", &debug)
	if debug.ReportOnly.WouldAllow != 1 || debug.ReportOnly.WouldRefuse != 1 || len(debug.Top) != 1 || !debug.Top[0].ReportOnly || debug.Top[0].Origin != "http://www.evil.test" {
		t.Errorf("report-only proxy's /debug/cors = %+v, want one would-allow, one would-refuse from http://www.evil.test", debug)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// waitForLog waits briefly for a browser log entry after index from containing text:
// the console message can follow the rejected promise by a moment.
func waitForLog(b *Chromium, from int, text string) bool {
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, l := range b.Logs()[from:] {
			if strings.Contains(l, text) {
				return true
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

type runningProxy struct{ addr, admin string }

// startProxy runs the corsproxy binary on loopback in front of upstream with one policy,
// and waits until it is ready.
func startProxy(t *testing.T, bin, upstream, policy string) runningProxy {
	t.Helper()
	dir := t.TempDir()
	config := filepath.Join(dir, "config.json")
	if err := os.WriteFile(config, []byte(`{"version":1,"ports":[{"port":8080,"cors":`+policy+`}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	p := runningProxy{addr: freeAddr(t), admin: freeAddr(t)}
	cmd := exec.Command(bin, "--config", config, "--listen", p.addr, "--admin-listen", p.admin, "--upstream", upstream, "--policy-port", "8080")
	cmd.Stderr = &testLog{t: t}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + p.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("corsproxy on %s not ready: %v", p.addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeAddr picks a loopback port the kernel says is free now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// testLog sends a child's log lines to the test's log.
type testLog struct {
	t  *testing.T
	mu sync.Mutex
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Logf("corsproxy: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
