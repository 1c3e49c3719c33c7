package proxy

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// Debug logs say what went wrong with a request, never what it carried: a malformed
// request's header (its Authorization, its cookies) stays out of them.
func TestDebugLogsHoldNoRequestBytes(t *testing.T) {
	const secret = "s3cret-token-value"
	var mu sync.Mutex
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	upstream := startUpstream(t, pipyOK())
	routes, err := ParseRoutes(seedConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	m := &Metrics{}
	p := New(routes, m, Options{Upstream: upstream, PolicyPort: 8080, Logger: logger})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(ln)
	t.Cleanup(func() { p.server.Shutdown() })

	for _, request := range []string{
		"GET / HTTP/1.1\nHost: x\nAuthorization: Bearer " + secret + "\nX-Bad\x01Name: 1\n\n",
		"GET / HTTP/1.1\nHost: x\nCookie: session=" + secret + "\nX-A: a\rb\n\n",
		"POST / HTTP/1.1\nHost: x\nAuthorization: Bearer " + secret + "\nTransfer-Encoding: chunked\n\nzz" + secret + "\n\n",
	} {
		rawExchange(t, ln.Addr().String(), request)
	}
	time.Sleep(50 * time.Millisecond) // the last log lines are written after the answers
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the debug log holds request bytes:\n%s", logs.String())
	}
	if logs.Len() == 0 {
		t.Error("nothing was logged: the test sees nothing")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
