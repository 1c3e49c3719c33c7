package admit

import (
	"strings"
	"testing"

	"github.com/corsmesh/corsmesh/webhook/internal/webhooktest"
)

func TestValidatePolicies(t *testing.T) {
	_, validate, _ := newTestHandlers(t, webhooktest.SeedCluster(t))
	tests := []struct {
		name     string
		kind     string
		yaml     string
		allowed  bool
		causes   []string // fields named in the rejection
		warnings []string // substrings of the warnings
	}{
		{
			name:     "the seed's PluginConfig: accepted, with the risky parts warned about",
			kind:     "PluginConfig",
			yaml:     seedPluginConfig(""),
			allowed:  true,
			warnings: []string{"allowOrigins[0].regex", "unescaped", "allowOrigins[2].prefix", "host boundary", "maxAge", "Chromium"},
		},
		{
			name:   "bad regex, bad maxAge, unknown field: rejected, each field named",
			kind:   "PluginConfig",
			yaml:   seedPluginConfig("    allowOrigins:\n    - regex: \"(\"\n    maxAge: 24x\n    allowOrigin: []\n"),
			causes: []string{"spec.config.allowOrigins[0].regex", "spec.config.maxAge", "spec.config.allowOrigin"},
		},
		{
			name:   "an entry with two kinds set",
			kind:   "PluginConfig",
			yaml:   seedPluginConfig("    allowOrigins:\n    - exact: http://a.example\n      prefix: http://b.example\n"),
			causes: []string{"spec.config.allowOrigins[0]"},
		},
		{
			name:     "match-everything regex with credentials: accepted with a warning",
			kind:     "PluginConfig",
			yaml:     seedPluginConfig("    allowCredentials: true\n    allowOrigins:\n    - regex: \".*\"\n"),
			allowed:  true,
			warnings: []string{"matches any origin", "credentialed"},
		},
		{
			name:    "the seed's PluginChain",
			kind:    "PluginChain",
			yaml:    "apiVersion: plugin.flomesh.io/v1alpha1\nkind: PluginChain\nmetadata: {name: cors-policy-chain, namespace: pipy}\nspec:\n  chains: [{name: inbound-http, plugins: [cors-policy]}]\n  selectors:\n    podSelector: {matchLabels: {app: pipy-ok}}\n",
			allowed: true,
		},
		{
			name:   "a chain with an invalid selector",
			kind:   "PluginChain",
			yaml:   "apiVersion: plugin.flomesh.io/v1alpha1\nkind: PluginChain\nmetadata: {name: bad, namespace: pipy}\nspec:\n  chains: [{name: inbound-http, plugins: [cors-policy]}]\n  selectors:\n    podSelector: {matchExpressions: [{key: app, operator: In}]}\n",
			causes: []string{"spec.selectors.podSelector.matchExpressions[0].values"},
		},
		{
			name:     "a plugin we do not implement: accepted with a warning",
			kind:     "Plugin",
			yaml:     "apiVersion: plugin.flomesh.io/v1alpha1\nkind: Plugin\nmetadata: {name: token-auth}\nspec: {priority: 10, pipyscript: x}\n",
			allowed:  true,
			warnings: []string{"does not implement", "token-auth"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, review := post(t, validate, reviewFor(t, tt.kind, "plugin.flomesh.io", "pipy", tt.yaml), "application/json")
			if review == nil {
				t.Fatal("no review")
			}
			resp := review.Response
			if resp.Allowed != tt.allowed {
				t.Fatalf("allowed = %v, want %v (%+v)", resp.Allowed, tt.allowed, resp.Result)
			}
			if !tt.allowed {
				if resp.Result.Code != 422 || resp.Result.Reason != "Invalid" {
					t.Errorf("result %d %s, want 422 Invalid", resp.Result.Code, resp.Result.Reason)
				}
				var fields []string
				for _, c := range resp.Result.Details.Causes {
					fields = append(fields, c.Field)
				}
				for _, want := range tt.causes {
					if !contains(fields, want) || !strings.Contains(resp.Result.Message, want) {
						t.Errorf("rejection does not name %s: fields %q, message %q", want, fields, resp.Result.Message)
					}
				}
			}
			all := strings.Join(resp.Warnings, "\n")
			for _, want := range tt.warnings {
				if !strings.Contains(all, want) {
					t.Errorf("warnings lack %q:\n%s", want, all)
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// seedPluginConfig is the seed's PluginConfig; config, when set, replaces its spec.config body.
func seedPluginConfig(config string) string {
	if config == "" {
		config = `    allowCredentials: true
    allowHeaders:
    - X-Foo-Bar-1
    allowMethods:
    - POST
    - GET
    - PATCH
    - DELETE
    allowOrigins:
    - regex: http.*://www.test.cn
    - exact: http://www.aaa.com
    - prefix: http://www.bbb.com
    exposeHeaders:
    - Content-Encoding
    - Kuma-Revision
    maxAge: 24h
`
	}
	return `kind: PluginConfig
apiVersion: plugin.flomesh.io/v1alpha1
metadata:
  name: cors-policy-config
  namespace: pipy
spec:
  config:
` + config + `  plugin: cors-policy
  destinationRefs:
    - kind: Service
      name: pipy-ok
      namespace: pipy
`
}
