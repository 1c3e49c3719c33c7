package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/corsmesh/corsmesh/hack/release/chartcheck"
)

var repo = filepath.Join("..", "..", "..", "..")

// The release file is the default overlay with every image at the release's version, and
// pinned to its digest when one is given.
func TestReleaseManifestImages(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	out, err := run(repo, "v1.2.3", "registry.example/cm", digests{"corsproxy-init": digest}, false)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := chartcheck.Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	def, err := chartcheck.Kustomize(filepath.Join(repo, "manifests", "overlays", "default"))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != len(def) {
		t.Errorf("%d objects, the default overlay has %d", len(objs), len(def))
	}
	text := string(out)
	for _, want := range []string{
		"image: registry.example/cm/corsmesh-webhook:v1.2.3\n",
		"value: registry.example/cm/corsproxy:v1.2.3\n",
		"value: registry.example/cm/corsproxy-init:v1.2.3@" + digest + "\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in the release file", strings.TrimSpace(want))
		}
	}
	if strings.Contains(text, "ghcr.io/corsmesh/") {
		t.Error("the release file still names ghcr.io/corsmesh images")
	}
}

func TestReleaseManifestCRDsOnly(t *testing.T) {
	out, err := run(repo, "v1.2.3", "ghcr.io/corsmesh", digests{}, true)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := chartcheck.Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) == 0 {
		t.Fatal("no CRD")
	}
	for _, o := range objs {
		if o.Kind != "CustomResourceDefinition" {
			t.Errorf("%s in the CRD file", o.Key())
		}
	}
}

func TestReleaseManifestRejects(t *testing.T) {
	for _, v := range []string{"", "1.2.3", "v1.2", "v1.2.3 --x", "v1.2.3\nkind: Secret"} {
		if _, err := run(repo, v, "ghcr.io/corsmesh", digests{}, false); err == nil || !strings.Contains(err.Error(), "-version") {
			t.Errorf("version %q: error %v, want one naming -version", v, err)
		}
	}
	for _, r := range []string{"", "ghcr.io/", "GHCR.io/x", "ghcr.io/x y", "ghcr.io/x\nkind: Secret"} {
		if _, err := run(repo, "v1.2.3", r, digests{}, false); err == nil || !strings.Contains(err.Error(), "-registry") {
			t.Errorf("registry %q: error %v, want one naming -registry", r, err)
		}
	}
	for _, d := range []string{"corsproxy=sha256:abc", "corsproxy=md5:" + strings.Repeat("a", 64), "other=sha256:" + strings.Repeat("a", 64), "corsproxy"} {
		if err := (digests{}).Set(d); err == nil {
			t.Errorf("-digest %q accepted", d)
		}
	}
}
