package webhook

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
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

// The admission port speaks HTTP/1.1 only unless told otherwise, whatever the client
// offers: checked on controller-runtime's own webhook server, with the options New gives it.
func TestAdmissionServerProtocols(t *testing.T) {
	tests := []struct {
		enableHTTP2 bool
		want        string
	}{
		{false, "http/1.1"},
		{true, "h2"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("enableHTTP2=%v", tt.enableHTTP2), func(t *testing.T) {
			dir := t.TempDir()
			writeCert(t, dir, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port := l.Addr().(*net.TCPAddr).Port
			l.Close()
			srv := crwebhook.NewServer(crwebhook.Options{Host: "127.0.0.1", Port: port, CertDir: dir, TLSOpts: []func(*tls.Config){admissionTLS(tt.enableHTTP2)}})
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- srv.Start(ctx) }()
			t.Cleanup(func() { cancel(); <-done })

			var conn *tls.Conn
			for deadline := time.Now().Add(10 * time.Second); ; {
				conn, err = tls.Dial("tcp", l.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}})
				if err == nil || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("dialling the admission server: %v", err)
			}
			defer conn.Close()
			if got := conn.ConnectionState().NegotiatedProtocol; got != tt.want {
				t.Errorf("negotiated %q, want %q", got, tt.want)
			}
			if v := conn.ConnectionState().Version; v < tls.VersionTLS12 {
				t.Errorf("TLS version %x, want at least 1.2", v)
			}
		})
	}
}
