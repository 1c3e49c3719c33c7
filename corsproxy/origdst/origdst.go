// Package origdst recovers where a connection was headed before iptables redirected it to
// the proxy, so the proxy can forward it to the port the client asked for.
package origdst

import (
	"errors"
	"net"
	"net/netip"
)

// ErrNotRedirected means the connection reached the proxy port directly: the kernel has no
// NAT record of another destination.
var ErrNotRedirected = errors.New("connection was not redirected by iptables")

// Lookup returns the original destination of a TCP connection accepted by the proxy.
func Lookup(conn net.Conn) (netip.AddrPort, error) {
	tcp, ok := conn.(*net.TCPConn)
	if !ok {
		return netip.AddrPort{}, errors.New("original destination: not a TCP connection")
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var dst netip.AddrPort
	var lookupErr error
	if err := raw.Control(func(fd uintptr) { dst, lookupErr = lookupFD(fd, isIPv6(tcp)) }); err != nil {
		return netip.AddrPort{}, err
	}
	if lookupErr != nil {
		return netip.AddrPort{}, lookupErr
	}
	// Without a NAT record some kernels answer with the local address itself.
	if local, ok := tcp.LocalAddr().(*net.TCPAddr); ok && local.AddrPort() == dst {
		return netip.AddrPort{}, ErrNotRedirected
	}
	return dst, nil
}

func isIPv6(c *net.TCPConn) bool {
	local, ok := c.LocalAddr().(*net.TCPAddr)
	return ok && local.IP.To4() == nil
}
