//go:build !linux

package proxy

import "net"

// closedByPeer is Linux-only (MSG_PEEK with MSG_DONTWAIT); elsewhere connections are
// reused unchecked, as fasthttp does.
func closedByPeer(net.Conn) bool { return false }
