package main

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/corsmesh/corsmesh/corsproxy/iptables"
	"github.com/corsmesh/corsmesh/corsproxy/iptables/iptablestest"
)

func TestBadArgumentsApplyNothing(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "no arguments", args: nil, wantErr: "--inbound-ports is required"},
		{name: "empty port list", args: []string{"--inbound-ports="}, wantErr: "no inbound ports"},
		{name: "not a number", args: []string{"--inbound-ports=8080,http"}, wantErr: `port "http" in "8080,http" is not a number`},
		{name: "empty entry", args: []string{"--inbound-ports=8080,,9090"}, wantErr: "empty entry"},
		{name: "port zero", args: []string{"--inbound-ports=0"}, wantErr: "inbound port 0 is out of range 1..65535"},
		{name: "port too big", args: []string{"--inbound-ports=65536"}, wantErr: "inbound port 65536 is out of range"},
		{name: "duplicate port", args: []string{"--inbound-ports=8080,9090,8080"}, wantErr: "inbound port 8080 is listed more than once"},
		{name: "admin port", args: []string{"--inbound-ports=8080,15000"}, wantErr: "inbound port 15000 is the admin port"},
		{name: "custom admin port", args: []string{"--inbound-ports=9901", "--admin-port=9901"}, wantErr: "inbound port 9901 is the admin port"},
		{name: "proxy port", args: []string{"--inbound-ports=15003"}, wantErr: "inbound port 15003 is the proxy port"},
		{name: "proxy port not a number", args: []string{"--inbound-ports=80", "--proxy-port=x"}, wantErr: `invalid value "x" for flag -proxy-port`},
		{name: "proxy port out of range", args: []string{"--inbound-ports=80", "--proxy-port=0"}, wantErr: "proxy port 0 is out of range"},
		{name: "proxy equals admin", args: []string{"--inbound-ports=80", "--proxy-port=15000"}, wantErr: "proxy port and admin port are both 15000"},
		{name: "bad backend", args: []string{"--inbound-ports=80", "--backend=iptables"}, wantErr: `backend "iptables" is not one of auto, legacy, nft`},
		{name: "bad ipv6", args: []string{"--inbound-ports=80", "--ipv6=yes"}, wantErr: `ipv6 mode "yes" is not one of auto, true, false`},
		{name: "bad chain prefix", args: []string{"--inbound-ports=80", "--chain-prefix=mesh"}, wantErr: `chain prefix "mesh"`},
		{name: "unknown flag", args: []string{"--inbound-ports=80", "--redirect-all"}, wantErr: "flag provided but not defined: -redirect-all"},
		{name: "positional argument", args: []string{"--inbound-ports=80", "9090"}, wantErr: `unexpected argument "9090"`},
		{name: "bad with dry run", args: []string{"--dry-run", "--inbound-ports=15000"}, wantErr: "is the admin port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := iptablestest.NewHost(iptablestest.AllBinaries...)
			var stdout, stderr bytes.Buffer
			code := runWithHost(context.Background(), host, tt.args, &stdout, &stderr)
			if code != exitUsage {
				t.Errorf("exit code = %d, want %d", code, exitUsage)
			}
			if calls := host.CommandLines(); len(calls) != 0 {
				t.Errorf("bad arguments still ran commands: %q", calls)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
			msg := stderr.String()
			if !strings.Contains(msg, tt.wantErr) {
				t.Errorf("stderr = %q, want it to contain %q", msg, tt.wantErr)
			}
			if strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "corsproxy-init: ") {
				t.Errorf("stderr = %q, want one line starting with %q", msg, "corsproxy-init: ")
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		want       iptables.Options
		wantDryRun bool
	}{
		{
			name: "defaults",
			args: []string{"--inbound-ports", "9090,8080"},
			want: iptables.DefaultOptions(9090, 8080),
		},
		{
			name: "everything",
			args: []string{"--inbound-ports=3000", "--proxy-port=4143", "--admin-port=4191", "--chain-prefix=CM",
				"--backend=legacy", "--ipv6=false", "--dry-run"},
			want: iptables.Options{
				Config:  iptables.Config{InboundPorts: []int{3000}, ProxyPort: 4143, AdminPort: 4191, ChainPrefix: "CM"},
				Backend: iptables.BackendLegacy,
				IPv6:    iptables.IPv6Off,
			},
			wantDryRun: true,
		},
		{
			name: "single dash and spaces",
			args: []string{"-inbound-ports", " 80 , 443 ", "-backend", "nft", "-ipv6", "true"},
			want: iptables.Options{Config: iptables.NewConfig(80, 443), Backend: iptables.BackendNFT, IPv6: iptables.IPv6On},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFlags(tt.args)
			if err != nil {
				t.Fatalf("parseFlags: %v", err)
			}
			if !reflect.DeepEqual(got.opts, tt.want) {
				t.Errorf("options = %+v, want %+v", got.opts, tt.want)
			}
			if got.dryRun != tt.wantDryRun {
				t.Errorf("dryRun = %v, want %v", got.dryRun, tt.wantDryRun)
			}
		})
	}
}

// TestArgsRoundTrip guards the contract with the injector: whatever
// Options.Args renders, this command parses back to the same Options.
func TestArgsRoundTrip(t *testing.T) {
	for _, opts := range []iptables.Options{
		iptables.DefaultOptions(8080, 9090),
		{
			Config:  iptables.Config{InboundPorts: []int{80, 3000}, ProxyPort: 4143, AdminPort: 4191, ChainPrefix: "CM"},
			Backend: iptables.BackendNFT,
			IPv6:    iptables.IPv6On,
		},
	} {
		got, err := parseFlags(opts.Args())
		if err != nil {
			t.Fatalf("parseFlags(%q): %v", opts.Args(), err)
		}
		if !reflect.DeepEqual(got.opts, opts) {
			t.Errorf("parseFlags(%q) = %+v, want %+v", opts.Args(), got.opts, opts)
		}
	}
}

func TestDryRunAppliesNothing(t *testing.T) {
	host := iptablestest.NewHost(iptablestest.AllBinaries...)
	var stdout, stderr bytes.Buffer
	code := runWithHost(context.Background(), host, []string{"--inbound-ports=9090,8080", "--dry-run"}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit code = %d, stderr = %q", code, stderr.String())
	}
	if calls := host.CommandLines(); len(calls) != 0 {
		t.Errorf("dry run ran commands: %q", calls)
	}
	want, err := iptables.Render(iptables.NewConfig(8080, 9090), "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(stdout.String(), want) {
		t.Errorf("dry run output does not end with the rendered rules:\n%s", stdout.String())
	}
}

func TestApplyLogsRules(t *testing.T) {
	host := iptablestest.NewHost(iptablestest.AllBinaries...)
	var stdout, stderr bytes.Buffer
	code := runWithHost(context.Background(), host, []string{"--inbound-ports=8080", "--backend=nft", "--ipv6=true"}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit code = %d, stderr = %q", code, stderr.String())
	}
	wantCalls := []string{
		"iptables-nft-save -t nat", "ip6tables-nft-save -t nat",
		"iptables-nft-restore --noflush", "ip6tables-nft-restore --noflush",
	}
	if got := host.CommandLines(); !reflect.DeepEqual(got, wantCalls) {
		t.Errorf("commands = %q, want %q", got, wantCalls)
	}
	out := stdout.String()
	for _, want := range []string{
		"applied IPv4 rules (backend nft) with iptables-nft-restore --noflush:",
		"applied IPv6 rules (backend nft) with ip6tables-nft-restore --noflush:",
		"-A CORSMESH_INBOUND -p tcp --dport 8080",
		"inbound ports 8080 now redirect to proxy port 15003; admin port 15000 is not redirected",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout does not contain %q:\n%s", want, out)
		}
	}
}

func TestApplyFailure(t *testing.T) {
	host := iptablestest.NewHost(iptablestest.AllBinaries...)
	host.Errors["iptables-nft-restore --noflush"] = errors.New("iptables-nft-restore --noflush: exit status 1: iptables-nft-restore v1.8.9:\nline 7: RULE_APPEND failed (No such file or directory)")
	var stdout, stderr bytes.Buffer
	code := runWithHost(context.Background(), host, []string{"--inbound-ports=8080", "--backend=nft"}, &stdout, &stderr)
	if code != exitFailure {
		t.Errorf("exit code = %d, want %d", code, exitFailure)
	}
	msg := stderr.String()
	if !strings.Contains(msg, "applying IPv4 rules: iptables-nft-restore --noflush: exit status 1:") ||
		!strings.Contains(msg, "RULE_APPEND failed") || strings.Count(msg, "\n") != 1 {
		t.Errorf("stderr = %q, want one line with the command and its stderr", msg)
	}
	if strings.Contains(stdout.String(), "applied") {
		t.Errorf("stdout claims rules were applied:\n%s", stdout.String())
	}
}

func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit code = %d", code)
	}
	for _, flagName := range []string{"inbound-ports", "proxy-port", "admin-port", "backend", "ipv6", "dry-run"} {
		if !strings.Contains(stdout.String(), "-"+flagName) {
			t.Errorf("usage does not mention -%s:\n%s", flagName, stdout.String())
		}
	}
}

// TestRunRealHostBadArgs checks the production entry point rejects bad
// arguments before it would touch the real host.
func TestRunRealHostBadArgs(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--inbound-ports=15000"}, &stdout, &stderr); code != exitUsage {
		t.Fatalf("exit code = %d, want %d; stderr %q", code, exitUsage, stderr.String())
	}
}
