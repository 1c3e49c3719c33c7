// Package iptablestest provides a fake iptables.Host that records the
// commands it is asked to run, for tests that must not touch real tables.
package iptablestest

import (
	"context"
	"sync"

	"github.com/corsmesh/corsmesh/corsproxy/iptables"
)

// Host is a fake iptables.Host. Configure its fields before use; it is safe
// for concurrent use afterwards.
type Host struct {
	// Binaries lists the binary names HasBinary reports as present.
	Binaries map[string]bool
	// IPv6 is what KernelHasIPv6 returns.
	IPv6 bool
	// Stdout maps a command line (Command.String()) to the output Run returns.
	Stdout map[string]string
	// Errors maps a command line to the error Run returns.
	Errors map[string]error

	mu    sync.Mutex
	calls []iptables.Command
}

var _ iptables.Host = (*Host)(nil)

// NewHost returns a fake with the given binaries installed and IPv6 enabled.
func NewHost(binaries ...string) *Host {
	h := &Host{
		Binaries: make(map[string]bool, len(binaries)),
		IPv6:     true,
		Stdout:   map[string]string{},
		Errors:   map[string]error{},
	}
	for _, b := range binaries {
		h.Binaries[b] = true
	}
	return h
}

// AllBinaries is every save/restore binary the iptables package may use.
var AllBinaries = []string{
	"iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore",
	"iptables-legacy-save", "iptables-legacy-restore", "ip6tables-legacy-save", "ip6tables-legacy-restore",
	"iptables-nft-save", "iptables-nft-restore", "ip6tables-nft-save", "ip6tables-nft-restore",
}

// Run implements iptables.Host by recording cmd and returning the canned
// output or error for its command line.
func (h *Host) Run(_ context.Context, cmd iptables.Command) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, cmd)
	if err := h.Errors[cmd.String()]; err != nil {
		return nil, err
	}
	return []byte(h.Stdout[cmd.String()]), nil
}

// HasBinary implements iptables.Host.
func (h *Host) HasBinary(name string) bool { return h.Binaries[name] }

// KernelHasIPv6 implements iptables.Host.
func (h *Host) KernelHasIPv6() bool { return h.IPv6 }

// Calls returns the commands Run was called with, in order.
func (h *Host) Calls() []iptables.Command {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]iptables.Command(nil), h.calls...)
}

// CommandLines returns the command lines Run was called with, in order.
func (h *Host) CommandLines() []string {
	calls := h.Calls()
	lines := make([]string, len(calls))
	for i, c := range calls {
		lines[i] = c.String()
	}
	return lines
}
