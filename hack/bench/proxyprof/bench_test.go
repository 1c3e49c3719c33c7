package main

import (
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/corsmesh/corsmesh/corsproxy/proxy"
)

// BenchmarkProxy drives corsproxy's forwarding path over loopback TCP with the seed's
// policy: a fasthttp upstream answering like pipy-ok, the proxy, and a fasthttp client, all
// in this process (so CPU and allocations include client and upstream; compare sub-benchmarks
// with each other, not with nginx). Profile with
//
//	go test -run '^$' -bench . -benchmem -cpu 1 -cpuprofile cpu.pprof
func BenchmarkProxy(b *testing.B) {
	upLn := listen(b)
	up := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("Hi, I am PIPY-OK v1!") }}
	go up.Serve(upLn)
	b.Cleanup(func() { _ = up.Shutdown() })

	data, err := os.ReadFile("../../../corsproxy/proxy/testdata/seed-config.json")
	if err != nil {
		b.Fatal(err)
	}
	routes, err := proxy.ParseRoutes(data)
	if err != nil {
		b.Fatal(err)
	}
	upAddr := netip.MustParseAddrPort(upLn.Addr().String())
	p := proxy.New(routes, &proxy.Metrics{}, proxy.Options{Upstream: upAddr, PolicyPort: 8080})
	ln := listen(b)
	go p.Serve(ln)
	b.Cleanup(func() { _ = p.Shutdown(b.Context()) })

	client := &fasthttp.HostClient{Addr: ln.Addr().String(), MaxConns: 64}
	cases := []struct {
		name, method string
		headers      [][2]string
		wantCORS     bool
	}{
		{"get-allowed", "GET", [][2]string{{"Origin", "http://www.bbb.com"}}, true},
		{"get-no-origin", "GET", nil, false},
		{"get-rejected", "GET", [][2]string{{"Origin", "http://evil.example"}}, false},
		{"preflight", "OPTIONS", [][2]string{{"Origin", "http://www.bbb.com"}, {"Access-Control-Request-Method", "PATCH"}}, true},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				req.SetRequestURI("http://" + ln.Addr().String() + "/")
				req.Header.SetMethod(tc.method)
				for _, h := range tc.headers {
					req.Header.Set(h[0], h[1])
				}
				for pb.Next() {
					if err := client.Do(req, resp); err != nil {
						b.Error(err)
						return
					}
					if got := len(resp.Header.Peek("Access-Control-Allow-Origin")) > 0; got != tc.wantCORS || resp.StatusCode() != 200 {
						b.Errorf("status %d, allow-origin %q", resp.StatusCode(), resp.Header.Peek("Access-Control-Allow-Origin"))
						return
					}
				}
			})
		})
	}
}

func listen(b *testing.B) net.Listener {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	return ln
}
