package proxy

import (
	"net"
	"runtime"
	"sync/atomic"
	"time"
)

// yielder lets the other goroutines run after a write, before the writer reads the
// answer, while that does not keep the network from being polled.
//
// Go reads a socket before waiting for it, so reading right after sending a request (to
// the app) or a response (to a keep-alive client) mostly returns EAGAIN and parks: a
// wasted system call per exchange, 1.2–1.6 per proxied request under load
// (hack/bench/results/proxy-2026-11-26-syscalls.md). After the other connections' turn
// the answer has usually arrived.
//
// But Go's scheduler polls the network only when its run queues are empty (or from
// sysmon, after 10 ms without a poll). With one P, goroutines that yield after every
// write and then find their answer waiting keep the queue from ever emptying, and the
// connections parked on a read wait for sysmon: a p99 of 8–12 ms under full load
// (hack/bench/results/proxy-2026-12-01-tail.md). So writes yield only while some read
// has come back from a wait in the last pollWindow; once none has, they stop yielding,
// their reads park, the queue drains and the scheduler polls.
type yielder struct {
	base     time.Time    // monotonic origin of lastWake
	lastWake atomic.Int64 // time.Since(base) when a read last returned from a wait
}

const (
	// parkedRead: a read that took longer than this waited for the network (one that
	// finds data returns in a few µs).
	parkedRead = 20 * time.Microsecond
	// pollWindow: how long writes keep yielding after the last read that waited.
	pollWindow = time.Millisecond
)

func newYielder() *yielder { return &yielder{base: time.Now()} }

// read reads from c, noting whether it waited.
func (y *yielder) read(c net.Conn, p []byte) (int, error) {
	start := time.Since(y.base)
	n, err := c.Read(p)
	if end := time.Since(y.base); end-start > parkedRead {
		y.lastWake.Store(int64(end))
	}
	return n, err
}

// write writes to c, then yields if the network was polled recently.
func (y *yielder) write(c net.Conn, p []byte) (int, error) {
	n, err := c.Write(p)
	if time.Since(y.base)-time.Duration(y.lastWake.Load()) < pollWindow {
		runtime.Gosched()
	}
	return n, err
}
