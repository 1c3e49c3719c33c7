package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/corsmesh/corsmesh/hack/images/catalog"
	"github.com/corsmesh/corsmesh/hack/images/rootfs"
)

// What each image holds. Every image gets /etc/passwd and /etc/group naming
// its user, PATH, and nothing else it does not run: no shell, no package
// manager, CA certificates only in curl (the one image that makes TLS
// connections to servers it does not get a CA for).

const pathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Users. The proxy's UID is the injector's default ProxyUID (its iptables
// rules and runAsUser use it); the webhook's is manifests/base's runAsUser;
// pause runs as 65535 like the upstream image; curl_user is curlimages/curl's.
type account struct {
	name     string
	uid, gid int
	home     string
}

var (
	root      = account{"root", 0, 0, "/root"}
	proxyUser = account{"corsproxy", 1500, 1500, "/nonexistent"}
	nonroot   = account{"nonroot", 65532, 65532, "/home/nonroot"}
	pauseUser = account{"pause", 65535, 65535, "/nonexistent"}
	curlUser  = account{"curl_user", 100, 101, "/home/curl_user"}
)

func (a account) user() string { return fmt.Sprintf("%d:%d", a.uid, a.gid) }

// addAccounts writes /etc/passwd and /etc/group with root and users.
func addAccounts(fs *rootfs.FS, users ...account) error {
	var passwd, group bytes.Buffer
	for _, a := range append([]account{root}, users...) {
		fmt.Fprintf(&passwd, "%s:x:%d:%d:%s:%s:/sbin/nologin\n", a.name, a.uid, a.gid, a.name, a.home)
		fmt.Fprintf(&group, "%s:x:%d:\n", a.name, a.gid)
	}
	if err := fs.File("/etc/passwd", passwd.Bytes(), 0o644); err != nil {
		return err
	}
	return fs.File("/etc/group", group.Bytes(), 0o644)
}

// debPackages lists the Debian packages the images take files from; the lock
// file pins each one's version and hash.
var debPackages = []string{
	// corsproxy-init: iptables (both backends, both families) and what its
	// binaries and xtables modules link.
	"iptables", "libxtables12", "libip4tc2", "libip6tc2", "libnftnl11", "libmnl0",
	"libnetfilter-conntrack3", "libnfnetlink0", "libc6",
	// curl: curl, its libraries, sleep (the guide's pod runs `sleep 365d`)
	// and the CA bundle.
	"curl", "libcurl4", "libbrotli1", "libcom-err2", "libffi8", "libgmp10", "libgnutls30",
	"libgssapi-krb5-2", "libhogweed6", "libidn2-0", "libk5crypto3", "libkeyutils1", "libkrb5-3",
	"libkrb5support0", "libldap-2.5-0", "libnettle8", "libnghttp2-14", "libp11-kit0", "libpsl5",
	"librtmp1", "libsasl2-2", "libssh2-1", "libssl3", "libtasn1-6", "libunistring2", "libzstd1",
	"zlib1g", "coreutils", "ca-certificates",
}

// iptablesTools are the commands corsproxy-init runs: {ip,ip6}tables-
// {legacy,nft}-{save,restore} by backend, and the plain names as the
// fallback when neither variant is usable.
func iptablesTools() []string {
	var out []string
	for _, fam := range []string{"iptables", "ip6tables"} {
		for _, b := range []string{"-legacy", "-nft", ""} {
			for _, op := range []string{"-save", "-restore"} {
				out = append(out, fam+b+op)
			}
		}
	}
	return out
}

// spec is what building one image needs.
type spec struct {
	fs     *rootfs.FS
	config v1.Config
}

func (b *builder) spec(img catalog.Image) (spec, error) {
	fs := rootfs.New()
	cfg := v1.Config{Env: []string{pathEnv}}
	var err error
	switch img.Name {
	case "corsproxy":
		err = b.goBinary(fs, "corsproxy", "/usr/local/bin/corsproxy", proxyUser)
		cfg.User, cfg.Entrypoint = proxyUser.user(), []string{"/usr/local/bin/corsproxy"}
		cfg.ExposedPorts = ports("15003/tcp", "15000/tcp")
	case "corsmesh-webhook":
		err = b.goBinary(fs, "corsmesh-webhook", "/usr/local/bin/corsmesh-webhook", nonroot)
		cfg.User, cfg.Entrypoint = nonroot.user(), []string{"/usr/local/bin/corsmesh-webhook"}
		cfg.ExposedPorts = ports("9443/tcp", "8080/tcp", "8081/tcp")
	case "corsproxy-init":
		err = b.initContents(fs)
		cfg.User, cfg.Entrypoint = root.user(), []string{"/usr/local/bin/corsproxy-init"}
		// iptables-legacy takes a lock file, /run/xtables.lock by default,
		// which a read-only root (the injected init container's) cannot
		// create. /dev/shm is writable in a container and shared by the
		// pod's containers, which share the network namespace the lock is
		// about.
		cfg.Env = append(cfg.Env, "XTABLES_LOCKFILE=/dev/shm/xtables.lock")
	case "pause":
		err = b.goBinary(fs, "pause", "/pause", pauseUser)
		cfg.User, cfg.Entrypoint = pauseUser.user(), []string{"/pause"}
	case "pipy":
		err = b.goBinary(fs, "pipyok", "/usr/local/bin/pipy", nonroot)
		cfg.User, cfg.Entrypoint = nonroot.user(), []string{"/usr/local/bin/pipy"}
		cfg.ExposedPorts = ports("8080/tcp")
	case "coredns":
		err = b.goBinary(fs, "coredns", "/coredns", nonroot)
		cfg.User, cfg.Entrypoint = nonroot.user(), []string{"/coredns"}
		cfg.ExposedPorts = ports("53/tcp", "53/udp")
	case "curl":
		err = b.curlContents(fs)
		cfg.User, cfg.Entrypoint, cfg.Cmd = curlUser.user(), []string{"/usr/bin/curl"}, []string{"--help"}
		cfg.WorkingDir = curlUser.home
	default:
		err = fmt.Errorf("no contents defined")
	}
	if err != nil {
		return spec{}, fmt.Errorf("%s: %w", img.Name, err)
	}
	return spec{fs: fs, config: cfg}, nil
}

func ports(ps ...string) map[string]struct{} {
	m := map[string]struct{}{}
	for _, p := range ps {
		m[p] = struct{}{}
	}
	return m
}

// goBinary adds a static Go binary built into the build directory and the
// accounts of its user.
func (b *builder) goBinary(fs *rootfs.FS, bin, dst string, user account) error {
	if err := fs.CopyFile(filepath.Join(b.binDir, bin), dst, 0o755); err != nil {
		return err
	}
	return addAccounts(fs, user)
}

func (b *builder) initContents(fs *rootfs.FS) error {
	if err := b.goBinary(fs, "corsproxy-init", "/usr/local/bin/corsproxy-init", root); err != nil {
		return err
	}
	tree, err := b.debTree()
	if err != nil {
		return err
	}
	for _, tool := range iptablesTools() {
		if !strings.Contains(tool, "-legacy-") && !strings.Contains(tool, "-nft-") {
			// Debian points the plain names at a backend with
			// update-alternatives; the image fixes nft, Debian's default
			// and what kubelet and kube-proxy use on current nodes.
			if err := fs.Symlink("/usr/sbin/"+tool, "xtables-nft-multi"); err != nil {
				return err
			}
			continue
		}
		if err := tree.Install(fs, "/usr/sbin/"+tool); err != nil {
			return err
		}
	}
	// Every xtables extension: iptables-save must print whatever rules it
	// finds in the pod's namespace to let the backend be detected.
	for _, mod := range tree.Glob("/usr/lib/x86_64-linux-gnu/xtables/*.so") {
		if err := tree.Install(fs, mod); err != nil {
			return err
		}
	}
	return nil
}

func (b *builder) curlContents(fs *rootfs.FS) error {
	tree, err := b.debTree()
	if err != nil {
		return err
	}
	for _, p := range []string{"/usr/bin/curl", "/bin/sleep"} {
		if err := tree.Install(fs, p); err != nil {
			return err
		}
	}
	// update-ca-certificates' bundle: the Mozilla certificates in name order.
	var bundle bytes.Buffer
	certs := tree.Glob("/usr/share/ca-certificates/mozilla/*.crt")
	if len(certs) == 0 {
		return fmt.Errorf("ca-certificates has no certificates")
	}
	for _, c := range certs {
		data, err := tree.Read(c)
		if err != nil {
			return err
		}
		bundle.Write(data)
		if !bytes.HasSuffix(data, []byte("\n")) {
			bundle.WriteByte('\n')
		}
	}
	if err := fs.File("/etc/ssl/certs/ca-certificates.crt", bundle.Bytes(), 0o644); err != nil {
		return err
	}
	if err := fs.File("/etc/nsswitch.conf", []byte("passwd: files\ngroup: files\nhosts: files dns\n"), 0o644); err != nil {
		return err
	}
	if err := fs.Dir("/tmp", 0o777|os.ModeSticky, 0, 0); err != nil {
		return err
	}
	if err := fs.Dir(curlUser.home, 0o755, curlUser.uid, curlUser.gid); err != nil {
		return err
	}
	return addAccounts(fs, curlUser)
}
