// Package cors is the CORS policy engine of the sidecar: a config.CORS compiled once into an
// immutable Policy whose per-request decision allocates nothing.
//
// It reproduces osm-edge's CORS plugin (the allowed origin echoed, credentials and exposed
// headers on actual responses, preflights answered by the proxy) with the corrections the
// README lists under "CORS behaviour": regexes match the whole origin, odd origins are not
// CORS requests, and "null" is allowed only by name.
package cors

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/corsmesh/corsmesh/corsproxy/config"
)

// MaxOriginLength bounds the work spent on one Origin header: a real origin is a scheme,
// a host of at most 253 bytes and a port, so anything longer is not one.
const MaxOriginLength = 512

// Header is one response header line, precomputed at compile time.
type Header struct{ Name, Value string }

// Response header names, lower case as osm-edge writes them.
const (
	HeaderAllowOrigin      = "access-control-allow-origin"
	HeaderAllowCredentials = "access-control-allow-credentials"
	HeaderExposeHeaders    = "access-control-expose-headers"
	HeaderAllowMethods     = "access-control-allow-methods"
	HeaderAllowHeaders     = "access-control-allow-headers"
	HeaderMaxAge           = "access-control-max-age"
	HeaderVary             = "vary"

	// VaryActual and VaryPreflight are appended to the upstream's Vary, never replacing it:
	// the answer depends on these request headers, so caches must key on them.
	VaryActual    = "Origin"
	VaryPreflight = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
)

// Decision is what the proxy does with one request under a policy.
type Decision uint8

const (
	// NotCORS: no Origin header; proxied untouched.
	NotCORS Decision = iota
	// InvalidOrigin: several Origin headers, or a value that is not a serialized origin;
	// treated as no CORS request, never echoed.
	InvalidOrigin
	// Rejected: a well-formed origin the policy does not allow; proxied without CORS headers.
	Rejected
	// Allowed: an allowed origin on a request other than OPTIONS; proxied, CORS headers added.
	Allowed
	// Preflight: OPTIONS from an allowed origin; answered by the proxy, never reaching the app.
	Preflight
)

var decisionNames = [...]string{"not_cors", "invalid_origin", "rejected", "allowed", "preflight"}

func (d Decision) String() string {
	if int(d) < len(decisionNames) {
		return decisionNames[d]
	}
	return "decision(" + strconv.Itoa(int(d)) + ")"
}

// Decisions lists every Decision, for metrics that report zero counts too.
func Decisions() []Decision { return []Decision{NotCORS, InvalidOrigin, Rejected, Allowed, Preflight} }

// Policy is a compiled CORS policy. It is immutable and safe for concurrent use.
type Policy struct {
	allowNull bool
	exact     map[string]struct{}
	prefixes  []string
	regexes   []*regexp.Regexp

	actual    []Header // besides access-control-allow-origin
	preflight []Header // besides access-control-allow-origin
}

// Compile validates c and builds its Policy.
func Compile(c *config.CORS) (*Policy, error) {
	if err := c.Validate(""); err != nil {
		return nil, fmt.Errorf("invalid CORS policy: %w", err)
	}
	p := &Policy{exact: make(map[string]struct{})}
	for _, o := range c.AllowOrigins {
		switch {
		case o.Exact == "null":
			p.allowNull = true
		case o.Exact != "":
			p.exact[o.Exact] = struct{}{}
		case o.Prefix != "":
			p.prefixes = append(p.prefixes, o.Prefix)
		case o.Regex != "":
			re, err := config.CompileOriginRegex(o.Regex)
			if err != nil {
				return nil, fmt.Errorf("compiling regex %q: %w", o.Regex, err)
			}
			p.regexes = append(p.regexes, re)
		}
	}
	// osm-edge's order: credentials and exposed headers on every allowed response,
	// then methods, headers and max-age on preflights.
	if c.AllowCredentials {
		p.actual = append(p.actual, Header{HeaderAllowCredentials, "true"})
	}
	if len(c.ExposeHeaders) > 0 {
		p.actual = append(p.actual, Header{HeaderExposeHeaders, strings.Join(c.ExposeHeaders, ",")})
	}
	p.preflight = append(p.preflight, p.actual...)
	if len(c.AllowMethods) > 0 {
		p.preflight = append(p.preflight, Header{HeaderAllowMethods, strings.Join(c.AllowMethods, ",")})
	}
	if len(c.AllowHeaders) > 0 {
		p.preflight = append(p.preflight, Header{HeaderAllowHeaders, strings.Join(c.AllowHeaders, ",")})
	}
	if len(c.MaxAge) > 0 {
		seconds, err := config.ParseMaxAge(c.MaxAge)
		if err != nil {
			return nil, fmt.Errorf("maxAge: %w", err)
		}
		if seconds > 0 { // osm-edge omits a zero max-age; browsers then use their default.
			p.preflight = append(p.preflight, Header{HeaderMaxAge, strconv.FormatInt(seconds, 10)})
		}
	}
	return p, nil
}

// Decide classifies a request from its method and its Origin header values: origin is the
// first value and originCount how many there were.
func (p *Policy) Decide(method, origin string, originCount int) Decision {
	switch {
	case originCount == 0:
		return NotCORS
	case originCount > 1 || len(origin) > MaxOriginLength:
		return InvalidOrigin
	}
	allowed := false
	if origin == "null" {
		allowed = p.allowNull
	} else if !config.IsSerializedOrigin(origin) {
		return InvalidOrigin
	} else {
		allowed = p.AllowsOrigin(origin)
	}
	switch {
	case !allowed:
		return Rejected
	case method == "OPTIONS":
		return Preflight
	default:
		return Allowed
	}
}

// AllowsOrigin reports whether a well-formed, non-null origin is allowed.
func (p *Policy) AllowsOrigin(origin string) bool {
	if _, ok := p.exact[origin]; ok {
		return true
	}
	for _, prefix := range p.prefixes {
		if strings.HasPrefix(origin, prefix) {
			return true
		}
	}
	for _, re := range p.regexes {
		if re.MatchString(origin) {
			return true
		}
	}
	return false
}

// ActualHeaders are added, with access-control-allow-origin, to an allowed actual response.
func (p *Policy) ActualHeaders() []Header { return p.actual }

// PreflightHeaders are sent, with access-control-allow-origin, in a preflight answer.
func (p *Policy) PreflightHeaders() []Header { return p.preflight }
