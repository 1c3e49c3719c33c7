// Package sandbox runs corsmesh's embedded control plane on one machine: the real etcd,
// kube-apiserver and kube-controller-manager built by hack/build-controlplane.sh,
// cert-manager's real controllers and cainjector in-process, and optionally corsmesh's
// webhook in-process, installed from manifests/overlays/local and served with the
// certificate cert-manager issues for it.
//
// With Options.Node (root) it adds a real node: containerd v2 with Debian's runc and CNI
// plugins, the kubelet and kube-proxy (iptables mode), all in a network namespace of
// their own joined to the host by a veth pair, kube-scheduler, and an image registry in
// the test process that containerd uses as its mirror of docker.io, ghcr.io and
// registry.k8s.io. Stop removes pods, shims, mounts, the namespace and its iptables
// rules; a watchdog does the same when the test process dies without Stop.
//
// Integration tests, end-to-end tests and `make demo` use it:
//
//	sb, err := sandbox.Start(ctx, sandbox.Options{Webhook: true, Log: log.Printf})
//	if err != nil { ... }        // errors.Is(err, sandbox.ErrNoBinaries): build them first
//	defer sb.Stop()
//	sb.Kubectl(ctx, "get", "pods", "-A")
//
// Tests use ForTest (one sandbox per test) or RunMain (one per test binary), which skip
// when the binaries are missing, except on CI (CI=true) where that is a failure.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	cmscheme "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned/scheme"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/kubecluster"
)

// Defaults of Options.
const (
	// DefaultWebhookPort is where manifests/overlays/local points the webhook
	// configurations.
	DefaultWebhookPort = 19443
	// FieldManager owns what the sandbox applies (manifests/overlays/local). Apply the
	// same objects with it to change them (kubectl apply --server-side --field-manager).
	FieldManager = "corsmesh-sandbox"
)

// Options configure Start. The zero value starts the control plane and cert-manager.
type Options struct {
	// AssetsDir holds etcd, kube-apiserver, kube-controller-manager and kubectl.
	// Default: $KUBEBUILDER_ASSETS, else <repo>/bin/k8s/<PINNED_KUBE_VERSION>.
	AssetsDir string
	// RepoRoot is the corsmesh checkout (manifests/, hack/). Default: found from the
	// working directory up.
	RepoRoot string

	// Webhook installs manifests/overlays/local and runs the webhook in-process with the
	// certificate cert-manager issues for it.
	Webhook bool
	// WebhookPort is the port the webhook listens on at 127.0.0.1, substituted into the
	// rendered overlay (default DefaultWebhookPort). Test packages that may run in parallel
	// pick a free one (FreePort).
	WebhookPort int
	// Injector configures the webhook's injector (default injector.DefaultOptions()).
	Injector *injector.Options
	// PluginPolicy turns osm-edge's plugin-policy switch on in the installed MeshConfig
	// before the webhook starts. The manifests install it off, as osm-edge does: a sandbox
	// walking the guide leaves it so and runs the guide's own `kubectl patch meshconfig`.
	PluginPolicy bool

	// Log receives progress lines ("starting etcd and kube-apiserver", ...). Default: none.
	Log func(format string, args ...any)
	// Logger receives the logs of the in-process components (cert-manager, cainjector, the
	// webhook) and becomes controller-runtime's global logger. Default: discarded, or
	// printed to stderr with SANDBOX_LOG=1.
	Logger logr.Logger
	// ControlPlaneOutput receives etcd's, kube-apiserver's and kube-controller-manager's
	// output. Default: files in WorkDir (kept on a failed Start only with KeepWorkDir).
	ControlPlaneOutput io.Writer
	// KeepWorkDir leaves WorkDir (kubeconfig, certificates, logs) in place after Stop, for
	// debugging; also set by SANDBOX_KEEP_WORKDIR=1.
	KeepWorkDir bool
	// ClusterResourceNamespace is cert-manager's namespace for ClusterIssuer Secrets
	// (default "cert-manager", created by Start).
	ClusterResourceNamespace string

	// Node adds a real node: containerd, the kubelet and kube-proxy (iptables) in a
	// network namespace of their own, kube-scheduler, and an image registry in this
	// process that containerd uses as the mirror of docker.io, ghcr.io and
	// registry.k8s.io. It needs root and the node's binaries (hack/build-controlplane.sh,
	// Debian's runc and CNI plugins); without them Start fails with ErrNoNode. The API
	// server then listens on the host's end of the node's veth pair, not on loopback.
	Node bool
	// ImagesDir holds the image archives the node's registry serves, listed in its
	// index.txt (default <repo>/bin/images, written by make images and make
	// sandbox-images).
	ImagesDir string
}

// Sandbox is a running control plane. Its fields are read-only.
type Sandbox struct {
	// RestConfig authenticates as an administrator (system:masters).
	RestConfig *rest.Config
	// Client is a controller-runtime client knowing corsmesh's, Kubernetes's, CRDs' and
	// cert-manager's types.
	Client client.Client
	// Clientset is client-go's typed client.
	Clientset kubernetes.Interface
	Scheme    *runtime.Scheme
	// KubeconfigPath is an administrator kubeconfig for kubectl, corsmeshctl and friends.
	KubeconfigPath string
	// RepoRoot is the corsmesh checkout, AssetsDir the control plane binaries.
	RepoRoot  string
	AssetsDir string
	// WorkDir holds the kubeconfig, the webhook's cert dir and the logs; removed by Stop.
	WorkDir string

	// WebhookPort and WebhookCertDir are set when Options.Webhook: the webhook serves on
	// 127.0.0.1:WebhookPort with the files in WebhookCertDir (kept in sync with Secret
	// corsmesh-webhook-tls, laid out like a kubelet-mounted Secret volume).
	WebhookPort    int
	WebhookCertDir string

	opts   Options
	logger logr.Logger
	env    *envtest.Environment
	// ctx lives until Stop: background work (cert-manager, cert sync, the webhook) runs in it.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	cleanups []cleanup
	webhook  *runningWebhook
	stopped  bool

	node *node // with Options.Node
}

type cleanup struct {
	name string
	fn   func() error
}

// Start starts a sandbox. On error everything started so far is stopped again. ctx bounds
// the start only; the sandbox runs until Stop.
func Start(ctx context.Context, opts Options) (_ *Sandbox, err error) {
	started := time.Now()
	if opts.Log == nil {
		opts.Log = func(string, ...any) {}
	}
	if opts.Logger.GetSink() == nil {
		opts.Logger = logr.Discard()
		if os.Getenv("SANDBOX_LOG") == "1" {
			opts.Logger = zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr))
		}
	}
	if os.Getenv("SANDBOX_KEEP_WORKDIR") == "1" {
		opts.KeepWorkDir = true
	}
	if opts.WebhookPort == 0 {
		opts.WebhookPort = DefaultWebhookPort
	}
	if opts.ClusterResourceNamespace == "" {
		opts.ClusterResourceNamespace = "cert-manager"
	}
	// cainjector's reconcilers, and the webhook's manager, log through controller-runtime's
	// global logger; it complains loudly when nothing was ever set.
	ctrllog.SetLogger(opts.Logger)

	s := &Sandbox{opts: opts, logger: opts.Logger}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			if stopErr := s.Stop(); stopErr != nil {
				err = fmt.Errorf("%w (and stopping what was started: %v)", err, stopErr)
			}
		}
	}()

	if s.RepoRoot = opts.RepoRoot; s.RepoRoot == "" {
		if s.RepoRoot, err = FindRepoRoot(); err != nil {
			return nil, err
		}
	}
	if s.AssetsDir, err = FindAssets(opts.AssetsDir, s.RepoRoot); err != nil {
		return nil, err
	}
	cmCRDs, err := CertManagerCRDDir(s.RepoRoot)
	if err != nil {
		return nil, err
	}
	if s.WorkDir, err = os.MkdirTemp("", "corsmesh-sandbox-"); err != nil {
		return nil, err
	}
	s.addCleanup("work dir", func() error {
		if s.opts.KeepWorkDir {
			fmt.Fprintf(os.Stderr, "sandbox: keeping %s\n", s.WorkDir)
			return nil
		}
		return os.RemoveAll(s.WorkDir)
	})

	if s.Scheme, err = newScheme(); err != nil {
		return nil, err
	}
	if opts.Node {
		if err := s.setUpNode(ctx); err != nil {
			return nil, err
		}
	}
	if err := s.startAPIServer(cmCRDs); err != nil {
		return nil, err
	}
	if err := s.startControllerManager(ctx, s.env, s.output("kube-controller-manager")); err != nil {
		return nil, err
	}
	if opts.Node {
		if err := s.startNode(ctx); err != nil {
			return nil, err
		}
	}
	if err := s.CreateNamespace(ctx, opts.ClusterResourceNamespace, nil, nil); err != nil {
		return nil, fmt.Errorf("creating namespace %s: %w", opts.ClusterResourceNamespace, err)
	}

	s.logf("starting cert-manager (%d controllers, cainjector)", len(CertManagerControllers))
	cmUser, err := s.env.AddUser(envtest.User{Name: "cert-manager", Groups: []string{"system:masters"}}, &rest.Config{QPS: 100, Burst: 200})
	if err != nil {
		return nil, fmt.Errorf("provisioning the cert-manager user: %w", err)
	}
	cmKubeconfig, err := s.writeKubeconfig("cert-manager.kubeconfig", cmUser.Config())
	if err != nil {
		return nil, err
	}
	cm, err := startCertManager(s.ctx, cmKubeconfig, cmUser.Config(), opts.Logger, opts.ClusterResourceNamespace)
	if err != nil {
		return nil, err
	}
	s.addCleanup("cert-manager", cm.stop)

	if opts.Webhook {
		if err := s.installWebhook(ctx); err != nil {
			return nil, err
		}
		if opts.PluginPolicy {
			if err := s.SetPluginPolicy(ctx, true); err != nil {
				return nil, err
			}
		}
		if err := s.StartWebhook(ctx); err != nil {
			return nil, err
		}
	}
	s.logf("sandbox ready in %s (kubeconfig %s)", time.Since(started).Round(100*time.Millisecond), s.KubeconfigPath)
	return s, nil
}

func newScheme() (*runtime.Scheme, error) {
	scheme, err := kubecluster.Scheme()
	if err != nil {
		return nil, err
	}
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	utilruntime.Must(cmscheme.AddToScheme(scheme))
	return scheme, nil
}

// startAPIServer starts etcd and kube-apiserver with envtest and installs the CRDs.
func (s *Sandbox) startAPIServer(certManagerCRDs string) error {
	env := &envtest.Environment{
		Scheme:                s.Scheme,
		CRDDirectoryPaths:     []string{filepath.Join(s.RepoRoot, "manifests", "crd"), certManagerCRDs},
		ErrorIfCRDPathMissing: true,
		// Generous: the first start on a cold, busy 2-core machine is slow.
		ControlPlaneStartTimeout: 60 * time.Second,
		ControlPlaneStopTimeout:  20 * time.Second,
	}
	env.ControlPlane.Etcd = &envtest.Etcd{Path: filepath.Join(s.AssetsDir, "etcd"), Out: s.output("etcd"), Err: s.output("etcd")}
	env.ControlPlane.KubectlPath = filepath.Join(s.AssetsDir, "kubectl")
	apiserver := env.ControlPlane.GetAPIServer()
	apiserver.Path = filepath.Join(s.AssetsDir, "kube-apiserver")
	apiserver.Out, apiserver.Err = s.output("kube-apiserver"), s.output("kube-apiserver")
	args := apiserver.Configure()
	// envtest disables the ServiceAccount admission plugin because it runs no controller
	// manager; the sandbox does, and pods naming a serviceAccountName must be checked
	// and get their token volume as in a cluster. Not passing the flag keeps every
	// default admission plugin (ServiceAccount, PodSecurity, the webhooks, ...).
	args.Disable("disable-admission-plugins")
	if s.node != nil {
		if err := s.configureAPIServerForNode(apiserver); err != nil {
			return err
		}
	}

	s.logf("starting etcd and kube-apiserver (%s)", s.AssetsDir)
	s.env = env
	cfg, err := env.Start()
	// envtest stops what it started when the control plane itself fails; after that (CRD
	// installation) it is ours to stop.
	if cfg != nil || err == nil {
		s.addCleanup("etcd and kube-apiserver", env.Stop)
	}
	if err != nil {
		return fmt.Errorf("starting etcd and kube-apiserver: %w%s%s", err, s.logTail("kube-apiserver"), s.logTail("etcd"))
	}
	dirs := []string{env.ControlPlane.Etcd.DataDir, apiserver.CertDir}
	// With a node, its watchdog removes WorkDir after it has cleaned up the containers
	// whose runc state lives there.
	if !s.opts.KeepWorkDir && s.node == nil {
		dirs = append(dirs, s.WorkDir)
	}
	if err := s.startWatchdog(childrenRunning(s.AssetsDir), dirs); err != nil {
		return err
	}
	s.RestConfig = rest.CopyConfig(cfg)
	if s.Client, err = client.New(s.RestConfig, client.Options{Scheme: s.Scheme}); err != nil {
		return err
	}
	if s.Clientset, err = kubernetes.NewForConfig(s.RestConfig); err != nil {
		return err
	}
	if s.KubeconfigPath, err = s.writeKubeconfig("kubeconfig", s.RestConfig); err != nil {
		return err
	}
	return nil
}

func (s *Sandbox) writeKubeconfig(name string, cfg *rest.Config) (string, error) {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["corsmesh-sandbox"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["corsmesh-sandbox"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["corsmesh-sandbox"] = &clientcmdapi.Context{Cluster: "corsmesh-sandbox", AuthInfo: "corsmesh-sandbox", Namespace: "default"}
	kc.CurrentContext = "corsmesh-sandbox"
	data, err := clientcmd.Write(*kc)
	if err != nil {
		return "", err
	}
	path := filepath.Join(s.WorkDir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// output is where a control plane process writes.
func (s *Sandbox) output(name string) io.Writer {
	if s.opts.ControlPlaneOutput != nil {
		return s.opts.ControlPlaneOutput
	}
	f, err := os.OpenFile(s.logPath(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return io.Discard
	}
	s.addCleanup(name+" log", f.Close)
	return f
}

func (s *Sandbox) logPath(name string) string {
	return filepath.Join(s.WorkDir, name+".log")
}

// logTail is the end of a process's log file, to quote in an error (the file goes with
// WorkDir).
func (s *Sandbox) logTail(name string) string {
	if s.opts.ControlPlaneOutput != nil {
		return ""
	}
	data, err := os.ReadFile(s.logPath(name))
	if err != nil || len(data) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return fmt.Sprintf("\n--- last lines of %s's output (SANDBOX_KEEP_WORKDIR=1 keeps it all) ---\n%s", name, strings.Join(lines, "\n"))
}

func (s *Sandbox) logf(format string, args ...any) {
	s.opts.Log("sandbox: "+format, args...)
}

func (s *Sandbox) addCleanup(name string, fn func() error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, cleanup{name, fn})
}

// Stop stops everything Start started, in reverse order, and removes WorkDir. It is safe
// to call more than once.
func (s *Sandbox) Stop() error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	s.mu.Unlock()

	var errs []error
	if err := s.StopWebhook(); err != nil {
		errs = append(errs, fmt.Errorf("webhook: %w", err))
	}
	s.cancel()
	s.mu.Lock()
	cleanups := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		c := cleanups[i]
		if err := c.fn(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
		}
	}
	s.logf("stopped")
	return errors.Join(errs...)
}
