// Command heldstreams measures corsproxy's memory per request in flight: it starts an app
// that answers with one server-sent event and then holds the response open, runs the
// corsproxy binary in front of it, opens more and more client connections, each one such
// request, and prints the proxy's RSS as the app holds 250, 500, 1,000 and then as many as
// the pool allows (past --max-conns-per-upstream, requests wait for a connection).
//
//	go build -o /tmp/corsproxy ./cmd/corsproxy && go run ./hack/bench/heldstreams --corsproxy /tmp/corsproxy
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"
)

func main() {
	bin := flag.String("corsproxy", "bin/corsproxy", "corsproxy binary")
	config := flag.String("config", "corsproxy/proxy/testdata/seed-config.json", "policy file")
	listen := flag.String("listen", "127.0.0.1:19790", "proxy address (loopback)")
	admin := flag.String("admin-listen", "127.0.0.1:19791", "proxy admin address (loopback)")
	flag.Parse()
	if err := run(*bin, *config, *listen, *admin); err != nil {
		log.Fatal(err)
	}
}

func run(bin, config, listen, admin string) error {
	var held atomic.Int32
	release := make(chan struct{})
	defer close(release)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		held.Add(1)
		io.WriteString(w, "event: first\n\n")
		w.(http.Flusher).Flush()
		<-release
	})}
	go app.Serve(ln)
	defer app.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	proxy := exec.CommandContext(ctx, bin, "--config", config, "--listen", listen, "--admin-listen", admin,
		"--upstream", ln.Addr().String(), "--policy-port", "8080", "--log-level", "warn")
	proxy.Stderr = os.Stderr
	if err := proxy.Start(); err != nil {
		return err
	}
	if err := waitReady("http://" + admin + "/readyz"); err != nil {
		return err
	}
	fmt.Printf("idle: %s\n", memory(proxy.Process.Pid))

	var clients []net.Conn
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for _, n := range []int{250, 500, 1000, 1500} {
		for len(clients) < n {
			c, err := net.Dial("tcp", listen)
			if err != nil {
				return fmt.Errorf("connection %d: %w", len(clients)+1, err)
			}
			clients = append(clients, c)
			if _, err := io.WriteString(c, "GET /events HTTP/1.1\r\nHost: pipy-ok\r\nOrigin: http://www.bbb.com\r\n\r\n"); err != nil {
				return err
			}
		}
		for deadline := time.Now().Add(5 * time.Second); int(held.Load()) < n && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		fmt.Printf("%d requests sent, %d held by the app: %s\n", n, held.Load(), memory(proxy.Process.Pid))
	}
	return nil
}

func memory(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") || strings.HasPrefix(line, "VmHWM:") {
			out = append(out, strings.Join(strings.Fields(line), " "))
		}
	}
	return strings.Join(out, ", ")
}

func waitReady(url string) error {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("%s not ready", url)
}
