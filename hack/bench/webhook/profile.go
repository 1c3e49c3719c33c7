package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// cpuProfiler records corsmesh-webhook's CPU profile over a span of the benchmark through
// its --pprof-addr: net/http/pprof only profiles for a fixed time, so it takes 5 s pieces
// until stopped and merges them.
type cpuProfiler struct {
	addr, out string
	cancel    context.CancelFunc
	done      chan error
}

func startCPUProfile(ctx context.Context, addr, out string) *cpuProfiler {
	ctx, cancel := context.WithCancel(ctx)
	p := &cpuProfiler{addr: addr, out: out, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- p.run(ctx) }()
	return p
}

func (p *cpuProfiler) run(ctx context.Context) error {
	var pieces []string
	defer func() {
		for _, f := range pieces {
			os.Remove(f)
		}
	}()
	hc := &http.Client{Timeout: 30 * time.Second}
	for i := 0; ctx.Err() == nil; i++ {
		// Not tied to ctx: a piece in flight when the span ends is kept (at most 5 s more).
		resp, err := hc.Get("http://" + p.addr + "/debug/pprof/profile?seconds=5")
		if err != nil {
			return fmt.Errorf("profiling corsmesh-webhook: %w", err)
		}
		piece := fmt.Sprintf("%s.%d", p.out, i)
		f, err := os.Create(piece)
		if err == nil {
			_, err = io.Copy(f, resp.Body)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET /debug/pprof/profile: %s", resp.Status)
		}
		if err != nil {
			return fmt.Errorf("profiling corsmesh-webhook: %w", err)
		}
		pieces = append(pieces, piece)
	}
	if len(pieces) == 0 {
		return fmt.Errorf("profiling corsmesh-webhook: no profile taken")
	}
	cmd := exec.Command("go", append([]string{"tool", "pprof", "-proto", "-output", p.out}, pieces...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("merging %d profiles: %v\n%s", len(pieces), err, out)
	}
	return nil
}

// stop ends the span and waits for the merged profile.
func (p *cpuProfiler) stop() error {
	p.cancel()
	if err := <-p.done; err != nil {
		return err
	}
	abs, _ := filepath.Abs(p.out)
	logf("corsmesh-webhook CPU profile: %s (go tool pprof -top %s)", abs, abs)
	return nil
}

// heapProfile saves corsmesh-webhook's heap profile (after a GC, so it shows what is live)
// as heap-<when>.pb.gz under heapDir.
func (p *processWebhook) heapProfile(ctx context.Context, when string) error {
	if err := os.MkdirAll(p.heapDir, 0o755); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.pprofAddr+"/debug/pprof/heap?gc=1", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("heap profile: %s", resp.Status)
	}
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(when))
	if len(name) > 60 {
		name = name[:60]
	}
	path := filepath.Join(p.heapDir, "heap-"+name+".pb.gz")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	logf("corsmesh-webhook heap profile (%s): %s", when, path)
	return f.Close()
}
