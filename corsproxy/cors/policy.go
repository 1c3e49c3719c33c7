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
	allowNull int // index of exact "null" in allowOrigins, or -1
	exact     map[string]int
	prefixes  []indexed[string]
	regexes   []indexed[*regexp.Regexp]
	wildcards []indexed[*config.Wildcard]

	actual    []Header // besides access-control-allow-origin
	preflight []Header // besides access-control-allow-origin

	strictPreflight bool // only OPTIONS with Access-Control-Request-Method is a preflight
	answerRefused   bool // a refused preflight gets 403 from the proxy, not the app
	reportOnly      bool
}

// indexed is a matcher and the index of its allowOrigins entry, for explanations.
type indexed[T any] struct {
	i int
	m T
}

// Compile validates c and builds its Policy.
func Compile(c *config.CORS) (*Policy, error) {
	if err := c.Validate(""); err != nil {
		return nil, fmt.Errorf("invalid CORS policy: %w", err)
	}
	p := &Policy{
		allowNull:       -1,
		exact:           make(map[string]int),
		strictPreflight: c.Preflight == config.PreflightStrict,
		answerRefused:   c.RefusedPreflight == config.RefusedAnswer,
		reportOnly:      c.ReportOnly,
	}
	for i, o := range c.AllowOrigins {
		switch {
		case o.Exact == "null":
			if p.allowNull < 0 {
				p.allowNull = i
			}
		case o.Exact != "":
			if _, dup := p.exact[o.Exact]; !dup {
				p.exact[o.Exact] = i
			}
		case o.Prefix != "":
			p.prefixes = append(p.prefixes, indexed[string]{i, o.Prefix})
		case o.Regex != "":
			re, err := config.CompileOriginRegex(o.Regex)
			if err != nil {
				return nil, fmt.Errorf("compiling regex %q: %w", o.Regex, err)
			}
			p.regexes = append(p.regexes, indexed[*regexp.Regexp]{i, re})
		case o.Wildcard != "":
			w, err := config.ParseWildcard(o.Wildcard)
			if err != nil {
				return nil, fmt.Errorf("wildcard: %w", err)
			}
			p.wildcards = append(p.wildcards, indexed[*config.Wildcard]{i, w})
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
// first value and originCount how many there were. It is Evaluate for a request that
// carries Access-Control-Request-Method whenever it is an OPTIONS.
func (p *Policy) Decide(method, origin string, originCount int) Decision {
	d, _ := p.Evaluate(Request{Method: method, Origin: origin, OriginCount: originCount, RequestMethod: method == "OPTIONS"})
	return d
}

// Request is what a CORS decision looks at.
type Request struct {
	Method      string
	Origin      string // the first Origin header
	OriginCount int    // how many Origin headers there were
	// RequestMethod: the request carries Access-Control-Request-Method.
	RequestMethod bool
}

// Evaluate classifies a request, and says why when it is refused (Rejected or
// InvalidOrigin; otherwise the Reason is NoReason).
func (p *Policy) Evaluate(r Request) (Decision, Reason) {
	origin := r.Origin
	switch {
	case r.OriginCount == 0:
		return NotCORS, NoReason
	case r.OriginCount > 1:
		return InvalidOrigin, ReasonSeveralOrigins
	case len(origin) > MaxOriginLength:
		return InvalidOrigin, ReasonTooLong
	}
	if origin == "null" {
		if p.allowNull < 0 {
			return Rejected, ReasonNull
		}
	} else if !config.IsSerializedOrigin(origin) {
		return InvalidOrigin, ReasonInvalid
	} else if !p.AllowsOrigin(origin) {
		return Rejected, ReasonNotAllowed
	}
	if r.Method == "OPTIONS" && (r.RequestMethod || !p.strictPreflight) {
		return Preflight, NoReason
	}
	return Allowed, NoReason
}

// AllowsOrigin reports whether a well-formed, non-null origin is allowed.
func (p *Policy) AllowsOrigin(origin string) bool {
	_, ok := p.Match(origin)
	return ok
}

// Match returns the index in allowOrigins of an entry allowing a well-formed origin
// ("null" included): exact entries are tried first, then prefixes, regexes and wildcards.
func (p *Policy) Match(origin string) (int, bool) {
	if origin == "null" {
		return p.allowNull, p.allowNull >= 0
	}
	if i, ok := p.exact[origin]; ok {
		return i, true
	}
	for _, e := range p.prefixes {
		if strings.HasPrefix(origin, e.m) {
			return e.i, true
		}
	}
	for _, e := range p.regexes {
		if e.m.MatchString(origin) {
			return e.i, true
		}
	}
	for _, e := range p.wildcards {
		if e.m.Match(origin) {
			return e.i, true
		}
	}
	return -1, false
}

// ReportOnly: the policy is evaluated and reported but changes no response.
func (p *Policy) ReportOnly() bool { return p.reportOnly }

// AnswersRefusedPreflight: the proxy answers a refused preflight itself (403, no CORS
// headers) instead of forwarding it to the app.
func (p *Policy) AnswersRefusedPreflight() bool { return p.answerRefused }

// IsPreflight reports whether a refused request would have been a preflight, had its
// origin been allowed: an OPTIONS, with Access-Control-Request-Method in strict mode.
func (p *Policy) IsPreflight(r Request) bool {
	return r.Method == "OPTIONS" && (r.RequestMethod || !p.strictPreflight)
}

// ActualHeaders are added, with access-control-allow-origin, to an allowed actual response.
func (p *Policy) ActualHeaders() []Header { return p.actual }

// PreflightHeaders are sent, with access-control-allow-origin, in a preflight answer.
func (p *Policy) PreflightHeaders() []Header { return p.preflight }
