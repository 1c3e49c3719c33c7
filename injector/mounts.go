package injector

import (
	"context"
	"fmt"
	"slices"

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

// Mounts classifies every plugin the chain mounts, in order.
func (r *Resolver) Mounts(ctx context.Context, c *v1alpha1.PluginChain) ([]Mount, error) {
	return r.in.mounts(c, func(name string) (*v1alpha1.Plugin, error) { return r.cluster.Plugin(ctx, name) })
}

// mounts classifies every plugin the chain mounts, in order. lookup returns the named
// Plugin, or nil when it does not exist.
func (in *Injector) mounts(c *v1alpha1.PluginChain, lookup func(name string) (*v1alpha1.Plugin, error)) ([]Mount, error) {
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

// ChainStatus is what corsmesh makes of one PluginChain: its selectors, each plugin it
// mounts, and the plugin-policy switch that gates them all.
type ChainStatus struct {
	Chain    *v1alpha1.PluginChain
	Compiled CompiledChain
	Mounts   []Mount
	Policy   PluginPolicy
}

// Chain resolves one PluginChain's status.
func (r *Resolver) Chain(ctx context.Context, c *v1alpha1.PluginChain) (ChainStatus, error) {
	s := ChainStatus{Chain: c, Compiled: CompileChain(c)}
	var err error
	if s.Mounts, err = r.Mounts(ctx, c); err != nil {
		return s, err
	}
	if s.Policy, err = r.PluginPolicy(ctx); err != nil {
		return s, err
	}
	return s, nil
}

// Served lists the CORS plugins the chain serves, each once.
func (s ChainStatus) Served() []string {
	var served []string
	for _, m := range s.Mounts {
		if m.State == MountServed && !slices.Contains(served, m.Name) {
			served = append(served, m.Name)
		}
	}
	return served
}
