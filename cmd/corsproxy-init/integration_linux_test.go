package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The integration test runs small helpers (a TCP listener, a dialer) inside
// network namespaces by re-executing the test binary under `ip netns exec`.
// These variables select the helper and its address.
const (
	helperEnv     = "CORSPROXY_INIT_IT_HELPER"
	helperAddrEnv = "CORSPROXY_INIT_IT_ADDR"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, os.Getenv(helperAddrEnv)))
	}
	os.Exit(m.Run())
}

const (
	itProxyPort = "15003"
	itAdminPort = "15000"
	itAppAddr   = "10.213.0.1"
	itPeerAddr  = "10.213.0.2"
	itChain     = "CORSMESH_INBOUND"
)

// TestIntegrationNetns installs the rules with the real binary inside a
// throwaway network namespace, checks what iptables-save reads back, re-runs
// it, and sends real connections through the redirect. It never touches the
// host's own network namespace.
func TestIntegrationNetns(t *testing.T) {
	requireIntegrationEnv(t)
	bin := buildBinary(t)

	tests := []struct {
		backend string
		// binaries the backend needs; missing ones skip (or fail in CI).
		needs []string
	}{
		{backend: "auto", needs: []string{"iptables-save", "iptables-restore"}},
		{backend: "nft", needs: []string{"iptables-nft-save", "iptables-nft-restore"}},
		{backend: "legacy", needs: []string{"iptables-legacy-save", "iptables-legacy-restore"}},
	}
	for _, tt := range tests {
		t.Run(tt.backend, func(t *testing.T) {
			for _, b := range tt.needs {
				if _, err := exec.LookPath(b); err != nil {
					skipOrFail(t, "needs %s on PATH (Debian package iptables)", b)
				}
			}
			testBackend(t, bin, tt.backend)
		})
	}
}

func testBackend(t *testing.T, bin, backend string) {
	app := newNetns(t)
	args := []string{"--inbound-ports=9090,8080", "--proxy-port=" + itProxyPort, "--admin-port=" + itAdminPort, "--backend=" + backend}

	out := runInNetns(t, app, bin, args...)
	resolved := regexp.MustCompile(`applied IPv4 rules \(backend (\w+)\)`).FindStringSubmatch(out)
	if resolved == nil {
		t.Fatalf("corsproxy-init did not log the applied IPv4 rules:\n%s", out)
	}
	save4, save6 := saveTools(resolved[1])
	if backend != "auto" && resolved[1] != backend {
		t.Fatalf("asked for backend %s, corsproxy-init used %s", backend, resolved[1])
	}
	_, ipv6Err := os.Stat("/proc/net/if_inet6")
	wantIPv6 := ipv6Err == nil && hasBinary(save6)
	if got := strings.Contains(out, "applied IPv6 rules"); got != wantIPv6 {
		t.Errorf("IPv6 rules applied = %v, want %v (--ipv6=auto):\n%s", got, wantIPv6, out)
	}

	first := map[string]string{"IPv4": natRules(t, app, save4)}
	if wantIPv6 {
		first["IPv6"] = natRules(t, app, save6)
	}
	for family, rules := range first {
		assertInstalled(t, family, rules)
	}

	// A restarted init container runs again: nothing may be duplicated.
	runInNetns(t, app, bin, args...)
	second := map[string]string{"IPv4": natRules(t, app, save4)}
	if wantIPv6 {
		second["IPv6"] = natRules(t, app, save6)
	}
	for family, rules := range second {
		assertInstalled(t, family, rules)
		if rules != first[family] {
			t.Errorf("%s rules changed on re-run.\nfirst:\n%s\nsecond:\n%s", family, first[family], rules)
		}
	}

	assertRedirects(t, app)
}

// assertInstalled checks one family's `iptables-save -t nat` output.
func assertInstalled(t *testing.T, family, rules string) {
	t.Helper()
	if !strings.Contains(rules, ":"+itChain+" - ") {
		t.Errorf("%s: chain %s not declared:\n%s", family, itChain, rules)
	}
	redirectRule := regexp.MustCompile(`^-A ` + itChain + ` -p tcp -m tcp --dport (\d+) .*-j REDIRECT --to-ports (\d+)$`)
	redirects := map[string]string{}
	jumps := 0
	for _, line := range strings.Split(rules, "\n") {
		if !strings.HasPrefix(line, "-A ") {
			continue
		}
		// The namespace is fresh, so every rule is ours and must say why it exists.
		if !strings.Contains(line, `-m comment --comment "corsmesh: `) {
			t.Errorf("%s: rule without a corsmesh comment: %s", family, line)
		}
		if strings.HasPrefix(line, "-A PREROUTING ") && strings.HasSuffix(line, "-j "+itChain) {
			jumps++
		}
		if m := redirectRule.FindStringSubmatch(line); m != nil {
			if _, dup := redirects[m[1]]; dup {
				t.Errorf("%s: port %s redirected twice", family, m[1])
			}
			redirects[m[1]] = m[2]
		}
	}
	if jumps != 1 {
		t.Errorf("%s: %d PREROUTING jumps to %s, want exactly 1:\n%s", family, jumps, itChain, rules)
	}
	want := map[string]string{"8080": itProxyPort, "9090": itProxyPort}
	if fmt.Sprint(redirects) != fmt.Sprint(want) {
		t.Errorf("%s: redirects (port -> proxy) = %v, want %v:\n%s", family, redirects, want, rules)
	}
	if strings.Contains(rules, itAdminPort) {
		t.Errorf("%s: admin port %s appears in the nat rules:\n%s", family, itAdminPort, rules)
	}
}

// assertRedirects proves the data path: a peer namespace connects over a
// veth pair to listed ports and must land on the proxy listener.
func assertRedirects(t *testing.T, app string) {
	peer := newNetns(t)
	suffix := randomHex(t, 3) // interface names are limited to 15 bytes
	appIf, peerIf := "cmit"+suffix+"a", "cmit"+suffix+"b"

	ipCmd(t, "-n", app, "link", "set", "lo", "up")
	ipCmd(t, "-n", peer, "link", "set", "lo", "up")
	// Created inside the app namespace with the peer end placed straight
	// into the peer namespace, so the host namespace never sees either.
	ipCmd(t, "-n", app, "link", "add", appIf, "type", "veth", "peer", "name", peerIf, "netns", peer)
	t.Cleanup(func() {
		// Deleting the namespace removes the pair too; this is belt and braces.
		_ = exec.Command("ip", "-n", app, "link", "del", appIf).Run()
	})
	ipCmd(t, "-n", app, "addr", "add", itAppAddr+"/30", "dev", appIf)
	ipCmd(t, "-n", peer, "addr", "add", itPeerAddr+"/30", "dev", peerIf)
	ipCmd(t, "-n", app, "link", "set", appIf, "up")
	ipCmd(t, "-n", peer, "link", "set", peerIf, "up")

	startListener(t, app, "0.0.0.0:"+itProxyPort)

	for _, port := range []string{"8080", "9090"} {
		got, err := dialInNetns(t, peer, net.JoinHostPort(itAppAddr, port))
		if err != nil {
			t.Errorf("connect to %s:%s from the peer: %v", itAppAddr, port, err)
			continue
		}
		want := fmt.Sprintf("proxy-port=%s original-dst=%s:%s", itProxyPort, itAppAddr, port)
		if got != want {
			t.Errorf("connection to %s:%s reached %q, want %q", itAppAddr, port, got, want)
		}
	}

	// Not redirected: the admin port (kubelet probes it directly), a port
	// that was not listed, and the proxy's own path to the app over
	// loopback, which goes through OUTPUT and must not loop back.
	for _, tc := range []struct{ netns, addr, why string }{
		{peer, net.JoinHostPort(itAppAddr, itAdminPort), "admin port"},
		{peer, net.JoinHostPort(itAppAddr, "7070"), "unlisted port"},
		{app, "127.0.0.1:8080", "local connection to the app"},
	} {
		got, err := dialInNetns(t, tc.netns, tc.addr)
		if !errors.Is(err, errRefused) {
			t.Errorf("%s: connect to %s = (%q, %v), want connection refused (no redirect)", tc.why, tc.addr, got, err)
		}
	}
}

// --- environment ---------------------------------------------------------

// skipOrFail skips the test, except in CI, where a missing prerequisite
// must fail loudly instead of silently dropping coverage.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but the integration test cannot run: %s", reason)
	}
	t.Skip(reason)
}

func requireIntegrationEnv(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root: creates network namespaces and iptables rules (running as uid %d)", os.Geteuid())
	}
	for _, b := range []string{"ip", "iptables", "iptables-save", "iptables-restore", "go"} {
		if !hasBinary(b) {
			skipOrFail(t, "needs %s on PATH (Debian packages: iproute2, iptables)", b)
		}
	}
}

func hasBinary(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "corsproxy-init")
	out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random name: %v", err)
	}
	return hex.EncodeToString(b)
}

// newNetns creates a uniquely named network namespace, deleted when the test
// ends whatever the outcome.
func newNetns(t *testing.T) string {
	t.Helper()
	name := "corsmesh-it-" + randomHex(t, 4)
	ipCmd(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("deleting network namespace %s: %v: %s", name, err, out)
		}
	})
	return name
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.CommandContext(t.Context(), "ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func runInNetns(t *testing.T, netns, bin string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "ip", append([]string{"netns", "exec", netns, bin}, args...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s in %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(bin), strings.Join(args, " "), netns, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func saveTools(backend string) (save4, save6 string) {
	if backend == "legacy" || backend == "nft" {
		return "iptables-" + backend + "-save", "ip6tables-" + backend + "-save"
	}
	return "iptables-save", "ip6tables-save"
}

// natRules returns the nat table as iptables-save prints it, minus the
// comment lines, whose timestamps differ between runs.
func natRules(t *testing.T, netns, save string) string {
	t.Helper()
	out := runInNetns(t, netns, mustLookPath(t, save), "-t", "nat")
	var kept []string
	for _, line := range strings.Split(out, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			kept = append(kept, line)
		}
	}
	return strings.Join(kept, "\n")
}

func mustLookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return p
}

// --- helpers running inside namespaces -------------------------------------

var errRefused = errors.New("connection refused")

// startListener runs the listen helper in netns and waits until it accepts
// connections. It is killed when the test ends.
func startListener(t *testing.T, netns, addr string) {
	t.Helper()
	cmd := helperCommand(t, netns, "listen", addr)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("listener stdout: %v", err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting listener in %s: %v", netns, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // only the helper this test started
		_ = cmd.Wait()
	})
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ready" {
			err = fmt.Errorf("unexpected first line %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("listener in %s did not start: %v", netns, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("listener in %s did not start within 10s", netns)
	}
}

// dialInNetns connects to addr from netns and returns the line the listener
// sent back, or errRefused.
func dialInNetns(t *testing.T, netns, addr string) (string, error) {
	t.Helper()
	cmd := helperCommand(t, netns, "dial", addr)
	out, err := cmd.Output()
	line := strings.TrimSpace(string(out))
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr) && exitErr.ExitCode() == helperExitRefused:
		return "", errRefused
	case err != nil:
		return "", fmt.Errorf("dial helper: %w: %s", err, line)
	}
	return line, nil
}

func helperCommand(t *testing.T, netns, mode, addr string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatalf("finding the test binary: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", netns, self)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperAddrEnv+"="+addr)
	return cmd
}

const helperExitRefused = 3

func runHelper(mode, addr string) int {
	switch mode {
	case "listen":
		return listenHelper(addr)
	case "dial":
		return dialHelper(addr)
	}
	fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
	return 1
}

// listenHelper plays the proxy: it tells each client which port it was
// accepted on and the connection's original destination before REDIRECT.
func listenHelper(addr string) int {
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "listen %s: %v\n", addr, err)
		return 1
	}
	fmt.Println("ready")
	for {
		conn, err := ln.Accept()
		if err != nil {
			fmt.Fprintf(os.Stderr, "accept: %v\n", err)
			return 1
		}
		local := conn.LocalAddr().(*net.TCPAddr)
		orig, err := originalDst(conn.(*net.TCPConn))
		if err != nil {
			orig = "error:" + err.Error()
		}
		fmt.Fprintf(conn, "proxy-port=%d original-dst=%s\n", local.Port, orig)
		_ = conn.Close()
	}
}

// soOriginalDst is SO_ORIGINAL_DST from linux/netfilter_ipv4.h.
const soOriginalDst = 80

// originalDst reads the pre-NAT destination of a redirected IPv4
// connection. The kernel fills a sockaddr_in; IPv6Mreq is merely a
// large-enough buffer the syscall package can already fetch.
func originalDst(conn *net.TCPConn) (string, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return "", err
	}
	var (
		mreq    *syscall.IPv6Mreq
		sockErr error
	)
	if err := raw.Control(func(fd uintptr) {
		mreq, sockErr = syscall.GetsockoptIPv6Mreq(int(fd), syscall.IPPROTO_IP, soOriginalDst)
	}); err != nil {
		return "", err
	}
	if sockErr != nil {
		return "", fmt.Errorf("getsockopt SO_ORIGINAL_DST: %w", sockErr)
	}
	sa := mreq.Multiaddr // sin_family(2) sin_port(2, big endian) sin_addr(4)
	port := int(sa[2])<<8 | int(sa[3])
	return net.JoinHostPort(net.IP(sa[4:8]).String(), fmt.Sprint(port)), nil
}

func dialHelper(addr string) int {
	conn, err := net.DialTimeout("tcp4", addr, 5*time.Second)
	if errors.Is(err, syscall.ECONNREFUSED) {
		return helperExitRefused
	}
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Print(line)
	return 0
}
