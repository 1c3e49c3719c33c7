package integration

import (
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/corsmesh/corsmesh/test/sandbox"
)

// Wildcard origins through the API server and the validating webhook: a bare * host and a
// public suffix are rejected naming the entry, credentials over plain http are admitted
// with a warning, and corsmesh's preflight fields are checked by name.
func TestWildcardOriginValidation(t *testing.T) {
	s := sb(t)
	ctx := testContext(t, time.Minute)
	_, c, warns := clients(t, s)
	namespace(t, ctx, s, "wildcards", false, nil)
	pluginConfig := func(name, config string) string {
		return `apiVersion: plugin.flomesh.io/v1alpha1
kind: PluginConfig
metadata: {name: ` + name + `, namespace: wildcards}
spec:
  plugin: cors-policy
  destinationRefs: [{kind: Service, name: web, namespace: wildcards}]
  config: ` + config + "\n"
	}
	tests := []struct {
		name, config string
		wantErrs     []string // fragments of the rejection; none: admitted
		wantWarning  string
	}{
		{
			name:     "bare-star",
			config:   `{allowOrigins: [{exact: "https://ok.example"}, {wildcard: "https://*"}]}`,
			wantErrs: []string{"spec.config.allowOrigins[1].wildcard", "bare * host allows every site"},
		},
		{
			name:     "public-suffix",
			config:   `{allowOrigins: [{wildcard: "https://*.co.uk"}]}`,
			wantErrs: []string{"spec.config.allowOrigins[0].wildcard", `"co.uk" is a public suffix`},
		},
		{
			name:     "bad-modes",
			config:   `{allowOrigins: [{wildcard: "https://*.example.com"}], preflight: always, refusedPreflight: drop}`,
			wantErrs: []string{"spec.config.preflight", "spec.config.refusedPreflight"},
		},
		{
			name:        "http-credentials",
			config:      `{allowCredentials: true, allowOrigins: [{wildcard: "http://*.example.com:*"}], preflight: strict, refusedPreflight: answer, reportOnly: true}`,
			wantWarning: `spec.config.allowOrigins[0].wildcard: "http://*.example.com:*" with allowCredentials over plain http`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := sandbox.DecodeYAML([]byte(pluginConfig(tt.name, tt.config)))
			if err != nil {
				t.Fatal(err)
			}
			warns.reset()
			err = c.Create(ctx, objs[0])
			if len(tt.wantErrs) == 0 {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if got := warns.containing(tt.wantWarning); len(got) != 1 {
					t.Errorf("warnings %q, want one containing %q", warns.all(), tt.wantWarning)
				}
				return
			}
			if err == nil || !(apierrors.IsInvalid(err) || apierrors.IsForbidden(err)) {
				t.Fatalf("error %v, want a rejection", err)
			}
			for _, want := range tt.wantErrs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the rejection lacks %q:\n%v", want, err)
				}
			}
		})
	}
}
