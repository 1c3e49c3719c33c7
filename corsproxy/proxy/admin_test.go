package proxy

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestAdminEndpoints(t *testing.T) {
	metrics := &Metrics{}
	admin := NewAdmin(metrics)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go admin.Serve(ln)
	t.Cleanup(func() { admin.Close() })
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, _ := get("/readyz"); code != 503 {
		t.Errorf("/readyz before any config = %d, want 503", code)
	}
	metrics.Reloaded(true)
	metrics.Reloaded(false)
	metrics.decision(4)
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz with a config = %d, want 200", code)
	}
	code, body := get("/metrics")
	for _, want := range []string{
		`corsproxy_requests_total{decision="preflight"} 1`,
		`corsproxy_preflights_total 1`,
		`corsproxy_config_reloads_total{result="success"} 1`,
		`corsproxy_config_reloads_total{result="failure"} 1`,
		`corsproxy_upstream_errors_total{reason="connect"} 0`,
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	admin.Drain()
	if code, _ := get("/readyz"); code != 503 {
		t.Errorf("/readyz while draining = %d, want 503", code)
	}
	if code, _ := get("/nope"); code != 404 {
		t.Errorf("unknown path = %d, want 404", code)
	}
}
