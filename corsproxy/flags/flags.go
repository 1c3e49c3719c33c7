// Package flags names the corsproxy command's flags and gives their defaults. They live
// here, not in the command, so the injector builds the sidecar's args from the same names
// and ports (as corsproxy/iptables does for the init container) and the two cannot drift
// apart; the proxy's own parser reads them too.
package flags

import (
	"fmt"

	"github.com/corsmesh/corsmesh/corsproxy/iptables"
)

// Flag names of corsproxy.
const (
	Config              = "config"
	Listen              = "listen"
	AdminListen         = "admin-listen"
	AdminIP             = "admin-ip"
	MemoryLimit         = "memory-limit"
	Upstream            = "upstream"
	PolicyPort          = "policy-port"
	ReloadInterval      = "reload-interval"
	DrainTimeout        = "drain-timeout"
	DrainDelay          = "drain-delay"
	LogLevel            = "log-level"
	WaitReady           = "wait-ready"
	MaxConnsPerUpstream = "max-conns-per-upstream"
	UpstreamTimeout     = "upstream-timeout"
	DialTimeout         = "dial-timeout"
	ReadHeaderTimeout   = "read-header-timeout"
	BodyIdleTimeout     = "body-idle-timeout"
	IdleTimeout         = "idle-timeout"
	MaxHeaderBytes      = "max-header-bytes"
	MaxClientConns      = "max-client-conns"
)

// Environment variables the proxy reads, which the injector fills from the downward API.
const (
	// EnvPodIP is the default of --admin-ip: the pod's IP, where the kubelet probes.
	EnvPodIP = "POD_IP"
	// EnvMemoryLimit is the default of --memory-limit: the container's limit in bytes.
	EnvMemoryLimit = "CORSPROXY_MEMORY_LIMIT"
)

// Defaults the injector relies on.
const (
	// ConfigDir and ConfigFile make DefaultConfigPath, where the downward-API volume puts
	// the pod's config annotation.
	ConfigDir         = "/etc/corsproxy"
	ConfigFile        = "config.json"
	DefaultConfigPath = ConfigDir + "/" + ConfigFile
	// The proxy listens where iptables redirects to, and serves probes on the port
	// iptables leaves alone.
	DefaultProxyPort = iptables.DefaultProxyPort
	DefaultAdminPort = iptables.DefaultAdminPort
	// DefaultMaxConnsPerUpstream bounds the pooled connections to each app port.
	DefaultMaxConnsPerUpstream = 1024
)

// Arg renders one flag as the pod spec spells it: --name=value.
func Arg(name string, value any) string { return fmt.Sprintf("--%s=%v", name, value) }

// AllInterfaces is a listen address on every interface of the pod: ":15003".
func AllInterfaces(port int) string { return fmt.Sprintf(":%d", port) }
