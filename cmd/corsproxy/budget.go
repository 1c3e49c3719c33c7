package main

// The proxy's memory budget: what its memory limit (the container's) is spent on, so that
// no client can take it past the limit. The figures are measured by the hostile suite
// (hostile_linux_test.go) on the binary inside a memory cgroup; see the README's
// "Memory budget".
const (
	// baseBytes: the process serving nothing (runtime, binary, pools), with margin.
	baseBytes = 12 << 20
	// perClientConnBytes: one client connection at its costliest, a request in flight
	// (read and write buffers on both hops, the pooled app connection, goroutines):
	// 34 KiB measured (hack/bench/heldstreams), with margin. At 64Mi the cap (1,126) is
	// above the default pool of app connections (1,024), which so never runs out first.
	perClientConnBytes = 40 << 10
	// defaultMaxClientConns applies without a known limit.
	defaultMaxClientConns = 1024
	// maxClientConnsCeiling: the ports the kernel has for connections to the app.
	maxClientConnsCeiling = 28000
)

// softMemoryLimit is the Go runtime's limit: an eighth of the container's is left to what
// the runtime does not count (kernel socket buffers charged to the container, fragmentation).
func softMemoryLimit(limit int64) int64 { return limit - limit/8 }

// maxClientConns is the connection cap that limit holds: the soft limit less the base,
// in connections at their costliest. Without a limit, the default.
func maxClientConns(limit int64) int {
	if limit <= 0 {
		return defaultMaxClientConns
	}
	n := (softMemoryLimit(limit) - baseBytes) / perClientConnBytes
	return int(max(16, min(n, maxClientConnsCeiling)))
}
