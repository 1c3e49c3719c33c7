package proxy

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestStartsLikeHTTP1(t *testing.T) {
	cases := []struct {
		name  string
		first string
		want  bool
	}{
		{"GET", "GET / HTTP/1.1\r\n", true},
		{"a method split across reads", "OPTI", true},
		{"one byte", "P", true},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", false},
		{"HTTP/2 preface, first part", "PRI * HT", false},
		{"TLS ClientHello", "\x16\x03\x01\x02\x00\x01", false},
		{"PostgreSQL SSLRequest", "\x00\x00\x00\x08\x04\xd2\x16\x2f", false},
		{"Redis", "*1\r\n$4\r\nPING\r\n", false},
		{"lower-case method", "get / HTTP/1.1\r\n", false},
		{"leading space", " GET / HTTP/1.1\r\n", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := startsLikeHTTP1([]byte(tc.first)); got != tc.want {
				t.Errorf("startsLikeHTTP1(%q) = %v, want %v", tc.first, got, tc.want)
			}
		})
	}
}

// TestNonHTTPConnectionsPassThrough: on a port without a CORS policy, a connection that
// does not speak HTTP/1.x reaches the app byte for byte (a binary protocol, TLS); on a
// port with one, it gets the 400 it always got.
func TestNonHTTPConnectionsPassThrough(t *testing.T) {
	t.Run("binary protocol, echoed", func(t *testing.T) {
		echo := startRawApp(t, func(c net.Conn) { io.Copy(c, c) })
		addr, _, metrics := startProxy(t, seedConfig(t), Options{Upstream: echo, PolicyPort: 9999,
			ReadHeaderTimeout: 200 * time.Millisecond})
		// The pauses outlast the header timeout: a deadline the server set before it let go
		// of the connection would cut the tunnel.
		conn, _ := dialProxy(t, addr)
		for _, msg := range []string{"\x00\x00\x00\x08\x04\xd2\x16\x2f", "*1\r\n$4\r\nPING\r\n"} {
			if _, err := io.WriteString(conn, msg); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(conn, got); err != nil || string(got) != msg {
				t.Fatalf("echo of %q: %q, %v", msg, got, err)
			}
			time.Sleep(400 * time.Millisecond)
		}
		if n := metrics.tcpTunnels.Load(); n != 1 {
			t.Errorf("tcp passthrough count %d, want 1", n)
		}
	})

	t.Run("TLS to the app", func(t *testing.T) {
		app := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "over TLS")
		}))
		t.Cleanup(app.Close)
		addr, _, _ := startProxy(t, seedConfig(t), Options{Upstream: app.Listener.Addr().(*net.TCPAddr).AddrPort(), PolicyPort: 9999})
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := client.Get("https://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		if body := readBody(t, resp); body != "over TLS" {
			t.Errorf("body %q", body)
		}
	})

	t.Run("a port with a policy does not pass it", func(t *testing.T) {
		upstream := startUpstream(t, pipyOK())
		addr, _, metrics := startProxy(t, seedConfig(t), Options{Upstream: upstream, PolicyPort: 8080})
		conn, br := dialProxy(t, addr)
		io.WriteString(conn, "\x16\x03\x01\x02\x00\x01\r\n\r\n")
		line, _ := br.ReadString('\n')
		if !strings.HasPrefix(line, "HTTP/1.1 400") {
			t.Errorf("got %q, want a 400", line)
		}
		if n := metrics.tcpTunnels.Load(); n != 0 {
			t.Errorf("tcp passthrough count %d, want 0", n)
		}
	})
}

// Routes.HasPolicy decides which ports may pass non-HTTP traffic: any port where some
// request can come under a policy keeps the 400.
func TestRoutesHasPolicy(t *testing.T) {
	routes, err := ParseRoutes([]byte(`{"version":1,"ports":[
		{"port":8080,"cors":{"allowOrigins":[{"exact":"https://a.example"}]}},
		{"port":8081,"hosts":[
			{"names":["plain"]},
			{"names":["shop"],"cors":{"allowOrigins":[{"exact":"https://shop.example"}]}}]},
		{"port":8082,"hosts":[{"names":["plain"]}]},
		{"port":8083}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for port, want := range map[int32]bool{8080: true, 8081: true, 8082: false, 8083: false, 9999: false} {
		if got := routes.HasPolicy(port); got != want {
			t.Errorf("HasPolicy(%d) = %v, want %v", port, got, want)
		}
	}
}
