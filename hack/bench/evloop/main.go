//go:build linux

// Command evloop is a feasibility study, not a proxy: a single-threaded epoll forwarder
// that does corsproxy's per-request work (the same compiled policy, the same decision and
// headers) on the fast path only: requests without a body, responses framed by
// Content-Length. Anything else gets 501 and a closed connection.
//
// It exists to answer one question with a number before anyone writes the real thing:
// how much of the gap to nginx (hack/bench/results/proxy-2026-11-26-syscalls.md) would an
// event loop of corsproxy's own close? Go's netpoller reads each socket before waiting for
// it; this loop reads only when epoll reports data, as nginx does, and runs the whole
// exchange on one locked thread with no goroutine switches. Compare it with
// hack/bench/proxy-ab.sh against a corsproxy binary.
//
//	GOMAXPROCS=1 taskset -c 0 evloop --upstream 127.0.0.1:19600 --listen 127.0.0.1:19610
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"syscall"

	"github.com/corsmesh/corsmesh/corsproxy/cors"
	"github.com/corsmesh/corsmesh/corsproxy/proxy"
)

func main() {
	configPath := flag.String("config", "corsproxy/proxy/testdata/seed-config.json", "policy file")
	listen := flag.String("listen", "127.0.0.1:19610", "IPv4 address to serve on")
	upstream := flag.String("upstream", "127.0.0.1:19600", "IPv4 address of the app")
	policyPort := flag.Int("policy-port", 8080, "whose policy applies")
	admin := flag.String("admin-listen", "", "ignored: accepted so proxy-ab.sh can run this like corsproxy")
	flag.Parse()
	_ = admin

	data, err := os.ReadFile(*configPath)
	if err != nil {
		log.Fatal(err)
	}
	routes, err := proxy.ParseRoutes(data)
	if err != nil {
		log.Fatal(err)
	}
	l, err := newLoop(*listen, *upstream, routes, int32(*policyPort))
	if err != nil {
		log.Fatal(err)
	}
	runtime.LockOSThread()
	log.Fatal(l.run())
}

const bufSize = 16 << 10

type conn struct {
	fd       int
	upstream bool
	in       []byte // received, not yet consumed; cap bufSize
	out      []byte // accepted for sending while the socket was full
	peer     *conn  // the other side of the exchange in flight
	closing  bool   // close once out is sent

	// client side: the request in flight
	policy   *cors.Policy
	decision cors.Decision
	origin   []byte
}

type loop struct {
	epfd, lnfd int
	upAddr     syscall.SockaddrInet4
	routes     *proxy.Routes
	port       int32
	conns      []*conn // by fd
	idle       []*conn // upstream connections free for a request
	events     []syscall.EpollEvent
	scratch    []byte
}

func sockaddr(s string) (syscall.SockaddrInet4, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil || !ap.Addr().Is4() {
		return syscall.SockaddrInet4{}, fmt.Errorf("%q is not an IPv4 address and port", s)
	}
	return syscall.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}, nil
}

func newLoop(listen, upstream string, routes *proxy.Routes, port int32) (*loop, error) {
	la, err := sockaddr(listen)
	if err != nil {
		return nil, err
	}
	ua, err := sockaddr(upstream)
	if err != nil {
		return nil, err
	}
	lnfd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("listen socket: %w", err)
	}
	_ = syscall.SetsockoptInt(lnfd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	if err := syscall.Bind(lnfd, &la); err != nil {
		return nil, fmt.Errorf("bind %s: %w", listen, err)
	}
	if err := syscall.Listen(lnfd, 1024); err != nil {
		return nil, fmt.Errorf("listen %s: %w", listen, err)
	}
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	l := &loop{epfd: epfd, lnfd: lnfd, upAddr: ua, routes: routes, port: port,
		events: make([]syscall.EpollEvent, 256), scratch: make([]byte, 0, bufSize)}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, lnfd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(lnfd)}); err != nil {
		return nil, fmt.Errorf("epoll add listener: %w", err)
	}
	return l, nil
}

func (l *loop) run() error {
	for {
		n, err := syscall.EpollWait(l.epfd, l.events, -1)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return fmt.Errorf("epoll_wait: %w", err)
		}
		for _, ev := range l.events[:n] {
			fd := int(ev.Fd)
			if fd == l.lnfd {
				l.accept()
				continue
			}
			c := l.conns[fd]
			if c == nil {
				continue
			}
			if ev.Events&syscall.EPOLLOUT != 0 && len(c.out) > 0 {
				l.flush(c)
			}
			if ev.Events&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 && l.conns[fd] == c {
				l.readable(c)
			}
		}
	}
}

func (l *loop) register(fd int, upstream bool) *conn {
	for fd >= len(l.conns) {
		l.conns = append(l.conns, nil)
	}
	c := &conn{fd: fd, upstream: upstream, in: make([]byte, 0, bufSize)}
	l.conns[fd] = c
	// Edge-triggered: one wake-up per arrival, so a short read means the socket is drained
	// and the next read waits for the next event; no read ever returns EAGAIN by design.
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | (1 << 31 /* EPOLLET */), Fd: int32(fd)}
	if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		log.Printf("epoll add %d: %v", fd, err)
	}
	return c
}

func (l *loop) close(c *conn) {
	if l.conns[c.fd] != c {
		return
	}
	l.conns[c.fd] = nil
	_ = syscall.Close(c.fd) // also removes it from the epoll set
	if c.upstream {
		for i, u := range l.idle {
			if u == c {
				l.idle = append(l.idle[:i], l.idle[i+1:]...)
				break
			}
		}
	}
	if p := c.peer; p != nil {
		p.peer = nil
		if c.upstream {
			l.respondError(p, "502 Bad Gateway")
		} else {
			l.close(p) // its answer would be a stray response on the next request
		}
	}
}

func (l *loop) accept() {
	for {
		fd, _, err := syscall.Accept4(l.lnfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err != nil {
			if !errors.Is(err, syscall.EAGAIN) {
				log.Printf("accept: %v", err)
			}
			return
		}
		_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		l.register(fd, false)
	}
}

// readable reads once: a read shorter than the free space drained the socket.
func (l *loop) readable(c *conn) {
	for {
		free := c.in[len(c.in):cap(c.in)]
		if len(free) == 0 {
			l.respondError(c, "431 Request Header Fields Too Large")
			return
		}
		n, err := syscall.Read(c.fd, free)
		if err != nil {
			if !errors.Is(err, syscall.EAGAIN) {
				l.close(c)
			}
			return
		}
		if n == 0 {
			l.close(c)
			return
		}
		c.in = c.in[:len(c.in)+n]
		if c.upstream {
			l.upstreamData(c)
		} else {
			l.clientData(c)
		}
		if l.conns[c.fd] != c || n < len(free) {
			return
		}
	}
}

var (
	crlf2        = []byte("\r\n\r\n")
	errNotFast   = errors.New("not on the fast path")
	hContentLen  = []byte("content-length")
	hTransferEnc = []byte("transfer-encoding")
	hHost        = []byte("host")
	hOrigin      = []byte("origin")
	hConnection  = []byte("connection")
	hUpgrade     = []byte("upgrade")
	hKeepAlive   = []byte("keep-alive")
	acPrefix     = []byte("access-control-")
)

// clientData handles every complete request head in c.in while no exchange is in flight.
func (l *loop) clientData(c *conn) {
	for c.peer == nil && !c.closing {
		end := bytes.Index(c.in, crlf2)
		if end < 0 {
			return
		}
		head := c.in[:end+4]
		method, host, origins, err := parseRequestHead(head, &c.origin)
		if err != nil {
			l.respondError(c, "501 Not Implemented")
			return
		}
		policy := l.routes.Policy(l.port, host)
		c.policy, c.decision = policy, cors.NotCORS
		if policy != nil {
			c.decision = policy.Decide(method, string(c.origin), origins)
		}
		if c.decision == cors.Preflight {
			l.consume(c, len(head))
			l.writePreflight(c)
			continue
		}
		u := l.upstreamConn()
		if u == nil {
			l.respondError(c, "502 Bad Gateway")
			return
		}
		c.peer, u.peer = u, c
		l.send(u, head)
		l.consume(c, len(head))
	}
}

func (l *loop) consume(c *conn, n int) {
	rest := copy(c.in, c.in[n:])
	c.in = c.in[:rest]
}

// parseRequestHead takes what the fast path needs and refuses what it does not handle.
func parseRequestHead(head []byte, origin *[]byte) (method string, host []byte, origins int, err error) {
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	m, rest1, ok := bytes.Cut(line, []byte(" "))
	if !ok || !bytes.HasSuffix(rest1, []byte(" HTTP/1.1")) {
		return "", nil, 0, errNotFast
	}
	method = methodName(m)
	*origin = (*origin)[:0]
	for len(rest) > 2 {
		var h []byte
		h, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return "", nil, 0, errNotFast
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, hHost):
			host = value
		case bytes.EqualFold(name, hOrigin):
			origins++
			if origins == 1 {
				*origin = append(*origin, value...)
			}
		case bytes.EqualFold(name, hContentLen):
			if string(value) != "0" {
				return "", nil, 0, errNotFast
			}
		case bytes.EqualFold(name, hTransferEnc), bytes.EqualFold(name, hUpgrade), bytes.EqualFold(name, hConnection):
			return "", nil, 0, errNotFast
		}
	}
	return method, host, origins, nil
}

// methodName returns a constant for common methods so the decision does not allocate.
func methodName(m []byte) string {
	switch string(m) {
	case "GET":
		return "GET"
	case "OPTIONS":
		return "OPTIONS"
	case "HEAD":
		return "HEAD"
	case "DELETE":
		return "DELETE"
	}
	return string(m)
}

func (l *loop) upstreamConn() *conn {
	if n := len(l.idle); n > 0 {
		u := l.idle[n-1]
		l.idle = l.idle[:n-1]
		return u
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		log.Printf("upstream socket: %v", err)
		return nil
	}
	// A blocking connect is fine for a study on loopback; the real loop would not block.
	if err := syscall.Connect(fd, &l.upAddr); err != nil {
		_ = syscall.Close(fd)
		log.Printf("upstream connect: %v", err)
		return nil
	}
	_ = syscall.SetNonblock(fd, true)
	_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	return l.register(fd, true)
}

// upstreamData completes the exchange once the whole response has arrived.
func (l *loop) upstreamData(u *conn) {
	client := u.peer
	if client == nil {
		l.close(u) // bytes nobody asked for
		return
	}
	end := bytes.Index(u.in, crlf2)
	if end < 0 {
		return
	}
	head := u.in[:end+4]
	length, err := responseLength(head)
	if err != nil || end+4+length > cap(u.in) {
		u.peer, client.peer = nil, nil
		l.close(u)
		l.respondError(client, "502 Bad Gateway")
		return
	}
	total := end + 4 + length
	if len(u.in) < total {
		return
	}
	out := l.buildResponse(client, head, u.in[end+4:total])
	u.peer, client.peer = nil, nil
	l.consume(u, total)
	l.idle = append(l.idle, u)
	l.send(client, out)
	if len(client.in) > 0 {
		l.clientData(client) // a pipelined request was waiting
	}
}

func responseLength(head []byte) (int, error) {
	_, rest, _ := bytes.Cut(head, []byte("\r\n"))
	for len(rest) > 2 {
		var h []byte
		h, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, ok := bytes.Cut(h, []byte(":"))
		if ok && bytes.EqualFold(name, hContentLen) {
			return strconv.Atoi(string(bytes.TrimSpace(value)))
		}
		if ok && bytes.EqualFold(name, hTransferEnc) {
			return 0, errNotFast
		}
	}
	return 0, errNotFast
}

// buildResponse writes the app's response with the app's CORS and connection headers
// replaced by the policy's, as corsproxy's applyActual does.
func (l *loop) buildResponse(c *conn, head, body []byte) []byte {
	out := l.scratch[:0]
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	out = append(out, line...)
	out = append(out, "\r\n"...)
	for len(rest) > 2 {
		var h []byte
		h, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, _, _ := bytes.Cut(h, []byte(":"))
		if c.policy != nil && len(name) > len(acPrefix) && bytes.EqualFold(name[:len(acPrefix)], acPrefix) {
			continue
		}
		if bytes.EqualFold(name, hConnection) || bytes.EqualFold(name, hKeepAlive) {
			continue
		}
		out = append(out, h...)
		out = append(out, "\r\n"...)
	}
	if c.policy != nil {
		out = appendHeader(out, cors.HeaderVary, cors.VaryActual)
		if c.decision == cors.Allowed {
			out = append(out, cors.HeaderAllowOrigin...)
			out = append(out, ": "...)
			out = append(out, c.origin...)
			out = append(out, "\r\n"...)
			for _, kv := range c.policy.ActualHeaders() {
				out = appendHeader(out, kv.Name, kv.Value)
			}
		}
	}
	out = append(out, "Connection: keep-alive\r\n\r\n"...)
	out = append(out, body...)
	l.scratch = out
	return out
}

func appendHeader(out []byte, name, value string) []byte {
	out = append(out, name...)
	out = append(out, ": "...)
	out = append(out, value...)
	return append(out, "\r\n"...)
}

func (l *loop) writePreflight(c *conn) {
	out := append(l.scratch[:0], "HTTP/1.1 200 OK\r\n"...)
	out = append(out, cors.HeaderAllowOrigin...)
	out = append(out, ": "...)
	out = append(out, c.origin...)
	out = append(out, "\r\n"...)
	for _, kv := range c.policy.PreflightHeaders() {
		out = appendHeader(out, kv.Name, kv.Value)
	}
	out = appendHeader(out, cors.HeaderVary, cors.VaryPreflight)
	out = append(out, "Content-Length: 0\r\nConnection: keep-alive\r\n\r\n"...)
	l.scratch = out
	l.send(c, out)
}

func (l *loop) respondError(c *conn, status string) {
	c.closing = true
	l.send(c, []byte("HTTP/1.1 "+status+"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
}

// send writes now; what the socket does not take waits for EPOLLOUT.
func (l *loop) send(c *conn, p []byte) {
	if len(c.out) > 0 {
		c.out = append(c.out, p...)
		return
	}
	n, err := syscall.Write(c.fd, p)
	if err != nil && !errors.Is(err, syscall.EAGAIN) {
		l.close(c)
		return
	}
	if n < 0 {
		n = 0
	}
	if n < len(p) {
		c.out = append(c.out, p[n:]...)
		return
	}
	if c.closing {
		l.close(c)
	}
}

func (l *loop) flush(c *conn) {
	n, err := syscall.Write(c.fd, c.out)
	if err != nil && !errors.Is(err, syscall.EAGAIN) {
		l.close(c)
		return
	}
	if n > 0 {
		c.out = c.out[:copy(c.out, c.out[n:])]
	}
	if len(c.out) == 0 && c.closing {
		l.close(c)
	}
}
