// Command proxyprof runs corsproxy's forwarding path (github.com/corsmesh/corsmesh/corsproxy/proxy)
// the way cmd/corsproxy does with --upstream, and writes a CPU profile of it: corsproxy has
// no pprof endpoint. Drive it with wrk or hack/bench/openloop, then
// `go tool pprof -top proxyprof cpu.pprof`.
//
//	GOMAXPROCS=1 taskset -c 0 ./proxyprof --upstream 127.0.0.1:19100 --cpuprofile cpu.pprof --duration 20s
package main

import (
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/corsmesh/corsmesh/corsproxy/proxy"
)

func main() {
	configPath := flag.String("config", "../../../corsproxy/proxy/testdata/seed-config.json", "policy file")
	listen := flag.String("listen", "127.0.0.1:19111", "address to serve on")
	upstream := flag.String("upstream", "", "the app, IP:port")
	policyPort := flag.Int("policy-port", 8080, "the config port whose policy applies")
	cpuprofile := flag.String("cpuprofile", "cpu.pprof", "write a CPU profile here")
	delay := flag.Duration("delay", 0, "start profiling this long after starting (skip a warm-up)")
	duration := flag.Duration("duration", 20*time.Second, "profile this long (or until SIGINT/SIGTERM)")
	keepServing := flag.Bool("keep-serving", false, "after profiling, serve on until SIGINT/SIGTERM instead of exiting")
	flag.Parse()

	addr, err := netip.ParseAddrPort(*upstream)
	if err != nil {
		log.Fatalf("--upstream: %v", err)
	}
	routes, _, err := proxy.LoadRoutes(*configPath)
	if err != nil {
		log.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p := proxy.New(routes, &proxy.Metrics{}, proxy.Options{Upstream: addr, PolicyPort: int32(*policyPort), Logger: logger})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	go func() { log.Fatal(p.Serve(ln)) }()

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-time.After(*delay):
	case <-stop:
		return
	}
	f, err := os.Create(*cpuprofile)
	if err != nil {
		log.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		log.Fatal(err)
	}
	stopped := false
	select {
	case <-time.After(*duration):
	case <-stop:
		stopped = true
	}
	pprof.StopCPUProfile()
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Fprintln(os.Stderr, "proxyprof: wrote", *cpuprofile)
	if !stopped && *keepServing {
		<-stop
	}
}
