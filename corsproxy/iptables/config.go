// Package iptables renders and installs the nat rules that send a pod's
// inbound HTTP traffic through the corsmesh CORS proxy.
//
// The package is split so that everything except the final exec can run
// without root: Render turns a Config (plus the current iptables-save
// output) into iptables-restore input, Plan decides which binaries to run,
// and Apply hands the rules to iptables-restore through a Host.
//
// REDIRECT rewrites the destination to the primary address of the interface
// the packet arrived on, so the proxy must listen on the wildcard address
// (0.0.0.0 / [::]), not on 127.0.0.1.
package iptables

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

const (
	// DefaultProxyPort is where the CORS proxy listens for redirected traffic.
	DefaultProxyPort = 15003
	// DefaultAdminPort serves the proxy's health and admin endpoints. Kubelet
	// probes it directly, so it is never redirected.
	DefaultAdminPort = 15000
	// DefaultChainPrefix is prepended to the names of the chains we own.
	DefaultChainPrefix = "CORSMESH"

	// maxChainNameLen is the kernel's limit (XT_EXTENSION_MAXNAMELEN - 1).
	maxChainNameLen   = 28
	inboundSuffix     = "_INBOUND"
	maxChainPrefixLen = maxChainNameLen - len(inboundSuffix)
)

// ErrInvalidConfig is wrapped by every error Validate returns, so callers can
// tell a bad configuration (a user error) from a failure to apply it.
var ErrInvalidConfig = errors.New("invalid iptables config")

// Config describes which inbound ports are redirected and where to.
type Config struct {
	// InboundPorts are the pod's TCP ports whose inbound traffic goes to the
	// proxy. Order does not matter; rules are rendered sorted.
	InboundPorts []int
	// ProxyPort is the port the proxy accepts redirected connections on.
	ProxyPort int
	// AdminPort is the proxy's admin/health port. It must not be in
	// InboundPorts: redirecting it would send kubelet probes into the proxy's
	// data path instead of its health endpoint.
	AdminPort int
	// ChainPrefix names our chains (<prefix>_INBOUND). Empty means
	// DefaultChainPrefix.
	ChainPrefix string
}

// NewConfig returns a Config for the given inbound ports with the default
// proxy port, admin port and chain prefix.
func NewConfig(inboundPorts ...int) Config {
	return Config{
		InboundPorts: inboundPorts,
		ProxyPort:    DefaultProxyPort,
		AdminPort:    DefaultAdminPort,
		ChainPrefix:  DefaultChainPrefix,
	}
}

// InboundChain is the nat chain holding the per-port REDIRECT rules.
func (c Config) InboundChain() string {
	prefix := c.ChainPrefix
	if prefix == "" {
		prefix = DefaultChainPrefix
	}
	return prefix + inboundSuffix
}

// Validate reports the first problem with c, naming the offending value.
func (c Config) Validate() error {
	if err := validatePort("proxy port", c.ProxyPort); err != nil {
		return err
	}
	if err := validatePort("admin port", c.AdminPort); err != nil {
		return err
	}
	if c.ProxyPort == c.AdminPort {
		return invalidf("proxy port and admin port are both %d; they must differ", c.ProxyPort)
	}
	if err := validateChainPrefix(c.ChainPrefix); err != nil {
		return err
	}
	if len(c.InboundPorts) == 0 {
		return invalidf("no inbound ports to redirect; at least one is required")
	}
	seen := make(map[int]bool, len(c.InboundPorts))
	for _, port := range c.InboundPorts {
		if err := validatePort("inbound port", port); err != nil {
			return err
		}
		switch {
		case seen[port]:
			return invalidf("inbound port %d is listed more than once", port)
		case port == c.ProxyPort:
			// Redirecting the proxy port to itself would loop forever.
			return invalidf("inbound port %d is the proxy port; the proxy cannot redirect to itself", port)
		case port == c.AdminPort:
			return invalidf("inbound port %d is the admin port; it must stay reachable directly for kubelet probes", port)
		}
		seen[port] = true
	}
	return nil
}

// SortedInboundPorts returns a sorted copy of c.InboundPorts, so rendered
// rules do not depend on the order the ports were given in.
func (c Config) SortedInboundPorts() []int {
	ports := slices.Clone(c.InboundPorts)
	slices.Sort(ports)
	return ports
}

func validatePort(what string, port int) error {
	if port < 1 || port > 65535 {
		return invalidf("%s %d is out of range 1..65535", what, port)
	}
	return nil
}

func validateChainPrefix(prefix string) error {
	if prefix == "" {
		return nil // DefaultChainPrefix
	}
	if len(prefix) > maxChainPrefixLen {
		return invalidf("chain prefix %q is longer than %d characters (chain names are limited to %d)",
			prefix, maxChainPrefixLen, maxChainNameLen)
	}
	for _, r := range prefix {
		// Restrict to what is safe unquoted in iptables-restore input and
		// cannot be mistaken for an option or a built-in target.
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return invalidf("chain prefix %q may only contain A-Z, 0-9, '_' and '-'", prefix)
		}
	}
	if prefix[0] == '-' {
		return invalidf("chain prefix %q must not start with '-'", prefix)
	}
	return nil
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// ParsePorts parses a comma-separated port list such as "8080,9090", the
// format of the --inbound-ports flag. It only checks syntax; range and
// duplicate checks are Config.Validate's job so both paths report alike.
func ParsePorts(list string) ([]int, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	fields := strings.Split(list, ",")
	ports := make([]int, 0, len(fields))
	for _, field := range fields {
		field = strings.TrimSpace(field)
		if field == "" {
			return nil, fmt.Errorf("port list %q has an empty entry", list)
		}
		port, err := strconv.Atoi(field)
		if err != nil {
			return nil, fmt.Errorf("port %q in %q is not a number", field, list)
		}
		ports = append(ports, port)
	}
	return ports, nil
}

// FormatPorts is the inverse of ParsePorts.
func FormatPorts(ports []int) string {
	parts := make([]string, len(ports))
	for i, port := range ports {
		parts[i] = strconv.Itoa(port)
	}
	return strings.Join(parts, ",")
}
