package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// StartTimeout bounds Start in ForTest and RunMain.
const StartTimeout = 5 * time.Minute

// OnCI reports whether the environment says this is CI (CI=true), where missing control
// plane binaries fail tests instead of skipping them.
func OnCI() bool { return os.Getenv("CI") == "true" }

// RequireServed skips the test, or fails it on CI, unless the node's registry serves every
// image of refs (make images sandbox-images builds them).
func RequireServed(t testing.TB, s *Sandbox, refs ...string) {
	t.Helper()
	for _, ref := range refs {
		if s.ServesImage(ref) {
			continue
		}
		if OnCI() {
			t.Fatalf("the registry does not serve %s: make images sandbox-images", ref)
		}
		t.Skipf("skipping: the registry does not serve %s (make images sandbox-images)", ref)
	}
}

// MustKubectl runs kubectl with args and returns its output, failing the test with what
// Diagnose gathers if it fails.
func (s *Sandbox) MustKubectl(t testing.TB, ctx context.Context, args ...string) string {
	t.Helper()
	out, err := s.Kubectl(ctx, args...)
	if err != nil {
		t.Fatalf("%v%s", err, s.Diagnose())
	}
	return out
}

// ForTest starts a sandbox for one test and stops it when the test ends. When the control
// plane binaries are missing it skips the test, or fails it on CI (CI=true). opts.Log
// defaults to t.Logf.
func ForTest(t testing.TB, opts Options) *Sandbox {
	t.Helper()
	if opts.Log == nil {
		opts.Log = t.Logf
	}
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	s, err := Start(ctx, opts)
	if err != nil {
		if (errors.Is(err, ErrNoBinaries) || errors.Is(err, ErrNoNode)) && !OnCI() {
			t.Skipf("skipping: %v", err)
		}
		t.Fatalf("starting the sandbox: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stopping the sandbox: %v", err)
		}
	})
	return s
}

// Main is the state RunMain leaves for the tests of a package: the sandbox, or why there
// is none.
type Main struct {
	Sandbox *Sandbox
	// SkipReason is set when the binaries are missing outside CI.
	SkipReason string
}

// Require returns the package's sandbox, skipping the test when there is none.
func (m *Main) Require(t testing.TB) *Sandbox {
	t.Helper()
	if m.Sandbox == nil {
		if m.SkipReason == "" {
			t.Fatal("no sandbox: RunMain did not run (call it from TestMain)")
		}
		t.Skip(m.SkipReason)
	}
	return m.Sandbox
}

// RunMain is TestMain's body for a package whose tests share one sandbox:
//
//	var env sandbox.Main
//	func TestMain(m *testing.M) { os.Exit(env.RunMain(m, sandbox.Options{Webhook: true})) }
//
// When the binaries are missing the tests run and skip themselves (Require), except on
// CI where the package fails. opts.Log defaults to printing to stderr.
func (mm *Main) RunMain(m *testing.M, opts Options) int {
	if opts.Log == nil {
		opts.Log = func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	s, err := Start(ctx, opts)
	cancel()
	if err != nil {
		if (errors.Is(err, ErrNoBinaries) || errors.Is(err, ErrNoNode)) && !OnCI() {
			mm.SkipReason = fmt.Sprintf("skipping: %v", err)
			return m.Run()
		}
		fmt.Fprintf(os.Stderr, "starting the sandbox: %v\n", err)
		return 1
	}
	mm.Sandbox = s
	// Ctrl-C or a kill: stop the control plane rather than leave it to the watchdog.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		if _, ok := <-signals; ok {
			fmt.Fprintln(os.Stderr, "sandbox: interrupted, stopping")
			_ = s.Stop()
			os.Exit(130)
		}
	}()
	code := m.Run()
	signal.Stop(signals)
	close(signals)
	if err := s.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the sandbox: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}
