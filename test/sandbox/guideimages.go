package sandbox

// GuideImages are the images the guide's workloads and corsmesh's default overlay run on
// the node (make images sandbox-images build them): for RequireServed.
var GuideImages = []string{CoreDNSImage, "docker.io/curlimages/curl:latest", "docker.io/flomesh/pipy:latest",
	"ghcr.io/corsmesh/corsmesh-webhook:v0.1.0", "ghcr.io/corsmesh/corsproxy:v0.1.0", "ghcr.io/corsmesh/corsproxy-init:v0.1.0"}
