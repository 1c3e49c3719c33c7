package config

import (
	"fmt"
	"regexp/syntax"
	"strings"
)

// Browsers cap how long they cache a preflight; a longer maxAge is silently shortened.
const (
	chromiumMaxAge = 7200
	firefoxMaxAge  = 86400
)

// Lint returns warnings for a valid policy that works but is probably not what its author
// meant. The webhook returns them as admission warnings; they never reject anything.
// path prefixes field names ("" for none). Call it on a policy that passed Validate.
func (c *CORS) Lint(path string) []string {
	var warnings []string
	warn := func(field, format string, args ...any) {
		warnings = append(warnings, join(path, field)+": "+fmt.Sprintf(format, args...))
	}
	if len(c.AllowOrigins) == 0 {
		warn("allowOrigins", "empty: no origin is allowed, so the policy adds no CORS headers")
	}
	for i, o := range c.AllowOrigins {
		field := index("allowOrigins", i)
		switch {
		case o.Exact != "":
			if o.Exact != "null" && !IsSerializedOrigin(o.Exact) {
				warn(field+".exact", "%q is not an origin as browsers send it (scheme://host[:port], lower case, no path or trailing slash), so it never matches", o.Exact)
			}
			if o.Exact == "null" {
				warn(field+".exact", `"null" is the origin of sandboxed iframes, local files and some redirects: any page can produce it`)
			}
		case o.Prefix != "":
			_, host, hasScheme := strings.Cut(o.Prefix, "://")
			switch {
			case hasScheme && host == "":
				warn(field+".prefix", "%q matches every origin with that scheme", o.Prefix)
			case !strings.HasSuffix(o.Prefix, ":") && !strings.HasSuffix(o.Prefix, "/"):
				warn(field+".prefix", "%q does not end at a host boundary: it also matches %q; use exact, or a regex such as %q", o.Prefix, o.Prefix+".evil.example", "^"+strings.ReplaceAll(o.Prefix, ".", `\.`)+`(:\d+)?$`)
			}
		case o.Regex != "":
			warnings = append(warnings, lintRegex(join(path, field+".regex"), o.Regex, c.AllowCredentials)...)
		case o.Wildcard != "":
			if w, err := ParseWildcard(o.Wildcard); err == nil && c.AllowCredentials && w.Scheme == "http" && (w.Subdomains || w.Port == "*") && !isLoopbackName(w.Host) {
				warn(field+".wildcard", "%q with allowCredentials over plain http: anyone on the network path can serve a page from a matching origin and make credentialed requests", o.Wildcard)
			}
		}
	}
	for i, h := range c.AllowHeaders {
		if h == "*" {
			warn(index("allowHeaders", i), `"*" never covers Authorization, and browsers treat it literally on credentialed requests`)
		}
	}
	if len(c.MaxAge) > 0 {
		if seconds, err := ParseMaxAge(c.MaxAge); err == nil {
			switch {
			case seconds > firefoxMaxAge:
				warn("maxAge", "%d s is above what browsers honour (Chromium caps at %d s, Firefox at %d s)", seconds, chromiumMaxAge, firefoxMaxAge)
			case seconds > chromiumMaxAge:
				warn("maxAge", "%d s is above Chromium's cap of %d s; Chromium caches preflights for %d s", seconds, chromiumMaxAge, chromiumMaxAge)
			}
		}
	}
	return warnings
}

// isLoopbackName: a development origin on this machine, where plain http is expected.
func isLoopbackName(host string) bool {
	return host == "localhost" || strings.HasSuffix(host, ".localhost") || host == "127.0.0.1" || host == "[::1]"
}

// lintRegex warns about a bare "." (one character, any character) and about an expression
// that lets any origin in.
func lintRegex(field, expr string, credentials bool) []string {
	var warnings []string
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil // Validate reports it.
	}
	if hasBareDot(re) {
		warnings = append(warnings, fmt.Sprintf(`%s: %q has an unescaped "." that matches any character (write \. for a literal dot)`, field, expr))
	}
	compiled, err := CompileOriginRegex(expr)
	if err != nil {
		return warnings
	}
	if compiled.MatchString("https://attacker.example") && compiled.MatchString("http://evil.invalid:8080") {
		msg := fmt.Sprintf("%s: %q matches any origin", field, expr)
		if credentials {
			msg += "; with allowCredentials every site can make credentialed requests and read the answers"
		}
		warnings = append(warnings, msg)
	}
	return warnings
}

// hasBareDot finds a "." that is not the operand of a repetition such as ".*": those are
// deliberate wildcards, a lone dot in a host name usually is not.
func hasBareDot(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return true
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		if op := re.Sub[0].Op; op == syntax.OpAnyChar || op == syntax.OpAnyCharNotNL {
			return false
		}
	}
	for _, sub := range re.Sub {
		if hasBareDot(sub) {
			return true
		}
	}
	return false
}

// IsSerializedOrigin reports whether s has the shape of an origin as a browser serializes
// it: a lower-case scheme, "://", a lower-case host, and an optional port; nothing else.
// It does linear work and no allocation, so the proxy can run it on every request.
func IsSerializedOrigin(s string) bool {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" || rest == "" {
		return false
	}
	for i := 0; i < len(scheme); i++ {
		c := scheme[i]
		if !(c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	var port string
	if rest[0] == '[' {
		// An IPv6 literal, which browsers serialize in lower-case hex with colons (and
		// maybe a dotted IPv4 tail): "[", at least one such byte, "]".
		end := strings.IndexByte(rest, ']')
		if end < 2 {
			return false
		}
		for i := 1; i < end; i++ {
			if !ipv6Bytes[rest[i]] {
				return false
			}
		}
		port = rest[end+1:]
	} else {
		// A host name or IPv4 address, up to the first ':' (so a second ':' is not a port).
		i := 0
		for ; i < len(rest) && rest[i] != ':'; i++ {
			if !hostBytes[rest[i]] {
				return false
			}
		}
		if i == 0 {
			return false
		}
		port = rest[i:]
	}
	if port != "" {
		if port[0] != ':' || len(port) == 1 || len(port) > 6 {
			return false
		}
		for i := 1; i < len(port); i++ {
			if port[i] < '0' || port[i] > '9' {
				return false
			}
		}
	}
	return true
}

// hostBytes and ipv6Bytes are the bytes a serialized origin's host may contain: a lookup
// table keeps IsSerializedOrigin, which runs on every request, to a load per byte.
var hostBytes, ipv6Bytes = func() (host, ipv6 [256]bool) {
	for c := '!'; c < 0x7f; c++ {
		host[c] = !(c >= 'A' && c <= 'Z') && !strings.ContainsRune("/?#@\\%:[]", c)
	}
	for _, c := range "0123456789abcdef:." {
		ipv6[c] = true
	}
	return host, ipv6
}()
