package config_test

import (
	"strings"
	"testing"

	"github.com/corsmesh/corsmesh/corsproxy/config"
)

// warning is one expected Lint message: the field it names and a phrase it contains.
type warning struct{ field, contains string }

func TestLint(t *testing.T) {
	tests := []struct {
		name   string
		policy string // JSON, a valid policy
		path   string
		want   []warning // in order
	}{
		{
			name: "clean policy",
			policy: `{"allowCredentials":true,"allowOrigins":[{"exact":"https://app.example.com"},{"prefix":"https://app.example.com:"},` +
				`{"regex":"https://[a-z0-9-]+\\.example\\.com"},{"regex":"https?://(www\\.)?example\\.org"},{"regex":"https://.*\\.example\\.net"}],` +
				`"allowMethods":["GET","POST"],"allowHeaders":["X-Foo","Authorization"],"exposeHeaders":["X-Bar"],"maxAge":"2h"}`,
		},
		{
			name:   "seed policy",
			policy: seedJSON,
			want: []warning{
				{"allowOrigins[0].regex", `unescaped "."`},
				{"allowOrigins[2].prefix", "does not end at a host boundary"},
				{"maxAge", "above Chromium's cap of 7200 s"},
			},
		},
		{
			name:   "seed policy under a path",
			policy: seedJSON,
			path:   "ports[1].cors",
			want: []warning{
				{"ports[1].cors.allowOrigins[0].regex", `unescaped "."`},
				{"ports[1].cors.allowOrigins[2].prefix", "does not end at a host boundary"},
				{"ports[1].cors.maxAge", "above Chromium's cap"},
			},
		},
		{
			name:   "prefix not at a host boundary",
			policy: `{"allowOrigins":[{"exact":"http://a.com"},{"prefix":"https://api.example.com"}]}`,
			want:   []warning{{"allowOrigins[1].prefix", `also matches "https://api.example.com.evil.example"`}},
		},
		{
			name:   "wildcard with credentials over http",
			policy: `{"allowCredentials":true,"allowOrigins":[{"wildcard":"http://*.example.com"},{"wildcard":"https://*.example.com"},{"wildcard":"http://localhost:*"},{"wildcard":"http://example.org:*"}]}`,
			want: []warning{
				{"allowOrigins[0].wildcard", "allowCredentials over plain http"},
				{"allowOrigins[3].wildcard", "allowCredentials over plain http"},
			},
		},
		{
			name:   "wildcard over http without credentials is fine",
			policy: `{"allowOrigins":[{"wildcard":"http://*.example.com:*"}]}`,
		},
		{
			name:   "prefix that is only a scheme",
			policy: `{"allowOrigins":[{"prefix":"https://"}]}`,
			want:   []warning{{"allowOrigins[0].prefix", "matches every origin with that scheme"}},
		},
		{
			name:   "prefix ending at a port separator is fine",
			policy: `{"allowOrigins":[{"prefix":"http://localhost:"}]}`,
		},
		{
			name:   "unescaped dot in a regex",
			policy: `{"allowOrigins":[{"regex":"https://api.example\\.com"}]}`,
			want:   []warning{{"allowOrigins[0].regex", `unescaped "."`}},
		},
		{
			name:   "dot in a character class is literal",
			policy: `{"allowOrigins":[{"regex":"https://api[.]example[.]com"}]}`,
		},
		{
			name:   "match-everything regex with credentials",
			policy: `{"allowCredentials":true,"allowOrigins":[{"regex":".*"}]}`,
			want:   []warning{{"allowOrigins[0].regex", "matches any origin; with allowCredentials every site"}},
		},
		{
			name:   "match-everything regex without credentials",
			policy: `{"allowOrigins":[{"regex":"https?://.+"}]}`,
			want:   []warning{{"allowOrigins[0].regex", "matches any origin"}},
		},
		{
			name:   "maxAge above every browser",
			policy: `{"allowOrigins":[{"exact":"http://a.com"}],"maxAge":"2d"}`,
			want:   []warning{{"maxAge", "above what browsers honour"}},
		},
		{
			name:   "maxAge at Chromium's cap",
			policy: `{"allowOrigins":[{"exact":"http://a.com"}],"maxAge":7200}`,
		},
		{
			name:   "star in allowHeaders",
			policy: `{"allowOrigins":[{"exact":"http://a.com"}],"allowHeaders":["X-A","*"]}`,
			want:   []warning{{"allowHeaders[1]", "never covers Authorization"}},
		},
		{
			name:   "exact with a trailing slash",
			policy: `{"allowOrigins":[{"exact":"http://a.com"},{"exact":"http://b.com/"}]}`,
			want:   []warning{{"allowOrigins[1].exact", "never matches"}},
		},
		{
			name:   "exact in upper case",
			policy: `{"allowOrigins":[{"exact":"http://WWW.A.COM"}]}`,
			want:   []warning{{"allowOrigins[0].exact", "never matches"}},
		},
		{
			name:   "exact null",
			policy: `{"allowOrigins":[{"exact":"null"}]}`,
			want:   []warning{{"allowOrigins[0].exact", "any page can produce it"}},
		},
		{
			name:   "no origins",
			policy: `{"allowMethods":["GET"]}`,
			want:   []warning{{"allowOrigins", "no origin is allowed"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.ParseCORS([]byte(tt.policy))
			if err != nil {
				t.Fatalf("ParseCORS(%s): %v", tt.policy, err)
			}
			got := c.Lint(tt.path)
			if len(got) != len(tt.want) {
				t.Fatalf("Lint(%q) = %q, want %d warnings: %+v", tt.path, got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				field, msg, _ := strings.Cut(got[i], ": ")
				if field != w.field || !strings.Contains(msg, w.contains) {
					t.Errorf("Lint warning %d = %q, want field %q and a message containing %q", i, got[i], w.field, w.contains)
				}
			}
		})
	}
}

const seedJSON = `{"allowCredentials":true,"allowHeaders":["X-Foo-Bar-1"],"allowMethods":["POST","GET","PATCH","DELETE"],` +
	`"allowOrigins":[{"regex":"http.*://www.test.cn"},{"exact":"http://www.aaa.com"},{"prefix":"http://www.bbb.com"}],` +
	`"exposeHeaders":["Content-Encoding","Kuma-Revision"],"maxAge":"24h"}`

func TestSeedJSONMatchesTestdata(t *testing.T) {
	a, err := config.ParseCORS([]byte(seedJSON))
	if err != nil {
		t.Fatal(err)
	}
	b, err := config.ParseCORS(seedCORS(t))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := a.Lint(""), b.Lint(""); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("seedJSON and testdata lint differently: %q vs %q", got, want)
	}
}

func TestIsSerializedOrigin(t *testing.T) {
	tests := []struct {
		origin string
		want   bool
	}{
		{"http://a.com", true},
		{"https://a.com:8443", true},
		{"http://[::1]:8080", true},
		{"http://[::1]", true},
		{"http://127.0.0.1:3000", true},
		{"http://localhost", true},
		{"https://xn--bcher-kva.example", true},
		{"chrome-extension://abcdefghijklmnop", true},
		{"http://a.com/", false},
		{"http://a.com/path", false},
		{"http://a.com:8080/", false},
		{"http://a.com?q", false},
		{"http://a.com#f", false},
		{"http://A.com", false},
		{"http://WWW.AAA.COM", false},
		{"HTTP://a.com", false},
		{"http://user@a.com", false},
		{"http://user:pass@a.com", false},
		{"http://a.com:", false},
		{"http://a.com:80a", false},
		{"http://a.com:1234567", false},
		{"http://a:b.com", false},
		{"http://a.com:80:80", false},
		{"http://[::1", false},
		{"http://[::1]x", false},
		{"http://[]", false},
		{"http://[::1]]", false},
		{"http://[g::1]", false},
		{"http://a[b].com", false},
		{"http://:80", false},
		{"http://", false},
		{"://a.com", false},
		{"1http://a.com", false},
		{"null", false},
		{"a.com", false},
		{"//a.com", false},
		{"", false},
		{"http://a .com", false},
		{" http://a.com", false},
		{"http://a.com ", false},
		{"http://a.com\t", false},
		{"http://a\\b.com", false},
		{"http://a%2e.com", false},
		{"http://\xffa.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			if got := config.IsSerializedOrigin(tt.origin); got != tt.want {
				t.Errorf("IsSerializedOrigin(%q) = %v, want %v", tt.origin, got, tt.want)
			}
		})
	}
}

func TestIsSerializedOriginAllocatesNothing(t *testing.T) {
	for _, origin := range []string{"https://www.example.com:8443", "http://[::1]:8080", "http://a.com/x"} {
		if n := testing.AllocsPerRun(100, func() { config.IsSerializedOrigin(origin) }); n != 0 {
			t.Errorf("IsSerializedOrigin(%q) allocates %v times per call, want 0", origin, n)
		}
	}
}
