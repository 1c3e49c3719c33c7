package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// assertOneCORSAuthority checks what every answer on a policy port must satisfy: at most
// one Access-Control-Allow-Origin, never "*", and Vary naming Origin.
func assertOneCORSAuthority(t *testing.T, resp *http.Response) {
	t.Helper()
	if got := resp.Header.Values("Access-Control-Allow-Origin"); len(got) > 1 || (len(got) == 1 && got[0] == "*") {
		t.Errorf("%s: Access-Control-Allow-Origin %q, want at most one and never *", resp.Status, got)
	}
	vary := strings.Join(resp.Header.Values("Vary"), ",")
	if !strings.Contains(strings.ToLower(vary), "origin") {
		t.Errorf("%s: Vary %q does not name Origin", resp.Status, vary)
	}
}

func readResponse(t *testing.T, br *bufio.Reader) *http.Response {
	t.Helper()
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

// An Upgrade request's body streams to the app like any request's: it used to be read
// whole into memory first, and one large chunked body took the sidecar past its limit.
func TestUpgradeRequestBodyStreams(t *testing.T) {
	const prefix = 1 << 20
	gotPrefix := make(chan struct{})
	upstream := startUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.CopyN(io.Discard, r.Body, prefix); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		close(gotPrefix)
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%d", prefix+n)
	}))
	addr, _, metrics := startProxy(t, seedConfig(t), Options{Upstream: upstream, PolicyPort: 8080})
	conn, br := dialProxy(t, addr)
	sendRaw(t, conn, "POST /upload HTTP/1.1\nHost: pipy-ok\nOrigin: "+seedOrigin+"\nConnection: Upgrade\nUpgrade: h2c\nTransfer-Encoding: chunked\n\n")
	chunk := fmt.Sprintf("%x\r\n%s\r\n", 64<<10, strings.Repeat("a", 64<<10))
	for range 2 * prefix / (64 << 10) {
		if _, err := io.WriteString(conn, chunk); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-gotPrefix:
	case <-time.After(5 * time.Second):
		t.Fatal("the app saw no body while the client was still sending it: the proxy holds it")
	}
	io.WriteString(conn, "0\r\n\r\n")
	resp := readResponse(t, br)
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK || body != fmt.Sprint(2*prefix) {
		t.Errorf("answer %s %q, want 200 %d", resp.Status, body, 2*prefix)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != seedOrigin {
		t.Errorf("declined upgrade: allow-origin %q, want %q", got, seedOrigin)
	}
	assertOneCORSAuthority(t, resp)
	if n := metrics.upgrades.Load(); n != 0 {
		t.Errorf("upgrades = %d for a declined upgrade, want 0", n)
	}
}

// An app that answers an Upgrade request without 101 keeps speaking HTTP on that
// connection, and so must the proxy: it used to tunnel the rest of the connection raw, so
// later requests on it skipped CORS (the app's "*" reached the client, preflights
// reached the app).
func TestDeclinedUpgradeKeepsCORS(t *testing.T) {
	var appSawOptions atomic.Int32
	upstream := startUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			appSawOptions.Add(1)
		}
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		if r.Header.Get("Upgrade") != "" {
			http.Error(w, "no upgrade here", http.StatusUpgradeRequired)
			return
		}
		io.WriteString(w, "plain")
	}))
	addr, _, metrics := startProxy(t, seedConfig(t), Options{Upstream: upstream, PolicyPort: 8080})
	conn, br := dialProxy(t, addr)

	sendRaw(t, conn, "GET /ws HTTP/1.1\nHost: pipy-ok\nOrigin: "+seedOrigin+"\nConnection: Upgrade\nUpgrade: websocket\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13\n\n")
	resp := readResponse(t, br)
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("declined upgrade: %s, want 426", resp.Status)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != seedOrigin {
		t.Errorf("declined upgrade: allow-origin %q, want %q", got, seedOrigin)
	}
	assertOneCORSAuthority(t, resp)

	sendRaw(t, conn, "GET /data HTTP/1.1\nHost: pipy-ok\nOrigin: http://evil.example\n\n")
	resp = readResponse(t, br)
	if got := resp.Header.Values("Access-Control-Allow-Origin"); len(got) != 0 {
		t.Errorf("rejected origin after a declined upgrade got allow-origin %q", got)
	}
	if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != "" {
		t.Errorf("rejected origin after a declined upgrade got allow-credentials %q", got)
	}
	assertOneCORSAuthority(t, resp)

	sendRaw(t, conn, "OPTIONS /data HTTP/1.1\nHost: pipy-ok\nOrigin: "+seedOrigin+"\nAccess-Control-Request-Method: PATCH\n\n")
	resp = readResponse(t, br)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Max-Age") != "86400" {
		t.Errorf("preflight after a declined upgrade: %s max-age %q, want the proxy's 200", resp.Status, resp.Header.Get("Access-Control-Max-Age"))
	}
	if n := appSawOptions.Load(); n != 0 {
		t.Errorf("the app saw %d preflights; the proxy answers them", n)
	}
	if n := metrics.upgrades.Load(); n != 0 {
		t.Errorf("upgrades = %d, want 0", n)
	}
}

// A 502 on the Upgrade path is a proxy-made error like any other: it carries the CORS
// headers, so a browser shows the real error.
func TestUpgradeToDownAppGets502WithCORS(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	addr, _, _ := startProxy(t, seedConfig(t), Options{Upstream: down, PolicyPort: 8080})
	resp := rawExchange(t, addr, "GET /ws HTTP/1.1\nHost: pipy-ok\nOrigin: "+seedOrigin+"\nConnection: Upgrade\nUpgrade: websocket\n\n")
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d, want 502", resp.StatusCode)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != seedOrigin {
		t.Errorf("allow-origin %q on the 502, want %q", got, seedOrigin)
	}
	assertOneCORSAuthority(t, resp)
}

// On a report-only port an Upgrade request goes the same way as anywhere else: on a
// connection of its own, never over the pool, where an app switching protocols would leave
// a pooled connection speaking WebSocket to the next request.
func TestUpgradeOnAReportOnlyPort(t *testing.T) {
	var pooled atomic.Int32
	upstream := startRawApp(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if req.Header.Get("Upgrade") == "" {
				pooled.Add(1)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				continue
			}
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
			io.Copy(c, br)
			return
		}
	})
	config := `{"version":1,"ports":[{"port":8080,"cors":{"reportOnly":true,"allowOrigins":[{"exact":"http://a.example"}]}}]}`
	addr, _, metrics := startProxy(t, []byte(config), Options{Upstream: upstream, PolicyPort: 8080})
	conn, br := dialProxy(t, addr)
	sendRaw(t, conn, "GET /echo HTTP/1.1\nHost: x\nOrigin: http://evil.example\nConnection: Upgrade\nUpgrade: echo\n\n")
	if resp := readResponse(t, br); resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %s", resp.Status)
	}
	io.WriteString(conn, "ping")
	got := make([]byte, 4)
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "ping" {
		t.Fatalf("tunnel echo %q, %v", got, err)
	}
	if n := metrics.upgrades.Load(); n != 1 {
		t.Errorf("upgrades = %d, want 1", n)
	}
	// The pool is clean: a plain request gets the app's plain answer.
	if resp := rawExchange(t, addr, "GET / HTTP/1.1\nHost: x\n\n"); resp.StatusCode != http.StatusOK || readBody(t, resp) != "ok" {
		t.Errorf("after the upgrade: %s", resp.Status)
	}
}
