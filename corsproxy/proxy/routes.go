package proxy

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/corsmesh/corsmesh/corsproxy/config"
	"github.com/corsmesh/corsmesh/corsproxy/cors"
)

// Routes is a config.Config compiled for the request path: every policy compiled once,
// looked up per request without allocating. It is immutable; a reload builds a new one.
type Routes struct {
	ports map[int32]*portRoutes
}

type portRoutes struct {
	fallback  *cors.Policy // for hosts no entry names; nil: proxied untouched
	hosts     []hostRoute
	hasPolicy bool // some request to the port can come under a policy
}

type hostRoute struct {
	names  [][]byte
	policy *cors.Policy
}

// Compile builds Routes from a validated document.
func Compile(c *config.Config) (*Routes, error) {
	r := &Routes{ports: make(map[int32]*portRoutes, len(c.Ports))}
	for _, p := range c.Ports {
		pr := &portRoutes{}
		var err error
		if pr.fallback, err = compileOptional(p.CORS); err != nil {
			return nil, fmt.Errorf("port %d: %w", p.Port, err)
		}
		for _, h := range p.Hosts {
			policy, err := compileOptional(h.CORS)
			if err != nil {
				return nil, fmt.Errorf("port %d, hosts %v: %w", p.Port, h.Names, err)
			}
			route := hostRoute{policy: policy}
			for _, n := range h.Names {
				route.names = append(route.names, []byte(n))
			}
			pr.hosts = append(pr.hosts, route)
		}
		pr.hasPolicy = pr.fallback != nil || slices.ContainsFunc(pr.hosts, func(h hostRoute) bool { return h.policy != nil })
		r.ports[p.Port] = pr
	}
	return r, nil
}

func compileOptional(c *config.CORS) (*cors.Policy, error) {
	if c == nil {
		return nil, nil
	}
	return cors.Compile(c)
}

// Policy returns the policy for a request to port with the given Host header, or nil when
// the request is proxied untouched. Host names compare case-insensitively, without the port.
func (r *Routes) Policy(port int32, host []byte) *cors.Policy {
	pr := r.ports[port]
	if pr == nil {
		return nil
	}
	if len(pr.hosts) > 0 {
		name := hostName(host)
		for _, h := range pr.hosts {
			for _, n := range h.names {
				if bytes.EqualFold(n, name) {
					return h.policy
				}
			}
		}
	}
	return pr.fallback
}

// HasPolicy reports whether any request to port can come under a CORS policy.
func (r *Routes) HasPolicy(port int32) bool {
	pr := r.ports[port]
	return pr != nil && pr.hasPolicy
}

// hostName strips the port and a trailing dot from a Host header value.
func hostName(host []byte) []byte {
	if i := bytes.LastIndexByte(host, ':'); i >= 0 && !bytes.HasSuffix(host, []byte("]")) {
		host = host[:i]
	}
	return bytes.TrimSuffix(host, []byte("."))
}
