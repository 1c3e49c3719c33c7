package main

import (
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// readyCertificate is the manifests' webhook Certificate as cert-manager leaves it once
// issued: Ready, renewing a third of its life before it ends.
func readyCertificate(now time.Time) *cmapi.Certificate {
	crt := &cmapi.Certificate{
		Spec: cmapi.CertificateSpec{
			SecretName: "corsmesh-webhook-tls",
			IssuerRef:  cmmeta.IssuerReference{Name: "corsmesh-ca-issuer", Kind: cmapi.IssuerKind},
		},
		Status: cmapi.CertificateStatus{
			Conditions: []cmapi.CertificateCondition{{
				Type: cmapi.CertificateConditionReady, Status: cmmeta.ConditionTrue,
				Reason: "Ready", Message: "Certificate is up to date and has not expired",
			}},
			NotAfter:    &metav1.Time{Time: now.Add(60 * 24 * time.Hour)},
			RenewalTime: &metav1.Time{Time: now.Add(30 * 24 * time.Hour)},
		},
	}
	crt.Namespace, crt.Name = "corsmesh-system", defaultWebhookCertificate
	return crt
}

func readyIssuer() *cmapi.Issuer {
	issuer := &cmapi.Issuer{}
	issuer.Namespace, issuer.Name = "corsmesh-system", "corsmesh-ca-issuer"
	issuer.Status.Conditions = []cmapi.IssuerCondition{{Type: cmapi.IssuerConditionReady, Status: cmmeta.ConditionTrue, Reason: "KeyPairVerified"}}
	return issuer
}

// check speaks of the webhook's certificate as cert-manager manages it: the Certificate's
// Ready condition, when it renews, and whether its issuer can renew it.
func TestCheckCertificate(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	authority := newCA(t, "corsmesh-ca", now)
	const crt = "Certificate corsmesh-system/corsmesh-webhook-cert"
	tests := []struct {
		name  string
		edit  func(in *installation)
		want  map[string]Status
		worst Status
	}{
		{
			name: "ready",
			want: map[string]Status{
				crt + " is Ready (Certificate is up to date":                                    StatusOK,
				crt + " renews at 2026-03-31T12:00:00Z (expires 2026-04-30T12:00:00Z)":          StatusOK,
				crt + " is issued by Issuer corsmesh-system/corsmesh-ca-issuer, which is Ready": StatusOK,
			},
			worst: StatusOK,
		},
		{
			name: "not ready",
			edit: func(in *installation) {
				in.certificate.Status.Conditions[0].Status = cmmeta.ConditionFalse
				in.certificate.Status.Conditions[0].Reason, in.certificate.Status.Conditions[0].Message = "Failed", "the issuer refused"
				in.certificate.Status.LastFailureTime = &metav1.Time{Time: now.Add(-time.Hour)}
			},
			want:  map[string]Status{crt + " is not Ready: Failed: the issuer refused (last failed issuance 2026-03-01T11:00:00Z)": StatusFail},
			worst: StatusFail,
		},
		{
			name:  "never looked at",
			edit:  func(in *installation) { in.certificate.Status = cmapi.CertificateStatus{} },
			want:  map[string]Status{crt + " has no Ready condition yet": StatusFail},
			worst: StatusFail,
		},
		{
			name: "being issued",
			edit: func(in *installation) {
				in.certificate.Status.Conditions = append(in.certificate.Status.Conditions, cmapi.CertificateCondition{
					Type: cmapi.CertificateConditionIssuing, Status: cmmeta.ConditionTrue, Reason: "Renewing", Message: "Renewing certificate as renewal was scheduled",
				})
			},
			want:  map[string]Status{crt + " is being issued: Renewing": StatusWarn},
			worst: StatusWarn,
		},
		{
			name:  "renewal overdue",
			edit:  func(in *installation) { in.certificate.Status.RenewalTime.Time = now.Add(-2 * time.Hour) },
			want:  map[string]Status{crt + " was due for renewal at 2026-03-01T10:00:00Z and has not been renewed": StatusWarn},
			worst: StatusWarn,
		},
		{
			name:  "no renewal time",
			edit:  func(in *installation) { in.certificate.Status.RenewalTime = nil },
			want:  map[string]Status{crt + " has no renewal time": StatusWarn},
			worst: StatusWarn,
		},
		{
			name:  "another Secret",
			edit:  func(in *installation) { in.certificate.Spec.SecretName = "elsewhere" },
			want:  map[string]Status{crt + " writes Secret elsewhere, but the webhook's serving certificate is read from corsmesh-webhook-tls": StatusWarn},
			worst: StatusWarn,
		},
		{
			name:  "missing",
			edit:  func(in *installation) { in.certificate = nil },
			want:  map[string]Status{crt + " not found": StatusFail},
			worst: StatusFail,
		},
		{
			name: "missing, webhooks at urls",
			edit: func(in *installation) {
				in.certificate = nil
				in.mutating.Webhooks[0].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:1/mutate-pods"), CABundle: authority.pem}
				in.validating.Webhooks = nil
			},
			want:  map[string]Status{crt + " not found": StatusWarn},
			worst: StatusFail, // the url is not reachable, the validating configuration empty
		},
		{
			name:  "issuer missing",
			edit:  func(in *installation) { in.issuer = nil },
			want:  map[string]Status{"issued by Issuer corsmesh-system/corsmesh-ca-issuer, which does not exist": StatusFail},
			worst: StatusFail,
		},
		{
			name: "issuer not ready",
			edit: func(in *installation) {
				in.issuer.Status.Conditions[0].Status = cmmeta.ConditionFalse
				in.issuer.Status.Conditions[0].Reason, in.issuer.Status.Conditions[0].Message = "ErrGetKeyPair", "secret corsmesh-ca not found"
			},
			want:  map[string]Status{"which is not Ready: ErrGetKeyPair: secret corsmesh-ca not found": StatusFail},
			worst: StatusFail,
		},
		{
			name: "cluster issuer",
			edit: func(in *installation) {
				in.certificate.Spec.IssuerRef = cmmeta.IssuerReference{Name: "company-ca", Kind: cmapi.ClusterIssuerKind, Group: "cert-manager.io"}
			},
			want:  map[string]Status{"issued by ClusterIssuer company-ca, which does not exist": StatusFail},
			worst: StatusFail,
		},
		{
			name: "external issuer",
			edit: func(in *installation) {
				in.certificate.Spec.IssuerRef = cmmeta.IssuerReference{Name: "vault", Kind: "VaultIssuer", Group: "vault.example.com"}
			},
			want:  map[string]Status{"issued by VaultIssuer vault (group vault.example.com, an external issuer": StatusOK},
			worst: StatusOK,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assertResults(t, checkEdited(t, authority, now, tc.edit), tc.want, tc.worst)
		})
	}
}
