// Command release-manifest writes the single-file install manifest of a release: the
// kustomize rendering of manifests/overlays/default with the three images set to the
// release's tag, or pinned to the digests the registry returned on push.
//
//	go run ./cmd/release-manifest -repo ../.. -version v1.2.3 \
//	    -digest corsproxy=sha256:... -digest corsproxy-init=sha256:... -digest corsmesh-webhook=sha256:...
//
// With -crds-only it writes only the CustomResourceDefinitions (what `helm upgrade` leaves
// alone: users apply that file before upgrading the chart).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// images are the overlay's images: names, by their last path element.
var images = []string{"corsmesh-webhook", "corsproxy", "corsproxy-init"}

var (
	versionRE = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`)
	digestRE  = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	// A registry host with an optional port and repository path, lowercase.
	registryRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$`)
)

type digests map[string]string

func (d digests) String() string { return fmt.Sprint(map[string]string(d)) }

func (d digests) Set(s string) error {
	name, digest, ok := strings.Cut(s, "=")
	if !ok || !digestRE.MatchString(digest) {
		return fmt.Errorf("%q: want NAME=sha256:<64 hex digits>", s)
	}
	known := false
	for _, n := range images {
		known = known || n == name
	}
	if !known {
		return fmt.Errorf("%q: unknown image %q (want one of %v)", s, name, images)
	}
	d[name] = digest
	return nil
}

func main() {
	repo := flag.String("repo", ".", "the repository's root")
	version := flag.String("version", "", "the release's version tag, vMAJOR.MINOR.PATCH[-PRE]")
	registry := flag.String("registry", "ghcr.io/corsmesh", "where the release's images are")
	crdsOnly := flag.Bool("crds-only", false, "write only the CustomResourceDefinitions")
	d := digests{}
	flag.Var(d, "digest", "NAME=sha256:... pins an image to the digest pushed (repeatable)")
	flag.Parse()
	out, err := run(*repo, *version, *registry, d, *crdsOnly)
	if err != nil {
		fmt.Fprintln(os.Stderr, "release-manifest:", err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
}

func run(repo, version, registry string, d digests, crdsOnly bool) ([]byte, error) {
	if !versionRE.MatchString(version) {
		return nil, fmt.Errorf("-version %q: want vMAJOR.MINOR.PATCH[-PRE]", version)
	}
	if !registryRE.MatchString(registry) {
		return nil, fmt.Errorf("-registry %q: want HOST[:PORT][/PATH], lowercase", registry)
	}
	overlay, err := filepath.Abs(filepath.Join(repo, "manifests", "overlays", "default"))
	if err != nil {
		return nil, err
	}
	// A kustomization on top of the default overlay, in memory, that sets the images.
	type image struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
		Digest  string `json:"digest,omitempty"`
	}
	var set []image
	for _, name := range images {
		set = append(set, image{Name: "ghcr.io/corsmesh/" + name, NewName: registry + "/" + name, NewTag: version, Digest: d[name]})
	}
	tmp, err := os.MkdirTemp("", "release-manifest-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	// kustomize takes only relative paths to other kustomizations.
	rel, err := filepath.Rel(tmp, overlay)
	if err != nil {
		return nil, err
	}
	kb, err := yaml.Marshal(map[string]any{
		"apiVersion": "kustomize.config.k8s.io/v1beta1",
		"kind":       "Kustomization",
		"resources":  []string{rel},
		"images":     set,
	})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "kustomization.yaml"), kb, 0o644); err != nil {
		return nil, err
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), tmp)
	if err != nil {
		return nil, fmt.Errorf("kustomize: %w", err)
	}
	if crdsOnly {
		crds := resmap.New()
		for _, r := range m.Resources() {
			if r.GetKind() == "CustomResourceDefinition" {
				if err := crds.Append(r); err != nil {
					return nil, err
				}
			}
		}
		m = crds
	}
	body, err := m.AsYaml()
	if err != nil {
		return nil, err
	}
	header := fmt.Sprintf("# corsmesh %s: kubectl apply --server-side -f <this file> (needs cert-manager).\n", version)
	if crdsOnly {
		header = fmt.Sprintf("# corsmesh %s CustomResourceDefinitions: apply before `helm upgrade` (Helm never updates CRDs).\n", version)
	}
	return append([]byte(header), body...), nil
}
