// Package config defines the policy document the webhook embeds in a pod annotation and the
// corsproxy sidecar reads from its downward-API file. It is the one type both sides share, so
// it lives here, free of Kubernetes imports, and the injector imports it.
package config

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Version is the current document version. The proxy refuses documents it does not know,
// so a newer webhook never feeds an older proxy a policy it would half understand.
const Version = 1

// Config is the whole document: what each intercepted port does.
type Config struct {
	Version int    `json:"version"`
	Ports   []Port `json:"ports"`
}

// Port is the policy for one intercepted container port.
//
// A port is usually reached through one Service, or through several that share one policy;
// then CORS alone is set. When Services with different policies share the port, Hosts lists
// them by DNS name and the request's Host picks one: the first entry naming the host wins,
// and a host no entry names gets CORS (nil: proxied untouched).
type Port struct {
	Port  int32       `json:"port"`
	CORS  *CORS       `json:"cors,omitempty"`
	Hosts []HostRoute `json:"hosts,omitempty"`
}

// HostRoute gives the requests addressed to Names their own policy (nil: proxied untouched).
type HostRoute struct {
	Names []string `json:"names"`
	CORS  *CORS    `json:"cors,omitempty"`
}

// CORS is the osm-edge CORS plugin's configuration, field for field, so a PluginConfig's
// spec.config is one of these.
type CORS struct {
	AllowOrigins     []OriginMatch `json:"allowOrigins,omitempty"`
	AllowCredentials bool          `json:"allowCredentials,omitempty"`
	AllowMethods     []string      `json:"allowMethods,omitempty"`
	AllowHeaders     []string      `json:"allowHeaders,omitempty"`
	ExposeHeaders    []string      `json:"exposeHeaders,omitempty"`
	// MaxAge is kept as written ("24h", "30m", "86400", 86400): see ParseMaxAge.
	MaxAge json.RawMessage `json:"maxAge,omitempty"`

	// The fields below are corsmesh's, not osm-edge's; unset, the proxy behaves as
	// osm-edge's plugin does.

	// Preflight says which OPTIONS requests are preflights: PreflightAnyOptions ("", every
	// OPTIONS from an allowed origin, osm-edge's rule) or PreflightStrict (only those with
	// Access-Control-Request-Method; the app answers its own OPTIONS routes).
	Preflight string `json:"preflight,omitempty"`
	// RefusedPreflight is what a preflight from an origin the policy does not allow gets:
	// RefusedForward ("", forwarded to the app as osm-edge does) or RefusedAnswer (answered
	// 403 by the proxy, without CORS headers).
	RefusedPreflight string `json:"refusedPreflight,omitempty"`
	// ReportOnly evaluates and reports the policy (metrics, log, /debug/cors) but changes
	// no response: a way to roll a policy out and watch what it would refuse.
	ReportOnly bool `json:"reportOnly,omitempty"`
}

// Values of CORS.Preflight and CORS.RefusedPreflight.
const (
	PreflightAnyOptions = "any-options"
	PreflightStrict     = "strict"
	RefusedForward      = "forward"
	RefusedAnswer       = "answer"
)

// OriginMatch is one allowOrigins entry; exactly one of its fields is set. Exact, Prefix
// and Regex are osm-edge's; Wildcard is corsmesh's (see ParseWildcard).
type OriginMatch struct {
	Exact    string `json:"exact,omitempty"`
	Prefix   string `json:"prefix,omitempty"`
	Regex    string `json:"regex,omitempty"`
	Wildcard string `json:"wildcard,omitempty"`
}

// Kind names the one field an entry sets ("" when none or several are set).
func (o OriginMatch) Kind() string {
	kind, set := "", 0
	for _, f := range [...]struct{ name, value string }{{"exact", o.Exact}, {"prefix", o.Prefix}, {"regex", o.Regex}, {"wildcard", o.Wildcard}} {
		if f.value != "" {
			kind, set = f.name, set+1
		}
	}
	if set != 1 {
		return ""
	}
	return kind
}

// Value is the set field's value.
func (o OriginMatch) Value() string { return o.Exact + o.Prefix + o.Regex + o.Wildcard }

// Lookup returns the port's configuration, or nil when the port has none.
func (c *Config) Lookup(port int32) *Port {
	i := slices.IndexFunc(c.Ports, func(p Port) bool { return p.Port == port })
	if i < 0 {
		return nil
	}
	return &c.Ports[i]
}

// Marshal renders the document compactly, as it is stored in the annotation
// (MarshalString's, as bytes).
func (c *Config) Marshal() ([]byte, error) {
	s, err := c.MarshalString()
	if err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// MarshalString renders the document as the annotation's value, encoded straight into the
// string: the webhook and config sync both write it with this, so their values compare
// (and bytes made a string would be a second copy, a kB per admission).
func (c *Config) MarshalString() (string, error) {
	var sb strings.Builder
	if err := json.NewEncoder(&sb).Encode(c); err != nil {
		return "", fmt.Errorf("encoding corsproxy config: %w", err)
	}
	return strings.TrimSuffix(sb.String(), "\n"), nil // Encode ends the document with one
}
