package proxy

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/corsmesh/corsmesh/corsproxy/config"
)

// LoadRoutes reads, validates and compiles a config file.
func LoadRoutes(path string) (*Routes, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading config: %w", err)
	}
	routes, err := ParseRoutes(data)
	return routes, data, err
}

// ParseRoutes validates and compiles a config document.
func ParseRoutes(data []byte) (*Routes, error) {
	c, err := config.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("invalid config: %w", err)
	}
	routes, err := Compile(c)
	if err != nil {
		return nil, fmt.Errorf("compiling config: %w", err)
	}
	return routes, nil
}

// Reloader keeps a Proxy's routes in step with its config file.
//
// The kubelet updates a downward-API file by writing a new directory and swapping the
// "..data" symlink, so the file is replaced whole, never half written; the reloader reads
// the path through the symlink and compares contents. Polling once a second is cheap for a
// file of a few kilobytes, sees every kind of replacement, and the kubelet itself only
// refreshes these files about once a minute.
type Reloader struct {
	Path     string
	Interval time.Duration
	Proxy    *Proxy
	Metrics  *Metrics
	Logger   *slog.Logger

	last []byte // contents of the last file read, good or bad
}

// Loaded records the contents the proxy started with.
func (r *Reloader) Loaded(data []byte) { r.last = data }

// Run polls until ctx ends.
func (r *Reloader) Run(ctx context.Context) {
	ticker := time.NewTicker(r.Interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			r.Check()
		}
	}
}

// Check reloads the file if its contents changed. An invalid file keeps the last good
// policy in force; the failure is logged and counted, once per distinct content.
func (r *Reloader) Check() {
	data, err := os.ReadFile(r.Path)
	if err != nil {
		if r.last != nil { // report once, not every second
			r.Logger.Error("config file unreadable; keeping the last good policy", "path", r.Path, "err", err)
			r.Metrics.Reloaded(false)
			r.last = nil
		}
		return
	}
	if bytes.Equal(data, r.last) {
		return
	}
	r.last = data
	routes, err := ParseRoutes(data)
	if err != nil {
		r.Logger.Error("config rejected; keeping the last good policy", "path", r.Path, "err", err)
		r.Metrics.Reloaded(false)
		return
	}
	r.Proxy.SetRoutes(routes)
	r.Metrics.Reloaded(true)
	r.Logger.Info("config reloaded", "path", r.Path, "bytes", len(data))
}
