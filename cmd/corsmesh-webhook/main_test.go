package main

import (
	"os"
	"path/filepath"
	"testing"
)

// A kubeconfig file gives the same client as in-cluster config: no client-side rate limit
// (client-go's default, 5 requests/s, throttled status and config writes to a trickle) and
// no gzip of responses (watch streams decompressed cost CPU per pod event).
func TestRestConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	kubeconfig := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := restConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://127.0.0.1:6443" {
		t.Errorf("host %q: not the file's", cfg.Host)
	}
	if cfg.QPS >= 0 || cfg.RateLimiter != nil {
		t.Errorf("QPS %v, rate limiter %v: want no client-side limit (QPS < 0)", cfg.QPS, cfg.RateLimiter)
	}
	if !cfg.DisableCompression {
		t.Error("compression on: want responses uncompressed")
	}
}
