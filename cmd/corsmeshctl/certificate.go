package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// defaultWebhookCertificate is the cert-manager Certificate the manifests issue the
// webhook's serving certificate with (the webhook configurations' inject-ca-from names it).
const defaultWebhookCertificate = "corsmesh-webhook-cert"

// checkCertificate reports the webhook's Certificate as cert-manager sees it: whether it
// is Ready, when cert-manager renews it, and whether its issuer is Ready. The Secret's
// certificate says what is served now; this says whether it will go on being renewed.
// Webhooks all served at a url (a development setup) need no Certificate: a missing one
// is then a WARN.
func checkCertificate(ctx context.Context, c client.Reader, o CheckOptions, hooks []hook, add addFunc) {
	name := o.Certificate
	if name == "" {
		name = defaultWebhookCertificate
	}
	what := fmt.Sprintf("Certificate %s/%s", o.Namespace, name)
	var crt cmapi.Certificate
	if err := c.Get(ctx, types.NamespacedName{Namespace: o.Namespace, Name: name}, &crt); err != nil {
		switch {
		case apimeta.IsNoMatchError(err):
			add(StatusFail, "%s: cert-manager's API is not served (is cert-manager installed?)", what)
		case apierrors.IsNotFound(err):
			status := StatusFail
			if len(hooks) > 0 && !slices.ContainsFunc(hooks, func(h hook) bool { return h.config.Service != nil }) {
				status = StatusWarn
			}
			add(status, "%s not found: nothing issues or renews the webhook's serving certificate", what)
		default:
			add(StatusFail, "%s: %v", what, err)
		}
		return
	}
	if crt.Spec.SecretName != o.CertSecret {
		add(StatusWarn, "%s writes Secret %s, but the webhook's serving certificate is read from %s", what, crt.Spec.SecretName, o.CertSecret)
	}

	ready := certificateCondition(&crt, cmapi.CertificateConditionReady)
	issuing := certificateCondition(&crt, cmapi.CertificateConditionIssuing)
	switch {
	case ready == nil:
		add(StatusFail, "%s has no Ready condition yet: cert-manager has not looked at it (is it running?)", what)
	case ready.Status != cmmeta.ConditionTrue:
		msg := fmt.Sprintf("%s is not Ready: %s: %s", what, ready.Reason, ready.Message)
		if crt.Status.LastFailureTime != nil {
			msg += fmt.Sprintf(" (last failed issuance %s)", crt.Status.LastFailureTime.UTC().Format(time.RFC3339))
		}
		add(StatusFail, "%s", msg)
	default:
		add(StatusOK, "%s is Ready (%s)", what, ready.Message)
	}
	if issuing != nil && issuing.Status == cmmeta.ConditionTrue {
		add(StatusWarn, "%s is being issued: %s: %s", what, issuing.Reason, issuing.Message)
	}
	reportRenewal(&crt, what, o, add)
	checkIssuer(ctx, c, crt.Namespace, crt.Spec.IssuerRef, what, add)
}

// reportRenewal says when cert-manager renews the certificate, and whether that time has
// passed without a renewal.
func reportRenewal(crt *cmapi.Certificate, what string, o CheckOptions, add addFunc) {
	renewal := crt.Status.RenewalTime
	if renewal == nil {
		if crt.Status.NotAfter != nil {
			add(StatusWarn, "%s has no renewal time: cert-manager will not renew it before it expires on %s",
				what, crt.Status.NotAfter.UTC().Format(time.RFC3339))
		}
		return
	}
	at := renewal.UTC().Format(time.RFC3339)
	notAfter := "unknown"
	if crt.Status.NotAfter != nil {
		notAfter = crt.Status.NotAfter.UTC().Format(time.RFC3339)
	}
	if !o.Now.Before(renewal.Time) {
		add(StatusWarn, "%s was due for renewal at %s and has not been renewed (expires %s): check cert-manager's logs and the CertificateRequests", what, at, notAfter)
		return
	}
	add(StatusOK, "%s renews at %s (expires %s)", what, at, notAfter)
}

// checkIssuer reports the Issuer or ClusterIssuer a Certificate names, and whether it is
// Ready: an issuer that is not cannot renew the certificate when it is due.
func checkIssuer(ctx context.Context, c client.Reader, namespace string, ref cmmeta.IssuerReference, certificate string, add addFunc) {
	if ref.Group != "" && ref.Group != cmapi.SchemeGroupVersion.Group {
		add(StatusOK, "%s is issued by %s %s (group %s, an external issuer: its readiness is not checked)", certificate, ref.Kind, ref.Name, ref.Group)
		return
	}
	var issuer cmapi.GenericIssuer
	key := types.NamespacedName{Name: ref.Name}
	switch ref.Kind {
	case "", cmapi.IssuerKind:
		issuer, key.Namespace = &cmapi.Issuer{}, namespace
	case cmapi.ClusterIssuerKind:
		issuer = &cmapi.ClusterIssuer{}
	default:
		add(StatusFail, "%s names issuer kind %q: want %s or %s", certificate, ref.Kind, cmapi.IssuerKind, cmapi.ClusterIssuerKind)
		return
	}
	what := "ClusterIssuer " + key.Name
	if key.Namespace != "" {
		what = fmt.Sprintf("Issuer %s/%s", key.Namespace, key.Name)
	}
	if err := c.Get(ctx, key, issuer); err != nil {
		if apierrors.IsNotFound(err) {
			add(StatusFail, "%s is issued by %s, which does not exist", certificate, what)
		} else {
			add(StatusFail, "%s is issued by %s: %v", certificate, what, err)
		}
		return
	}
	for _, cond := range issuer.GetStatus().Conditions {
		if cond.Type != cmapi.IssuerConditionReady {
			continue
		}
		if cond.Status == cmmeta.ConditionTrue {
			add(StatusOK, "%s is issued by %s, which is Ready", certificate, what)
		} else {
			add(StatusFail, "%s is issued by %s, which is not Ready: %s: %s", certificate, what, cond.Reason, cond.Message)
		}
		return
	}
	add(StatusFail, "%s is issued by %s, which has no Ready condition yet", certificate, what)
}

func certificateCondition(crt *cmapi.Certificate, t cmapi.CertificateConditionType) *cmapi.CertificateCondition {
	for i := range crt.Status.Conditions {
		if crt.Status.Conditions[i].Type == t {
			return &crt.Status.Conditions[i]
		}
	}
	return nil
}
