package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corsmesh/corsmesh/test/gobuild"
)

// The kubelet stops containers with SIGTERM; a stand-in that dies of it leaves every
// deleted pod looking failed (Error), unlike the Pipy it stands in for.
func TestSIGTERMExitsZero(t *testing.T) {
	bins, err := gobuild.Build(t.Context(), t.TempDir(), "test/pipyok")
	if err != nil {
		t.Fatal(err)
	}
	bin := bins["test/pipyok"]
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	cmd := exec.Command(bin, "-e", "pipy().listen("+addr[strings.LastIndex(addr, ":")+1:]+").serveHTTP(new Message('hi'))")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if line, err := bufio.NewReader(stderr).ReadString('\n'); err != nil || !strings.Contains(line, "listening") {
		t.Fatalf("pipyok did not start: %q %v", line, err)
	}
	var resp *http.Response
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err = http.Get("http://" + addr + "/"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hi" {
		t.Fatalf("body %q, want %q", body, "hi")
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after SIGTERM: %v, want exit status 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("pipyok still running 10 s after SIGTERM")
	}
}
