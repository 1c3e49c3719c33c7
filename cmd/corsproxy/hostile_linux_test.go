package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corsmesh/corsmesh/hack/memcgroup"
)

// The hostile suite: the real binary, inside a real cgroup v1 memory cgroup limited to the
// injector's default 64Mi, against clients that try to take it down. Whatever they send,
// the process is never killed; the peak memory of each case is logged ("figure:").
//
// It needs root and the cgroup v1 memory controller; without them it skips, but under
// CI=true it fails (CI machines have both).

const injectedMemoryLimit = 64 << 20

// cgroupProxy is the corsproxy binary running inside a memory cgroup.
type cgroupProxy struct {
	listen, admin string
	cg            *memcgroup.Cgroup
	*memcgroup.Process
}

// startProxyInCgroup builds corsproxy (or takes CORSPROXY_HOSTILE_BIN, to measure another
// build) and runs it in a fresh cgroup limited to limit, in front of upstream. The shell
// joins the cgroup before it execs the proxy, so every page the proxy touches is charged.
func startProxyInCgroup(t *testing.T, limit int64, upstream string, args ...string) *cgroupProxy {
	t.Helper()
	bin := os.Getenv("CORSPROXY_HOSTILE_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "corsproxy")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			t.Fatalf("build: %v\n%s", err, out)
		}
	}
	config := filepath.Join(t.TempDir(), "config.json")
	policy := `{"version":1,"ports":[{"port":8080,"cors":{"allowCredentials":true,"allowMethods":["GET","POST"],"allowOrigins":[{"exact":"http://www.aaa.com"}],"maxAge":"1h"}}]}`
	if err := os.WriteFile(config, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &cgroupProxy{listen: freePort(t), admin: freePort(t), cg: memcgroup.New(t, "corsmesh-hostile-", limit)}
	argv := append([]string{"--config", config, "--listen", p.listen, "--admin-listen", p.admin,
		"--upstream", upstream, "--policy-port", "8080", "--log-level", "warn"}, args...)
	cmd := p.cg.Command(bin, argv...)
	cmd.Env = append(os.Environ(), "CORSPROXY_MEMORY_LIMIT="+strconv.FormatInt(limit, 10))
	p.Process = p.cg.Start(t, "the proxy", cmd)
	waitHTTPReady(t, "http://"+p.admin+"/readyz")
	return p
}

// hostileCase runs one case against a proxy of its own, in a cgroup of its own, and logs
// its peak memory; the proxy must survive it.
func hostileCase(t *testing.T, name string, app string, run func(t *testing.T, p *cgroupProxy)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		p := startProxyInCgroup(t, injectedMemoryLimit, app, "--read-header-timeout=2s")
		start := time.Now()
		defer func() {
			t.Logf("figure: %s: peak %s in the cgroup, %s", name, p.cg.Peak(t), time.Since(start).Round(time.Millisecond))
			p.Alive(t)
		}()
		run(t, p)
	})
}

// hostileApp serves the suite: /sink counts a body, /source sends n zero bytes, /hold
// answers once released (counted in held), and an Upgrade request is declined after its
// body is read.
func hostileApp(t *testing.T, held *atomic.Int64, release <-chan struct{}) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hold":
			held.Add(1)
			w.(http.Flusher).Flush()
			<-release
		case "/source":
			n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			io.Copy(w, io.LimitReader(zeros{}, n))
		default:
			n, _ := io.Copy(io.Discard, r.Body)
			fmt.Fprintf(w, "%d", n)
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// sendChunked writes head, then size bytes of body in 64 KiB chunks, then the last chunk.
func sendChunked(conn net.Conn, head string, size int64) error {
	if _, err := io.WriteString(conn, strings.ReplaceAll(head, "\n", "\r\n")); err != nil {
		return err
	}
	chunk := []byte(fmt.Sprintf("%x\r\n%s\r\n", 64<<10, make([]byte, 64<<10)))
	bw := bufio.NewWriterSize(conn, 256<<10)
	for sent := int64(0); sent < size; sent += 64 << 10 {
		if _, err := bw.Write(chunk); err != nil {
			return err
		}
	}
	if _, err := bw.WriteString("0\r\n\r\n"); err != nil {
		return err
	}
	return bw.Flush()
}

func TestHostileClientsInAMemoryCgroup(t *testing.T) {
	memcgroup.Require(t)
	var heldAtApp atomic.Int64
	release := make(chan struct{})
	defer close(release)
	app := hostileApp(t, &heldAtApp, release)
	const bulk = 200 << 20

	hostileCase(t, "200 MiB chunked body on an Upgrade request", app, func(t *testing.T, p *cgroupProxy) {
		resp, body := uploadChunked(t, p, "POST /sink HTTP/1.1\nHost: app\nOrigin: http://www.aaa.com\nConnection: Upgrade\nUpgrade: h2c\nTransfer-Encoding: chunked\n\n", bulk)
		if resp.StatusCode != http.StatusOK || string(body) != strconv.Itoa(bulk) {
			t.Errorf("answer %s %q, want 200 and %d bytes received", resp.Status, body, bulk)
		}
	})

	hostileCase(t, "200 MiB upload", app, func(t *testing.T, p *cgroupProxy) {
		_, body := uploadChunked(t, p, "POST /sink HTTP/1.1\nHost: app\nOrigin: http://www.aaa.com\nTransfer-Encoding: chunked\n\n", bulk)
		if string(body) != strconv.Itoa(bulk) {
			t.Errorf("the app received %q bytes, want %d", body, bulk)
		}
	})

	hostileCase(t, "200 MiB download", app, func(t *testing.T, p *cgroupProxy) {
		conn := dialDeadline(t, p.listen, 60*time.Second)
		fmt.Fprintf(conn, "GET /source?n=%d HTTP/1.1\r\nHost: app\r\nOrigin: http://www.aaa.com\r\n\r\n", bulk)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil || n != bulk {
			t.Errorf("received %d bytes (%v), want %d", n, err, bulk)
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "http://www.aaa.com" {
			t.Errorf("allow-origin %q", got)
		}
	})

	hostileCase(t, "5,000 idle keep-alive clients", app, func(t *testing.T, p *cgroupProxy) {
		const clients = 5000
		var held, refused, failed atomic.Int64
		conns := make(chan net.Conn, clients)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 64)
		for range clients {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				conn, err := net.DialTimeout("tcp", p.listen, 10*time.Second)
				if err != nil {
					failed.Add(1)
					return
				}
				conns <- conn
				conn.SetDeadline(time.Now().Add(20 * time.Second))
				io.WriteString(conn, "GET /sink HTTP/1.1\r\nHost: app\r\nOrigin: http://www.aaa.com\r\n\r\n")
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				switch {
				case err != nil:
					failed.Add(1) // reset by a refusal before its 503 was read
				case resp.StatusCode == http.StatusOK:
					held.Add(1)
				case resp.StatusCode == http.StatusServiceUnavailable:
					refused.Add(1)
				default:
					failed.Add(1)
				}
			}()
		}
		wg.Wait()
		close(conns)
		t.Logf("figure: 5,000 clients: %d held idle, %d refused with 503, %d closed or reset", held.Load(), refused.Load(), failed.Load())
		if held.Load() == 0 {
			t.Error("no client was served")
		}
		p.Alive(t)
		for c := range conns {
			c.Close()
		}
		// Once they are gone, the proxy serves again.
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get("http://" + p.listen + "/sink")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("not serving after the idle clients left: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	for _, hold := range []struct{ name, request string }{
		{"requests the app holds", "GET /hold HTTP/1.1\r\nHost: app\r\nOrigin: http://www.aaa.com\r\n\r\n"},
		// Each on a connection to the app of its own, outside the pool: the app's answer
		// (a 200 whose body it holds) goes to the client before any body is sent.
		{"requests expecting 100-continue the app holds", "POST /hold HTTP/1.1\r\nHost: app\r\nOrigin: http://www.aaa.com\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"},
	} {
		hostileCase(t, "5,000 clients with "+hold.name, app, func(t *testing.T, p *cgroupProxy) {
			holdRequests(t, p, hold.request, &heldAtApp)
		})
	}

	for _, port := range []string{"traffic", "admin"} {
		hostileCase(t, "slowloris on the "+port+" port", app, func(t *testing.T, p *cgroupProxy) {
			addr := p.listen
			if port == "admin" {
				addr = p.admin
			}
			const clients = 50
			closed := make(chan time.Duration, clients)
			start := time.Now()
			for range clients {
				conn := dialDeadline(t, addr, 30*time.Second)
				go func() {
					io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: app\r\n")
					// One header byte every half second, for as long as the server listens.
					buf := make([]byte, 1)
					for {
						if _, err := conn.Write([]byte("X")); err != nil {
							break
						}
						conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
						if _, err := conn.Read(buf); err != nil && !isTimeout(err) {
							break
						} else if err == nil {
							io.Copy(io.Discard, conn) // the answer (408), then the close
							break
						}
					}
					closed <- time.Since(start)
				}()
			}
			var slowest time.Duration
			for range clients {
				select {
				case d := <-closed:
					slowest = max(slowest, d)
				case <-time.After(25 * time.Second):
					t.Fatalf("a half-sent request on the %s port is still held after 25 s", port)
				}
			}
			t.Logf("figure: slowloris on the %s port: all %d cut after %s at most", port, clients, slowest.Round(time.Millisecond))
		})
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func dialDeadline(t *testing.T, addr string, d time.Duration) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(d))
	t.Cleanup(func() { conn.Close() })
	return conn
}

// uploadChunked sends head and then a chunked body of size bytes to the proxy while it reads
// the answer, and returns the answer and its body.
func uploadChunked(t *testing.T, p *cgroupProxy, head string, size int64) (*http.Response, []byte) {
	t.Helper()
	conn := dialDeadline(t, p.listen, 60*time.Second)
	errc := make(chan error, 1)
	go func() { errc <- sendChunked(conn, head, size) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if err := <-errc; err != nil {
		t.Fatalf("sending: %v", err)
	}
	return resp, body
}

// holdRequests sends request from 5,000 clients to an app that holds each (counted in held)
// until the test ends: those past the proxy's bounds get 503 (the connection cap) or 504
// (no pooled app connection in time).
func holdRequests(t *testing.T, p *cgroupProxy, request string, held *atomic.Int64) {
	const clients = 5000
	held.Store(0)
	var refused, answered atomic.Int64 // answered: a final answer other than the app's held 200
	var wg sync.WaitGroup
	for range clients {
		conn, err := net.DialTimeout("tcp", p.listen, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(45 * time.Second))
		io.WriteString(conn, request)
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err == nil && resp.StatusCode == http.StatusServiceUnavailable {
				refused.Add(1)
			}
			if err == nil && resp.StatusCode != http.StatusOK {
				answered.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for held.Load()+answered.Load() < clients && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("figure: 5,000 clients with held requests: %d in flight at the app, %d refused with 503, %d other answers", held.Load(), refused.Load(), answered.Load()-refused.Load())
	if held.Load() == 0 {
		t.Error("no request reached the app")
	}
	p.Alive(t)
}
