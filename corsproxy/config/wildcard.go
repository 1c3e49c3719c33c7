package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Wildcard is a compiled allowOrigins wildcard: "https://*.example.com" (one or more
// subdomain labels of example.com, never example.com itself), "http://localhost:*" (any
// port, and none), or both ("https://*.example.com:*"). Matching is by whole labels, so
// "https://*.example.com" never matches "https://example.com.evil.com" or
// "https://notexample.com", which a regex or a prefix written in a hurry does.
type Wildcard struct {
	Scheme string
	// Host is the host name after "*." when Subdomains, otherwise the whole host.
	Host       string
	Subdomains bool
	// Port is "" (the scheme's default: the origin has no port), "*" (any port or none),
	// or a port number.
	Port string
}

// ParseWildcard reads a wildcard origin pattern: scheme://[*.]host[:port|:*]. The error
// says what is wrong in words a policy author can act on.
func ParseWildcard(pattern string) (*Wildcard, error) {
	scheme, rest, ok := strings.Cut(pattern, "://")
	if !ok || scheme == "" {
		return nil, fmt.Errorf("%q has no scheme: write it as a browser sends an origin, such as \"https://*.example.com\"", pattern)
	}
	if !IsSerializedOrigin(scheme + "://x") {
		return nil, fmt.Errorf("%q: scheme %q is not a lower-case URL scheme", pattern, scheme)
	}
	w := &Wildcard{Scheme: scheme}
	host := rest
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return nil, fmt.Errorf("%q: unterminated IPv6 address", pattern)
		}
		host, rest = rest[:end+1], rest[end+1:]
	} else if i := strings.IndexByte(rest, ':'); i >= 0 {
		host, rest = rest[:i], rest[i:]
	} else {
		rest = ""
	}
	switch {
	case rest == "":
	case rest == ":*":
		w.Port = "*"
	case strings.HasPrefix(rest, ":"):
		n, err := strconv.Atoi(rest[1:])
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != rest[1:] {
			return nil, fmt.Errorf("%q: port %q is neither a port number (1-65535) nor *", pattern, rest[1:])
		}
		w.Port = rest[1:]
	default:
		return nil, fmt.Errorf("%q: unexpected %q after the host (an origin has no path)", pattern, rest)
	}
	if host == "*" || host == "" {
		return nil, fmt.Errorf("%q: a bare * host allows every site; name a domain (\"https://*.example.com\")", pattern)
	}
	if name, ok := strings.CutPrefix(host, "*."); ok {
		w.Subdomains, host = true, name
	}
	if err := checkWildcardHost(host, w.Subdomains); err != nil {
		return nil, fmt.Errorf("%q: %w", pattern, err)
	}
	w.Host = host
	return w, nil
}

// checkWildcardHost accepts a lower-case host name, or an IP address where no subdomain
// wildcard applies. A "*" anywhere else is refused: only a leading "*." is a wildcard.
func checkWildcardHost(host string, subdomains bool) error {
	if strings.HasPrefix(host, "[") {
		if subdomains {
			return errors.New("an IP address has no subdomains")
		}
		if !IsSerializedOrigin("x://" + host) {
			return fmt.Errorf("%q is not an IPv6 address as browsers write it", host)
		}
		return nil
	}
	if strings.Contains(host, "*") {
		return errors.New(`"*" stands only for whole leading labels ("*.example.com") or the port (":*")`)
	}
	if len(host) > 253 {
		return errors.New("host name longer than 253 bytes")
	}
	allDigits := true
	for label := range strings.SplitSeq(host, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("%q is not a host name (empty or over-long label)", host)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case c >= 'a' && c <= 'z', c == '-', c == '_':
				allDigits = false
			case c >= '0' && c <= '9':
			case c >= 'A' && c <= 'Z':
				return fmt.Errorf("%q has upper case; browsers send host names in lower case, so it would never match", host)
			default:
				return fmt.Errorf("%q is not a host name (byte %q)", host, c)
			}
		}
	}
	if subdomains && allDigits {
		return errors.New("an IP address has no subdomains")
	}
	return nil
}

// String renders the pattern as written.
func (w *Wildcard) String() string {
	s := w.Scheme + "://"
	if w.Subdomains {
		s += "*."
	}
	s += w.Host
	if w.Port != "" {
		s += ":" + w.Port
	}
	return s
}

// Match reports whether a serialized origin (see IsSerializedOrigin) matches. It does not
// allocate.
func (w *Wildcard) Match(origin string) bool {
	rest, ok := strings.CutPrefix(origin, w.Scheme)
	if !ok {
		return false
	}
	if rest, ok = strings.CutPrefix(rest, "://"); !ok {
		return false
	}
	host, port := rest, ""
	if strings.HasPrefix(rest, "[") {
		if end := strings.IndexByte(rest, ']'); end >= 0 {
			host, port = rest[:end+1], rest[end+1:]
		}
	} else if i := strings.IndexByte(rest, ':'); i >= 0 {
		host, port = rest[:i], rest[i:]
	}
	if port != "" && port[0] != ':' {
		return false
	}
	switch w.Port {
	case "*":
	case "":
		if port != "" {
			return false
		}
	default:
		if len(port) != len(w.Port)+1 || port[1:] != w.Port {
			return false
		}
	}
	if !w.Subdomains {
		return host == w.Host
	}
	// One or more whole labels, then "." and the domain.
	if len(host) < len(w.Host)+2 || !strings.HasSuffix(host, w.Host) || host[len(host)-len(w.Host)-1] != '.' {
		return false
	}
	return isLabels(host[:len(host)-len(w.Host)-1])
}

// isLabels reports whether s is one or more non-empty dot-separated DNS labels.
func isLabels(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		case c == '.':
			if s[i-1] == '.' {
				return false
			}
		default:
			return false
		}
	}
	return true
}
