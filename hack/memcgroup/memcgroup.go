// Package memcgroup puts a test's process under a real memory limit: a child cgroup of the
// cgroup v1 memory controller (as on these machines), made for the test and removed after
// it. For tests only.
package memcgroup

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Root is where the cgroup v1 memory controller is mounted.
const Root = "/sys/fs/cgroup/memory"

// Require skips the test (fails it under CI=true) where no memory cgroup can be made.
func Require(t testing.TB) {
	t.Helper()
	why := ""
	switch {
	case os.Geteuid() != 0:
		why = "needs root to make a memory cgroup"
	default:
		if _, err := os.Stat(filepath.Join(Root, "cgroup.procs")); err != nil {
			why = "no cgroup v1 memory controller at " + Root
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: %s", why)
	}
	t.Skip("skipping: " + why)
}

// Cgroup is a child memory cgroup, removed when the test ends.
type Cgroup struct {
	// Dir is its directory under Root.
	Dir string
}

// New makes a cgroup named prefix plus a random suffix, limited to limit bytes, with no
// swap to hide in: over the limit is the OOM killer.
func New(t testing.TB, prefix string, limit int64) *Cgroup {
	t.Helper()
	suffix := make([]byte, 6)
	rand.Read(suffix)
	cg := &Cgroup{Dir: filepath.Join(Root, prefix+hex.EncodeToString(suffix))}
	if err := os.Mkdir(cg.Dir, 0o755); err != nil {
		t.Fatalf("making the cgroup: %v", err)
	}
	t.Cleanup(func() {
		for range 50 { // rmdir fails while a process is in it; the test stops it by then
			if err := os.Remove(cg.Dir); err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("could not remove %s", cg.Dir)
	})
	cg.Write(t, "memory.swappiness", "0")
	cg.Write(t, "memory.limit_in_bytes", strconv.FormatInt(limit, 10))
	if _, err := os.Stat(filepath.Join(cg.Dir, "memory.memsw.limit_in_bytes")); err == nil {
		cg.Write(t, "memory.memsw.limit_in_bytes", strconv.FormatInt(limit, 10))
	}
	return cg
}

// Command runs bin with args in the cgroup: a shell joins it and then execs bin, so every
// page bin touches is charged to the cgroup.
func (cg *Cgroup) Command(bin string, args ...string) *exec.Cmd {
	return exec.Command("/bin/sh", append([]string{"-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`, cg.Dir, bin}, args...)...)
}

// Process is a command running in a cgroup, killed when the test ends.
type Process struct {
	// Cmd is the command, started.
	Cmd    *exec.Cmd
	name   string
	cg     *Cgroup
	exited chan struct{}
	output tail
}

// Start starts cmd (made by Command, its environment set as needed) and names it name in
// failures; its standard output and error are kept, the last 64 KiB of them.
func (cg *Cgroup) Start(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{Cmd: cmd, name: name, cg: cg, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.output, &p.output
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// Alive fails the test if the process was killed, by the OOM killer or otherwise.
func (p *Process) Alive(t testing.TB) {
	t.Helper()
	if n := p.cg.OOMKills(t); n > 0 {
		t.Fatalf("the OOM killer killed %s %d times (peak %s)", p.name, n, p.cg.Peak(t))
	}
	select {
	case <-p.exited:
		t.Fatalf("%s exited: %v\n%s", p.name, p.Cmd.ProcessState, p.Output())
	default:
	}
}

// Exited is closed once the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Output is the end of what the process wrote.
func (p *Process) Output() string { return p.output.String() }

// tail keeps the last tailBytes written to it.
type tail struct {
	mu sync.Mutex
	b  []byte
}

const tailBytes = 64 << 10

func (w *tail) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if over := len(w.b) - tailBytes; over > 0 {
		w.b = append(w.b[:0], w.b[over:]...)
	}
	return len(p), nil
}

func (w *tail) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}

// Write writes one of the cgroup's files.
func (cg *Cgroup) Write(t testing.TB, file, value string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(cg.Dir, file), []byte(value), 0o644); err != nil {
		t.Fatalf("writing %s: %v", file, err)
	}
}

// ReadInt reads one of the cgroup's files holding a number.
func (cg *Cgroup) ReadInt(t testing.TB, file string) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cg.Dir, file))
	if err != nil {
		t.Fatalf("reading %s: %v", file, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return n
}

// OOMKills is the number of processes the OOM killer took from the cgroup.
func (cg *Cgroup) OOMKills(t testing.TB) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cg.Dir, "memory.oom_control"))
	if err != nil {
		t.Fatalf("reading memory.oom_control: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		if name, value, ok := strings.Cut(strings.TrimSpace(line), " "); ok && name == "oom_kill" {
			n, _ := strconv.ParseInt(value, 10, 64)
			return n
		}
	}
	return 0
}

// Peak is the cgroup's peak and limit, as "X MiB of Y MiB".
func (cg *Cgroup) Peak(t testing.TB) string {
	t.Helper()
	return mib(cg.ReadInt(t, "memory.max_usage_in_bytes")) + " of " + mib(cg.ReadInt(t, "memory.limit_in_bytes"))
}

func mib(n int64) string { return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB" }
