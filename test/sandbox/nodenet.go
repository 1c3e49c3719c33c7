package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
)

// nodeNetwork is the node's own network namespace and the veth pair joining it to the
// host. Everything the node does to the network (the CNI bridge, pod interfaces,
// kube-proxy's and the CNI plugins' iptables rules, ports 10250 and 10256) stays inside
// that namespace, so two sandboxes, or a sandbox and another test, never share a chain or
// a port, and deleting the namespace takes all of it away.
//
// The addresses come from one /22 of 100.64.0.0/10 picked at random and checked against
// the host's routes: a /30 for the veth pair, a /24 for pods, a /24 for Services. The host
// routes the pod and Service ranges to the node, so the API server reaches webhook
// Services and kubelets as in a cluster. Pods also get an IPv6 address from a random
// unique local /64 (PodCIDR6) that lives only on the node's bridge: pods reach each other
// over IPv6, nothing outside the node's namespace does.
type nodeNetwork struct {
	ID          string // random, in every name below
	Netns       string // ip netns name; /run/netns/<Netns>
	HostLink    string // veth end in the host namespace
	NodeLink    string // veth end in the node namespace
	HostIP      netip.Addr
	NodeIP      netip.Addr
	PodCIDR     netip.Prefix
	PodCIDR6    netip.Prefix
	ServiceCIDR netip.Prefix
}

// ServiceIP returns the n-th address of the Service range (1: the kubernetes Service,
// 10: cluster DNS).
func (n *nodeNetwork) ServiceIP(i int) netip.Addr {
	a := n.ServiceCIDR.Addr().As4()
	a[3] = byte(i)
	return netip.AddrFrom4(a)
}

// NetnsPath is the namespace's file, for nsenter --net.
func (n *nodeNetwork) NetnsPath() string { return "/run/netns/" + n.Netns }

// setUpNodeNetwork creates the namespace and the veth pair. On error it removes what it
// created.
func setUpNodeNetwork(ctx context.Context) (_ *nodeNetwork, err error) {
	block, err := freeBlock(ctx)
	if err != nil {
		return nil, err
	}
	idBytes := make([]byte, 3)
	if _, err := rand.Read(idBytes); err != nil {
		return nil, err
	}
	var ula [16]byte // fd00::/8 and a random 40-bit global ID (RFC 4193), subnet 0
	ula[0] = 0xfd
	if _, err := rand.Read(ula[1:6]); err != nil {
		return nil, err
	}
	id := hex.EncodeToString(idBytes)
	b := block.Addr().As4()
	at := func(third, fourth byte) netip.Addr {
		return netip.AddrFrom4([4]byte{b[0], b[1], b[2] + third, fourth})
	}
	n := &nodeNetwork{
		ID:          id,
		Netns:       "corsmesh-node-" + id,
		HostLink:    "cmh" + id,
		NodeLink:    "cmn" + id,
		HostIP:      at(0, 1),
		NodeIP:      at(0, 2),
		PodCIDR:     netip.PrefixFrom(at(1, 0), 24),
		PodCIDR6:    netip.PrefixFrom(netip.AddrFrom16(ula), 64),
		ServiceCIDR: netip.PrefixFrom(at(2, 0), 24),
	}
	defer func() {
		if err != nil {
			_ = n.tearDown(context.Background())
		}
	}()
	steps := [][]string{
		{"netns", "add", n.Netns},
		{"link", "add", n.HostLink, "type", "veth", "peer", "name", n.NodeLink, "netns", n.Netns},
		{"addr", "add", n.HostIP.String() + "/30", "dev", n.HostLink},
		{"link", "set", n.HostLink, "up"},
		{"-n", n.Netns, "link", "set", "lo", "up"},
		{"-n", n.Netns, "addr", "add", n.NodeIP.String() + "/30", "dev", n.NodeLink},
		{"-n", n.Netns, "link", "set", n.NodeLink, "up"},
		{"-n", n.Netns, "route", "add", "default", "via", n.HostIP.String()},
		{"route", "add", n.PodCIDR.String(), "via", n.NodeIP.String(), "dev", n.HostLink},
		{"route", "add", n.ServiceCIDR.String(), "via", n.NodeIP.String(), "dev", n.HostLink},
	}
	for _, args := range steps {
		if _, err := run(ctx, "ip", args...); err != nil {
			return nil, fmt.Errorf("setting up the node's network: %w", err)
		}
	}
	// The node routes between pods, Services and the host; bridged pod traffic goes
	// through iptables so that kube-proxy's DNAT is undone on replies between pods on
	// the bridge (a pod calling CoreDNS through its Service).
	for _, kv := range []string{"net.ipv4.ip_forward=1", "net.bridge.bridge-nf-call-iptables=1"} {
		if _, err := run(ctx, "ip", "netns", "exec", n.Netns, "sysctl", "-qw", kv); err != nil {
			return nil, fmt.Errorf("setting up the node's network: %w", err)
		}
	}
	return n, nil
}

// tearDown deletes the namespace (its links, routes and iptables rules go with it) and the
// host's veth end, if still there.
func (n *nodeNetwork) tearDown(ctx context.Context) error {
	var errs []string
	if out, err := run(ctx, "ip", "link", "show", n.HostLink); err == nil && out != "" {
		if _, err := run(ctx, "ip", "link", "del", n.HostLink); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if out, _ := run(ctx, "ip", "netns", "list"); strings.Contains(out, n.Netns) {
		if _, err := run(ctx, "ip", "netns", "del", n.Netns); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("removing the node's network: %s", strings.Join(errs, "; "))
	}
	return nil
}

// freeBlock picks a /22 of 100.64.0.0/10 that no route or address of the host overlaps.
func freeBlock(ctx context.Context) (netip.Prefix, error) {
	out, err := run(ctx, "ip", "-4", "route", "show", "table", "all")
	if err != nil {
		return netip.Prefix{}, err
	}
	addrs, err := run(ctx, "ip", "-4", "-o", "addr", "show")
	if err != nil {
		return netip.Prefix{}, err
	}
	var used []netip.Prefix
	for _, field := range strings.Fields(out + " " + addrs) {
		if p, err := netip.ParsePrefix(field); err == nil {
			used = append(used, p.Masked())
		} else if a, err := netip.ParseAddr(field); err == nil && a.Is4() {
			used = append(used, netip.PrefixFrom(a, 32))
		}
	}
	for range 100 {
		var r [2]byte
		if _, err := rand.Read(r[:]); err != nil {
			return netip.Prefix{}, err
		}
		// 100.64.0.0/10 holds 4096 /22s.
		n := uint32(binary.BigEndian.Uint16(r[:])%4096) << 10
		base := uint32(100)<<24 | uint32(64)<<16 | n
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], base)
		p := netip.PrefixFrom(netip.AddrFrom4(a), 22)
		free := true
		for _, u := range used {
			if u.Overlaps(p) && u.Bits() > 0 {
				free = false
				break
			}
		}
		if free {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free /22 in 100.64.0.0/10 for the node's network")
}

// run runs a command and returns its output; the error quotes it.
func run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}
