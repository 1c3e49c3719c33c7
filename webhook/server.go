// Package webhook wires corsmesh's control plane into one controller-runtime manager: the
// admission handlers (package admit), the controllers that keep injected pods and policy
// statuses current (package controllers), and the informers they all read through one
// injector.Resolver (package informers).
package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/corsmesh/corsmesh/injector"
	configv1alpha2 "github.com/corsmesh/corsmesh/injector/api/config/v1alpha2"
	"github.com/corsmesh/corsmesh/injector/kubecluster"
	"github.com/corsmesh/corsmesh/webhook/admit"
	"github.com/corsmesh/corsmesh/webhook/controllers"
	"github.com/corsmesh/corsmesh/webhook/informers"
	"github.com/corsmesh/corsmesh/webhook/slim"
)

// Paths the webhook configurations point at.
const (
	PathMutatePods       = "/mutate-pods"
	PathValidatePolicies = "/validate-policies"
)

// nativeSidecarsSince is the first Kubernetes minor with native sidecars on by default.
var nativeSidecarsSince = version.MajorMinor(1, 29)

// Options configure a Server.
type Options struct {
	// CertDir holds tls.crt and tls.key (cert-manager's Secret, mounted); they are
	// reloaded when they change.
	CertDir string
	Host    string
	Port    int
	// MetricsAddr and HealthAddr are the metrics and probe listen addresses ("0" disables).
	MetricsAddr string
	HealthAddr  string
	// PprofAddr serves net/http/pprof when set (off by default: it exposes internals).
	PprofAddr string
	// EnableHTTP2 offers HTTP/2 on the admission port besides HTTP/1.1 (see admissionTLS).
	EnableHTTP2 bool

	// LeaderElection guards the controllers; admission is served by every replica.
	LeaderElection          bool
	LeaderElectionNamespace string
	LeaderElectionID        string

	Injector injector.Options
	// NativeSidecars overrides detection from the API server's version (nil: detect).
	NativeSidecars *bool
	// DrainPeriod keeps admission served this long after Start's context ends, each answer
	// closing its connection, before the server stops (see drain). 0: stop at once.
	DrainPeriod time.Duration
	// Registerer receives the webhook's metrics (default: controller-runtime's registry,
	// which the metrics endpoint serves).
	Registerer prometheus.Registerer
	Log        logr.Logger
}

// admissionTLS sets the admission server's TLS: 1.2 at least, and HTTP/1.1 only unless
// enableHTTP2. The API server calls a Service webhook over HTTP/1.1 whatever the server
// offers (so that replicas share the load; kubernetes/kubernetes#75791), so HTTP/2 would
// serve only other clients of the port, and with it the HTTP/2 rapid reset attack
// (CVE-2023-44487). It also costs more: a Go HTTPS server used about half again the CPU
// per request over HTTP/2 on this project's test machine, which a webhook called by URL on
// loopback (the only case where the API server does use HTTP/2) would pay.
func admissionTLS(enableHTTP2 bool) func(*tls.Config) {
	return func(c *tls.Config) {
		c.MinVersion = tls.VersionTLS12
		if !enableHTTP2 {
			c.NextProtos = []string{"http/1.1"}
		}
	}
}

// Server is the webhook: admission handlers and controllers in one controller-runtime
// manager.
type Server struct {
	mgr      manager.Manager
	Resolver *injector.Resolver
	Cluster  *informers.InformerCluster
	// Services holds the Services of the namespaces the mesh monitors, Pods their pods,
	// ReplicaSets their ReplicaSets' metadata.
	Services    *informers.NamespacedInformer
	Pods        *informers.NamespacedInformer
	ReplicaSets *informers.NamespacedInformer
	Metrics     *admit.Metrics

	drain *drain
	log   logr.Logger
}

// New builds a Server against the API server of cfg. Start runs it.
func New(ctx context.Context, cfg *rest.Config, opts Options) (*Server, error) {
	if opts.Registerer == nil {
		opts.Registerer = crmetrics.Registry
	}
	log := opts.Log
	scheme, err := kubecluster.Scheme()
	if err != nil {
		return nil, fmt.Errorf("building scheme: %w", err)
	}
	native, err := detectNativeSidecars(cfg, opts.NativeSidecars)
	if err != nil {
		return nil, err
	}
	opts.Injector.NativeSidecars = native
	log.Info("injection settings", "nativeSidecars", native, "mesh", opts.Injector.MeshName, "ownNamespace", opts.Injector.OwnNamespace)

	hookServer := crwebhook.NewServer(crwebhook.Options{
		Host:    opts.Host,
		Port:    opts.Port,
		CertDir: opts.CertDir,
		TLSOpts: []func(*tls.Config){admissionTLS(opts.EnableHTTP2)},
	})
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Logger:                        log,
		WebhookServer:                 hookServer,
		Metrics:                       metricsserver.Options{BindAddress: opts.MetricsAddr},
		HealthProbeBindAddress:        opts.HealthAddr,
		PprofBindAddress:              opts.PprofAddr,
		LeaderElection:                opts.LeaderElection,
		LeaderElectionNamespace:       opts.LeaderElectionNamespace,
		LeaderElectionID:              opts.LeaderElectionID,
		LeaderElectionReleaseOnCancel: true,
		Cache:                         cacheOptions(opts.Injector.OwnNamespace),
		// Pods and ReplicaSets are cached per monitored namespace (Pods, ReplicaSets) and
		// read live elsewhere: a read through the client must not start the cache's
		// informer of every pod or ReplicaSet (as metadata too: the kind is the same).
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Pod{}, &appsv1.ReplicaSet{}}}},
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	// The manager runs its webhook server only once GetWebhookServer has been called (that
	// call adds it as a runnable); registering handlers on hookServer alone never serves.
	hookServer = mgr.GetWebhookServer()
	// Getting the informers now starts them with the manager rather than at the first
	// admission, which would otherwise wait for a full list of every PluginChain.
	core, err := coreClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return nil, err
	}
	leanPods, err := PodsClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return nil, err
	}
	services, err := monitoredServices(mgr, core)
	if err != nil {
		return nil, err
	}
	resolver, cluster, err := informers.NewResolver(ctx, mgr.GetCache(), mgr.GetAPIReader(), injector.New(opts.Injector), services)
	if err != nil {
		return nil, err
	}
	pods, err := monitoredPods(ctx, mgr, leanPods, opts.Injector)
	if err != nil {
		return nil, err
	}
	replicaSets, err := monitoredReplicaSets(ctx, mgr, opts.Injector)
	if err != nil {
		return nil, err
	}
	metrics, err := admit.NewMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("registering metrics: %w", err)
	}
	s := &Server{
		mgr:         mgr,
		Resolver:    resolver,
		Cluster:     cluster,
		Services:    services,
		Pods:        pods,
		ReplicaSets: replicaSets,
		Metrics:     metrics,
		drain:       &drain{period: opts.DrainPeriod},
		log:         log,
	}
	hookServer.Register(PathMutatePods, s.drain.wrap(admit.NewHandler(&admit.PodMutator{
		Resolver: resolver, Live: admit.NewLive(mgr.GetAPIReader(), resolver.Injector()),
		Events: mgr.GetEventRecorder("corsmesh-webhook"), Metrics: metrics, Log: log.WithName("mutate-pods"),
	}, metrics, log.WithName("mutate-pods"))))
	hookServer.Register(PathValidatePolicies, s.drain.wrap(admit.NewHandler(&admit.PolicyValidator{
		Resolver: resolver, Log: log.WithName("validate-policies"),
	}, metrics, log.WithName("validate-policies"))))

	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	for name, check := range map[string]healthz.Checker{
		"webhook":     hookServer.StartedChecker(),
		"certificate": certificateChecker(opts.CertDir),
		"cache":       cacheSyncedChecker(mgr.GetCache(), services),
	} {
		if err := mgr.AddReadyzCheck(name, check); err != nil {
			return nil, err
		}
	}
	if err := controllers.Setup(ctx, mgr, resolver, services, pods, replicaSets, log); err != nil {
		return nil, fmt.Errorf("setting up controllers: %w", err)
	}
	return s, nil
}

// cacheOptions keep of each object the cache holds only what is read (package slim).
func cacheOptions(ownNamespace string) cache.Options {
	byObject := slim.ByObject()
	// The one MeshConfig read is in the webhook's namespace, where its Role lets it read
	// MeshConfigs.
	byObject[&configv1alpha2.MeshConfig{}] = cache.ByObject{Namespaces: map[string]cache.Config{ownNamespace: {}}}
	return cache.Options{
		// Managed fields are a large part of every object and nothing here reads them.
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject:         byObject,
	}
}

// coreClient is the REST client of the core group that the per-namespace informers list
// and watch through. It asks for protobuf, as controller-runtime's cache does for built-in
// kinds: decoding each pod event as JSON was a third of the webhook's CPU per injected pod
// (hack/bench/webhook's profile). Only the core group's client: through kubernetes.Interface
// every typed client's methods would be linked in, 1 MB more binary.
func coreClient(cfg *rest.Config, hc *http.Client) (rest.Interface, error) {
	return coreRESTClient(cfg, hc, coreCodecs())
}

// PodsClient is coreClient decoding pods lean (slim.LeanPods): of each pod it lists and
// of each watch event, only what slim.Pod keeps is decoded. Decoding whole pods, only for
// slim.Pod to drop all but a few fields, was a sixth of the webhook's CPU per injected pod,
// and the kubelet's status updates send each pod several times. The client the pods'
// informer lists and watches through, and for nothing else: anything reading a whole pod
// must not use it.
func PodsClient(cfg *rest.Config, hc *http.Client) (rest.Interface, error) {
	return coreRESTClient(cfg, hc, slim.LeanPods(coreCodecs()))
}

// coreCodecs are the serializers client-go's generated core client uses.
func coreCodecs() runtime.NegotiatedSerializer {
	return rest.CodecFactoryForGeneratedClient(scheme.Scheme, scheme.Codecs).WithoutConversion()
}

// coreRESTClient is the core group's REST client as client-go's generated one is
// configured, with serializers ns, asking for protobuf.
func coreRESTClient(cfg *rest.Config, hc *http.Client, ns runtime.NegotiatedSerializer) (rest.Interface, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	gv := corev1.SchemeGroupVersion
	cfg.GroupVersion, cfg.APIPath, cfg.NegotiatedSerializer = &gv, "/api", ns
	if cfg.UserAgent == "" {
		cfg.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	c, err := rest.RESTClientForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("creating the core group's client: %w", err)
	}
	return c, nil
}

// monitoredServices is the informer of the Services of the namespaces the mesh monitors,
// run by the manager: only a monitored namespace's Services decide anything but whether a
// PluginConfig names an existing one (read live then). NewResolver has it follow the
// namespaces.
func monitoredServices(mgr manager.Manager, core rest.Interface) (*informers.NamespacedInformer, error) {
	services := informers.NewNamespacedInformer(informers.NamespacedOptions{
		ListWatch: func(namespace string) toolscache.ListerWatcher {
			return toolscache.NewListWatchFromClient(core, "services", namespace, fields.Everything())
		},
		Example:   &corev1.Service{},
		Transform: slim.Service,
	})
	if err := mgr.Add(services); err != nil {
		return nil, fmt.Errorf("adding the Services' informers: %w", err)
	}
	return services, nil
}

// monitoredPods is the informer of the pods of the namespaces the mesh monitors, run by
// the manager on the leader: only the controllers read pods (admission is handed its pod),
// and of those outside the mesh only the injected ones of a namespace that left it, which
// config sync lists live. Its client decodes pods lean (PodsClient): slim.Pod, the
// transform, then copies what it already holds.
func monitoredPods(ctx context.Context, mgr manager.Manager, pods rest.Interface, in injector.Options) (*informers.NamespacedInformer, error) {
	return followedOnLeader(ctx, mgr, in, "pods", informers.NamespacedOptions{
		ListWatch: func(namespace string) toolscache.ListerWatcher {
			return toolscache.NewListWatchFromClient(pods, "pods", namespace, fields.Everything())
		},
		Example:   &corev1.Pod{},
		Transform: slim.Pod,
	})
}

// monitoredReplicaSets is the informer of the ReplicaSets' metadata of the namespaces the
// mesh monitors, on the leader: the PluginChain controller follows a pod without its
// sidecar to its Deployment through them, and asks only of monitored namespaces' pods.
// A watch rather than a GET per ReplicaSet and reconcile: a chain is reconciled about
// once a second while its pods change, and the ReplicaSets it reads are those of the
// Deployments rolling then.
func monitoredReplicaSets(ctx context.Context, mgr manager.Manager, in injector.Options) (*informers.NamespacedInformer, error) {
	md, err := metadata.NewForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return nil, fmt.Errorf("creating the metadata client: %w", err)
	}
	replicaSets := md.Resource(appsv1.SchemeGroupVersion.WithResource("replicasets"))
	return followedOnLeader(ctx, mgr, in, "ReplicaSets", informers.NamespacedOptions{
		ListWatch: func(namespace string) toolscache.ListerWatcher {
			return &toolscache.ListWatch{
				ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
					return replicaSets.Namespace(namespace).List(ctx, opts)
				},
				WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
					return replicaSets.Namespace(namespace).Watch(ctx, opts)
				},
			}
		},
		Example:   &metav1.PartialObjectMetadata{},
		Transform: slim.ReplicaSetMetadata,
	})
}

// followedOnLeader runs, on the leader, a NamespacedInformer of opts following the
// namespaces the mesh monitors (what names the objects, in errors).
func followedOnLeader(ctx context.Context, mgr manager.Manager, in injector.Options, what string, opts informers.NamespacedOptions) (*informers.NamespacedInformer, error) {
	opts.LeaderElected = true
	inf := informers.NewNamespacedInformer(opts)
	namespaces, err := mgr.GetCache().GetInformer(ctx, &corev1.Namespace{})
	if err != nil {
		return nil, fmt.Errorf("informer for namespaces: %w", err)
	}
	if err := inf.FollowNamespaces(namespaces, in.Monitors); err != nil {
		return nil, err
	}
	if err := mgr.Add(inf); err != nil {
		return nil, fmt.Errorf("adding the %s' informers: %w", what, err)
	}
	return inf, nil
}

// Start runs the webhook and the controllers until ctx ends and the drain period after it
// has passed.
func (s *Server) Start(ctx context.Context) error {
	ctx, cancel := s.drain.context(ctx, s.log)
	defer cancel()
	return s.mgr.Start(ctx)
}

// Manager exposes the controller-runtime manager (tests wait on its cache).
func (s *Server) Manager() manager.Manager { return s.mgr }

func detectNativeSidecars(cfg *rest.Config, override *bool) (bool, error) {
	if override != nil {
		return *override, nil
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return false, fmt.Errorf("creating discovery client: %w", err)
	}
	info, err := dc.ServerVersion()
	if err != nil {
		return false, fmt.Errorf("reading the API server's version: %w", err)
	}
	v, err := version.ParseGeneric(info.GitVersion)
	if err != nil {
		return false, fmt.Errorf("parsing API server version %q: %w", info.GitVersion, err)
	}
	return v.AtLeast(nativeSidecarsSince), nil
}

// certificateChecker is ready while the serving certificate on disk parses and is within
// its validity period: a replica with an expired certificate fails every admission.
func certificateChecker(dir string) healthz.Checker {
	return func(*http.Request) error {
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
		if err != nil {
			return fmt.Errorf("loading serving certificate: %w", err)
		}
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			return fmt.Errorf("parsing serving certificate: %w", err)
		}
		if now := time.Now(); now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
			return fmt.Errorf("serving certificate valid %s to %s, not now", leaf.NotBefore.Format(time.RFC3339), leaf.NotAfter.Format(time.RFC3339))
		}
		return nil
	}
}

func cacheSyncedChecker(c cache.Cache, services cache.Informer) healthz.Checker {
	return func(r *http.Request) error {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if !c.WaitForCacheSync(ctx) {
			return errors.New("informer caches not synced")
		}
		if !services.HasSynced() {
			return errors.New("the Services of the monitored namespaces not synced")
		}
		return nil
	}
}
