package iptables

import (
	"context"
	"fmt"
	"strings"
)

// Backend selects the iptables implementation the rules are written with.
type Backend string

const (
	// BackendAuto picks legacy or nft from what is already in use.
	BackendAuto Backend = "auto"
	// BackendLegacy uses the x_tables kernel API (iptables-legacy-*).
	BackendLegacy Backend = "legacy"
	// BackendNFT uses the nf_tables kernel API (iptables-nft-*).
	BackendNFT Backend = "nft"
	// BackendSystem is what BackendAuto falls back to when neither
	// variant-specific binary exists: plain iptables-restore, whichever
	// variant the image links it to. It is not accepted as a flag value.
	BackendSystem Backend = "system"
)

// ParseBackend parses the --backend flag.
func ParseBackend(s string) (Backend, error) {
	switch b := Backend(s); b {
	case BackendAuto, BackendLegacy, BackendNFT:
		return b, nil
	}
	return "", fmt.Errorf("backend %q is not one of auto, legacy, nft", s)
}

// IPv6Mode says whether the rules are also installed with ip6tables.
type IPv6Mode string

const (
	// IPv6Auto installs IPv6 rules when the kernel has IPv6 and the
	// ip6tables binary for the backend exists.
	IPv6Auto IPv6Mode = "auto"
	// IPv6On always installs IPv6 rules and fails if it cannot.
	IPv6On IPv6Mode = "true"
	// IPv6Off installs IPv4 rules only.
	IPv6Off IPv6Mode = "false"
)

// ParseIPv6Mode parses the --ipv6 flag.
func ParseIPv6Mode(s string) (IPv6Mode, error) {
	switch m := IPv6Mode(s); m {
	case IPv6Auto, IPv6On, IPv6Off:
		return m, nil
	}
	return "", fmt.Errorf("ipv6 mode %q is not one of auto, true, false", s)
}

// Family is an IP protocol family.
type Family string

const (
	IPv4 Family = "IPv4"
	IPv6 Family = "IPv6"
)

// tools returns the save and restore binaries for a backend and family.
func tools(b Backend, f Family) (save, restore string) {
	base := "iptables"
	if f == IPv6 {
		base = "ip6tables"
	}
	if b == BackendLegacy || b == BackendNFT {
		base += "-" + string(b)
	}
	return base + "-save", base + "-restore"
}

// Step is one iptables-restore invocation: the rules for one family.
type Step struct {
	Family  Family
	Backend Backend
	// Restore is the command to run; Restore.Stdin holds the rules.
	Restore Command
}

// Plan decides, without changing anything, how to install cfg: it resolves
// the backend, decides the IP families, reads the current nat rules and
// renders the restore input for each family. Reading the rules needs the
// same privileges as writing them.
func Plan(ctx context.Context, host Host, opts Options) ([]Step, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	backend, err := ResolveBackend(ctx, host, opts.Backend)
	if err != nil {
		return nil, err
	}
	families, err := families(host, backend, opts.IPv6)
	if err != nil {
		return nil, err
	}

	steps := make([]Step, 0, len(families))
	for _, family := range families {
		save, restore := tools(backend, family)
		existing, err := host.Run(ctx, Command{Name: save, Args: []string{"-t", "nat"}})
		if err != nil {
			return nil, fmt.Errorf("reading current %s nat rules: %w", family, err)
		}
		rules, err := Render(opts.Config, string(existing))
		if err != nil {
			return nil, err
		}
		steps = append(steps, Step{
			Family:  family,
			Backend: backend,
			Restore: Command{Name: restore, Args: []string{"--noflush"}, Stdin: rules},
		})
	}
	return steps, nil
}

// Apply runs each step's restore command: one iptables-restore per family,
// so all of a family's rules land atomically or not at all.
func Apply(ctx context.Context, host Host, steps []Step) error {
	for _, step := range steps {
		if _, err := host.Run(ctx, step.Restore); err != nil {
			return fmt.Errorf("applying %s rules: %w", step.Family, err)
		}
	}
	return nil
}

// ResolveBackend turns the requested backend into a concrete one. For
// BackendAuto it follows the rule other mesh injectors use: our rules go
// where the rules already in this network namespace live (another mesh's
// init container, a CNI plugin), because packets pass through both kernel
// APIs and rule order across the two is hard to reason about. So legacy
// wins only when legacy has rules and nft has none; otherwise nft is
// preferred when usable, else the image's plain iptables-restore.
func ResolveBackend(ctx context.Context, host Host, requested Backend) (Backend, error) {
	switch requested {
	case BackendLegacy, BackendNFT:
		if _, restore := tools(requested, IPv4); !host.HasBinary(restore) {
			return "", fmt.Errorf("backend %s: %s not found on PATH", requested, restore)
		}
		return requested, nil
	case BackendAuto:
	default:
		return "", fmt.Errorf("backend %q is not one of auto, legacy, nft", requested)
	}

	legacyRules, _ := countRules(ctx, host, BackendLegacy)
	nftRules, nftErr := countRules(ctx, host, BackendNFT)
	_, legacyRestore := tools(BackendLegacy, IPv4)
	_, nftRestore := tools(BackendNFT, IPv4)
	switch {
	case legacyRules > 0 && nftRules == 0 && host.HasBinary(legacyRestore):
		return BackendLegacy, nil
	// A failing iptables-nft-save means nf_tables is unusable here, even if
	// the binary is installed.
	case host.HasBinary(nftRestore) && nftErr == nil:
		return BackendNFT, nil
	}
	if _, restore := tools(BackendSystem, IPv4); !host.HasBinary(restore) {
		return "", fmt.Errorf("backend auto: none of %s, %s, %s found on PATH", nftRestore, legacyRestore, restore)
	}
	return BackendSystem, nil
}

// countRules counts the rules in all IPv4 tables of a backend. A missing
// binary counts as no rules.
func countRules(ctx context.Context, host Host, backend Backend) (int, error) {
	save, _ := tools(backend, IPv4)
	if !host.HasBinary(save) {
		return 0, fmt.Errorf("%s not found on PATH", save)
	}
	out, err := host.Run(ctx, Command{Name: save})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "-A ") {
			n++
		}
	}
	return n, nil
}

func families(host Host, backend Backend, mode IPv6Mode) ([]Family, error) {
	save, restore := tools(backend, IPv6)
	switch mode {
	case IPv6Off:
		return []Family{IPv4}, nil
	case IPv6On:
		for _, bin := range []string{save, restore} {
			if !host.HasBinary(bin) {
				return nil, fmt.Errorf("ipv6=true: %s not found on PATH", bin)
			}
		}
		return []Family{IPv4, IPv6}, nil
	case IPv6Auto:
		if host.KernelHasIPv6() && host.HasBinary(save) && host.HasBinary(restore) {
			return []Family{IPv4, IPv6}, nil
		}
		return []Family{IPv4}, nil
	}
	return nil, fmt.Errorf("ipv6 mode %q is not one of auto, true, false", mode)
}
