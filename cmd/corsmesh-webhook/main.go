// Command corsmesh-webhook is the admission webhook: it injects the CORS sidecar into pods
// that PluginChains select, validates the plugin resources, and runs the controllers that
// keep injected pods' policies and the resources' statuses current.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/webhook"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	cl, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintf(stderr, "corsmesh-webhook: %v\n", err)
		}
		return 2
	}
	log := zap.New(zap.UseFlagOptions(&cl.zap), zap.WriteTo(stderr))
	ctrl.SetLogger(log)
	cl.opts.Log = log
	if cl.memoryLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		// The collector works harder as the heap nears the container's limit rather than
		// letting the kernel kill the process; GOMEMLIMIT, if set, is the operator's.
		debug.SetMemoryLimit(softMemoryLimit(cl.memoryLimit))
	}
	log.Info("memory budget", "limit", cl.memoryLimit, "goMemLimit", debug.SetMemoryLimit(-1))
	if err := serve(ctx, cl.kubeconfig, cl.opts, log); err != nil {
		log.Error(err, "corsmesh-webhook stopped")
		return 1
	}
	return 0
}

// commandLine is what the flags ask for.
type commandLine struct {
	opts       webhook.Options
	kubeconfig string
	zap        zap.Options
	// memoryLimit is the container's memory limit in bytes (0: none known).
	memoryLimit int64
}

// envMemoryLimit carries the container's memory limit, from the Deployment's downward API
// (resourceFieldRef limits.memory).
const envMemoryLimit = "CORSMESH_MEMORY_LIMIT"

// softMemoryLimit is the Go runtime's limit: an eighth of the container's is left to what
// the runtime does not count (the binary's pages among it).
func softMemoryLimit(limit int64) int64 { return limit - limit/8 }

// errUsage is a flag the flag package has already reported (with the usage).
var errUsage = errors.New("usage")

// parseFlags reads the command line into the webhook's options.
func parseFlags(args []string, stderr io.Writer) (*commandLine, error) {
	cl := &commandLine{opts: webhook.Options{Injector: injector.DefaultOptions()}}
	opts := &cl.opts
	fs := flag.NewFlagSet("corsmesh-webhook", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&opts.CertDir, "cert-dir", "/etc/corsmesh/tls", "directory with tls.crt and tls.key (reloaded when they change)")
	fs.StringVar(&opts.Host, "host", "", "address to serve admission on (default: all)")
	fs.IntVar(&opts.Port, "port", 9443, "port to serve admission on")
	fs.StringVar(&opts.MetricsAddr, "metrics-addr", ":8080", "Prometheus metrics address (0 disables)")
	fs.StringVar(&opts.HealthAddr, "health-addr", ":8081", "/healthz and /readyz address (0 disables)")
	fs.StringVar(&opts.PprofAddr, "pprof-addr", "", "net/http/pprof address, for profiling (default: off)")
	fs.BoolVar(&opts.EnableHTTP2, "enable-http2", false, "offer HTTP/2 on the admission port (the API server calls Service webhooks over HTTP/1.1 anyway; off, the port is not exposed to HTTP/2 rapid reset)")
	fs.DurationVar(&opts.DrainPeriod, "drain-period", 10*time.Second, "after SIGTERM, keep answering admissions this long, closing each connection after its answer, so the API server's pooled connections end without a failed call")
	fs.BoolVar(&opts.LeaderElection, "leader-elect", true, "elect a leader for the controllers (admission is served by every replica)")
	fs.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election lease (default: in-cluster namespace)")
	fs.StringVar(&opts.LeaderElectionID, "leader-election-id", "corsmesh-webhook", "name of the leader election lease")
	in := &opts.Injector
	fs.StringVar(&in.MeshName, "mesh-name", in.MeshName, "value of the openservicemesh.io/monitored-by label that opts a namespace in")
	fs.StringVar(&in.OwnNamespace, "namespace", envOr("POD_NAMESPACE", in.OwnNamespace), "the webhook's own namespace (never injected)")
	fs.StringVar(&in.ProxyImage, "proxy-image", in.ProxyImage, "image of the corsproxy sidecar")
	fs.StringVar(&in.InitImage, "init-image", in.InitImage, "image of the corsproxy-init container")
	fs.StringVar(&in.ClusterDomain, "cluster-domain", in.ClusterDomain, "cluster DNS domain, for matching Service host names")
	proxyPort := fs.Int("proxy-port", int(in.ProxyPort), "port the proxy listens on inside pods")
	adminPort := fs.Int("admin-port", int(in.AdminPort), "proxy admin port inside pods (never redirected)")
	corsPlugins := fs.String("cors-plugins", strings.Join(in.CORSPluginNames, ","), "Plugin names implemented as CORS")
	nativeSidecars := fs.String("native-sidecars", "auto", "inject the proxy as a native sidecar: auto (Kubernetes >= 1.29), true or false")
	fs.StringVar(&cl.kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster, or $KUBECONFIG)")
	memoryLimit := fs.String("memory-limit", os.Getenv(envMemoryLimit), "the container's memory limit in bytes (default $"+envMemoryLimit+"): the Go heap's soft limit is 7/8 of it, unless GOMEMLIMIT is set")
	applyProxyDefaults := proxyDefaultFlags(fs, in)
	cl.zap.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, errUsage
	}
	in.ProxyPort, in.AdminPort = int32(*proxyPort), int32(*adminPort)
	if err := applyProxyDefaults(); err != nil {
		return nil, err
	}
	in.CORSPluginNames = strings.Split(*corsPlugins, ",")
	if *memoryLimit != "" {
		n, err := strconv.ParseInt(*memoryLimit, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("--memory-limit=%q (or $%s): want the limit in bytes (a whole number, not negative)", *memoryLimit, envMemoryLimit)
		}
		cl.memoryLimit = n
	}
	switch *nativeSidecars {
	case "auto":
	case "true", "false":
		v := *nativeSidecars == "true"
		opts.NativeSidecars = &v
	default:
		return nil, fmt.Errorf("--native-sidecars=%q: want auto, true or false", *nativeSidecars)
	}
	return cl, nil
}

func serve(ctx context.Context, kubeconfig string, opts webhook.Options, log logr.Logger) error {
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return err
	}
	srv, err := webhook.New(ctx, cfg, opts)
	if err != nil {
		return err
	}
	log.Info("serving admission", "port", opts.Port, "certDir", opts.CertDir)
	return srv.Start(ctx)
}

// restConfig loads the kubeconfig file, or else the in-cluster (or $KUBECONFIG) config.
func restConfig(kubeconfig string) (*rest.Config, error) {
	cfg, err := ctrl.GetConfig()
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	if cfg.QPS == 0 {
		// As ctrl.GetConfig does in-cluster: no client-side limit, the API server's priority
		// and fairness is the one. client-go's default of 5 requests/s took minutes to write
		// the status of a thousand PluginChains or the config of a thousand pods.
		cfg.QPS = -1
	}
	// The webhook runs beside the API server and watches every pod of the cluster: gzip of
	// its watch streams cost both ends CPU to save bytes on a network that is not short of
	// them (a quarter of the webhook's watch decoding, hack/bench/webhook's profile).
	cfg.DisableCompression = true
	return cfg, nil
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
