package iptables

import (
	"fmt"
	"strconv"
)

// Flag names of the corsproxy-init command. They live here, not in the
// command, so the injector can build the init container's args without
// importing a main package and the two cannot drift apart.
const (
	FlagInboundPorts = "inbound-ports"
	FlagProxyPort    = "proxy-port"
	FlagAdminPort    = "admin-port"
	FlagChainPrefix  = "chain-prefix"
	FlagBackend      = "backend"
	FlagIPv6         = "ipv6"
	FlagDryRun       = "dry-run"
)

// Options is everything corsproxy-init needs to install the rules.
type Options struct {
	Config  Config
	Backend Backend
	IPv6    IPv6Mode
}

// DefaultOptions returns Options for the given inbound ports with every
// other setting at its default.
func DefaultOptions(inboundPorts ...int) Options {
	return Options{Config: NewConfig(inboundPorts...), Backend: BackendAuto, IPv6: IPv6Auto}
}

// Validate checks the config, backend and IPv6 mode.
func (o Options) Validate() error {
	if err := o.Config.Validate(); err != nil {
		return err
	}
	if _, err := ParseBackend(string(o.Backend)); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if _, err := ParseIPv6Mode(string(o.IPv6)); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

// Args renders o as corsproxy-init command-line arguments, for the
// injector to put in the init container spec. Every flag is spelled out so
// the pod spec shows exactly what the init container will do. Ports are
// sorted so the same config always renders the same pod spec.
func (o Options) Args() []string {
	args := []string{
		"--" + FlagInboundPorts + "=" + FormatPorts(o.Config.SortedInboundPorts()),
		"--" + FlagProxyPort + "=" + strconv.Itoa(o.Config.ProxyPort),
		"--" + FlagAdminPort + "=" + strconv.Itoa(o.Config.AdminPort),
	}
	if o.Config.ChainPrefix != "" && o.Config.ChainPrefix != DefaultChainPrefix {
		args = append(args, "--"+FlagChainPrefix+"="+o.Config.ChainPrefix)
	}
	if o.Backend != "" {
		args = append(args, "--"+FlagBackend+"="+string(o.Backend))
	}
	if o.IPv6 != "" {
		args = append(args, "--"+FlagIPv6+"="+string(o.IPv6))
	}
	return args
}
