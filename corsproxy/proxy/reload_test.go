package proxy

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// kubeletVolume writes files the way the kubelet updates a downward-API volume: each
// version in a fresh timestamped directory, published by atomically renaming a new
// "..data" symlink over the old one; the file itself is a symlink through "..data".
type kubeletVolume struct {
	t   *testing.T
	dir string
	n   int
}

func newKubeletVolume(t *testing.T, name string, content []byte) (*kubeletVolume, string) {
	v := &kubeletVolume{t: t, dir: t.TempDir()}
	v.write(name, content)
	if err := os.Symlink(filepath.Join("..data", name), filepath.Join(v.dir, name)); err != nil {
		t.Fatal(err)
	}
	return v, filepath.Join(v.dir, name)
}

func (v *kubeletVolume) write(name string, content []byte) {
	v.n++
	version := fmt.Sprintf("..2026_11_26_00_00_%02d.%d", v.n, v.n)
	if err := os.Mkdir(filepath.Join(v.dir, version), 0o755); err != nil {
		v.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v.dir, version, name), content, 0o644); err != nil {
		v.t.Fatal(err)
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(version, tmp); err != nil {
		v.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		v.t.Fatal(err)
	}
}

func TestReloadGoodBadGoodWithRequestsInFlight(t *testing.T) {
	upstream := startUpstream(t, pipyOK())
	policy := func(origin string) []byte {
		return fmt.Appendf(nil, `{"version":1,"ports":[{"port":8080,"cors":{"allowOrigins":[{"exact":%q}]}}]}`, origin)
	}
	volume, path := newKubeletVolume(t, "config.json", policy("http://one.example"))
	routes, data, err := LoadRoutes(path)
	if err != nil {
		t.Fatal(err)
	}
	addr, p, metrics := startProxy(t, data, Options{Upstream: upstream, PolicyPort: 8080})
	p.SetRoutes(routes)
	reloader := &Reloader{Path: path, Proxy: p, Metrics: metrics, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	reloader.Loaded(data)

	// Requests in flight all along: none may fail, whatever the file holds.
	var failures, sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
				req.Header.Set("Origin", "http://one.example")
				resp, err := client.Do(req)
				sent.Add(1)
				if err != nil {
					failures.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failures.Add(1)
				}
			}
		})
	}

	allowed := func(origin string) bool {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		req.Header.Set("Origin", origin)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("Access-Control-Allow-Origin") == origin
	}

	steps := []struct {
		name        string
		content     []byte
		wantAllowed string
		wantDenied  string
		wantOK      uint64
		wantFailed  uint64
	}{
		{"good", policy("http://two.example"), "http://two.example", "http://one.example", 1, 0},
		{"bad keeps the last good", []byte(`{"version":1,"ports":[{"port":8080,"cors":{"allowOrigins":[{"regex":"("}]}}]}`), "http://two.example", "http://three.example", 1, 1},
		{"truncated keeps the last good", []byte(`{"version":1,"po`), "http://two.example", "http://three.example", 1, 2},
		{"good again", policy("http://three.example"), "http://three.example", "http://two.example", 2, 2},
	}
	for _, step := range steps {
		volume.write("config.json", step.content)
		reloader.Check()
		if !allowed(step.wantAllowed) || allowed(step.wantDenied) {
			t.Errorf("%s: want %s allowed and %s not", step.name, step.wantAllowed, step.wantDenied)
		}
		// The proxy started with one successful load.
		if ok, failed := metrics.reloads[0].Load()-1, metrics.reloads[1].Load(); ok != step.wantOK || failed != step.wantFailed {
			t.Errorf("%s: reloads ok=%d failed=%d, want %d and %d", step.name, ok, failed, step.wantOK, step.wantFailed)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Checking again without a change reloads nothing.
	reloader.Check()
	if metrics.reloads[0].Load() != 3 || metrics.reloads[1].Load() != 2 {
		t.Errorf("an unchanged file was reloaded")
	}
	close(stop)
	wg.Wait()
	if failures.Load() != 0 || sent.Load() == 0 {
		t.Errorf("%d of %d requests in flight failed during reloads", failures.Load(), sent.Load())
	}
}
