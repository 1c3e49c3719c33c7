package injector

import (
	"fmt"

	"github.com/corsmesh/corsmesh/injector/api/v1alpha1"
)

// MountState is what corsmesh does with one plugin a PluginChain mounts: the one rule
// admission, validation and the PluginChain status share.
type MountState string

const (
	// MountServed: a CORS plugin on inbound-http, served by the proxy.
	MountServed MountState = "served"
	// MountMissing: the Plugin does not exist.
	MountMissing MountState = "missing"
	// MountNotCORS: a Plugin corsmesh does not implement (it runs no PipyJS).
	MountNotCORS MountState = "not-cors"
	// MountWrongChain: a CORS plugin on a chain other than inbound-http.
	MountWrongChain MountState = "wrong-chain"
)

// Mount is one plugin of a PluginChain, where it is mounted and what becomes of it.
type Mount struct {
	// Chain and Plugin index spec.chains[Chain].plugins[Plugin].
	Chain, Plugin int
	ChainName     string
	Name          string
	State         MountState
}

// Message says what becomes of the mount, the same words everywhere.
func (m Mount) Message() string {
	switch m.State {
	case MountServed:
		return fmt.Sprintf("CORS plugin %q served on %s", m.Name, m.ChainName)
	case MountMissing:
		return fmt.Sprintf("Plugin %q does not exist", m.Name)
	case MountNotCORS:
		return fmt.Sprintf("Plugin %q is not implemented by corsmesh (only CORS is) and is not applied", m.Name)
	default:
		return fmt.Sprintf("CORS plugin %q on chain %s is not applied (CORS is served on %s only)", m.Name, m.ChainName, v1alpha1.ChainInboundHTTP)
	}
}

// Mounts classifies every plugin the chain mounts, in order. lookup returns the named
// Plugin, or nil when it does not exist.
func (in *Injector) Mounts(c *v1alpha1.PluginChain, lookup func(name string) (*v1alpha1.Plugin, error)) ([]Mount, error) {
	var out []Mount
	for i, chain := range c.Spec.Chains {
		for j, name := range chain.Plugins {
			m := Mount{Chain: i, Plugin: j, ChainName: chain.Name, Name: name}
			p, err := lookup(name)
			switch {
			case err != nil:
				return nil, fmt.Errorf("reading Plugin %s: %w", name, err)
			case p == nil:
				m.State = MountMissing
			case !in.IsCORSPlugin(p):
				m.State = MountNotCORS
			case chain.Name != v1alpha1.ChainInboundHTTP:
				m.State = MountWrongChain
			default:
				m.State = MountServed
			}
			out = append(out, m)
		}
	}
	return out, nil
}
