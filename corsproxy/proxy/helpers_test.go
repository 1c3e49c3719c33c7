package proxy

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startUpstream runs a real HTTP server on loopback and returns its address.
func startUpstream(t testing.TB, h http.Handler) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// pipyOK answers like the seed's pipy-ok-v1 deployment.
func pipyOK() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "Hi, I am PIPY-OK v1!")
	})
}

// startProxy runs a Proxy on loopback in front of upstream, with the config at path.
func startProxy(t testing.TB, configJSON []byte, opts Options) (addr string, p *Proxy, m *Metrics) {
	t.Helper()
	routes, err := ParseRoutes(configJSON)
	if err != nil {
		t.Fatal(err)
	}
	m = &Metrics{}
	m.Reloaded(true)
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	p = New(routes, m, opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); p.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Shutdown(ctx)
		<-done
	})
	return ln.Addr().String(), p, m
}

func seedConfig(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/seed-config.json")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// dialProxy connects to the proxy (closed when the test ends), with a deadline that ends a
// test waiting for an answer that never comes.
func dialProxy(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn, bufio.NewReader(conn)
}

// sendRaw writes request with its "\n" line ends as "\r\n".
func sendRaw(t *testing.T, conn net.Conn, request string) {
	t.Helper()
	if _, err := io.WriteString(conn, strings.ReplaceAll(request, "\n", "\r\n")); err != nil {
		t.Fatal(err)
	}
}

// startRawApp runs an app on loopback that serves each TCP connection with serve, for
// apps net/http cannot play (another protocol, an HTTP/1.0 server).
func startRawApp(t testing.TB, serve func(net.Conn)) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); serve(c) }()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// rawExchange sends one raw HTTP/1.1 request and reads one response, so tests see header
// lines exactly as they went over the wire (repeated lines included).
func rawExchange(t *testing.T, addr, request string) *http.Response {
	t.Helper()
	conn, br := dialProxy(t, addr)
	sendRaw(t, conn, request)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	resp.Body = io.NopCloser(strings.NewReader(string(body)))
	return resp
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
