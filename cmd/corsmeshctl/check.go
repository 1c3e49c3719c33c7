package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
	configv1alpha2 "github.com/corsmesh/corsmesh/injector/api/config/v1alpha2"
	"github.com/corsmesh/corsmesh/injector/kubecluster"
)

// Status is a check's outcome.
type Status string

const (
	StatusOK   Status = "OK"
	StatusWarn Status = "WARN"
	StatusFail Status = "FAIL"
)

// Result is one line of check's report.
type Result struct {
	Status  Status
	Message string
}

func (r Result) String() string { return fmt.Sprintf("%-4s %s", r.Status, r.Message) }

// CheckOptions name what Check looks at.
type CheckOptions struct {
	// Namespace is corsmesh's namespace (the serving certificate's Secret).
	Namespace string
	// Mesh is the monitored-by label value of opted-in namespaces.
	Mesh              string
	CRDs              []string
	MutatingWebhook   string
	ValidatingWebhook string
	// CertSecret holds the webhook's serving certificate (tls.crt).
	CertSecret string
	// Certificate is the cert-manager Certificate that issues CertSecret.
	Certificate string
	// ExpiryWarning: a certificate expiring sooner is a WARN.
	ExpiryWarning time.Duration
	// DialTimeout bounds dialing a webhook's url.
	DialTimeout time.Duration
	// Now is the time certificates are checked at (zero: time.Now()).
	Now time.Time
}

// DefaultCheckOptions are check's flag defaults.
func DefaultCheckOptions() CheckOptions {
	return CheckOptions{
		Namespace: injector.DefaultOptions().OwnNamespace,
		Mesh:      injector.DefaultOptions().MeshName,
		CRDs: []string{
			"plugins.plugin.flomesh.io",
			"pluginchains.plugin.flomesh.io",
			"pluginconfigs.plugin.flomesh.io",
			"meshconfigs.config.openservicemesh.io",
		},
		MutatingWebhook:   "corsmesh-webhook",
		ValidatingWebhook: "corsmesh-policies",
		CertSecret:        "corsmesh-webhook-tls",
		Certificate:       defaultWebhookCertificate,
		ExpiryWarning:     14 * 24 * time.Hour,
		DialTimeout:       5 * time.Second,
	}
}

func runCheck(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	o := DefaultCheckOptions()
	var kubeconfig string
	fs := flag.NewFlagSet("corsmeshctl check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: corsmeshctl check [flags]

Checks a corsmesh installation: the CRDs, the webhook configurations and their caBundle,
the serving certificate against each caBundle and its expiry, its cert-manager Certificate
(Ready, renewal time, issuer), that the webhook is
reachable, which namespaces the mesh monitors, and which injected pods run another proxy
image than the webhook injects (with the commands that restart them). Exits 1 if a check
FAILs.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "corsmesh's namespace")
	fs.StringVar(&o.Namespace, "n", o.Namespace, "same as --namespace")
	fs.StringVar(&o.Mesh, "mesh-name", o.Mesh, "name of the mesh")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
	positional, code := parseFlags(fs, args)
	if code >= 0 {
		return code
	}
	if len(positional) > 0 {
		fmt.Fprintf(stderr, "corsmeshctl check: unexpected arguments %q\n", positional)
		return 2
	}
	c, err := newClient(kubeconfig)
	if err != nil {
		fmt.Fprintf(stderr, "corsmeshctl check: %v\n", err)
		return 1
	}
	results := Check(ctx, c, o)
	failed := false
	for _, r := range results {
		fmt.Fprintln(stdout, r)
		failed = failed || r.Status == StatusFail
	}
	if failed {
		return 1
	}
	return 0
}

// hook is one webhook of the two configurations.
type hook struct {
	name   string // "webhook corsmesh-webhook/pods.corsmesh.io": configuration/webhook
	config admissionregistrationv1.WebhookClientConfig
	roots  *x509.CertPool // nil when the caBundle is missing or unreadable
}

// host is the name the API server verifies the webhook's certificate for.
func (h hook) host() (string, error) {
	if s := h.config.Service; s != nil {
		return s.Name + "." + s.Namespace + ".svc", nil
	}
	if h.config.URL == nil {
		return "", errors.New("clientConfig has neither service nor url")
	}
	u, err := url.Parse(*h.config.URL)
	if err != nil {
		return "", fmt.Errorf("clientConfig url: %w", err)
	}
	return u.Hostname(), nil
}

// Check runs every check and returns their results in order.
func Check(ctx context.Context, c client.Client, o CheckOptions) []Result {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	var rs []Result
	add := func(s Status, format string, args ...any) {
		rs = append(rs, Result{Status: s, Message: fmt.Sprintf(format, args...)})
	}

	for _, name := range o.CRDs {
		checkCRD(ctx, c, name, add)
	}
	checkPluginPolicy(ctx, c, o.Namespace, add)

	var hooks []hook
	var mutating admissionregistrationv1.MutatingWebhookConfiguration
	if found := getObject(ctx, c, o.MutatingWebhook, &mutating, "MutatingWebhookConfiguration", add); found {
		for _, w := range mutating.Webhooks {
			hooks = append(hooks, hook{name: fmt.Sprintf("webhook %s/%s", mutating.Name, w.Name), config: w.ClientConfig})
		}
		if len(mutating.Webhooks) == 0 {
			add(StatusFail, "MutatingWebhookConfiguration %s has no webhooks", mutating.Name)
		}
	}
	var validating admissionregistrationv1.ValidatingWebhookConfiguration
	if found := getObject(ctx, c, o.ValidatingWebhook, &validating, "ValidatingWebhookConfiguration", add); found {
		for _, w := range validating.Webhooks {
			hooks = append(hooks, hook{name: fmt.Sprintf("webhook %s/%s", validating.Name, w.Name), config: w.ClientConfig})
		}
		if len(validating.Webhooks) == 0 {
			add(StatusFail, "ValidatingWebhookConfiguration %s has no webhooks", validating.Name)
		}
	}

	for i := range hooks {
		h := &hooks[i]
		if len(h.config.CABundle) == 0 {
			add(StatusFail, "%s: caBundle is empty (is cert-manager's cainjector running, and the configuration annotated cert-manager.io/inject-ca-from?)", h.name)
			continue
		}
		certs, err := parseCertificates(h.config.CABundle)
		if err != nil {
			add(StatusFail, "%s: caBundle: %v", h.name, err)
			continue
		}
		h.roots = x509.NewCertPool()
		for _, cert := range certs {
			h.roots.AddCert(cert)
		}
		add(StatusOK, "%s: caBundle set (%s)", h.name, describeCerts(certs))
	}

	checkServingCertificate(ctx, c, o, hooks, add)
	checkCertificate(ctx, c, o, hooks, add)
	checkReachable(ctx, c, o, hooks, add)
	checkNamespaces(ctx, c, o, add)
	checkProxyImages(ctx, c, o, add)
	return rs
}

type addFunc func(s Status, format string, args ...any)

func checkCRD(ctx context.Context, c client.Client, name string, add addFunc) {
	var crd apiextensionsv1.CustomResourceDefinition
	if !getObject(ctx, c, name, &crd, "CRD", add) {
		return
	}
	for _, cond := range crd.Status.Conditions {
		if cond.Type != apiextensionsv1.Established {
			continue
		}
		if cond.Status == apiextensionsv1.ConditionTrue {
			var versions []string
			for _, v := range crd.Spec.Versions {
				if v.Served {
					versions = append(versions, v.Name)
				}
			}
			add(StatusOK, "CRD %s installed and established (served: %s)", name, strings.Join(versions, ", "))
			return
		}
		add(StatusFail, "CRD %s installed but not established: %s %s", name, cond.Reason, cond.Message)
		return
	}
	add(StatusFail, "CRD %s installed but not established yet", name)
}

// checkPluginPolicy warns while osm-edge's plugin-policy switch is off, saying how to
// turn it on: no pod is injected meanwhile.
func checkPluginPolicy(ctx context.Context, c client.Client, namespace string, add addFunc) {
	policy, err := pluginPolicy(ctx, c, namespace)
	switch {
	case err != nil:
		add(StatusFail, "%v", err)
	case !policy.Enabled:
		add(StatusWarn, "%s", policy.Message())
	default:
		add(StatusOK, "plugin policy is on (MeshConfig %s/%s)", namespace, configv1alpha2.MeshConfigName)
	}
}

// pluginPolicy reads the switch as the webhook does.
func pluginPolicy(ctx context.Context, c client.Reader, namespace string) (injector.PluginPolicy, error) {
	mc, err := kubecluster.Reader{Reader: c}.MeshConfig(ctx, namespace, configv1alpha2.MeshConfigName)
	if err != nil {
		return injector.PluginPolicy{}, err
	}
	return injector.PluginPolicyOf(mc, namespace, false), nil
}

// getObject gets a cluster-scoped object, adding a FAIL when it is missing or unreadable.
func getObject(ctx context.Context, c client.Client, name string, obj client.Object, what string, add addFunc) bool {
	err := c.Get(ctx, types.NamespacedName{Name: name}, obj)
	switch {
	case apierrors.IsNotFound(err):
		add(StatusFail, "%s %s not found", what, name)
		return false
	case err != nil:
		add(StatusFail, "%s %s: %v", what, name, err)
		return false
	}
	if what != "CRD" {
		add(StatusOK, "%s %s exists", what, name)
	}
	return true
}

// checkServingCertificate verifies the Secret's certificate against each caBundle, for the
// host name the API server dials, and reports its expiry.
func checkServingCertificate(ctx context.Context, c client.Client, o CheckOptions, hooks []hook, add addFunc) {
	secretName := o.Namespace + "/" + o.CertSecret
	var secret corev1.Secret
	err := c.Get(ctx, types.NamespacedName{Namespace: o.Namespace, Name: o.CertSecret}, &secret)
	if err != nil {
		status := StatusFail
		note := ""
		if apierrors.IsNotFound(err) && len(hooks) > 0 && !slices.ContainsFunc(hooks, func(h hook) bool { return h.config.Service != nil }) {
			// Webhooks served at a url (a development setup) need not use the Secret: dialing
			// them checks what they serve.
			status, note = StatusWarn, " (the webhooks use url clientConfigs: their certificates are checked by dialing)"
		}
		if apierrors.IsNotFound(err) {
			add(status, "serving certificate: Secret %s not found%s", secretName, note)
		} else {
			add(StatusFail, "serving certificate: Secret %s: %v", secretName, err)
		}
		return
	}
	certs, err := parseCertificates(secret.Data[corev1.TLSCertKey])
	if err != nil {
		add(StatusFail, "serving certificate: Secret %s %s: %v", secretName, corev1.TLSCertKey, err)
		return
	}
	leaf := certs[0]
	intermediates := x509.NewCertPool()
	for _, cert := range certs[1:] {
		intermediates.AddCert(cert)
	}

	// Webhooks sharing a caBundle and host are reported together.
	type target struct{ bundle, host string }
	var order []target
	names := map[target][]string{}
	roots := map[target]*x509.CertPool{}
	for _, h := range hooks {
		if h.roots == nil {
			continue
		}
		host, err := h.host()
		if err != nil {
			add(StatusFail, "%s: %v", h.name, err)
			continue
		}
		t := target{string(h.config.CABundle), host}
		if _, ok := names[t]; !ok {
			order = append(order, t)
			roots[t] = h.roots
		}
		names[t] = append(names[t], h.name)
	}
	for _, t := range order {
		_, err := leaf.Verify(x509.VerifyOptions{
			DNSName:       t.host,
			Roots:         roots[t],
			Intermediates: intermediates,
			CurrentTime:   o.Now,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			add(StatusFail, "serving certificate (Secret %s) does not verify against the caBundle of %s for host %s: %v",
				secretName, strings.Join(names[t], ", "), t.host, err)
			continue
		}
		add(StatusOK, "serving certificate (Secret %s) verifies against the caBundle of %s for host %s",
			secretName, strings.Join(names[t], ", "), t.host)
	}
	reportExpiry(leaf, "serving certificate (Secret "+secretName+")", o, add)
}

func reportExpiry(cert *x509.Certificate, what string, o CheckOptions, add addFunc) {
	left := cert.NotAfter.Sub(o.Now)
	days := int(math.Floor(left.Hours() / 24))
	until := cert.NotAfter.UTC().Format(time.RFC3339)
	switch {
	case left <= 0:
		add(StatusFail, "%s expired on %s", what, until)
	case o.Now.Before(cert.NotBefore):
		add(StatusFail, "%s is not valid before %s", what, cert.NotBefore.UTC().Format(time.RFC3339))
	case left < o.ExpiryWarning:
		add(StatusWarn, "%s expires in %d days (%s): cert-manager should have renewed it; check the Certificate's status", what, days, until)
	default:
		add(StatusOK, "%s valid for %d more days (until %s)", what, days, until)
	}
}

// checkReachable dials url webhooks with TLS (the caBundle as roots, verifying the host)
// and checks that service webhooks' Services have ready endpoints.
func checkReachable(ctx context.Context, c client.Client, o CheckOptions, hooks []hook, add addFunc) {
	seen := map[string]bool{}
	for _, h := range hooks {
		cc := h.config
		switch {
		case cc.URL != nil:
			if seen["url "+*cc.URL] {
				continue
			}
			seen["url "+*cc.URL] = true
			if h.roots == nil {
				add(StatusFail, "webhook url %s not dialed: no usable caBundle", *cc.URL)
				continue
			}
			dialURL(ctx, *cc.URL, h.roots, o, add)
		case cc.Service != nil:
			s := cc.Service
			port := int32(443)
			if s.Port != nil {
				port = *s.Port
			}
			k := fmt.Sprintf("service %s/%s:%d", s.Namespace, s.Name, port)
			if seen[k] {
				continue
			}
			seen[k] = true
			checkService(ctx, c, s.Namespace, s.Name, port, add)
		}
	}
}

func dialURL(ctx context.Context, raw string, roots *x509.CertPool, o CheckOptions, add addFunc) {
	u, err := url.Parse(raw)
	if err != nil {
		add(StatusFail, "webhook url %s: %v", raw, err)
		return
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "443")
	}
	ctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{RootCAs: roots, ServerName: u.Hostname(), MinVersion: tls.VersionTLS12,
		Time: func() time.Time { return o.Now }}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		add(StatusFail, "webhook url %s not reachable with TLS verified against its caBundle: %v", raw, err)
		return
	}
	defer conn.Close()
	state := conn.(*tls.Conn).ConnectionState()
	add(StatusOK, "webhook url %s reachable, TLS verified against its caBundle", raw)
	if len(state.PeerCertificates) > 0 {
		reportExpiry(state.PeerCertificates[0], "certificate served at "+raw, o, add)
	}
}

func checkService(ctx context.Context, c client.Client, namespace, name string, port int32, add addFunc) {
	what := fmt.Sprintf("webhook Service %s/%s", namespace, name)
	var svc corev1.Service
	if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &svc); err != nil {
		if apierrors.IsNotFound(err) {
			add(StatusFail, "%s not found", what)
		} else {
			add(StatusFail, "%s: %v", what, err)
		}
		return
	}
	if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == port }) {
		add(StatusFail, "%s has no port %d, which the webhook configuration names", what, port)
		return
	}
	var eps discoveryv1.EndpointSliceList
	if err := c.List(ctx, &eps, client.InNamespace(namespace), client.MatchingLabels{discoveryv1.LabelServiceName: name}); err != nil {
		add(StatusFail, "%s: listing EndpointSlices: %v", what, err)
		return
	}
	ready := map[string]bool{}
	total := 0
	for _, s := range eps.Items {
		for _, e := range s.Endpoints {
			total++
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				for _, a := range e.Addresses {
					ready[a] = true
				}
			}
		}
	}
	if len(ready) == 0 {
		add(StatusFail, "%s has no ready endpoints (%d not ready): is the webhook Deployment running and ready?", what, total)
		return
	}
	add(StatusOK, "%s has %d ready endpoint(s)", what, len(ready))
}

func checkNamespaces(ctx context.Context, c client.Client, o CheckOptions, add addFunc) {
	var list corev1.NamespaceList
	if err := c.List(ctx, &list, client.MatchingLabels{injector.LabelMonitoredBy: o.Mesh}); err != nil {
		add(StatusFail, "listing namespaces monitored by mesh %s: %v", o.Mesh, err)
		return
	}
	if len(list.Items) == 0 {
		add(StatusWarn, "no namespace is monitored by mesh %s (run corsmeshctl namespace add NAMESPACE)", o.Mesh)
		return
	}
	var names []string
	for _, ns := range list.Items {
		name := ns.Name
		if v := ns.Annotations[injector.AnnotationSidecarInjection]; v != "" && v != "enabled" {
			name += fmt.Sprintf(" (%s=%s)", injector.AnnotationSidecarInjection, v)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	add(StatusOK, "%d namespace(s) monitored by mesh %s: %s", len(names), o.Mesh, strings.Join(names, ", "))
}

// parseCertificates reads the PEM certificates of a bundle or chain.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for len(data) > 0 {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return certs, nil
}

func describeCerts(certs []*x509.Certificate) string {
	var subjects []string
	for _, c := range certs {
		s := c.Subject.CommonName
		if s == "" {
			s = c.Subject.String()
		}
		subjects = append(subjects, fmt.Sprintf("%q", s))
	}
	return fmt.Sprintf("%d certificate(s): %s", len(certs), strings.Join(subjects, ", "))
}
