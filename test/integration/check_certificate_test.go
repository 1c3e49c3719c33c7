package integration

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/corsmesh/corsmesh/test/sandbox"
)

// corsmeshctl check reports the webhook's Certificate as the cert-manager running in the
// sandbox left it: Ready, its renewal time (the one in the Certificate's status), and its
// Issuer, Ready.
func TestCheckReportsTheWebhookCertificate(t *testing.T) {
	s := sb(t)
	ctx := testContext(t, 2*time.Minute)
	ctl := binaries(t, s)["cmd/corsmeshctl"]

	what := fmt.Sprintf("Certificate %s/%s", sandbox.WebhookNamespace, sandbox.WebhookCertificate)
	var report string
	eventually(t, ctx, time.Minute, "check's report of "+what, func() error {
		// Another test may have had it re-issued just now: its renewal time moves then.
		var crt cmapi.Certificate
		if err := s.Client.Get(ctx, types.NamespacedName{Namespace: sandbox.WebhookNamespace, Name: sandbox.WebhookCertificate}, &crt); err != nil {
			return err
		}
		if crt.Status.RenewalTime == nil {
			return errors.New("cert-manager has set no renewal time yet")
		}
		cmd := exec.CommandContext(ctx, ctl, "check", "--kubeconfig", s.KubeconfigPath, "-n", sandbox.WebhookNamespace)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		// An exit 1 would be about something else in the shared sandbox (another test's
		// namespace, say): this test reads the certificate's lines only.
		var exit *exec.ExitError
		if err := cmd.Run(); err != nil && !errors.As(err, &exit) {
			t.Fatalf("corsmeshctl check: %v\n%s", err, stderr.String())
		}
		report = stdout.String()
		for _, want := range []string{
			"OK   " + what + " is Ready",
			"OK   " + what + " renews at " + crt.Status.RenewalTime.UTC().Format(time.RFC3339) + " (expires " + crt.Status.NotAfter.UTC().Format(time.RFC3339) + ")",
			fmt.Sprintf("OK   %s is issued by Issuer %s/%s, which is Ready", what, sandbox.WebhookNamespace, crt.Spec.IssuerRef.Name),
		} {
			if !strings.Contains(report, want+"\n") && !strings.Contains(report, want+" (") {
				return fmt.Errorf("no line %q in:\n%s", want, report)
			}
		}
		return nil
	})
	t.Logf("corsmeshctl check said:\n%s", report)
}
