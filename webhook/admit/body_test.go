package admit

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/corsmesh/corsmesh/webhook/internal/webhooktest"
)

// Bodies larger than the first buffer grow as they arrive, and what they hold is taken
// from the budget and accounted to the byte.
func TestReadBodyGrowsWithTheBytes(t *testing.T) {
	for _, size := range []int{1, firstBodyBuffer - 1, firstBodyBuffer, firstBodyBuffer + 1, 100 << 10, maxReviewBytes} {
		for _, length := range []int64{int64(size), -1} {
			t.Run(fmt.Sprintf("%d bytes, Content-Length %d", size, length), func(t *testing.T) {
				sent := strings.Repeat("x", size)
				req := httptest.NewRequest(http.MethodPost, "/mutate-pods", io.NopCloser(iotestHalfReader{strings.NewReader(sent)}))
				req.ContentLength = length
				var budget bodyBudget
				got, lent, held, err := readBody(req, &buffers{}, &budget)
				if err != nil || string(got) != sent {
					t.Fatalf("read %d bytes, %v; want the %d sent", len(got), err, size)
				}
				if held != cap(*lent) || budget.held.Load() != int64(held) {
					t.Errorf("held %d, budget %d, buffer capacity %d: want all three equal", held, budget.held.Load(), cap(*lent))
				}
				if size > firstBodyBuffer && held > 2*size+2 {
					t.Errorf("held %d bytes for a body of %d", held, size)
				}
			})
		}
	}
}

// iotestHalfReader returns at most half of what is asked, to make reads short.
type iotestHalfReader struct{ r io.Reader }

func (h iotestHalfReader) Read(p []byte) (int, error) { return h.r.Read(p[:max(1, len(p)/2)]) }

// stalledRequest opens a connection to srv and sends the headers of a review claiming
// contentLength bytes, then body, and leaves the connection open.
func stalledRequest(t *testing.T, srv *httptest.Server, contentLength int, body string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /mutate-pods HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", contentLength, body)
	return conn
}

// waitHeld waits until the handler's bodies hold want bytes.
func waitHeld(t *testing.T, a *admissionHandler, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for a.budget.held.Load() != want {
		if time.Now().After(deadline) {
			t.Fatalf("the request bodies hold %d bytes, want %d", a.budget.held.Load(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// Requests claiming the largest body and sending a few bytes reserve a first buffer each,
// not what they claim: forty of them used to reserve 280 MiB.
func TestClaimedBodyLengthReservesNothing(t *testing.T) {
	mutate, _, _ := newTestHandlers(t, webhooktest.SeedCluster(t))
	a := mutate.(*admissionHandler)
	srv := httptest.NewServer(mutate)
	defer srv.Close()

	const stalled = 40
	before := heapInUse()
	var conns []net.Conn
	for range stalled {
		conns = append(conns, stalledRequest(t, srv, maxReviewBytes, `{"apiVersion":`))
	}
	waitHeld(t, a, stalled*firstBodyBuffer)
	if grown := int64(heapInUse()) - int64(before); grown > 16<<20 {
		t.Errorf("%d requests claiming %d bytes each grew the heap by %d MiB", stalled, maxReviewBytes, grown>>20)
	}
	for _, c := range conns {
		c.Close()
	}
	waitHeld(t, a, 0) // every buffer given back
}

// Past the budget, requests are refused with 503 and a message, counted; once the bodies
// holding it are gone, reviews are answered again.
func TestBodyBudgetRefusesWith503(t *testing.T) {
	mutate, _, metrics := newTestHandlers(t, webhooktest.SeedCluster(t))
	a := mutate.(*admissionHandler)
	a.budget.limit = 3 * firstBodyBuffer
	srv := httptest.NewServer(mutate)
	defer srv.Close()

	// One body grown to twice the first buffer, one at the first: the budget is spent.
	grown := stalledRequest(t, srv, maxReviewBytes, strings.Repeat(" ", firstBodyBuffer+1))
	waitHeld(t, a, 2*firstBodyBuffer)
	first := stalledRequest(t, srv, maxReviewBytes, " ")
	waitHeld(t, a, 3*firstBodyBuffer)

	review := reviewFor(t, "Pod", "", "pipy", webhooktest.SeedPod)
	resp, err := http.Post(srv.URL+"/mutate-pods", "application/json", strings.NewReader(string(review)))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(msg), "request bodies already: try again") {
		t.Errorf("with the budget spent: HTTP %d %q; want 503 saying why", resp.StatusCode, msg)
	}
	if n := testutil.ToFloat64(metrics.Errors.WithLabelValues(errOverloaded)); n != 1 {
		t.Errorf("corsmesh_webhook_errors_total{reason=%q} = %v, want 1", errOverloaded, n)
	}

	grown.Close()
	first.Close()
	waitHeld(t, a, 0)
	resp, err = http.Post(srv.URL+"/mutate-pods", "application/json", strings.NewReader(string(review)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("with the budget free again: HTTP %d, want 200", resp.StatusCode)
	}
}

// A body that does not arrive in time is answered 408, and its buffer given back; the
// connection's next request is not affected by the deadline.
func TestSlowBodyTimesOut(t *testing.T) {
	mutate, _, _ := newTestHandlers(t, webhooktest.SeedCluster(t))
	a := mutate.(*admissionHandler)
	a.bodyTimeout = 300 * time.Millisecond
	srv := httptest.NewServer(mutate)
	defer srv.Close()

	conn := stalledRequest(t, srv, 1000, `{"apiVersion"`)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(msg), "did not arrive within 300ms") {
		t.Errorf("HTTP %d %q; want 408 saying so", resp.StatusCode, msg)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("answered after %s", took)
	}
	waitHeld(t, a, 0)

	// A request that takes longer to handle than the body timeout (here: reads its
	// body in time, then the client waits) is answered: the deadline is cleared once read.
	review := reviewFor(t, "Pod", "", "pipy", webhooktest.SeedPod)
	c2, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	for i := range 2 { // two requests on one connection, the second after the timeout
		if i == 1 {
			time.Sleep(2 * a.bodyTimeout)
		}
		fmt.Fprintf(c2, "POST /mutate-pods HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(review), review)
		c2.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c2), nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("request %d on a kept-alive connection: HTTP %d, want 200", i, resp.StatusCode)
		}
	}
}
