package sandbox

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
	"github.com/corsmesh/corsmesh/webhook"
)

// Names in manifests/base that the sandbox waits on.
const (
	WebhookNamespace                   = "corsmesh-system"
	WebhookCertificate                 = "corsmesh-webhook-cert"
	WebhookSecret                      = "corsmesh-webhook-tls"
	MutatingWebhookConfigurationName   = "corsmesh-webhook"
	ValidatingWebhookConfigurationName = "corsmesh-policies"

	// LocalOverlay is the kustomization the sandbox installs.
	LocalOverlay = "manifests/overlays/local"
	// localOverlayAddress is the webhook address the local overlay renders.
	localOverlayAddress = "127.0.0.1:19443"
)

// runningWebhook is the webhook running in-process.
type runningWebhook struct {
	server     *webhook.Server
	cancel     context.CancelFunc
	done       chan struct{}
	err        error
	healthAddr string
}

// RenderLocalOverlay renders manifests/overlays/local with the webhook address changed to
// 127.0.0.1:port.
func (s *Sandbox) RenderLocalOverlay(ctx context.Context, port int) ([]byte, error) {
	rendered, err := s.Kustomize(ctx, LocalOverlay)
	if err != nil {
		return nil, err
	}
	if !bytes.Contains(rendered, []byte(localOverlayAddress)) {
		return nil, fmt.Errorf("%s renders no %s: the sandbox cannot point the webhook configurations at its port", LocalOverlay, localOverlayAddress)
	}
	return bytes.ReplaceAll(rendered, []byte(localOverlayAddress), []byte("127.0.0.1:"+strconv.Itoa(port))), nil
}

// installWebhook applies the local overlay, waits for cert-manager to issue the serving
// certificate and cainjector to inject its CA into both webhook configurations, and keeps
// WebhookCertDir in sync with the Secret.
func (s *Sandbox) installWebhook(ctx context.Context) error {
	s.WebhookPort = s.opts.WebhookPort
	s.WebhookCertDir = filepath.Join(s.WorkDir, "webhook-tls")
	rendered, err := s.RenderLocalOverlay(ctx, s.WebhookPort)
	if err != nil {
		return err
	}
	s.logf("applying %s (webhook at 127.0.0.1:%d)", LocalOverlay, s.WebhookPort)
	if _, err := s.Apply(ctx, rendered, ApplyOptions{}); err != nil {
		return fmt.Errorf("installing %s: %w", LocalOverlay, err)
	}

	s.logf("waiting for cert-manager to issue Secret %s/%s and inject its CA", WebhookNamespace, WebhookSecret)
	var secret corev1.Secret
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := s.Client.Get(ctx, types.NamespacedName{Namespace: WebhookNamespace, Name: WebhookSecret}, &secret); err != nil {
			return false, nil
		}
		if len(secret.Data[corev1.TLSCertKey]) == 0 || len(secret.Data[corev1.TLSPrivateKeyKey]) == 0 || len(secret.Data["ca.crt"]) == 0 {
			return false, nil
		}
		return s.caBundlesInjected(ctx, secret.Data["ca.crt"])
	})
	if err != nil {
		return fmt.Errorf("waiting for the webhook's certificate (Certificate %s/%s, Secret %s, caBundle of %s and %s): %w",
			WebhookNamespace, WebhookCertificate, WebhookSecret, MutatingWebhookConfigurationName, ValidatingWebhookConfigurationName, err)
	}
	if err := writeServingCert(s.WebhookCertDir, &secret); err != nil {
		return err
	}
	return s.syncCertDir()
}

// caBundlesInjected reports whether both webhook configurations trust ca.
func (s *Sandbox) caBundlesInjected(ctx context.Context, ca []byte) (bool, error) {
	var m admissionregistrationv1.MutatingWebhookConfiguration
	if err := s.Client.Get(ctx, types.NamespacedName{Name: MutatingWebhookConfigurationName}, &m); err != nil {
		return false, nil
	}
	for _, w := range m.Webhooks {
		if !bytes.Equal(w.ClientConfig.CABundle, ca) {
			return false, nil
		}
	}
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	if err := s.Client.Get(ctx, types.NamespacedName{Name: ValidatingWebhookConfigurationName}, &v); err != nil {
		return false, nil
	}
	for _, w := range v.Webhooks {
		if !bytes.Equal(w.ClientConfig.CABundle, ca) {
			return false, nil
		}
	}
	return true, nil
}

func writeServingCert(dir string, secret *corev1.Secret) error {
	files := map[string][]byte{
		corev1.TLSCertKey:       secret.Data[corev1.TLSCertKey],
		corev1.TLSPrivateKeyKey: secret.Data[corev1.TLSPrivateKeyKey],
	}
	if ca := secret.Data["ca.crt"]; len(ca) > 0 {
		files["ca.crt"] = ca
	}
	if err := writeVolume(dir, files); err != nil {
		return fmt.Errorf("writing the serving certificate to %s: %w", dir, err)
	}
	return nil
}

// syncCertDir rewrites WebhookCertDir whenever cert-manager reissues the Secret, as the
// kubelet does for a mounted Secret (only faster: it watches instead of syncing every
// minute or so).
func (s *Sandbox) syncCertDir() error {
	selector := fields.OneTermEqualSelector("metadata.name", WebhookSecret).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = selector
			return s.Clientset.CoreV1().Secrets(WebhookNamespace).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = selector
			return s.Clientset.CoreV1().Secrets(WebhookNamespace).Watch(ctx, o)
		},
	}
	_, informer := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: lw,
		ObjectType:    &corev1.Secret{},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { s.onSecret(obj) },
			UpdateFunc: func(_, obj any) { s.onSecret(obj) },
		},
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		informer.RunWithContext(s.ctx)
	}()
	s.addCleanup("webhook cert sync", func() error { <-done; return nil })
	return nil
}

func (s *Sandbox) onSecret(obj any) {
	secret, ok := obj.(*corev1.Secret)
	if !ok || len(secret.Data[corev1.TLSCertKey]) == 0 || len(secret.Data[corev1.TLSPrivateKeyKey]) == 0 {
		return
	}
	current, err := os.ReadFile(filepath.Join(s.WebhookCertDir, corev1.TLSCertKey))
	if err == nil && bytes.Equal(current, secret.Data[corev1.TLSCertKey]) {
		if key, err := os.ReadFile(filepath.Join(s.WebhookCertDir, corev1.TLSPrivateKeyKey)); err == nil && bytes.Equal(key, secret.Data[corev1.TLSPrivateKeyKey]) {
			return
		}
	}
	// cert-manager writes the key and the certificate in one update, so a pair read from
	// one Secret version always matches.
	if _, err := tls.X509KeyPair(secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey]); err != nil {
		s.logf("Secret %s/%s: not a key pair yet (%v); waiting for the next update", WebhookNamespace, WebhookSecret, err)
		return
	}
	if err := writeServingCert(s.WebhookCertDir, secret); err != nil {
		s.logf("syncing the webhook's cert dir: %v", err)
		return
	}
	s.logf("webhook cert dir updated from Secret %s/%s (resourceVersion %s)", WebhookNamespace, WebhookSecret, secret.ResourceVersion)
}

// StartWebhook starts the webhook in-process (webhook.New + Start) on
// 127.0.0.1:WebhookPort with WebhookCertDir, and waits until the API server can call it.
// Start does this already with Options.Webhook; call it after StopWebhook to restart.
func (s *Sandbox) StartWebhook(ctx context.Context) error {
	return s.StartWebhookWrapped(ctx, nil)
}

// StartWebhookWrapped is StartWebhook with the webhook's connection to the API server
// wrapped by wrap (rest.Config.WrapTransport; nil: none): a test slows the webhook's watches
// to see how it admits while its informers lag, as under load.
func (s *Sandbox) StartWebhookWrapped(ctx context.Context, wrap func(http.RoundTripper) http.RoundTripper) error {
	if s.WebhookCertDir == "" {
		return errors.New("the sandbox was started without Options.Webhook")
	}
	s.mu.Lock()
	if s.webhook != nil {
		s.mu.Unlock()
		return errors.New("the webhook is running")
	}
	s.mu.Unlock()

	injectorOpts := injector.DefaultOptions()
	if s.opts.Injector != nil {
		injectorOpts = *s.opts.Injector
	}
	healthPort, err := FreePort()
	if err != nil {
		return err
	}
	healthAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(healthPort))
	runCtx, cancel := context.WithCancel(s.ctx)
	cfg := rest.CopyConfig(s.RestConfig)
	if wrap != nil {
		cfg.Wrap(wrap)
	}
	srv, err := webhook.New(runCtx, cfg, webhook.Options{
		CertDir:        s.WebhookCertDir,
		Host:           "127.0.0.1",
		Port:           s.WebhookPort,
		MetricsAddr:    "0",
		HealthAddr:     healthAddr,
		LeaderElection: false,
		Injector:       injectorOpts,
		// A registry of its own: a restarted webhook registers its metrics again.
		Registerer: prometheus.NewRegistry(),
		Log:        s.logger.WithName("webhook"),
	})
	if err != nil {
		cancel()
		return fmt.Errorf("creating the webhook: %w", err)
	}
	w := &runningWebhook{server: srv, cancel: cancel, done: make(chan struct{}), healthAddr: healthAddr}
	go func() {
		defer close(w.done)
		w.err = srv.Start(runCtx)
	}()
	s.mu.Lock()
	s.webhook = w
	s.mu.Unlock()

	s.logf("starting the webhook (127.0.0.1:%d, readyz on %s)", s.WebhookPort, healthAddr)
	if err := s.waitForWebhook(ctx, w); err != nil {
		_ = s.StopWebhook()
		return err
	}
	return nil
}

// waitForWebhook waits for the webhook's /readyz (admission server, certificate, caches),
// then for the API server to reach it: a dry-run Plugin create passes the validating
// webhook only when the API server trusts the served certificate.
func (s *Sandbox) waitForWebhook(ctx context.Context, w *runningWebhook) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		select {
		case <-w.done:
			return false, fmt.Errorf("the webhook stopped: %v", w.err)
		default:
		}
		resp, err := hc.Get("http://" + w.healthAddr + "/readyz?verbose=1")
		if err != nil {
			last = err
			return false, nil
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			last = fmt.Errorf("/readyz: %s: %s", resp.Status, bytes.TrimSpace(body))
			return false, nil
		}
		probe := &v1alpha1.Plugin{}
		probe.Name = "corsmesh-sandbox-readiness-probe"
		if err := s.Client.Create(ctx, probe, client.DryRunAll); err != nil {
			last = err
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the webhook to serve the API server: %w (last: %v)", err, last)
	}
	return nil
}

// StopWebhook stops the in-process webhook and waits for it to end; the webhook
// configurations stay, so admissions they match fail (failurePolicy Fail) or skip it
// (Ignore) until StartWebhook. It is a no-op when the webhook is not running.
func (s *Sandbox) StopWebhook() error {
	s.mu.Lock()
	w := s.webhook
	s.webhook = nil
	s.mu.Unlock()
	if w == nil {
		return nil
	}
	w.cancel()
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
		return errors.New("the webhook did not stop within 30s")
	}
	if w.err != nil && !errors.Is(w.err, context.Canceled) {
		return w.err
	}
	return nil
}

// WebhookServer is the running webhook, nil when it is stopped.
func (s *Sandbox) WebhookServer() *webhook.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.webhook == nil {
		return nil
	}
	return s.webhook.server
}

// WebhookServingCertificate connects to the webhook as the API server does and returns the
// certificate it presents.
func (s *Sandbox) WebhookServingCertificate(ctx context.Context) (*x509.Certificate, error) {
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, ServerName: "127.0.0.1"}} //nolint:gosec // inspecting, not trusting
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.WebhookPort)))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, errors.New("the webhook presented no certificate")
	}
	return certs[0], nil
}
