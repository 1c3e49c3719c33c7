//go:build !linux

package origdst

import "net/netip"

func lookupFD(uintptr, bool) (netip.AddrPort, error) {
	return netip.AddrPort{}, ErrNotRedirected
}
