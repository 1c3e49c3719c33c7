package webhook

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// TestDrainClosesEachConnectionAfterItsAnswer: before the stop, connections are kept
// alive; once draining, each answer says Connection: close and the server closes the
// connection after it, so the client opens a new one for its next call instead of reusing
// one the server may close under it.
func TestDrainClosesEachConnectionAfterItsAnswer(t *testing.T) {
	d := &drain{period: time.Hour}
	srv := httptest.NewUnstartedServer(d.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})))
	var opened atomic.Int32 // connections the server accepted
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	client := srv.Client()
	call := func() *http.Response {
		t.Helper()
		resp, err := client.Post(srv.URL, "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for range 2 {
		if resp := call(); resp.Close {
			t.Fatal("before the stop the answer closes its connection")
		}
	}
	if n := opened.Load(); n != 1 {
		t.Fatalf("two calls before the stop opened %d connections, want 1 kept alive", n)
	}

	parent, stop := context.WithCancel(context.Background())
	ctx, cancel := d.context(parent, logr.Discard())
	defer cancel()
	stop()
	for !d.on.Load() {
		time.Sleep(time.Millisecond)
	}
	if ctx.Err() != nil {
		t.Fatal("the server's context ended before the drain period")
	}
	for i := range 3 {
		if resp := call(); !resp.Close {
			t.Fatalf("answer %d while draining does not say Connection: close", i)
		}
	}
	// The first call reuses the kept-alive connection, which then closes; the two others
	// each open one.
	if n := opened.Load(); n != 3 {
		t.Fatalf("three calls while draining: %d connections opened in all, want 3 (each closed after its answer)", n)
	}
	cancel()
	<-ctx.Done()
}

// TestDrainPeriodZeroStopsAtOnce: without a drain period the server's context ends with
// its parent's.
func TestDrainPeriodZeroStopsAtOnce(t *testing.T) {
	d := &drain{}
	parent, stop := context.WithCancel(context.Background())
	ctx, cancel := d.context(parent, logr.Discard())
	defer cancel()
	if ctx.Err() != nil {
		t.Fatal("ended before its parent")
	}
	stop()
	select {
	case <-ctx.Done():
	case <-time.After(time.Minute):
		t.Fatal("did not end with its parent")
	}
}
