package proxy

import (
	"errors"
	"net"
	"syscall"
)

// closedByPeer reports whether the app has closed or reset an idle connection, or sent on
// it unasked (an HTTP 408 before closing, say): either way it cannot carry a request. A
// peek that would block means the connection is alive and quiet.
func closedByPeer(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	alive := false
	var b [1]byte
	// Control, not Read: it runs the peek without touching the poller's readiness state.
	if err := raw.Control(func(fd uintptr) {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = errors.Is(err, syscall.EAGAIN)
	}); err != nil {
		return true
	}
	return !alive
}
