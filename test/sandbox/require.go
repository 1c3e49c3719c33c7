package sandbox

import "testing"

// GuideImages are the images the guide's workloads and corsmesh's default overlay run on
// the node (make images sandbox-images build them).
var GuideImages = []string{CoreDNSImage, "docker.io/curlimages/curl:latest", "docker.io/flomesh/pipy:latest",
	"ghcr.io/corsmesh/corsmesh-webhook:v0.1.0", "ghcr.io/corsmesh/corsproxy:v0.1.0", "ghcr.io/corsmesh/corsproxy-init:v0.1.0"}

// RequireImages skips the test, or fails it on CI, unless the node's registry serves every
// image of refs.
func RequireImages(t testing.TB, s *Sandbox, refs ...string) {
	t.Helper()
	for _, ref := range refs {
		if s.ServesImage(ref) {
			continue
		}
		if OnCI() {
			t.Fatalf("the registry does not serve %s: make images sandbox-images", ref)
		}
		t.Skipf("skipping: the registry does not serve %s (make images sandbox-images)", ref)
	}
}
