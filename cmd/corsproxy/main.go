// Command corsproxy is the CORS sidecar: it serves the port iptables redirects a pod's
// inbound HTTP ports to, forwards each request to the app, and applies the CORS policy the
// webhook embedded in the pod (read from a downward-API file, reloaded when it changes).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/corsmesh/corsmesh/corsproxy/flags"
	"github.com/corsmesh/corsmesh/corsproxy/proxy"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

type options struct {
	configPath     string
	listen         string
	adminListen    string
	adminIP        string
	memoryLimit    int64
	upstream       string
	policyPort     int
	reloadInterval time.Duration
	drainTimeout   time.Duration
	drainDelay     time.Duration
	logLevel       string
	waitReady      time.Duration
	opts           proxy.Options
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	f := &options{}
	fs := flag.NewFlagSet("corsproxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.configPath, flags.Config, flags.DefaultConfigPath, "policy file (the pod's config annotation, mounted by the downward API)")
	fs.StringVar(&f.listen, flags.Listen, flags.AllInterfaces(flags.DefaultProxyPort), "address iptables redirects inbound traffic to")
	fs.StringVar(&f.adminListen, flags.AdminListen, flags.AllInterfaces(flags.DefaultAdminPort), "address of /healthz, /readyz and /metrics (never redirected)")
	fs.StringVar(&f.adminIP, flags.AdminIP, os.Getenv(flags.EnvPodIP), "serve the admin port on this IP only, where the kubelet probes it (default $POD_IP; empty: the --admin-listen host)")
	fs.Int64Var(&f.memoryLimit, flags.MemoryLimit, 0, "the container's memory limit in bytes (default $CORSPROXY_MEMORY_LIMIT): sets the Go heap's soft limit and the default --max-client-conns")
	fs.StringVar(&f.upstream, flags.Upstream, "", "forward everything to this host:port instead of the original destination (tests, no iptables)")
	fs.IntVar(&f.policyPort, flags.PolicyPort, 0, "with --upstream: the config port whose policy applies (default: the upstream's port)")
	fs.DurationVar(&f.reloadInterval, flags.ReloadInterval, time.Second, "how often to check the config file for changes")
	fs.DurationVar(&f.drainTimeout, flags.DrainTimeout, 20*time.Second, "on SIGTERM, how long in-flight requests may take to finish")
	fs.DurationVar(&f.drainDelay, flags.DrainDelay, 0, "on SIGTERM, how long to keep accepting while /readyz fails, so endpoints update first")
	fs.StringVar(&f.logLevel, flags.LogLevel, "info", "debug, info, warn or error")
	fs.DurationVar(&f.waitReady, flags.WaitReady, 0, "instead of serving, wait this long for a running proxy's /readyz on --admin-listen (a postStart hook)")
	fs.IntVar(&f.opts.MaxConnsPerUpstream, flags.MaxConnsPerUpstream, flags.DefaultMaxConnsPerUpstream, "pooled connections per app port")
	fs.DurationVar(&f.opts.UpstreamTimeout, flags.UpstreamTimeout, 0, "wait at most this long for the app's response to begin, and then for each piece of it (then 504; 0: no limit)")
	fs.DurationVar(&f.opts.DialTimeout, flags.DialTimeout, 2*time.Second, "wait at most this long to connect to the app")
	fs.DurationVar(&f.opts.ReadHeaderTimeout, flags.ReadHeaderTimeout, 10*time.Second, "wait at most this long for a request's header (then 408)")
	fs.DurationVar(&f.opts.BodyIdleTimeout, flags.BodyIdleTimeout, 60*time.Second, "wait at most this long for each piece of a request's body, not for the whole body (then 408)")
	fs.DurationVar(&f.opts.IdleTimeout, flags.IdleTimeout, 90*time.Second, "close keep-alive connections idle this long")
	fs.IntVar(&f.opts.MaxHeaderBytes, flags.MaxHeaderBytes, 32<<10, "largest request header block accepted (larger: 431)")
	fs.IntVar(&f.opts.MaxClientConns, flags.MaxClientConns, 0, "client connections held at once, tunnels included; more get 503 (default: what --memory-limit holds, 1024 without one)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if f.upstream != "" {
		addr, err := netip.ParseAddrPort(f.upstream)
		if err != nil {
			return nil, fmt.Errorf("--upstream: want IP:port: %w", err)
		}
		f.opts.Upstream = addr
	}
	if f.policyPort < 0 || f.policyPort > 65535 {
		return nil, fmt.Errorf("--policy-port: %d is not a port", f.policyPort)
	}
	f.opts.PolicyPort = int32(f.policyPort)
	if f.adminIP != "" {
		ip, err := netip.ParseAddr(f.adminIP)
		if err != nil {
			return nil, fmt.Errorf("--admin-ip: %w", err)
		}
		_, port, err := net.SplitHostPort(f.adminListen)
		if err != nil {
			return nil, fmt.Errorf("--admin-listen: %w", err)
		}
		f.adminListen = net.JoinHostPort(ip.String(), port)
	}
	if v := os.Getenv(flags.EnvMemoryLimit); v != "" && !isSet(fs, flags.MemoryLimit) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: want the limit in bytes: %w", flags.EnvMemoryLimit, err)
		}
		f.memoryLimit = n
	}
	if f.memoryLimit < 0 {
		return nil, fmt.Errorf("--memory-limit: %d is negative", f.memoryLimit)
	}
	if f.opts.MaxClientConns < 0 {
		return nil, fmt.Errorf("--max-client-conns: %d is negative", f.opts.MaxClientConns)
	}
	if f.opts.MaxClientConns == 0 {
		f.opts.MaxClientConns = maxClientConns(f.memoryLimit)
	}
	if f.reloadInterval <= 0 {
		return nil, errors.New("--reload-interval must be positive")
	}
	return f, nil
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	f, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "corsproxy:", err)
		}
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		fmt.Fprintln(stderr, "corsproxy: --log-level:", err)
		return 2
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	f.opts.Logger = logger
	if f.waitReady > 0 {
		if err := waitReady(ctx, f.adminListen, f.waitReady); err != nil {
			logger.Error("proxy not ready", "err", err)
			return 1
		}
		return 0
	}
	if err := serve(ctx, f, logger); err != nil {
		logger.Error("corsproxy stopped", "err", err)
		return 1
	}
	return 0
}

// waitReady polls the admin port's /readyz: a regular-container sidecar's postStart hook
// runs it, and the kubelet starts the app's containers only after it returns.
func waitReady(ctx context.Context, adminListen string, timeout time.Duration) error {
	host, port, err := net.SplitHostPort(adminListen) // --admin-ip is in it already
	if err != nil {
		return fmt.Errorf("--admin-listen: %w", err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	url := "http://" + net.JoinHostPort(host, port) + "/readyz"
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s", url, timeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func serve(ctx context.Context, f *options, logger *slog.Logger) error {
	metrics := &proxy.Metrics{}
	// The first config must be valid: with no good policy to fall back on, starting would
	// serve the pod without the CORS it was injected for.
	routes, data, err := proxy.LoadRoutes(f.configPath)
	if err != nil {
		metrics.Reloaded(false)
		return fmt.Errorf("loading %s: %w", f.configPath, err)
	}
	metrics.Reloaded(true)

	if f.memoryLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		// The runtime collects harder as the heap nears this, rather than let the kernel
		// kill the container; GOMEMLIMIT, if set, is the operator's and wins.
		debug.SetMemoryLimit(softMemoryLimit(f.memoryLimit))
	}
	logger.Info("memory budget", "limit", f.memoryLimit, "goMemLimit", debug.SetMemoryLimit(-1), "maxClientConns", f.opts.MaxClientConns)
	p := proxy.New(routes, metrics, f.opts)
	admin := proxy.NewAdmin(metrics)
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listening for traffic: %w", err)
	}
	adminLn, err := net.Listen("tcp", f.adminListen)
	if err != nil {
		ln.Close()
		return fmt.Errorf("listening for admin: %w", err)
	}
	logger.Info("corsproxy serving", "listen", ln.Addr().String(), "admin", adminLn.Addr().String(),
		"config", f.configPath, "upstream", f.upstream)

	reloader := &proxy.Reloader{Path: f.configPath, Interval: f.reloadInterval, Proxy: p, Metrics: metrics, Logger: logger}
	reloader.Loaded(data)
	reloadCtx, stopReload := context.WithCancel(ctx)
	defer stopReload()
	go reloader.Run(reloadCtx)

	errc := make(chan error, 2)
	go func() { errc <- p.Serve(ln) }()
	go func() { errc <- admin.Serve(adminLn) }()

	select {
	case err := <-errc:
		return fmt.Errorf("server stopped: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down: draining in-flight requests", "drainDelay", f.drainDelay, "drainTimeout", f.drainTimeout)
	admin.Drain()
	time.Sleep(f.drainDelay)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), f.drainTimeout)
	defer cancel()
	err = p.Shutdown(shutdownCtx)
	_ = admin.Close()
	if err != nil {
		return fmt.Errorf("draining: %w", err)
	}
	logger.Info("corsproxy stopped cleanly")
	return nil
}
