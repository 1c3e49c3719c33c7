package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/corsmesh/corsmesh/hack/images/catalog"
)

func sandboxArchive(t *testing.T, dir, name string) string {
	t.Helper()
	for _, img := range catalog.Of(catalog.Sandbox, catalog.DefaultVersion) {
		if img.Name == name {
			return img.Archive(dir)
		}
	}
	t.Fatalf("no sandbox image %s", name)
	return ""
}

// TestGuideRunsOnStandIns runs the sandbox's curl and pipy images from their
// own files (chrooted into each unpacked image) as the guide does: pipy with
// the guide's `pipy -e` script, then curl -si against it. It proves the curl
// image's library closure is complete and the stand-in answers as Pipy does.
func TestGuideRunsOnStandIns(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root: chroot, mounts (uid %d)", os.Geteuid())
	}
	dir := sharedBuild(t)
	_, pipyFiles := readImage(t, sandboxArchive(t, dir, "pipy"))
	_, curlFiles := readImage(t, sandboxArchive(t, dir, "curl"))
	pipyRoot, curlRoot := unpack(t, pipyFiles), unpack(t, curlFiles)

	port := freePort(t)
	script := fmt.Sprintf("pipy()\n.listen(%d)\n.serveHTTP(new Message('Hi, I am PIPY-OK v1!'))\n", port)
	ctx, cancel := context.WithCancel(t.Context())
	pipy := exec.CommandContext(ctx, "chroot", "--userspec=65532:65532", pipyRoot, "pipy", "-e", script)
	pipy.Env = []string{pathEnv}
	pipy.Stdout, pipy.Stderr = os.Stderr, os.Stderr
	if err := pipy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = pipy.Wait() })
	waitListening(t, port)

	curl := exec.CommandContext(t.Context(), "chroot", "--userspec=100:101", curlRoot, "curl", "-si", fmt.Sprintf("http://127.0.0.1:%d/", port))
	curl.Env = []string{pathEnv}
	out, err := curl.CombinedOutput()
	if err != nil {
		t.Fatalf("the curl image's curl: %v\n%s", err, out)
	}
	want := "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 20\r\n\r\nHi, I am PIPY-OK v1!"
	if string(out) != want {
		t.Errorf("curl -si got\n%q\nwant\n%q", out, want)
	}

	sleep := exec.CommandContext(t.Context(), "chroot", "--userspec=100:101", curlRoot, "sleep", "0.01")
	sleep.Env = []string{pathEnv}
	if out, err := sleep.CombinedOutput(); err != nil {
		t.Errorf("the curl image's sleep: %v\n%s", err, out)
	}

	// Any other script is refused, naming the stand-in.
	other := exec.CommandContext(t.Context(), "chroot", "--userspec=65532:65532", pipyRoot, "pipy", "-e", "pipy().listen(8080).connect('10.0.0.1:80')")
	other.Env = []string{pathEnv}
	out, err = other.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "stand-in") {
		t.Errorf("pipy with another script: %v\n%s\nwant a failure naming the stand-in", err, out)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitListening(t *testing.T, port int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on 127.0.0.1:%d", port)
}
