package walkthrough

import (
	"os"
	"path/filepath"
	"testing"
)

// The walkthrough runs the guide's plugin-policy step from the guide itself: it must find
// the command there, unchanged.
func TestGuideEnablesPluginPolicy(t *testing.T) {
	guide, err := os.ReadFile(filepath.Join("..", "..", "manifests", "testdata", "cors-plugin.md"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := bashBlockAfter(string(guide), guideEnablePluginPolicy)
	if err != nil {
		t.Fatal(err)
	}
	want := `kubectl patch meshconfig osm-mesh-config -n "$osm_namespace" -p '{"spec":{"featureFlags":{"enablePluginPolicy":true}}}' --type=merge`
	if got != want {
		t.Errorf("the guide's step is\n%s\nwant\n%s", got, want)
	}
}
