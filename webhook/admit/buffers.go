package admit

import "sync"

// maxPooledBuffer is the largest buffer kept for reuse: a pod's review is a few kB, and a
// rare review near maxReviewBytes should not pin megabytes in the pool.
const maxPooledBuffer = 64 << 10

// buffers lends the byte slices an admission fills and drops when its response is written:
// the review's body, and the patch. They are its two largest allocations (3.5 and 4.1 kB of
// the 33 kB BenchmarkAdmission allocates for the seed's pod), and the bytes an admission
// allocates set how often the collector runs, which is what sets the handler's p99.
type buffers struct{ pool sync.Pool }

// get returns a buffer of length 0 and capacity at least n, to give back with put.
func (b *buffers) get(n int) *[]byte {
	if p, ok := b.pool.Get().(*[]byte); ok {
		if cap(*p) >= n {
			*p = (*p)[:0]
			return p
		}
		b.pool.Put(p)
	}
	buf := make([]byte, 0, max(n, 4<<10))
	return &buf
}

// put takes a buffer back (nil is ignored). Its bytes must no longer be read anywhere.
func (b *buffers) put(p *[]byte) {
	if p == nil || cap(*p) > maxPooledBuffer {
		return
	}
	b.pool.Put(p)
}
