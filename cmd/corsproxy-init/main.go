// Command corsproxy-init is the corsmesh init container. It redirects the
// pod's inbound HTTP ports to the CORS proxy with iptables, then exits.
//
// It runs once per pod start, before the app and proxy containers, with
// NET_ADMIN and NET_RAW. It may run again if the init container restarts,
// so applying the rules is idempotent.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/corsmesh/corsmesh/corsproxy/iptables"
)

// Exit codes. exitUsage matches what the flag package uses for bad
// arguments, so scripts can tell "you called me wrong" from "it failed".
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

const name = "corsproxy-init"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process globals, so tests can call it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runWithHost(ctx, iptables.OSHost{}, args, stdout, stderr)
}

// runWithHost is run with the machine behind an interface, so tests can
// assert which commands would have run.
func runWithHost(ctx context.Context, host iptables.Host, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s (run %s -h for usage)\n", name, oneLine(err), name)
		return exitUsage
	}

	if cfg.dryRun {
		return dryRun(cfg.opts, stdout, stderr)
	}

	steps, err := iptables.Plan(ctx, host, cfg.opts)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", name, oneLine(err))
		return exitFailure
	}
	// Apply one family at a time so the log shows exactly what is in place
	// if a later family fails.
	for _, step := range steps {
		if err := iptables.Apply(ctx, host, []iptables.Step{step}); err != nil {
			fmt.Fprintf(stderr, "%s: %s\n", name, oneLine(err))
			return exitFailure
		}
		fmt.Fprintf(stdout, "%s: applied %s rules (backend %s) with %s:\n%s",
			name, step.Family, step.Backend, step.Restore, step.Restore.Stdin)
	}
	c := cfg.opts.Config
	fmt.Fprintf(stdout, "%s: inbound ports %s now redirect to proxy port %d; admin port %d is not redirected\n",
		name, iptables.FormatPorts(c.SortedInboundPorts()), c.ProxyPort, c.AdminPort)
	return exitOK
}

func dryRun(opts iptables.Options, stdout, stderr io.Writer) int {
	// Without root we cannot read the current rules, so render as for a
	// fresh pod. The output is valid iptables-restore input as-is.
	rules, err := iptables.Render(opts.Config, "")
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", name, oneLine(err))
		return exitUsage
	}
	fmt.Fprintf(stdout, "# %s --dry-run: nothing applied. iptables-restore --noflush (and\n", name)
	fmt.Fprintf(stdout, "# ip6tables-restore --noflush for IPv6) would receive, on a fresh pod:\n%s", rules)
	return exitOK
}

type config struct {
	opts   iptables.Options
	dryRun bool
}

// parseFlags parses and validates args. Every error it returns is a usage
// error: nothing has been touched yet.
func parseFlags(args []string) (config, error) {
	cfg := config{opts: iptables.DefaultOptions()}
	fs := newFlagSet(&cfg)
	// The flag package would print the error plus the full usage; we print
	// one line ourselves.
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q; ports go in --%s", fs.Arg(0), iptables.FlagInboundPorts)
	}
	portsSet := false
	fs.Visit(func(f *flag.Flag) { portsSet = portsSet || f.Name == iptables.FlagInboundPorts })
	if !portsSet {
		return config{}, fmt.Errorf("--%s is required, e.g. --%s=8080,9090", iptables.FlagInboundPorts, iptables.FlagInboundPorts)
	}
	if err := cfg.opts.Validate(); err != nil {
		return config{}, err
	}
	return cfg, nil
}

func newFlagSet(cfg *config) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	o := &cfg.opts
	fs.Func(iptables.FlagInboundPorts, "comma-separated TCP `ports` whose inbound traffic goes to the proxy (required), e.g. 8080,9090",
		func(s string) error {
			ports, err := iptables.ParsePorts(s)
			o.Config.InboundPorts = ports
			return err
		})
	fs.IntVar(&o.Config.ProxyPort, iptables.FlagProxyPort, iptables.DefaultProxyPort, "port the CORS proxy accepts redirected connections on")
	fs.IntVar(&o.Config.AdminPort, iptables.FlagAdminPort, iptables.DefaultAdminPort, "proxy admin/health port; never redirected")
	fs.StringVar(&o.Config.ChainPrefix, iptables.FlagChainPrefix, iptables.DefaultChainPrefix, "prefix of the nat chain names")
	fs.Func(iptables.FlagBackend, "iptables backend `mode`: auto, legacy or nft (default auto)", func(s string) error {
		b, err := iptables.ParseBackend(s)
		o.Backend = b
		return err
	})
	fs.Func(iptables.FlagIPv6, "also install the rules with ip6tables (`mode`): auto, true or false (default auto)", func(s string) error {
		m, err := iptables.ParseIPv6Mode(s)
		o.IPv6 = m
		return err
	})
	fs.BoolVar(&cfg.dryRun, iptables.FlagDryRun, false, "print the rules and apply nothing (needs no privileges)")
	return fs
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s --%s=PORT[,PORT...] [flags]\n\n", name, iptables.FlagInboundPorts)
	fmt.Fprintf(w, "Redirects the pod's inbound TCP ports to the corsmesh CORS proxy with iptables.\n\nFlags:\n")
	fs := newFlagSet(&config{})
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// oneLine keeps error output on one line: iptables-restore's stderr can span
// several, and a one-line message is what kubectl describe shows best.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
