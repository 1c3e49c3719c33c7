package origdst

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"unsafe"
)

// soOriginalDst is SO_ORIGINAL_DST (linux/netfilter_ipv4.h), and IP6T_SO_ORIGINAL_DST
// (linux/netfilter_ipv6/ip6_tables.h) has the same number.
const soOriginalDst = 80

func lookupFD(fd uintptr, ipv6 bool) (netip.AddrPort, error) {
	var buf [28]byte // large enough for sockaddr_in6
	size := uint32(len(buf))
	level := syscall.SOL_IP
	if ipv6 {
		level = syscall.SOL_IPV6
	}
	_, _, errno := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, uintptr(level), soOriginalDst,
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		if errors.Is(errno, syscall.ENOENT) {
			return netip.AddrPort{}, ErrNotRedirected
		}
		return netip.AddrPort{}, fmt.Errorf("getsockopt SO_ORIGINAL_DST: %w", errno)
	}
	port := binary.BigEndian.Uint16(buf[2:4])
	switch family := binary.NativeEndian.Uint16(buf[0:2]); family {
	case syscall.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(buf[4:8])), port), nil
	case syscall.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(buf[8:24])), port), nil
	default:
		return netip.AddrPort{}, fmt.Errorf("SO_ORIGINAL_DST: unexpected address family %d", family)
	}
}
