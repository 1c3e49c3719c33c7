package main

import (
	"archive/tar"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corsmesh/corsmesh/hack/images/catalog"
)

// skipOrFail skips when the machine cannot run the test, except under
// CI=true, where the missing prerequisite is a failure.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but the test cannot run: %s", reason)
	}
	t.Skip(reason)
}

// TestInitImageInstallsRules runs the corsproxy-init image's own files, not
// the host's: its root filesystem is unpacked, mounted read-only (the
// injected init container has readOnlyRootFilesystem), and corsproxy-init
// runs chrooted into it inside a throwaway network namespace, once per
// backend, with the image's iptables. What the image's iptables-save reads
// back must hold the redirect.
func TestInitImageInstallsRules(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root: network namespaces, mounts, chroot (uid %d)", os.Geteuid())
	}
	for _, b := range []string{"ip", "mount", "umount", "chroot"} {
		if _, err := exec.LookPath(b); err != nil {
			skipOrFail(t, "needs %s on PATH", b)
		}
	}
	dir := sharedBuild(t)
	var initImage catalog.Image
	for _, img := range catalog.Of(catalog.Release, catalog.DefaultVersion) {
		if img.Name == "corsproxy-init" {
			initImage = img
		}
	}
	img, files := readImage(t, initImage.Archive(dir))
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	env := cf.Config.Env
	root := unpack(t, files)

	for _, backend := range []string{"nft", "legacy"} {
		t.Run(backend, func(t *testing.T) {
			ns := newNetns(t)
			out, err := inImage(t, ns, root, env, "/usr/local/bin/corsproxy-init", "--inbound-ports=8080,9090", "--backend="+backend)
			if err != nil {
				t.Fatalf("corsproxy-init --backend=%s in the image: %v\n%s", backend, err, out)
			}
			if !strings.Contains(out, "applied IPv4 rules (backend "+backend+")") {
				t.Errorf("no IPv4 rules applied with %s:\n%s", backend, out)
			}
			families := []string{"iptables"}
			if _, err := os.Stat("/proc/net/if_inet6"); err == nil {
				families = append(families, "ip6tables")
				if !strings.Contains(out, "applied IPv6 rules (backend "+backend+")") {
					t.Errorf("no IPv6 rules applied with %s though the kernel has IPv6:\n%s", backend, out)
				}
			}
			for _, fam := range families {
				save, err := inImage(t, ns, root, env, "/usr/sbin/"+fam+"-"+backend+"-save", "-t", "nat")
				if err != nil {
					t.Fatalf("%s-%s-save: %v\n%s", fam, backend, err, save)
				}
				for _, port := range []string{"8080", "9090"} {
					if !strings.Contains(save, "--dport "+port+" ") || !strings.Contains(save, "-j REDIRECT --to-ports 15003") {
						t.Errorf("%s-%s-save shows no redirect of %s to 15003:\n%s", fam, backend, port, save)
					}
				}
			}
		})
	}
}

// unpack writes the image's files under a fresh directory and bind-mounts it
// read-only onto another, which it returns, with what a container runtime
// mounts over a read-only root: /proc, a tmpfs /dev with null, and /dev/shm.
// All of it goes when the test ends.
func unpack(t *testing.T, files map[string]imageFile) string {
	t.Helper()
	src := t.TempDir()
	for p, f := range files {
		dst := filepath.Join(src, p)
		switch f.hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, os.FileMode(f.hdr.Mode).Perm()); err != nil {
				t.Fatal(err)
			}
		}
	}
	for p, f := range files {
		dst := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		switch f.hdr.Typeflag {
		case tar.TypeSymlink:
			if err := os.Symlink(f.hdr.Linkname, dst); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.WriteFile(dst, f.data, os.FileMode(f.hdr.Mode).Perm()); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Mount points the container runtime would create.
	for _, d := range []string{"proc", "dev", "sys"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ro := t.TempDir()
	mount := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
			t.Fatalf("mount %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	mount("--bind", src, ro)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", ro).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", ro, err, out)
		}
	})
	mount("-o", "remount,bind,ro", ro)
	umountLater := func(p string) {
		t.Cleanup(func() {
			if out, err := exec.Command("umount", p).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v: %s", p, err, out)
			}
		})
	}
	// /proc: corsproxy-init reads /proc/net/if_inet6 (which follows the
	// reader's network namespace) to decide on IPv6.
	mount("-t", "proc", "proc", filepath.Join(ro, "proc"))
	umountLater(filepath.Join(ro, "proc"))
	dev := filepath.Join(ro, "dev")
	mount("-t", "tmpfs", "-o", "mode=755,size=1m", "tmpfs", dev)
	umountLater(dev)
	if err := os.WriteFile(filepath.Join(dev, "null"), nil, 0o666); err != nil {
		t.Fatal(err)
	}
	mount("--bind", "/dev/null", filepath.Join(dev, "null"))
	umountLater(filepath.Join(dev, "null"))
	if err := os.Mkdir(filepath.Join(dev, "shm"), 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	return ro
}

func newNetns(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "corsmesh-img-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return name
}

// inImage runs a command of the image, chrooted into root, in network
// namespace ns, with the image's environment and nothing of the host's.
func inImage(t *testing.T, ns, root string, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "ip", append([]string{"netns", "exec", ns, "chroot", root}, args...)...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}
