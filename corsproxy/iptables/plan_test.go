package iptables_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/corsmesh/corsmesh/corsproxy/iptables"
	"github.com/corsmesh/corsmesh/corsproxy/iptables/iptablestest"
)

const legacyRules = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n"

const natWithJump = "*nat\n:CORSMESH_INBOUND - [0:0]\n-A PREROUTING -p tcp -j CORSMESH_INBOUND\nCOMMIT\n"

func TestPlan(t *testing.T) {
	tests := []struct {
		name      string
		opts      iptables.Options
		setup     func(h *iptablestest.Host)
		wantCalls []string
		// wantRestores are the restore command lines, one per family.
		wantRestores []string
		// wantJump says, per step, whether the PREROUTING jump is rendered.
		wantJump []bool
		wantErr  string
	}{
		{
			name:         "auto on a fresh pod prefers nft, both families",
			opts:         iptables.DefaultOptions(8080),
			wantCalls:    []string{"iptables-legacy-save", "iptables-nft-save", "iptables-nft-save -t nat", "ip6tables-nft-save -t nat"},
			wantRestores: []string{"iptables-nft-restore --noflush", "ip6tables-nft-restore --noflush"},
			wantJump:     []bool{true, true},
		},
		{
			name: "auto follows existing legacy rules",
			opts: iptables.DefaultOptions(8080),
			setup: func(h *iptablestest.Host) {
				h.Stdout["iptables-legacy-save"] = legacyRules
			},
			wantRestores: []string{"iptables-legacy-restore --noflush", "ip6tables-legacy-restore --noflush"},
			wantJump:     []bool{true, true},
		},
		{
			name: "auto prefers nft when both have rules",
			opts: iptables.DefaultOptions(8080),
			setup: func(h *iptablestest.Host) {
				h.Stdout["iptables-legacy-save"] = legacyRules
				h.Stdout["iptables-nft-save"] = legacyRules
			},
			wantRestores: []string{"iptables-nft-restore --noflush", "ip6tables-nft-restore --noflush"},
			wantJump:     []bool{true, true},
		},
		{
			name: "auto falls back to plain iptables when nft is unusable",
			opts: iptables.DefaultOptions(8080),
			setup: func(h *iptablestest.Host) {
				h.Errors["iptables-nft-save"] = errors.New("nf_tables not supported")
			},
			wantRestores: []string{"iptables-restore --noflush", "ip6tables-restore --noflush"},
			wantJump:     []bool{true, true},
		},
		{
			name: "auto falls back to plain iptables without variant binaries",
			opts: iptables.DefaultOptions(8080),
			setup: func(h *iptablestest.Host) {
				h.Binaries = map[string]bool{"iptables-save": true, "iptables-restore": true}
			},
			wantCalls:    []string{"iptables-save -t nat"},
			wantRestores: []string{"iptables-restore --noflush"},
			wantJump:     []bool{true},
		},
		{
			name: "auto with no iptables at all",
			opts: iptables.DefaultOptions(8080),
			setup: func(h *iptablestest.Host) {
				h.Binaries = map[string]bool{}
			},
			wantErr: "backend auto: none of iptables-nft-restore, iptables-legacy-restore, iptables-restore found",
		},
		{
			name:         "explicit legacy skips detection",
			opts:         withBackend(iptables.DefaultOptions(8080), iptables.BackendLegacy),
			wantCalls:    []string{"iptables-legacy-save -t nat", "ip6tables-legacy-save -t nat"},
			wantRestores: []string{"iptables-legacy-restore --noflush", "ip6tables-legacy-restore --noflush"},
			wantJump:     []bool{true, true},
		},
		{
			name: "explicit nft without the binary",
			opts: withBackend(iptables.DefaultOptions(8080), iptables.BackendNFT),
			setup: func(h *iptablestest.Host) {
				delete(h.Binaries, "iptables-nft-restore")
			},
			wantErr: "backend nft: iptables-nft-restore not found",
		},
		{
			name:         "ipv6 off",
			opts:         withIPv6(iptables.DefaultOptions(8080), iptables.IPv6Off),
			wantRestores: []string{"iptables-nft-restore --noflush"},
			wantJump:     []bool{true},
		},
		{
			name:         "ipv6 auto without kernel support",
			opts:         iptables.DefaultOptions(8080),
			setup:        func(h *iptablestest.Host) { h.IPv6 = false },
			wantRestores: []string{"iptables-nft-restore --noflush"},
			wantJump:     []bool{true},
		},
		{
			name:         "ipv6 auto without ip6tables",
			opts:         iptables.DefaultOptions(8080),
			setup:        func(h *iptablestest.Host) { delete(h.Binaries, "ip6tables-nft-restore") },
			wantRestores: []string{"iptables-nft-restore --noflush"},
			wantJump:     []bool{true},
		},
		{
			name:    "ipv6 true without ip6tables",
			opts:    withIPv6(iptables.DefaultOptions(8080), iptables.IPv6On),
			setup:   func(h *iptablestest.Host) { delete(h.Binaries, "ip6tables-nft-restore") },
			wantErr: "ipv6=true: ip6tables-nft-restore not found",
		},
		{
			name:         "ipv6 true ignores the kernel check",
			opts:         withIPv6(iptables.DefaultOptions(8080), iptables.IPv6On),
			setup:        func(h *iptablestest.Host) { h.IPv6 = false },
			wantRestores: []string{"iptables-nft-restore --noflush", "ip6tables-nft-restore --noflush"},
			wantJump:     []bool{true, true},
		},
		{
			name: "rerun keeps existing jump per family",
			opts: iptables.DefaultOptions(8080),
			setup: func(h *iptablestest.Host) {
				h.Stdout["iptables-nft-save -t nat"] = natWithJump
			},
			wantRestores: []string{"iptables-nft-restore --noflush", "ip6tables-nft-restore --noflush"},
			wantJump:     []bool{false, true},
		},
		{
			name: "reading rules fails",
			opts: iptables.DefaultOptions(8080),
			setup: func(h *iptablestest.Host) {
				h.Errors["iptables-nft-save -t nat"] = errors.New("exit status 4: Permission denied (you must be root)")
			},
			wantErr: "reading current IPv4 nat rules: exit status 4: Permission denied",
		},
		{
			name:      "invalid options run nothing",
			opts:      iptables.DefaultOptions(15000),
			wantCalls: []string{},
			wantErr:   "inbound port 15000 is the admin port",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := iptablestest.NewHost(iptablestest.AllBinaries...)
			if tt.setup != nil {
				tt.setup(host)
			}
			steps, err := iptables.Plan(context.Background(), host, tt.opts)
			if tt.wantCalls != nil && !slices.Equal(host.CommandLines(), tt.wantCalls) {
				t.Errorf("commands run = %q, want %q", host.CommandLines(), tt.wantCalls)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Plan error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			var restores []string
			for i, step := range steps {
				restores = append(restores, step.Restore.String())
				hasJump := strings.Contains(step.Restore.Stdin, "-A PREROUTING")
				if i < len(tt.wantJump) && hasJump != tt.wantJump[i] {
					t.Errorf("step %d (%s): renders PREROUTING jump = %v, want %v\n%s", i, step.Family, hasJump, tt.wantJump[i], step.Restore.Stdin)
				}
				if !strings.Contains(step.Restore.Stdin, "--dport 8080") {
					t.Errorf("step %d (%s): rules do not redirect 8080:\n%s", i, step.Family, step.Restore.Stdin)
				}
			}
			if !slices.Equal(restores, tt.wantRestores) {
				t.Errorf("restore commands = %q, want %q", restores, tt.wantRestores)
			}
			for _, line := range host.CommandLines() {
				if strings.Contains(line, "-restore") {
					t.Errorf("Plan ran %q; it must not change anything", line)
				}
			}
		})
	}
}

func TestApply(t *testing.T) {
	host := iptablestest.NewHost(iptablestest.AllBinaries...)
	ctx := context.Background()
	steps, err := iptables.Plan(ctx, host, withBackend(iptables.DefaultOptions(8080), iptables.BackendNFT))
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	if err := iptables.Apply(ctx, host, steps); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	var restores []iptables.Command
	for _, c := range host.Calls() {
		if strings.HasSuffix(c.Name, "-restore") {
			restores = append(restores, c)
		}
	}
	if len(restores) != 2 {
		t.Fatalf("Apply ran %d restore commands, want one per family: %q", len(restores), host.CommandLines())
	}
	for i, c := range restores {
		if c.Stdin != steps[i].Restore.Stdin || c.Stdin == "" {
			t.Errorf("restore %d got stdin %q, want the planned rules", i, c.Stdin)
		}
	}
}

func TestApplyWrapsFailure(t *testing.T) {
	host := iptablestest.NewHost(iptablestest.AllBinaries...)
	host.Errors["iptables-nft-restore --noflush"] = errors.New("iptables-nft-restore --noflush: exit status 2: line 3: RULE_APPEND failed")
	ctx := context.Background()
	steps, err := iptables.Plan(ctx, host, withBackend(iptables.DefaultOptions(8080), iptables.BackendNFT))
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	err = iptables.Apply(ctx, host, steps)
	if err == nil || !strings.Contains(err.Error(), "applying IPv4 rules: iptables-nft-restore --noflush: exit status 2: line 3: RULE_APPEND failed") {
		t.Fatalf("Apply error = %v, want the family and the command's stderr", err)
	}
	for _, line := range host.CommandLines() {
		if strings.HasPrefix(line, "ip6tables-nft-restore") {
			t.Errorf("Apply went on to IPv6 after IPv4 failed")
		}
	}
}

func TestParseFlags(t *testing.T) {
	for _, s := range []string{"auto", "legacy", "nft"} {
		if _, err := iptables.ParseBackend(s); err != nil {
			t.Errorf("ParseBackend(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "system", "NFT", "iptables"} {
		if _, err := iptables.ParseBackend(s); err == nil {
			t.Errorf("ParseBackend(%q) succeeded", s)
		}
	}
	for _, s := range []string{"auto", "true", "false"} {
		if _, err := iptables.ParseIPv6Mode(s); err != nil {
			t.Errorf("ParseIPv6Mode(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "yes", "1"} {
		if _, err := iptables.ParseIPv6Mode(s); err == nil {
			t.Errorf("ParseIPv6Mode(%q) succeeded", s)
		}
	}
}

func withBackend(o iptables.Options, b iptables.Backend) iptables.Options {
	o.Backend = b
	return o
}

func withIPv6(o iptables.Options, m iptables.IPv6Mode) iptables.Options {
	o.IPv6 = m
	return o
}
