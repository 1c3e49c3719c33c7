package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/corsmesh/corsmesh/hack/images/catalog"
)

// TestImagesMatchManifests reads what the manifests and the injector assume
// of the images from the repository's sources and checks the builder agrees:
// the references `make images` tags, and the user each image runs as (the
// pod's runAsUser must match it: the proxy's UID is also what its iptables
// rules exempt).
func TestImagesMatchManifests(t *testing.T) {
	read := func(rel string) string {
		t.Helper()
		data, err := os.ReadFile(filepath.Join("..", "..", rel))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	find := func(text, what string, re *regexp.Regexp) string {
		t.Helper()
		m := re.FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("cannot find %s (%s)", what, re)
		}
		return m[1]
	}
	options := read("injector/options.go")
	deployment := read("manifests/base/deployment.yaml")

	refs := map[string]string{}
	for _, img := range catalog.Of(catalog.Release, catalog.DefaultVersion) {
		refs[img.Name] = img.Ref()
	}
	for _, tt := range []struct{ what, got, image string }{
		{"injector ProxyImage default", find(options, "ProxyImage", regexp.MustCompile(`ProxyImage:\s*"([^"]+)"`)), "corsproxy"},
		{"injector InitImage default", find(options, "InitImage", regexp.MustCompile(`InitImage:\s*"([^"]+)"`)), "corsproxy-init"},
		{"deployment's webhook image", find(deployment, "webhook image", regexp.MustCompile(`(?m)^\s*image:\s*(\S+)`)), "corsmesh-webhook"},
		{"deployment's proxy image", find(deployment, "proxy image", regexp.MustCompile(`(?m)value:\s*(ghcr.io/corsmesh/corsproxy:\S+)`)), "corsproxy"},
		{"deployment's init image", find(deployment, "init image", regexp.MustCompile(`(?m)value:\s*(ghcr.io/corsmesh/corsproxy-init:\S+)`)), "corsproxy-init"},
	} {
		if tt.got != refs[tt.image] {
			t.Errorf("%s is %s, make images tags %s", tt.what, tt.got, refs[tt.image])
		}
	}

	proxyUID := find(options, "ProxyUID default", regexp.MustCompile(`ProxyUID:\s*(\d+)`))
	webhookUID := find(deployment, "webhook runAsUser", regexp.MustCompile(`runAsUser:\s*(\d+)`))
	if want := fmt.Sprintf("%s:%s", proxyUID, proxyUID); proxyUser.user() != want {
		t.Errorf("corsproxy image user %s, the injector runs it as %s", proxyUser.user(), want)
	}
	if want := fmt.Sprintf("%s:%s", webhookUID, webhookUID); nonroot.user() != want {
		t.Errorf("webhook image user %s, the deployment runs it as %s", nonroot.user(), want)
	}
}
