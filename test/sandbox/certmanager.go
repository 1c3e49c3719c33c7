package sandbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	cmscheme "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned/scheme"
	cmcontroller "github.com/cert-manager/cert-manager/pkg/controller"
	"github.com/cert-manager/cert-manager/pkg/controller/cainjector"
	crapprover "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	crca "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	crselfsigned "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	"github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	"github.com/cert-manager/cert-manager/pkg/controller/issuers"
	logf "github.com/cert-manager/cert-manager/pkg/logs"

	// The Issuer and ClusterIssuer controllers find issuer implementations in a registry;
	// these two register the self-signed and CA ones.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

// CertManagerControllers are the cert-manager controllers the sandbox runs, by their
// registered names: what a self-signed or CA issued Certificate needs, from the request
// to the Ready Secret and its renewal, and nothing for ACME, Vault, Venafi, ingress or
// Gateway API. The approver is in the list because every issuer waits for a
// CertificateRequest to be Approved, and with no policy plugin cert-manager's own
// approver is what approves them (as in a default installation).
var CertManagerControllers = []string{
	issuers.ControllerName,         // Issuer status (self-signed, CA)
	clusterissuers.ControllerName,  // ClusterIssuer status
	crapprover.ControllerName,      // CertificateRequest Approved condition
	crselfsigned.CRControllerName,  // signs requests of self-signed issuers
	crca.CRControllerName,          // signs requests of CA issuers
	trigger.ControllerName,         // Issuing condition: new, changed, expiring
	keymanager.ControllerName,      // next private key Secret
	requestmanager.ControllerName,  // CertificateRequest for the next revision
	issuing.ControllerName,         // writes the issued certificate into the Secret
	readiness.ControllerName,       // Ready condition, notBefore/notAfter/renewalTime
	revisionmanager.ControllerName, // garbage-collects old CertificateRequests
}

// certManager is cert-manager running in this process.
type certManager struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error
}

func (cm *certManager) run(name string, fn func() error) {
	cm.wg.Add(1)
	go func() {
		defer cm.wg.Done()
		if err := fn(); err != nil && !errors.Is(err, context.Canceled) {
			cm.mu.Lock()
			cm.errs = append(cm.errs, fmt.Errorf("%s: %w", name, err))
			cm.mu.Unlock()
		}
	}()
}

func (cm *certManager) stop() error {
	cm.cancel()
	cm.wg.Wait()
	cm.mu.Lock()
	defer cm.mu.Unlock()
	return errors.Join(cm.errs...)
}

// startCertManager runs cert-manager's controllers and cainjector in-process.
//
// The controllers are built the way cert-manager's controller binary builds them: one
// controller.ContextFactory (clients, shared informer factories, metrics) from a
// kubeconfig, and each registered constructor from controller.Known() called with it;
// then the shared informer factories are started and each controller runs until the
// context ends. cainjector is a controller-runtime manager with cainjector's reconcilers
// for Mutating/ValidatingWebhookConfigurations and CRDs, reading CAs from Certificates'
// Secrets (the cert-manager.io/inject-ca-from annotation).
func startCertManager(parent context.Context, kubeconfigPath string, restConfig *rest.Config, log logr.Logger, clusterResourceNamespace string) (*certManager, error) {
	ctx, cancel := context.WithCancel(logf.NewContext(parent, log.WithName("cert-manager")))
	cm := &certManager{cancel: cancel}
	ok := false
	defer func() {
		if !ok {
			_ = cm.stop()
		}
	}()

	factory, err := cmcontroller.NewContextFactory(ctx, cmcontroller.ContextOptions{
		Kubeconfig:         kubeconfigPath,
		KubernetesAPIQPS:   100,
		KubernetesAPIBurst: 200,
		IssuerOptions: cmcontroller.IssuerOptions{
			ClusterResourceNamespace: clusterResourceNamespace,
		},
		CertificateOptions: cmcontroller.CertificateOptions{
			// cert-manager's defaults.
			CopiedAnnotationPrefixes: []string{"*", "-kubectl.kubernetes.io/", "-fluxcd.io/", "-argocd.argoproj.io/"},
			// A failed request is retried after 1h by default (32h at most): far too long
			// for a test, which would rather see the retry.
			CertificateRequestMinimumBackoffDuration: 5 * time.Second,
			CertificateRequestMaximumBackoffDuration: time.Minute,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("building cert-manager's controller context: %w", err)
	}
	base, err := factory.Build()
	if err != nil {
		return nil, fmt.Errorf("building cert-manager's controller context: %w", err)
	}
	known := cmcontroller.Known()
	controllers := make(map[string]cmcontroller.Interface, len(CertManagerControllers))
	for _, name := range CertManagerControllers {
		construct, found := known[name]
		if !found {
			return nil, fmt.Errorf("cert-manager controller %q is not registered", name)
		}
		c, err := construct(factory)
		if err != nil {
			return nil, fmt.Errorf("constructing cert-manager controller %s: %w", name, err)
		}
		controllers[name] = c
	}
	// The constructors asked the shared factories for the informers they need; start them.
	base.SharedInformerFactory.Start(ctx.Done())
	base.KubeSharedInformerFactory.Start(ctx.Done())
	base.HTTP01ResourceMetadataInformersFactory.Start(ctx.Done())
	cm.wg.Add(1)
	go func() {
		defer cm.wg.Done()
		<-ctx.Done()
		base.SharedInformerFactory.Shutdown()
		base.KubeSharedInformerFactory.Shutdown()
		base.HTTP01ResourceMetadataInformersFactory.Shutdown()
	}()
	for name, c := range controllers {
		cm.run(name, func() error { return c.Run(2, ctx) })
	}

	mgr, err := newCAInjector(ctx, restConfig, log.WithName("cainjector"))
	if err != nil {
		return nil, err
	}
	cm.run("cainjector", func() error { return mgr.Start(ctx) })
	ok = true
	return cm, nil
}

func newCAInjector(ctx context.Context, restConfig *rest.Config, log logr.Logger) (ctrl.Manager, error) {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(cmscheme.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	utilruntime.Must(admissionregistrationv1.AddToScheme(scheme))

	cfg := rest.CopyConfig(restConfig)
	cfg.UserAgent = "cert-manager-cainjector"
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme,
		Logger: log,
		Cache:  cache.Options{ReaderFailOnMissingInformer: true},
		// As cainjector does: Secrets are read directly, never cached whole.
		Client:                 client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		LeaderElection:         false,
		// Controller names must be unique per process; another sandbox in the same test
		// binary registers the same ones.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return nil, fmt.Errorf("creating cainjector's manager: %w", err)
	}
	err = cainjector.RegisterAllInjectors(ctx, mgr, cainjector.SetupOptions{
		EnableCertificatesDataSource: true,
		EnabledReconcilersFor: map[string]bool{
			cainjector.MutatingWebhookConfigurationName:   true,
			cainjector.ValidatingWebhookConfigurationName: true,
			cainjector.CustomResourceDefinitionName:       true,
			cainjector.APIServiceName:                     false, // no aggregated APIs here
		},
	})
	if err != nil {
		return nil, fmt.Errorf("registering cainjector's reconcilers: %w", err)
	}
	return mgr, nil
}
