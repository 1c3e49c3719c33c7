package webhook

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
)

// drain keeps admission served for a while after the webhook is told to stop, each answer
// closing its connection. The API server calls webhooks over HTTP/1.1 keep-alive
// connections it pools, and does not retry a POST written to a pooled connection the server
// closed meanwhile ("http: server closed idle connection"): with failurePolicy Fail that
// pod's creation fails. Shutting down closes every idle connection at once, each a race
// with a request about to reuse it; closing a connection after it has answered cannot race,
// and a pool in use drains within a request per connection. What is still idle when the
// period ends was unused for that long, and is closed then.
type drain struct {
	period time.Duration
	on     atomic.Bool
}

// wrap answers with "Connection: close" while draining (net/http then closes the
// connection after the response).
func (d *drain) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.on.Load() {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}

// context returns a context that ends d.period after parent ends, draining meanwhile;
// cancel releases it early.
func (d *drain) context(parent context.Context, log logr.Logger) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	go func() {
		select {
		case <-ctx.Done():
			return
		case <-parent.Done():
		}
		d.on.Store(true)
		if d.period > 0 {
			log.Info("stopping: admission answers close their connections until the drain period ends", "drainPeriod", d.period)
			t := time.NewTimer(d.period)
			defer t.Stop()
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}
		cancel()
	}()
	return ctx, cancel
}
