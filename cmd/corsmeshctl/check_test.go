package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/corsmesh/corsmesh/injector"
	configv1alpha2 "github.com/corsmesh/corsmesh/injector/api/config/v1alpha2"
)

// ca is a test certificate authority.
type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func newCA(t *testing.T, name string, now time.Time) *ca {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &ca{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a serving certificate (PEM) and its key, valid from an hour ago for life.
func (c *ca) issue(t *testing.T, now time.Time, life time.Duration, dnsNames ...string) (certPEM []byte, key *ecdsa.PrivateKey) {
	t.Helper()
	key = newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "corsmesh-webhook"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(life),
		DNSNames:     dnsNames,
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key
}

const serviceHost = "corsmesh-webhook.corsmesh-system.svc"

// installation is a healthy corsmesh installation, as objects a test edits before use.
type installation struct {
	crds       []*apiextensionsv1.CustomResourceDefinition
	mutating   *admissionregistrationv1.MutatingWebhookConfiguration
	validating *admissionregistrationv1.ValidatingWebhookConfiguration
	secret     *corev1.Secret
	service    *corev1.Service
	endpoints  *discoveryv1.EndpointSlice
	namespaces []*corev1.Namespace
	meshConfig *configv1alpha2.MeshConfig
	// certificate and issuer are cert-manager's view of the serving certificate.
	certificate *cmapi.Certificate
	issuer      *cmapi.Issuer
}

func newInstallation(t *testing.T, authority *ca, now time.Time) *installation {
	in := &installation{}
	for _, name := range DefaultCheckOptions().CRDs {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		crd.Name = name
		crd.Spec.Versions = []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1alpha1", Served: true, Storage: true}}
		crd.Status.Conditions = []apiextensionsv1.CustomResourceDefinitionCondition{
			{Type: apiextensionsv1.NamesAccepted, Status: apiextensionsv1.ConditionTrue},
			{Type: apiextensionsv1.Established, Status: apiextensionsv1.ConditionTrue},
		}
		in.crds = append(in.crds, crd)
	}
	svcRef := func(path string) admissionregistrationv1.WebhookClientConfig {
		return admissionregistrationv1.WebhookClientConfig{
			Service:  &admissionregistrationv1.ServiceReference{Namespace: "corsmesh-system", Name: "corsmesh-webhook", Path: ptr.To(path)},
			CABundle: authority.pem,
		}
	}
	in.mutating = &admissionregistrationv1.MutatingWebhookConfiguration{}
	in.mutating.Name = "corsmesh-webhook"
	in.mutating.Webhooks = []admissionregistrationv1.MutatingWebhook{{Name: "pods.corsmesh.io", ClientConfig: svcRef("/mutate-pods")}}
	in.validating = &admissionregistrationv1.ValidatingWebhookConfiguration{}
	in.validating.Name = "corsmesh-policies"
	in.validating.Webhooks = []admissionregistrationv1.ValidatingWebhook{
		{Name: "plugins.corsmesh.io", ClientConfig: svcRef("/validate-policies")},
		{Name: "pluginchains.corsmesh.io", ClientConfig: svcRef("/validate-policies")},
	}
	cert, _ := authority.issue(t, now, 60*24*time.Hour, serviceHost, "corsmesh-webhook.corsmesh-system.svc.cluster.local")
	in.secret = &corev1.Secret{Type: corev1.SecretTypeTLS, Data: map[string][]byte{corev1.TLSCertKey: cert, "ca.crt": authority.pem}}
	in.secret.Namespace, in.secret.Name = "corsmesh-system", "corsmesh-webhook-tls"
	in.service = &corev1.Service{Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 443}}}}
	in.service.Namespace, in.service.Name = "corsmesh-system", "corsmesh-webhook"
	in.endpoints = &discoveryv1.EndpointSlice{
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
			{Addresses: []string{"10.0.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}},
		},
	}
	in.endpoints.Namespace, in.endpoints.Name = "corsmesh-system", "corsmesh-webhook-abcde"
	in.endpoints.Labels = map[string]string{discoveryv1.LabelServiceName: "corsmesh-webhook"}
	in.meshConfig = &configv1alpha2.MeshConfig{}
	in.meshConfig.Namespace, in.meshConfig.Name = "corsmesh-system", configv1alpha2.MeshConfigName
	in.meshConfig.Spec.FeatureFlags.EnablePluginPolicy = true
	in.certificate, in.issuer = readyCertificate(now), readyIssuer()
	in.namespaces = []*corev1.Namespace{
		namespaceWith("pipy", map[string]string{injector.LabelMonitoredBy: "osm"}, map[string]string{injector.AnnotationSidecarInjection: "enabled"}),
		namespaceWith("curl", map[string]string{injector.LabelMonitoredBy: "osm"}, map[string]string{injector.AnnotationSidecarInjection: "disabled"}),
		namespaceWith("elsewhere", map[string]string{injector.LabelMonitoredBy: "edge"}, nil),
		namespaceWith("plain", nil, nil),
	}
	return in
}

func (in *installation) objects() []client.Object {
	var objs []client.Object
	for _, c := range in.crds {
		if c != nil {
			objs = append(objs, c)
		}
	}
	for _, o := range []client.Object{in.mutating, in.validating, in.secret, in.service, in.endpoints, in.meshConfig, in.certificate, in.issuer} {
		if o != nil && !isNil(o) {
			objs = append(objs, o)
		}
	}
	for _, ns := range in.namespaces {
		objs = append(objs, ns)
	}
	return objs
}

// isNil sees through the typed nils a test leaves to delete an object.
func isNil(o client.Object) bool {
	switch o := o.(type) {
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		return o == nil
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		return o == nil
	case *corev1.Secret:
		return o == nil
	case *corev1.Service:
		return o == nil
	case *discoveryv1.EndpointSlice:
		return o == nil
	case *configv1alpha2.MeshConfig:
		return o == nil
	case *cmapi.Certificate:
		return o == nil
	case *cmapi.Issuer:
		return o == nil
	}
	return false
}

func TestCheck(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	authority := newCA(t, "corsmesh-ca", now)
	other := newCA(t, "someone-else", now)

	tests := []struct {
		name string
		edit func(in *installation)
		// want maps a substring of a result's message to its status; every entry must match
		// one result.
		want map[string]Status
		// worst is the worst status of all results.
		worst Status
	}{
		{
			name: "healthy",
			want: map[string]Status{
				"CRD plugins.plugin.flomesh.io installed and established (served: v1alpha1)": StatusOK,
				"CRD pluginchains.plugin.flomesh.io installed and established":               StatusOK,
				"CRD pluginconfigs.plugin.flomesh.io installed and established":              StatusOK,
				"CRD meshconfigs.config.openservicemesh.io installed and established":        StatusOK,
				"plugin policy is on (MeshConfig corsmesh-system/osm-mesh-config)":           StatusOK,
				"MutatingWebhookConfiguration corsmesh-webhook exists":                       StatusOK,
				"ValidatingWebhookConfiguration corsmesh-policies exists":                    StatusOK,
				"webhook corsmesh-webhook/pods.corsmesh.io: caBundle set":                    StatusOK,
				"webhook corsmesh-policies/pluginchains.corsmesh.io: caBundle set":           StatusOK,
				"verifies against the caBundle of webhook corsmesh-webhook/pods.corsmesh.io, webhook corsmesh-policies/plugins.corsmesh.io, webhook corsmesh-policies/pluginchains.corsmesh.io for host " + serviceHost: StatusOK,
				"serving certificate (Secret corsmesh-system/corsmesh-webhook-tls) valid for 60 more days":                                                                                                              StatusOK,
				"webhook Service corsmesh-system/corsmesh-webhook has 1 ready endpoint(s)":                                                                                                                              StatusOK,
				"2 namespace(s) monitored by mesh osm: curl (openservicemesh.io/sidecar-injection=disabled), pipy":                                                                                                      StatusOK,
			},
			worst: StatusOK,
		},
		{
			name:  "missing CRD",
			edit:  func(in *installation) { in.crds[2] = nil },
			want:  map[string]Status{"CRD pluginconfigs.plugin.flomesh.io not found": StatusFail},
			worst: StatusFail,
		},
		{
			name: "CRD not established",
			edit: func(in *installation) {
				in.crds[1].Status.Conditions[1] = apiextensionsv1.CustomResourceDefinitionCondition{Type: apiextensionsv1.Established, Status: apiextensionsv1.ConditionFalse, Reason: "Installing"}
			},
			want:  map[string]Status{"CRD pluginchains.plugin.flomesh.io installed but not established: Installing": StatusFail},
			worst: StatusFail,
		},
		{
			name: "plugin policy off",
			edit: func(in *installation) { in.meshConfig.Spec.FeatureFlags.EnablePluginPolicy = false },
			want: map[string]Status{
				`plugin policy is off in MeshConfig corsmesh-system/osm-mesh-config (spec.featureFlags.enablePluginPolicy: false); turn it on with: kubectl patch meshconfig osm-mesh-config -n corsmesh-system -p '{"spec":{"featureFlags":{"enablePluginPolicy":true}}}' --type=merge`: StatusWarn,
			},
			worst: StatusWarn,
		},
		{
			name:  "no MeshConfig",
			edit:  func(in *installation) { in.meshConfig = nil },
			want:  map[string]Status{"plugin policy is off: MeshConfig corsmesh-system/osm-mesh-config does not exist": StatusWarn},
			worst: StatusWarn,
		},
		{
			name:  "missing mutating webhook",
			edit:  func(in *installation) { in.mutating = nil },
			want:  map[string]Status{"MutatingWebhookConfiguration corsmesh-webhook not found": StatusFail},
			worst: StatusFail,
		},
		{
			name:  "missing validating webhook",
			edit:  func(in *installation) { in.validating = nil },
			want:  map[string]Status{"ValidatingWebhookConfiguration corsmesh-policies not found": StatusFail},
			worst: StatusFail,
		},
		{
			name:  "empty caBundle",
			edit:  func(in *installation) { in.mutating.Webhooks[0].ClientConfig.CABundle = nil },
			want:  map[string]Status{"webhook corsmesh-webhook/pods.corsmesh.io: caBundle is empty": StatusFail},
			worst: StatusFail,
		},
		{
			name:  "caBundle of another CA",
			edit:  func(in *installation) { in.validating.Webhooks[1].ClientConfig.CABundle = other.pem },
			want:  map[string]Status{"does not verify against the caBundle of webhook corsmesh-policies/pluginchains.corsmesh.io for host " + serviceHost: StatusFail},
			worst: StatusFail,
		},
		{
			name: "certificate for another host",
			edit: func(in *installation) {
				in.secret.Data[corev1.TLSCertKey], _ = authority.issue(t, now, 60*24*time.Hour, "webhook.example.com")
			},
			want:  map[string]Status{"does not verify against the caBundle of webhook corsmesh-webhook/pods.corsmesh.io": StatusFail},
			worst: StatusFail,
		},
		{
			name: "certificate expiring soon",
			edit: func(in *installation) {
				in.secret.Data[corev1.TLSCertKey], _ = authority.issue(t, now, 5*24*time.Hour+time.Hour, serviceHost)
			},
			want:  map[string]Status{"serving certificate (Secret corsmesh-system/corsmesh-webhook-tls) expires in 5 days": StatusWarn},
			worst: StatusWarn,
		},
		{
			name: "certificate expired",
			edit: func(in *installation) {
				in.secret.Data[corev1.TLSCertKey], _ = authority.issue(t, now, -time.Minute, serviceHost)
			},
			want: map[string]Status{
				"serving certificate (Secret corsmesh-system/corsmesh-webhook-tls) expired": StatusFail,
				"does not verify": StatusFail,
			},
			worst: StatusFail,
		},
		{
			name:  "missing Secret",
			edit:  func(in *installation) { in.secret = nil },
			want:  map[string]Status{"Secret corsmesh-system/corsmesh-webhook-tls not found": StatusFail},
			worst: StatusFail,
		},
		{
			name:  "Secret without a certificate",
			edit:  func(in *installation) { in.secret.Data[corev1.TLSCertKey] = []byte("garbage") },
			want:  map[string]Status{"tls.crt: no PEM certificate": StatusFail},
			worst: StatusFail,
		},
		{
			name:  "no ready endpoints",
			edit:  func(in *installation) { in.endpoints.Endpoints = in.endpoints.Endpoints[1:] },
			want:  map[string]Status{"webhook Service corsmesh-system/corsmesh-webhook has no ready endpoints (1 not ready)": StatusFail},
			worst: StatusFail,
		},
		{
			name:  "missing Service",
			edit:  func(in *installation) { in.service = nil },
			want:  map[string]Status{"webhook Service corsmesh-system/corsmesh-webhook not found": StatusFail},
			worst: StatusFail,
		},
		{
			name:  "no namespace monitored",
			edit:  func(in *installation) { in.namespaces = in.namespaces[2:] },
			want:  map[string]Status{"no namespace is monitored by mesh osm": StatusWarn},
			worst: StatusWarn,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assertResults(t, checkEdited(t, authority, now, tc.edit), tc.want, tc.worst)
		})
	}
}

// checkEdited runs Check at now on a healthy installation changed by edit (if not nil).
func checkEdited(t *testing.T, authority *ca, now time.Time, edit func(*installation)) []Result {
	t.Helper()
	in := newInstallation(t, authority, now)
	if edit != nil {
		edit(in)
	}
	c := useFakeClient(t, in.objects()...)
	o := DefaultCheckOptions()
	o.Now = now
	return Check(context.Background(), c, o)
}

func assertResults(t *testing.T, results []Result, want map[string]Status, worst Status) {
	t.Helper()
	var lines []string
	got := StatusOK
	for _, r := range results {
		lines = append(lines, r.String())
		if r.Status == StatusFail || (r.Status == StatusWarn && got == StatusOK) {
			got = r.Status
		}
	}
	report := strings.Join(lines, "\n")
	for substr, status := range want {
		found := false
		for _, r := range results {
			if strings.Contains(r.Message, substr) && r.Status == status {
				found = true
			}
		}
		if !found {
			t.Errorf("no %s result containing %q:\n%s", status, substr, report)
		}
	}
	if got != worst {
		t.Errorf("worst status %s, want %s:\n%s", got, worst, report)
	}
}

// A webhook configured with a url is dialed with TLS, its caBundle as the roots and the
// url's host verified.
func TestCheckDialsURLWebhooks(t *testing.T) {
	now := time.Now()
	authority := newCA(t, "corsmesh-ca", now)
	certPEM, key := authority.issue(t, now, 90*24*time.Hour, "localhost")
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port

	tests := []struct {
		name   string
		url    string
		bundle []byte
		want   map[string]Status
		worst  Status
	}{
		{
			name: "reachable by IP", url: srv.URL + "/mutate-pods", bundle: authority.pem,
			want: map[string]Status{
				"webhook url " + srv.URL + "/mutate-pods reachable, TLS verified against its caBundle": StatusOK,
				"certificate served at " + srv.URL + "/mutate-pods valid for 89 more days":             StatusOK,
				// No Secret in a url setup: the dial checks the certificate instead.
				"Secret corsmesh-system/corsmesh-webhook-tls not found": StatusWarn,
			},
			worst: StatusWarn,
		},
		{
			name: "reachable by name", url: "https://localhost:" + strconv.Itoa(port) + "/mutate-pods", bundle: authority.pem,
			want:  map[string]Status{"reachable, TLS verified": StatusOK},
			worst: StatusWarn,
		},
		{
			name: "caBundle of another CA", url: srv.URL + "/mutate-pods", bundle: newCA(t, "other", now).pem,
			want:  map[string]Status{"webhook url " + srv.URL + "/mutate-pods not reachable with TLS verified against its caBundle": StatusFail},
			worst: StatusFail,
		},
		{
			name: "nothing listening", url: "https://127.0.0.1:1/mutate-pods", bundle: authority.pem,
			want:  map[string]Status{"not reachable": StatusFail},
			worst: StatusFail,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := newInstallation(t, authority, now)
			cc := admissionregistrationv1.WebhookClientConfig{URL: ptr.To(tc.url), CABundle: tc.bundle}
			in.mutating.Webhooks[0].ClientConfig = cc
			for i := range in.validating.Webhooks {
				in.validating.Webhooks[i].ClientConfig = cc
			}
			in.secret, in.service, in.endpoints = nil, nil, nil
			c := useFakeClient(t, in.objects()...)
			o := DefaultCheckOptions()
			o.Now = now
			assertResults(t, Check(context.Background(), c, o), tc.want, tc.worst)
		})
	}
}

func TestCheckCommand(t *testing.T) {
	now := time.Now()
	authority := newCA(t, "corsmesh-ca", now)
	in := newInstallation(t, authority, now)
	useFakeClient(t, in.objects()...)
	code, stdout, stderr := runCLI(t, "", "check")
	if code != 0 || !strings.HasPrefix(stdout, "OK   CRD plugins.plugin.flomesh.io installed") || strings.Contains(stdout, "FAIL") {
		t.Errorf("healthy: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	in.mutating = nil
	useFakeClient(t, in.objects()...)
	code, stdout, _ = runCLI(t, "", "check", "--namespace", "corsmesh-system")
	if code != 1 || !strings.Contains(stdout, "FAIL MutatingWebhookConfiguration corsmesh-webhook not found\n") {
		t.Errorf("broken: exit %d\nstdout:\n%s", code, stdout)
	}

	// Another namespace: the Secret is looked for there.
	useFakeClient(t, newInstallation(t, authority, now).objects()...)
	code, stdout, _ = runCLI(t, "", "check", "-n", "elsewhere")
	if code != 1 || !strings.Contains(stdout, "FAIL serving certificate: Secret elsewhere/corsmesh-webhook-tls not found") {
		t.Errorf("other namespace: exit %d\nstdout:\n%s", code, stdout)
	}
}
