package config

import (
	"strings"
	"testing"
)

func TestWildcardMatch(t *testing.T) {
	tests := []struct {
		pattern string
		match   []string
		noMatch []string
	}{
		{
			pattern: "https://*.example.com",
			match:   []string{"https://a.example.com", "https://a.b.example.com", "https://x-1.example.com", "https://1.example.com"},
			noMatch: []string{
				"https://example.com",             // one or more labels, not zero
				"https://example.com.evil.com",    // the domain must end the host
				"https://notexample.com",          // label-bounded
				"https://a.notexample.com",        // label-bounded
				"https://.example.com",            // empty label
				"https://a..example.com",          // empty label
				"http://a.example.com",            // other scheme
				"https://a.example.com:443",       // a port where none is allowed
				"https://a.example.com:8443",      // a port where none is allowed
				"https://a.example.com.",          // trailing dot is another host
				"https://a!b.example.com",         // not a label
				"httpss://a.example.com",          // scheme prefix only
				"https://a.example.co",            // shorter domain
				"https://a.example.com/",          // not an origin
				"https://[::1].example.com",       // not a label
				"https://a.example.community.com", // suffix of a label
			},
		},
		{
			pattern: "http://localhost:*",
			match:   []string{"http://localhost", "http://localhost:3000", "http://localhost:1"},
			noMatch: []string{"http://localhost.evil.com", "http://a.localhost:3000", "https://localhost:3000", "http://localhostx:3000", "http://evil.com:3000"},
		},
		{
			pattern: "https://*.example.com:*",
			match:   []string{"https://a.example.com", "https://a.example.com:8443"},
			noMatch: []string{"https://example.com:8443", "https://a.example.com.evil.com:8443"},
		},
		{
			pattern: "https://*.example.com:8443",
			match:   []string{"https://a.example.com:8443"},
			noMatch: []string{"https://a.example.com", "https://a.example.com:84430", "https://a.example.com:844"},
		},
		{
			pattern: "http://[::1]:*",
			match:   []string{"http://[::1]", "http://[::1]:8080"},
			noMatch: []string{"http://[::2]:8080", "http://[::1]x:80"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			w, err := ParseWildcard(tt.pattern)
			if err != nil {
				t.Fatalf("ParseWildcard(%q): %v", tt.pattern, err)
			}
			if got := w.String(); got != tt.pattern {
				t.Errorf("String() = %q, want %q", got, tt.pattern)
			}
			for _, o := range tt.match {
				if !w.Match(o) {
					t.Errorf("Match(%q) = false, want true", o)
				}
			}
			for _, o := range tt.noMatch {
				if w.Match(o) {
					t.Errorf("Match(%q) = true, want false", o)
				}
			}
		})
	}
}

func TestParseWildcardErrors(t *testing.T) {
	tests := []struct{ pattern, want string }{
		{"*.example.com", "no scheme"},
		{"https://*", "bare * host"},
		{"https://*:*", "bare * host"},
		{"https://", "bare * host"},
		{"HTTPS://*.example.com", "not a lower-case URL scheme"},
		{"https://*.Example.com", "upper case"},
		{"https://a.*.example.com", `"*" stands only for whole leading labels`},
		{"https://*example.com", `"*" stands only for whole leading labels`},
		{"https://**.example.com", `"*" stands only for whole leading labels`},
		{"https://*.example.com/", "not a host name"},
		{"https://*.example.com:80/", "neither a port number"},
		{"https://*.example.com:0", "neither a port number"},
		{"https://*.example.com:65536", "neither a port number"},
		{"https://*.example.com:08", "neither a port number"},
		{"https://*.example.com:x", "neither a port number"},
		{"https://*.10.0.0.1", "no subdomains"},
		{"https://*.[::1]", "neither a port number"},
		{"https://*..com", "not a host name"},
		{"https://*.exa mple.com", "not a host name"},
		{"https://[::1", "unterminated"},
		{"https://*." + strings.Repeat("a", 64) + ".com", "not a host name"},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			_, err := ParseWildcard(tt.pattern)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseWildcard(%q) = %v, want an error containing %q", tt.pattern, err, tt.want)
			}
		})
	}
}

// FuzzWildcard checks that whatever a wildcard matches is a serialized origin whose host
// ends with the pattern's domain at a label boundary: the property that keeps
// example.com.evil.com and notexample.com out.
func FuzzWildcard(f *testing.F) {
	for _, s := range [][2]string{
		{"https://*.example.com", "https://a.example.com"},
		{"https://*.example.com", "https://example.com.evil.com"},
		{"http://localhost:*", "http://localhost:8080"},
		{"https://*.example.com:*", "https://a.notexample.com:1"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, origin string) {
		w, err := ParseWildcard(pattern)
		if err != nil || !IsSerializedOrigin(origin) || !w.Match(origin) {
			return
		}
		rest := strings.TrimPrefix(origin, w.Scheme+"://")
		if rest == origin {
			t.Fatalf("%q matched %q with another scheme", pattern, origin)
		}
		host := rest
		if !strings.HasPrefix(rest, "[") {
			host, _, _ = strings.Cut(rest, ":")
		}
		if w.Subdomains {
			if !strings.HasSuffix(host, "."+w.Host) || strings.HasPrefix(host, ".") || strings.Contains(host, "..") {
				t.Fatalf("%q matched %q: host %q is not subdomain labels of %q", pattern, origin, host, w.Host)
			}
		} else if !strings.HasPrefix(rest, w.Host) {
			t.Fatalf("%q matched %q: host differs", pattern, origin)
		}
	})
}
