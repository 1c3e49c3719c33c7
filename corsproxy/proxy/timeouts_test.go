package proxy

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The timeouts do what their names say: the header's bounds the header, the body's bounds
// each wait for more body (an upload longer than the header timeout that keeps moving
// goes through), and a client too slow gets 408 counted as its own error, not the app's.
func TestTimeoutsDoWhatTheirNamesSay(t *testing.T) {
	upstream := startUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			return
		}
		fmt.Fprintf(w, "%d", n)
	}))
	// Margins of 8x between a pause and the timeout it must not trip: the machine is shared.
	const short = 500 * time.Millisecond
	const piece = "0123456789"
	tests := []struct {
		name       string
		head       string
		pieces     int           // pieces of body sent after the head, a pause apart
		pause      time.Duration // between pieces
		wantStatus int
		wantBody   string
		wantClient clientError // counted when wantStatus is 4xx
	}{
		{
			name:       "a slow upload that keeps moving outlasts the header timeout",
			head:       "POST /upload HTTP/1.1\nHost: pipy-ok\nOrigin: " + seedOrigin + "\nContent-Length: 80\n\n",
			pieces:     8,
			pause:      short / 2, // 2 s in all, each pause an eighth of the body's idle timeout
			wantStatus: http.StatusOK,
			wantBody:   "80",
		},
		{
			name:       "a chunked one too",
			head:       "POST /upload HTTP/1.1\nHost: pipy-ok\nTransfer-Encoding: chunked\n\n",
			pieces:     8,
			pause:      short / 2,
			wantStatus: http.StatusOK,
			wantBody:   "80",
		},
		{
			name:       "a stalled body gets 408",
			head:       "POST /upload HTTP/1.1\nHost: pipy-ok\nOrigin: " + seedOrigin + "\nContent-Length: 80\n\n",
			pieces:     1,
			wantStatus: http.StatusRequestTimeout,
			wantClient: clientTimeout,
		},
		{
			name:       "a stalled chunked body gets 408, not the app's 504",
			head:       "POST /upload HTTP/1.1\nHost: pipy-ok\nOrigin: " + seedOrigin + "\nTransfer-Encoding: chunked\n\n",
			pieces:     1,
			wantStatus: http.StatusRequestTimeout,
			wantClient: clientTimeout,
		},
		{
			name:       "a stalled header gets 408",
			head:       "GET / HTTP/1.1\nHost: pipy-ok\n",
			wantStatus: http.StatusRequestTimeout,
			wantClient: clientTimeout,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, _, metrics := startProxy(t, seedConfig(t), Options{
				Upstream: upstream, PolicyPort: 8080,
				ReadHeaderTimeout: short, BodyIdleTimeout: 4 * short,
			})
			conn, br := dialProxy(t, addr)
			sendRaw(t, conn, tt.head)
			for range tt.pieces {
				time.Sleep(tt.pause)
				p := piece
				if strings.Contains(tt.head, "chunked") {
					p = fmt.Sprintf("%x\r\n%s\r\n", len(piece), piece)
				}
				io.WriteString(conn, p)
			}
			if strings.Contains(tt.head, "chunked") && tt.wantStatus == http.StatusOK {
				io.WriteString(conn, "0\r\n\r\n")
			}
			resp := readResponse(t, br)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantBody != "" {
				if body := readBody(t, resp); body != tt.wantBody {
					t.Errorf("the app received %s bytes, want %s", body, tt.wantBody)
				}
			}
			if tt.wantStatus >= 400 {
				if n := metrics.clientErrors[tt.wantClient].Load(); n != 1 {
					t.Errorf("client errors %q = %d, want 1", clientErrorLabels[tt.wantClient], n)
				}
				for i := range metrics.upstreamErrors {
					if n := metrics.upstreamErrors[i].Load(); n != 0 {
						t.Errorf("upstream errors %q = %d: the client's error was put on the app", upstreamErrorLabels[i], n)
					}
				}
			}
		})
	}
}

// The app's timeout bounds the wait for its answer to begin and then each pause in it: a
// streamed answer longer than the timeout that keeps moving goes through whole, an app
// that does not begin in time gets 504.
func TestUpstreamTimeoutIsPerWait(t *testing.T) {
	const timeout = time.Second
	upstream := startUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/late" {
			time.Sleep(3 * timeout)
			return
		}
		for range 15 { // 1.5 s in all, each pause a tenth of the timeout
			io.WriteString(w, "tick\n")
			w.(http.Flusher).Flush()
			time.Sleep(timeout / 10)
		}
	}))
	addr, _, metrics := startProxy(t, seedConfig(t), Options{Upstream: upstream, PolicyPort: 8080, UpstreamTimeout: timeout})
	resp := rawExchange(t, addr, "GET /stream HTTP/1.1\nHost: pipy-ok\n\n")
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK || body != strings.Repeat("tick\n", 15) {
		t.Errorf("streamed answer: %s %q, want all 15 ticks", resp.Status, body)
	}
	resp = rawExchange(t, addr, "GET /late HTTP/1.1\nHost: pipy-ok\n\n")
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("late answer: %s, want 504", resp.Status)
	}
	if n := metrics.upstreamErrors[upstreamTimeout].Load(); n != 1 {
		t.Errorf("upstream timeouts = %d, want 1", n)
	}
}
