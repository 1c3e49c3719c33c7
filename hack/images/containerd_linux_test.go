package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// containerdTools finds containerd, its runc shim, ctr and runc: in
// $CORSMESH_CONTAINERD_DIR, the control-plane cache bin/k8s/v1.37.2 (the
// sandbox node's build), then PATH.
func containerdTools(t *testing.T) map[string]string {
	t.Helper()
	dirs := []string{os.Getenv("CORSMESH_CONTAINERD_DIR"), filepath.Join("..", "..", "bin", "k8s", "v1.37.2")}
	found := map[string]string{}
	for _, name := range []string{"containerd", "containerd-shim-runc-v2", "ctr", "runc"} {
		for _, d := range dirs {
			if d == "" {
				continue
			}
			p, err := filepath.Abs(filepath.Join(d, name))
			if err != nil {
				continue
			}
			if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
				found[name] = p
				break
			}
		}
		if found[name] == "" {
			if p, err := exec.LookPath(name); err == nil {
				found[name] = p
			}
		}
		if found[name] == "" && name == "ctr" {
			found[name] = buildCtr(t)
		}
		if found[name] == "" {
			skipOrFail(t, "needs %s (containerd v2 and ctr: set CORSMESH_CONTAINERD_DIR or build them into bin/k8s/v1.37.2; runc: Debian package runc)", name)
		}
	}
	return found
}

// buildCtr builds ctr from the containerd wrapper module the sandbox node's
// containerd is built from (hack/controlplane/containerd), if it is there:
// the node needs no ctr, this test does.
func buildCtr(t *testing.T) string {
	t.Helper()
	mod := filepath.Join("..", "controlplane", "containerd")
	if _, err := os.Stat(filepath.Join(mod, "go.mod")); err != nil {
		return ""
	}
	out, err := filepath.Abs(filepath.Join("..", "..", "bin", "images", "build", "ctr"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "go", "build", "-trimpath", "-o", out, "github.com/containerd/containerd/v2/cmd/ctr")
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building ctr in %s: %v\n%s", mod, err, b)
	}
	return out
}

// TestContainerdImportsAndRuns imports every archive into a real containerd
// v2 with `ctr image import` (what `kind load image-archive` runs), wants
// each under its reference with the digest index.txt records, and runs the
// images' binaries with runc.
func TestContainerdImportsAndRuns(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root: runs containerd (uid %d)", os.Geteuid())
	}
	tools := containerdTools(t)
	dir := sharedBuild(t)

	tmp := t.TempDir()
	sock := filepath.Join(tmp, "c.sock")
	cfg := fmt.Sprintf(`version = 3
root = %q
state = %q
# Only what importing and running needs: no CRI.
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images", "io.containerd.podsandbox.controller.v1.podsandbox"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins.'io.containerd.transfer.v1.local']
  [[plugins.'io.containerd.transfer.v1.local'.unpack_config]]
    platform = "linux/amd64"
    snapshotter = "native"
`, filepath.Join(tmp, "root"), filepath.Join(tmp, "state"), sock, sock+".ttrpc")
	if err := os.WriteFile(filepath.Join(tmp, "config.toml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// containerd finds its shim, and the shim runc, on PATH: ours first.
	path := "PATH=" + filepath.Dir(tools["containerd-shim-runc-v2"]) + ":" + filepath.Dir(tools["runc"]) + ":/usr/sbin:/usr/bin:/sbin:/bin"
	logFile, err := os.Create(filepath.Join(tmp, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	daemon := exec.Command(tools["containerd"], "--config", filepath.Join(tmp, "config.toml"))
	daemon.Env = []string{path}
	daemon.Stdout, daemon.Stderr = logFile, logFile
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = daemon.Process.Kill()
		_ = daemon.Wait()
		logFile.Close()
		if t.Failed() {
			log, _ := os.ReadFile(logFile.Name())
			t.Logf("containerd log:\n%s", lastLines(string(log), 30))
		}
	})

	b := make([]byte, 4)
	_, _ = rand.Read(b)
	ns := "corsmesh-images-" + hex.EncodeToString(b)
	// ctr run puts each container's cgroup under /<namespace>/ in every hierarchy and
	// leaves that parent behind once the container is gone.
	t.Cleanup(func() { removeCgroups(t, ns) })
	ctr := func(ctx context.Context, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, tools["ctr"], append([]string{"--address", sock, "--namespace", ns}, args...)...)
		cmd.Env = []string{path}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := ctr(t.Context(), "version"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("containerd did not answer within a minute")
		}
		time.Sleep(200 * time.Millisecond)
	}

	want := map[string]string{} // reference -> digest, from index.txt
	index, err := os.ReadFile(filepath.Join(dir, "index.txt"))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(index)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 || strings.HasPrefix(f[0], "#") {
			continue
		}
		want[f[1]] = f[3]
		if out, err := ctr(t.Context(), "images", "import", "--snapshotter", "native", filepath.Join(dir, f[2])); err != nil {
			t.Fatalf("ctr images import %s: %v\n%s", f[2], err, out)
		}
	}
	out, err := ctr(t.Context(), "images", "ls")
	if err != nil {
		t.Fatalf("ctr images ls: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && strings.HasPrefix(f[2], "sha256:") {
			got[f[0]] = f[2]
		}
	}
	for ref, digest := range want {
		if got[ref] != digest {
			t.Errorf("containerd has %s at %q, index.txt says %s", ref, got[ref], digest)
		}
	}

	// Each image's own binaries, run by runc as the image's user.
	for _, tt := range []struct {
		ref  string
		args []string
		want string
		// fails: the command exits non-zero by design (usage, a refusal).
		fails bool
	}{
		{"docker.io/curlimages/curl:latest", []string{"curl", "--version"}, "libcurl/", false},
		{"docker.io/curlimages/curl:latest", []string{"sleep", "0.01"}, "", false},
		{"docker.io/flomesh/pipy:latest", []string{"pipy", "-e", "pipy().listen(8080).connect('x')"}, "stand-in", true},
		{"ghcr.io/corsmesh/corsproxy:v0.1.0", []string{"corsproxy", "-h"}, "admin-listen", true},
		{"ghcr.io/corsmesh/corsmesh-webhook:v0.1.0", []string{"corsmesh-webhook", "-h"}, "Usage of corsmesh-webhook", true},
		{"ghcr.io/corsmesh/corsproxy-init:v0.1.0", []string{"corsproxy-init", "--inbound-ports=8080", "--dry-run"}, "REDIRECT --to-ports 15003", false},
		{"ghcr.io/corsmesh/corsproxy-init:v0.1.0", []string{"iptables-nft-save", "--version"}, "nf_tables", false},
		{"ghcr.io/corsmesh/corsproxy-init:v0.1.0", []string{"ip6tables-legacy-restore", "--version"}, "legacy", false},
		{"registry.k8s.io/coredns/coredns:v1.15.0", []string{"/coredns", "-version"}, "CoreDNS-1.15.0", false},
		{"registry.k8s.io/pause:3.10.2", []string{"/pause", "-v"}, "pause", false},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		id := "t-" + hex.EncodeToString(b) + "-" + fmt.Sprint(time.Now().UnixNano()%1e6)
		out, err := ctr(ctx, append([]string{"run", "--rm", "--snapshotter", "native", tt.ref, id}, tt.args...)...)
		cancel()
		out = dropDeprecations(out)
		if (err != nil) != tt.fails || !strings.Contains(out, tt.want) {
			t.Errorf("%s %v: %v, want output containing %q:\n%s", tt.ref, tt.args, err, tt.want, out)
		}
	}
}

// removeCgroups removes the (empty) cgroup named name at the top of every hierarchy.
func removeCgroups(t *testing.T, name string) {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", name))
	dirs = append(dirs, filepath.Join("/sys/fs/cgroup", name))
	for _, d := range dirs {
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("removing cgroup %s: %v", d, err)
		}
	}
}

func dropDeprecations(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.Contains(l, "DEPRECATION") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
