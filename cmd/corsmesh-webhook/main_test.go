package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// Each flag reaches the webhook's options: a flag parsed but never copied would leave the
// default in effect without a word.
func TestFlagsReachOptions(t *testing.T) {
	tests := []struct {
		args  []string
		check func(*commandLine) bool
	}{
		{nil, func(c *commandLine) bool {
			return !c.opts.EnableHTTP2 && c.opts.LeaderElection && c.opts.Port == 9443 && c.opts.DrainPeriod == 10*time.Second && c.opts.NativeSidecars == nil
		}},
		{[]string{"--enable-http2"}, func(c *commandLine) bool { return c.opts.EnableHTTP2 }},
		{[]string{"--enable-http2=false"}, func(c *commandLine) bool { return !c.opts.EnableHTTP2 }},
		{[]string{"--port", "10443", "--host", "127.0.0.1"}, func(c *commandLine) bool { return c.opts.Port == 10443 && c.opts.Host == "127.0.0.1" }},
		{[]string{"--drain-period", "3s"}, func(c *commandLine) bool { return c.opts.DrainPeriod == 3*time.Second }},
		{[]string{"--leader-elect=false", "--leader-election-id", "x", "--leader-election-namespace", "ns"}, func(c *commandLine) bool {
			return !c.opts.LeaderElection && c.opts.LeaderElectionID == "x" && c.opts.LeaderElectionNamespace == "ns"
		}},
		{[]string{"--cert-dir", "/tls", "--metrics-addr", "0", "--health-addr", ":9", "--pprof-addr", ":7"}, func(c *commandLine) bool {
			return c.opts.CertDir == "/tls" && c.opts.MetricsAddr == "0" && c.opts.HealthAddr == ":9" && c.opts.PprofAddr == ":7"
		}},
		{[]string{"--native-sidecars", "false"}, func(c *commandLine) bool { return c.opts.NativeSidecars != nil && !*c.opts.NativeSidecars }},
		{[]string{"--native-sidecars", "true"}, func(c *commandLine) bool { return c.opts.NativeSidecars != nil && *c.opts.NativeSidecars }},
		{[]string{"--mesh-name", "edge", "--namespace", "sys", "--proxy-port", "15010", "--admin-port", "15011", "--cors-plugins", "a,b"}, func(c *commandLine) bool {
			in := c.opts.Injector
			return in.MeshName == "edge" && in.OwnNamespace == "sys" && in.ProxyPort == 15010 && in.AdminPort == 15011 && strings.Join(in.CORSPluginNames, "|") == "a|b"
		}},
		{[]string{"--kubeconfig", "/k"}, func(c *commandLine) bool { return c.kubeconfig == "/k" }},
		{[]string{"--memory-limit", "536870912"}, func(c *commandLine) bool { return c.memoryLimit == 512<<20 }},
		{nil, func(c *commandLine) bool { return c.memoryLimit == 0 }},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stderr bytes.Buffer
			cl, err := parseFlags(tt.args, &stderr)
			if err != nil {
				t.Fatalf("%v %s", err, stderr.String())
			}
			if !tt.check(cl) {
				t.Errorf("options %+v", cl.opts)
			}
		})
	}
}

// The Deployment passes the container's memory limit in the environment; a flag wins.
func TestMemoryLimitFromTheEnvironment(t *testing.T) {
	t.Setenv(envMemoryLimit, "268435456")
	for _, tt := range []struct {
		args []string
		want int64
	}{
		{nil, 256 << 20},
		{[]string{"--memory-limit", "1024"}, 1024},
	} {
		cl, err := parseFlags(tt.args, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		if cl.memoryLimit != tt.want {
			t.Errorf("%v with $%s=268435456: limit %d, want %d", tt.args, envMemoryLimit, cl.memoryLimit, tt.want)
		}
	}
	t.Setenv(envMemoryLimit, "lots")
	if _, err := parseFlags(nil, io.Discard); err == nil || !strings.Contains(err.Error(), "--memory-limit") {
		t.Errorf("$%s=lots: %v, want an error naming --memory-limit", envMemoryLimit, err)
	}
}

// A bad flag value is an error naming the flag, and no options.
func TestBadFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--native-sidecars", "maybe"}, "--native-sidecars"},
		{[]string{"--enable-http2=perhaps"}, "enable-http2"},
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"--memory-limit", "512Mi"}, "--memory-limit"},
		{[]string{"--memory-limit=-1"}, "--memory-limit"},
	} {
		var stderr bytes.Buffer
		cl, err := parseFlags(tt.args, &stderr)
		if err == nil || cl != nil {
			t.Errorf("%v: accepted", tt.args)
			continue
		}
		if msg := err.Error() + stderr.String(); !strings.Contains(msg, tt.want) {
			t.Errorf("%v: %q does not name %s", tt.args, msg, tt.want)
		}
	}
}
