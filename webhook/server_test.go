package webhook

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Readiness requires a serving certificate that loads and is valid now: a replica with an
// expired or missing one would fail every admission.
func TestCertificateChecker(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name      string
		notBefore time.Time
		notAfter  time.Time
		write     bool
		wantErr   string
	}{
		{"valid", now.Add(-time.Hour), now.Add(time.Hour), true, ""},
		{"expired", now.Add(-2 * time.Hour), now.Add(-time.Hour), true, "not now"},
		{"not yet valid", now.Add(time.Hour), now.Add(2 * time.Hour), true, "not now"},
		{"missing", time.Time{}, time.Time{}, false, "loading serving certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.write {
				writeCert(t, dir, tt.notBefore, tt.notAfter)
			}
			err := certificateChecker(dir)(nil)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("want ready, got %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("want an error mentioning %q, got %v", tt.wantErr, err)
			}
		})
	}
}

func writeCert(t *testing.T, dir string, notBefore, notAfter time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "corsmesh-webhook"}, NotBefore: notBefore, NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, block := range map[string]*pem.Block{"tls.crt": {Type: "CERTIFICATE", Bytes: der}, "tls.key": {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
