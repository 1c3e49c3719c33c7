package iptables

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Command is one invocation of an external binary.
type Command struct {
	Name  string
	Args  []string
	Stdin string
}

// String renders the command line (without stdin) for logs and errors.
func (c Command) String() string {
	return strings.Join(append([]string{c.Name}, c.Args...), " ")
}

// Host is everything Plan and Apply need from the machine. It is an
// interface so tests can check which commands would run without root.
type Host interface {
	// Run executes cmd and returns its standard output. A failure must be
	// returned as an error that includes the command's standard error.
	Run(ctx context.Context, cmd Command) ([]byte, error)
	// HasBinary reports whether name can be found on PATH.
	HasBinary(name string) bool
	// KernelHasIPv6 reports whether the kernel has IPv6 enabled.
	KernelHasIPv6() bool
}

// OSHost is the real Host: it runs binaries with os/exec.
type OSHost struct{}

var _ Host = OSHost{}

// Run implements Host.
func (OSHost) Run(ctx context.Context, cmd Command) ([]byte, error) {
	c := exec.CommandContext(ctx, cmd.Name, cmd.Args...)
	if cmd.Stdin != "" {
		c.Stdin = strings.NewReader(cmd.Stdin)
	}
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return stdout.Bytes(), fmt.Errorf("%s: %w: %s", cmd, err, msg)
		}
		return stdout.Bytes(), fmt.Errorf("%s: %w", cmd, err)
	}
	return stdout.Bytes(), nil
}

// HasBinary implements Host.
func (OSHost) HasBinary(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

// KernelHasIPv6 implements Host. /proc/net/if_inet6 only exists when the
// kernel has IPv6 (it is per network namespace, so this reflects the pod's).
func (OSHost) KernelHasIPv6() bool {
	_, err := os.Stat("/proc/net/if_inet6")
	return err == nil
}
