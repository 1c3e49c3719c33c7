package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestBadArgumentsExit2(t *testing.T) {
	tests := [][]string{
		{"--upstream", "not-an-address"},
		{"--policy-port", "70000"},
		{"--reload-interval", "0s"},
		{"--log-level", "loud"},
		{"--admin-ip", "pod"},
		{"--memory-limit", "-1"},
		{"--max-client-conns", "-5"},
		{"extra"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(context.Background(), args, &stderr); code != 2 {
				t.Errorf("exit %d, want 2 (stderr %q)", code, stderr.String())
			}
			if stderr.Len() == 0 {
				t.Error("no message")
			}
		})
	}
}

func TestInvalidStartupConfigExits1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(path, []byte(`{"version":1,"ports":[{"port":8080,"cors":{"maxAge":"soon"}}]}`), 0o644)
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"--config", path, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "ports[0].cors.maxAge") {
		t.Errorf("exit %d, stderr %q: want 1 and the field named", code, stderr.String())
	}
}

// The real binary, a real SIGTERM: the request in flight finishes, then the process exits
// cleanly and the port is closed.
func TestSIGTERMDrainsInFlightRequests(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "corsproxy")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	arrived := make(chan struct{}, 1)
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		time.Sleep(700 * time.Millisecond)
		io.WriteString(w, "slow answer")
	})}
	appLn, _ := net.Listen("tcp", "127.0.0.1:0")
	go app.Serve(appLn)
	defer app.Close()

	config := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(config, []byte(`{"version":1,"ports":[]}`), 0o644)
	listen, admin := freePort(t), freePort(t)
	cmd := exec.Command(bin, "--config", config, "--listen", listen, "--admin-listen", admin, "--upstream", appLn.Addr().String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitHTTPReady(t, "http://"+admin+"/readyz")

	result := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + listen + "/")
		if err != nil {
			result <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- string(b)
	}()
	<-arrived
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := <-result; got != "slow answer" {
		t.Errorf("in-flight request got %q, want the app's answer", got)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not exit after SIGTERM")
	}
	if _, err := net.Dial("tcp", listen); err == nil {
		t.Error("still accepting after exit")
	}
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitHTTPReady(t *testing.T, url string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never ready", url)
}

func TestWaitReady(t *testing.T) {
	var ready atomic.Bool
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	defer srv.Close()
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"--wait-ready=300ms", "--admin-listen", ln.Addr().String()}, &stderr); code != 1 {
		t.Errorf("not ready: exit %d, want 1", code)
	}
	ready.Store(true)
	if code := run(context.Background(), []string{"--wait-ready=5s", "--admin-listen", ln.Addr().String()}, &stderr); code != 0 {
		t.Errorf("ready: exit %d, want 0 (%s)", code, stderr.String())
	}
}

// The admin port listens on the pod's IP only, where the kubelet probes it, and the
// postStart hook's --wait-ready finds it there; POD_IP comes from the downward API.
func TestAdminListensOnThePodIPOnly(t *testing.T) {
	const podIP = "127.0.0.2" // on Linux all of 127/8 is the loopback's
	port := freePort(t)
	_, portOnly, _ := net.SplitHostPort(port)
	t.Setenv("POD_IP", podIP)
	config := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(config, []byte(`{"version":1,"ports":[]}`), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--config", config, "--listen", freePort(t), "--admin-listen", ":" + portOnly, "--upstream", "127.0.0.1:1"}, io.Discard)
	}()
	defer func() { cancel(); <-done }()
	waitHTTPReady(t, "http://"+net.JoinHostPort(podIP, portOnly)+"/readyz")
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", portOnly), time.Second); err == nil {
		c.Close()
		t.Errorf("the admin port answers on 127.0.0.1 too; want %s only", podIP)
	}
	var waitErr bytes.Buffer
	if code := run(context.Background(), []string{"--wait-ready=5s", "--admin-listen", ":" + portOnly}, &waitErr); code != 0 {
		t.Errorf("--wait-ready with POD_IP set: exit %d (%s)", code, waitErr.String())
	}
}

func TestBadMemoryLimitEnvExits2(t *testing.T) {
	t.Setenv("CORSPROXY_MEMORY_LIMIT", "64Mi")
	var stderr bytes.Buffer
	if code := run(context.Background(), nil, &stderr); code != 2 || !strings.Contains(stderr.String(), "CORSPROXY_MEMORY_LIMIT") {
		t.Errorf("exit %d, stderr %q: want 2 and the variable named", code, stderr.String())
	}
}

// The connection cap follows the memory limit: what the limit holds at a connection's
// costliest, within bounds.
func TestMaxClientConnsFollowsTheMemoryLimit(t *testing.T) {
	tests := []struct {
		limit int64
		want  int
	}{
		{0, defaultMaxClientConns},
		{64 << 20, 1126},
		{16 << 20, 51},
		{8 << 20, 16}, // less than the base: the floor
		{128 << 20, 2560},
		{64 << 30, maxClientConnsCeiling},
	}
	for _, tt := range tests {
		if got := maxClientConns(tt.limit); got != tt.want {
			t.Errorf("maxClientConns(%d) = %d, want %d", tt.limit, got, tt.want)
		}
	}
}
