package injector

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

func TestValidatePluginConfigWildcards(t *testing.T) {
	tests := []struct {
		name        string
		config      string
		wantErr     string // a substring of the one error, "" for none
		wantField   string
		wantWarning string // a substring of a warning, "" for none expected about wildcards
	}{
		{name: "subdomains of one's own domain", config: `{"allowOrigins":[{"wildcard":"https://*.example.com"}]}`},
		{name: "any port of localhost", config: `{"allowCredentials":true,"allowOrigins":[{"wildcard":"http://localhost:*"}]}`},
		{name: "subdomains of localhost", config: `{"allowOrigins":[{"wildcard":"http://*.localhost:*"}]}`},
		{
			name: "bare * host", config: `{"allowOrigins":[{"wildcard":"https://*"}]}`,
			wantErr: "bare * host", wantField: "spec.config.allowOrigins[0].wildcard",
		},
		{
			name: "top-level domain", config: `{"allowOrigins":[{"exact":"https://a.org"},{"wildcard":"https://*.com"}]}`,
			wantErr: `"com" is a public suffix`, wantField: "spec.config.allowOrigins[1].wildcard",
		},
		{
			name: "country second-level suffix", config: `{"allowOrigins":[{"wildcard":"https://*.co.uk:*"}]}`,
			wantErr: `"co.uk" is a public suffix`, wantField: "spec.config.allowOrigins[0].wildcard",
		},
		{
			name: "private public suffix", config: `{"allowOrigins":[{"wildcard":"https://*.github.io"}]}`,
			wantErr: `"github.io" is a public suffix`, wantField: "spec.config.allowOrigins[0].wildcard",
		},
		{
			name: "credentials over plain http", config: `{"allowCredentials":true,"allowOrigins":[{"wildcard":"http://*.example.com"}]}`,
			wantWarning: "spec.config.allowOrigins[0].wildcard: \"http://*.example.com\" with allowCredentials over plain http",
		},
	}
	in := New(DefaultOptions())
	lookup := func(name string) *v1alpha1.Plugin {
		return &v1alpha1.Plugin{ObjectMeta: metav1.ObjectMeta{Name: name}}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &v1alpha1.PluginConfig{
				ObjectMeta: metav1.ObjectMeta{Name: "cors", Namespace: "app"},
				Spec: v1alpha1.PluginConfigSpec{
					Plugin:          "cors-policy",
					DestinationRefs: []v1alpha1.DestinationRef{{Kind: v1alpha1.DestinationKindService, Name: "web", Namespace: "app"}},
					Config:          runtime.RawExtension{Raw: []byte(tt.config)},
				},
			}
			errs, warnings := in.ValidatePluginConfig(c, lookup)
			switch {
			case tt.wantErr == "" && len(errs) > 0:
				t.Fatalf("errors %v, want none", errs)
			case tt.wantErr != "" && (len(errs) != 1 || errs[0].Field != tt.wantField || !strings.Contains(errs[0].Error(), tt.wantErr)):
				t.Fatalf("errors %v, want one on %s containing %q", errs, tt.wantField, tt.wantErr)
			}
			var wildcardWarnings []string
			for _, w := range warnings {
				if strings.Contains(w, "wildcard") {
					wildcardWarnings = append(wildcardWarnings, w)
				}
			}
			switch {
			case tt.wantWarning == "" && len(wildcardWarnings) > 0:
				t.Errorf("warnings %q, want none about wildcards", wildcardWarnings)
			case tt.wantWarning != "" && (len(wildcardWarnings) != 1 || !strings.Contains(wildcardWarnings[0], tt.wantWarning)):
				t.Errorf("warnings %q, want one containing %q", warnings, tt.wantWarning)
			}
		})
	}
}
