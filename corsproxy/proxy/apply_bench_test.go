package proxy

import (
	"os"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/corsmesh/corsmesh/corsproxy/config"
	"github.com/corsmesh/corsmesh/corsproxy/cors"
)

// BenchmarkApplyActual is the per-response header work of an allowed actual request, for
// an app that sends no CORS headers of its own (the usual case).
func BenchmarkApplyActual(b *testing.B) {
	data, err := os.ReadFile("testdata/seed-config.json")
	if err != nil {
		b.Fatal(err)
	}
	c, err := config.Parse(data)
	if err != nil {
		b.Fatal(err)
	}
	policy, err := cors.Compile(c.Ports[0].CORS)
	if err != nil {
		b.Fatal(err)
	}
	origin := []byte("http://www.bbb.com")
	var resp fasthttp.Response
	b.ReportAllocs()
	for b.Loop() {
		resp.Reset()
		resp.Header.SetContentType("text/plain; charset=utf-8")
		resp.Header.SetContentLength(20)
		resp.Header.Set("Date", "Thu, 26 Nov 2026 14:09:05 GMT")
		resp.Header.Set("X-Request-Id", "abc")
		applyActual(&resp, policy, cors.Allowed, origin, false)
	}
}
