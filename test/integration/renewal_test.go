package integration

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cert-manager/cert-manager/pkg/api/util"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"github.com/corsmesh/corsmesh/test/sandbox"
)

// TestCertificateRenewal has cert-manager re-issue the webhook's serving certificate while
// pods are being created: no admission fails, and the running webhook serves the new
// certificate (read from its TLS handshake) without a restart.
func TestCertificateRenewal(t *testing.T) {
	s := sb(t)
	ctx := testContext(t, 2*time.Minute)
	cs, _, _ := clients(t, s)
	app := corsApp{Namespace: "renewal", App: "renewal-web", Port: 8080, Origin: "https://renewal.example"}
	app.installMonitored(t, ctx, s)

	server := s.WebhookServer()
	before, err := s.WebhookServingCertificate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	secretBefore := secretSerial(t, ctx, s)
	if before.SerialNumber.Cmp(secretBefore) != 0 {
		t.Fatalf("the webhook serves serial %s, the Secret holds %s", before.SerialNumber, secretBefore)
	}

	// A steady stream of pod creations, each of which the API server sends to the webhook.
	var created, injected atomic.Int64
	var failMu sync.Mutex
	var failures []error
	streamCtx, stopStream := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := 0; streamCtx.Err() == nil; i++ {
				pod := app.pod(fmt.Sprintf("stream-%d-%d", w, i))
				stored, err := cs.CoreV1().Pods(app.Namespace).Create(ctx, pod, metav1.CreateOptions{})
				if err != nil {
					failMu.Lock()
					failures = append(failures, fmt.Errorf("%s: %w", pod.Name, err))
					failMu.Unlock()
				} else {
					created.Add(1)
					if len(injectionTraces(stored)) > 0 {
						injected.Add(1)
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	time.Sleep(time.Second)

	// What `cmctl renew` does: mark the Certificate Issuing; the issuing flow does the rest
	// (rotationPolicy Always: a new key, signed by the same CA).
	triggered := time.Now()
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var crt cmapi.Certificate
		if err := s.Client.Get(ctx, types.NamespacedName{Namespace: sandbox.WebhookNamespace, Name: sandbox.WebhookCertificate}, &crt); err != nil {
			return err
		}
		util.SetCertificateCondition(&crt, crt.Generation, cmapi.CertificateConditionIssuing, cmmeta.ConditionTrue,
			"ManuallyTriggered", "Certificate re-issuance manually triggered by the integration test")
		return s.Client.Status().Update(ctx, &crt)
	})
	if err != nil {
		stopStream()
		wg.Wait()
		t.Fatalf("triggering renewal: %v", err)
	}

	var renewed *x509.Certificate
	eventually(t, ctx, 60*time.Second, "the webhook serving the renewed certificate", func() error {
		serial := secretSerial(t, ctx, s)
		if serial.Cmp(secretBefore) == 0 {
			return errors.New("cert-manager has not re-issued the Secret yet")
		}
		cert, err := s.WebhookServingCertificate(ctx)
		if err != nil {
			return err
		}
		if cert.SerialNumber.Cmp(serial) != 0 {
			return fmt.Errorf("the webhook serves serial %s, the Secret holds %s", cert.SerialNumber, serial)
		}
		renewed = cert
		return nil
	})
	t.Logf("renewed in %s: serial %s -> %s", time.Since(triggered).Round(time.Millisecond), before.SerialNumber, renewed.SerialNumber)

	// Keep admitting for a while with the new certificate.
	time.Sleep(2 * time.Second)
	stopStream()
	wg.Wait()

	if len(failures) > 0 {
		t.Errorf("%d of %d pod creations failed during the renewal; first: %v", len(failures), int(created.Load())+len(failures), failures[0])
	}
	if created.Load() < 20 {
		t.Errorf("only %d pods created: the stream did not cover the renewal", created.Load())
	}
	if injected.Load() != created.Load() {
		t.Errorf("%d of %d pods injected", injected.Load(), created.Load())
	}
	if s.WebhookServer() != server {
		t.Error("the webhook was restarted")
	}
	if renewed.NotBefore.Before(before.NotBefore) || renewed.PublicKeyAlgorithm != before.PublicKeyAlgorithm {
		t.Errorf("renewed certificate: notBefore %s (was %s), key %s (was %s)", renewed.NotBefore, before.NotBefore, renewed.PublicKeyAlgorithm, before.PublicKeyAlgorithm)
	}
	t.Logf("%d pods admitted and injected during the renewal, none failed", created.Load())
}

// secretSerial is the serial number of the certificate in Secret corsmesh-webhook-tls.
func secretSerial(t *testing.T, ctx context.Context, s *sandbox.Sandbox) *big.Int {
	t.Helper()
	var secret corev1.Secret
	if err := s.Client.Get(ctx, types.NamespacedName{Namespace: sandbox.WebhookNamespace, Name: sandbox.WebhookSecret}, &secret); err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(secret.Data[corev1.TLSCertKey])
	if block == nil {
		t.Fatalf("Secret %s: tls.crt holds no PEM block", sandbox.WebhookSecret)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert.SerialNumber
}
