package admit

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// Reading a review's body. The webhook's Service is reachable from any pod of the cluster,
// not only from the API server, so what a client says of its body is not believed: memory
// follows the bytes received, never the Content-Length claimed (claiming 7 MiB and sending
// nothing used to allocate the 7 MiB at once), and the bodies held at once share a budget.
// Without it, 100 bodies of 6 MiB sent together had the OOM killer take the webhook at its
// 512Mi limit, failing every pod creation its failurePolicy covers; with it, the webhook
// peaks at 170-210 MiB and goes on injecting (TestWebhookSurvivesHostileClients).

const (
	// maxReviewBytes bounds a review's body as admission.Webhook does: two objects of at
	// most 3 MiB (what etcd accepts, twice as JSON) and the rest.
	maxReviewBytes = 7 << 20
	// firstBodyBuffer is the most a request is given before its bytes arrive: a pod's
	// review fits (3.5 kB for the seed's pod), so it is read in one buffer; larger bodies
	// grow it as they come.
	firstBodyBuffer = 16 << 10
	// defaultBodyBudget bounds the bytes held at once by the bodies of a handler's requests,
	// read or being handled: 64 MiB, nine reviews of the largest size, well inside the
	// webhook's memory limit.
	defaultBodyBudget = 64 << 20
	// bodyReadTimeout bounds reading a body. The API server sends a review at once, and
	// gives up on a webhook after at most 30 s (timeoutSeconds; 5 s in the manifests).
	bodyReadTimeout = 10 * time.Second
)

var (
	errTooLarge = fmt.Errorf("request body too large: the limit is %d bytes", maxReviewBytes)
	errBusy     = fmt.Errorf("the webhook holds %d MiB of request bodies already: try again", defaultBodyBudget>>20)
)

// bodyBudget counts the bytes of the buffers request bodies hold.
type bodyBudget struct {
	limit int64 // defaultBodyBudget when 0
	held  atomic.Int64
}

// take reserves n bytes, or reports false and reserves nothing when that would pass the
// limit.
func (b *bodyBudget) take(n int) bool {
	limit := b.limit
	if limit == 0 {
		limit = defaultBodyBudget
	}
	if b.held.Add(int64(n)) > limit {
		b.held.Add(-int64(n))
		return false
	}
	return true
}

// give releases n bytes taken before.
func (b *bodyBudget) give(n int) { b.held.Add(-int64(n)) }

// readBody reads the request body, at most maxReviewBytes of it, into a buffer lent from
// bufs that grows with the bytes received, each growth taken from budget. Once the body is
// no longer read, give lent back to bufs and held back to budget (both also on error).
func readBody(r *http.Request, bufs *buffers, budget *bodyBudget) (body []byte, lent *[]byte, held int, err error) {
	if r.ContentLength > maxReviewBytes {
		return nil, nil, 0, errTooLarge
	}
	// Read one byte past what may come, to tell a body over it.
	limit := maxReviewBytes + 1
	if r.ContentLength >= 0 {
		limit = int(r.ContentLength) + 1
	}
	lent = bufs.get(min(limit, firstBodyBuffer))
	if !budget.take(cap(*lent)) {
		return nil, lent, 0, errBusy
	}
	held = cap(*lent)
	buf := (*lent)[:0]
	for len(buf) < limit {
		if len(buf) == cap(buf) {
			grown := min(2*cap(buf), limit)
			if !budget.take(grown - cap(buf)) {
				return nil, lent, held, errBusy
			}
			held += grown - cap(buf)
			buf = append(make([]byte, 0, grown), buf...)
			*lent = buf // the larger buffer is lent back in its place (when small enough)
		}
		n, rerr := r.Body.Read(buf[len(buf):min(cap(buf), limit)])
		buf = buf[:len(buf)+n]
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, lent, held, fmt.Errorf("reading the body: %w", rerr)
		}
	}
	switch {
	case len(buf) > maxReviewBytes:
		return nil, lent, held, errTooLarge
	case r.ContentLength >= 0 && len(buf) > int(r.ContentLength):
		return nil, lent, held, errors.New("body longer than its Content-Length")
	case r.ContentLength >= 0 && len(buf) < int(r.ContentLength):
		return nil, lent, held, fmt.Errorf("reading the body: %w", io.ErrUnexpectedEOF)
	case len(buf) == 0:
		return nil, lent, held, errors.New("empty body")
	}
	return buf, lent, held, nil
}
