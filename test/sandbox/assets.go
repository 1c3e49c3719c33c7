package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/corsmesh/corsmesh/test/gobuild"
)

// certManagerModule ships cert-manager's CRDs under deploy/crds.
const certManagerModule = "github.com/cert-manager/cert-manager"

// certManagerFallbackVersion is used only when the running binary carries no module
// information (it is the version pinned in go.mod).
const certManagerFallbackVersion = "v1.21.2"

// ErrNoBinaries is wrapped by the error Start returns when the control plane binaries are
// missing: build them with hack/build-controlplane.sh.
var ErrNoBinaries = errors.New("control plane binaries missing: run hack/build-controlplane.sh")

// binaries the sandbox runs.
var binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kubectl"}

// FindRepoRoot returns the corsmesh repository root, as gobuild.RepoRoot finds it: the
// first directory, from the working directory up, whose go.mod declares the corsmesh
// module.
func FindRepoRoot() (string, error) { return gobuild.RepoRoot() }

// PinnedKubeVersion reads PINNED_KUBE_VERSION from hack/controlplane/versions.env, the
// version hack/build-controlplane.sh builds by default.
func PinnedKubeVersion(repoRoot string) (string, error) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "hack", "controlplane", "versions.env"))
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "PINNED_KUBE_VERSION="); ok {
			return strings.Trim(v, `"'`), nil
		}
	}
	return "", errors.New("hack/controlplane/versions.env has no PINNED_KUBE_VERSION")
}

// FindAssets returns the directory holding etcd, kube-apiserver, kube-controller-manager
// and kubectl: dir if set, else $KUBEBUILDER_ASSETS, else <repo>/bin/k8s/<pinned version>.
// The error wraps ErrNoBinaries when a binary is missing.
func FindAssets(dir, repoRoot string) (string, error) {
	if dir == "" {
		dir = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if dir == "" {
		version, err := PinnedKubeVersion(repoRoot)
		if err != nil {
			return "", fmt.Errorf("finding the control plane version: %w", err)
		}
		dir = filepath.Join(repoRoot, "bin", "k8s", version)
	}
	var missing []string
	for _, b := range binaries {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("%w (%s not in %s)", ErrNoBinaries, strings.Join(missing, ", "), dir)
	}
	return dir, nil
}

// CertManagerCRDDir returns cert-manager's deploy/crds directory in the Go module cache.
//
// The CRDs are not copied into this repository, so they can never drift from the
// controllers that run in-process: both come from the one module version in go.mod. The
// version is the one linked into the running binary (debug.ReadBuildInfo), the cache
// directory is $GOMODCACHE, `go env GOMODCACHE` or $GOPATH/pkg/mod; when the module is not
// in the cache (a fresh machine that never ran `go mod download`), `go mod download`
// fetches it.
func CertManagerCRDDir(repoRoot string) (string, error) {
	version := certManagerFallbackVersion
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == certManagerModule {
				if dep.Replace != nil {
					dep = dep.Replace
				}
				version = dep.Version
			}
		}
	}
	rel := filepath.Join(filepath.FromSlash(certManagerModule)+"@"+version, "deploy", "crds")
	for _, cache := range modCacheCandidates() {
		dir := filepath.Join(cache, rel)
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return dir, nil
		}
	}
	cmd := exec.Command("go", "mod", "download", "-json", certManagerModule+"@"+version)
	cmd.Dir = repoRoot
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locating %s@%s (its CRDs): go mod download: %v: %s", certManagerModule, version, err, strings.TrimSpace(stderr.String()))
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return "", fmt.Errorf("locating %s@%s: unexpected go mod download output %q", certManagerModule, version, out)
	}
	return filepath.Join(mod.Dir, "deploy", "crds"), nil
}

func modCacheCandidates() []string {
	var dirs []string
	if d := os.Getenv("GOMODCACHE"); d != "" {
		dirs = append(dirs, d)
	}
	if out, err := exec.Command("go", "env", "GOMODCACHE").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); d != "" {
			dirs = append(dirs, d)
		}
	}
	if gopath := os.Getenv("GOPATH"); gopath != "" {
		for p := range strings.SplitSeq(gopath, string(os.PathListSeparator)) {
			dirs = append(dirs, filepath.Join(p, "pkg", "mod"))
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "pkg", "mod"))
	}
	return dirs
}
