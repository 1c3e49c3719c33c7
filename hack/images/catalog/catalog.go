// Package catalog names every image `make images` and `make sandbox-images`
// build: the reference each is tagged with and the archive it is written to.
// The sandbox node reads it to know what to load and serve.
package catalog

import "path/filepath"

// DefaultVersion tags the release images; manifests/base and the injector's
// defaults name it.
const DefaultVersion = "v0.1.0"

// Set tells release images (ours) from the sandbox's stand-ins.
type Set string

const (
	Release Set = "release"
	Sandbox Set = "sandbox"
)

// Image is one image and where its archive goes.
type Image struct {
	// Name is short and unique: the archive is <Name>.tar.
	Name string
	// Repository and Tag form the reference the archive is tagged with.
	Repository, Tag string
	Set             Set
}

// Ref is the full reference, e.g. ghcr.io/corsmesh/corsproxy:v0.1.0.
func (i Image) Ref() string { return i.Repository + ":" + i.Tag }

// Archive is the archive's path under dir (bin/images): release images at
// the top, sandbox ones in sandbox/.
func (i Image) Archive(dir string) string {
	if i.Set == Sandbox {
		return filepath.Join(dir, "sandbox", i.Name+".tar")
	}
	return filepath.Join(dir, i.Name+".tar")
}

// PauseRef is containerd v2.4's default sandbox image, the one kubelet's
// pods start in; the sandbox pins it as containerd's sandbox image.
const PauseRef = "registry.k8s.io/pause:3.10.2"

// CoreDNSVersion is the github.com/coredns/coredns module version built.
const CoreDNSVersion = "v1.15.0"

// Images returns every image, release ones tagged version.
func Images(version string) []Image {
	return []Image{
		{Name: "corsproxy", Repository: "ghcr.io/corsmesh/corsproxy", Tag: version, Set: Release},
		{Name: "corsproxy-init", Repository: "ghcr.io/corsmesh/corsproxy-init", Tag: version, Set: Release},
		{Name: "corsmesh-webhook", Repository: "ghcr.io/corsmesh/corsmesh-webhook", Tag: version, Set: Release},
		{Name: "pause", Repository: "registry.k8s.io/pause", Tag: "3.10.2", Set: Sandbox},
		{Name: "curl", Repository: "docker.io/curlimages/curl", Tag: "latest", Set: Sandbox},
		{Name: "pipy", Repository: "docker.io/flomesh/pipy", Tag: "latest", Set: Sandbox},
		{Name: "coredns", Repository: "registry.k8s.io/coredns/coredns", Tag: CoreDNSVersion, Set: Sandbox},
	}
}

// Of returns the images of one set.
func Of(set Set, version string) []Image {
	var out []Image
	for _, i := range Images(version) {
		if i.Set == set {
			out = append(out, i)
		}
	}
	return out
}
