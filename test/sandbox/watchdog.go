package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// startWatchdog protects against a sandbox that never reaches Stop: a test binary killed by
// `go test -timeout`, a signal or a crash leaves etcd and kube-apiserver running (envtest
// starts them as plain children) and their directories behind. The watchdog is a small
// shell loop, started in a session of its own, that waits for this process to end and
// then kills those children by PID and removes the directories. Stop ends the watchdog
// first, then stops everything itself.
func (s *Sandbox) startWatchdog(pids []int, dirs []string) error {
	if len(pids) == 0 && len(dirs) == 0 {
		return nil
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		s.logf("no watchdog (%v): an aborted test leaves the control plane running", err)
		return nil
	}
	var kill strings.Builder
	for _, pid := range pids {
		fmt.Fprintf(&kill, " %d", pid)
	}
	var rm strings.Builder
	for _, dir := range dirs {
		rm.WriteString(" " + shellQuote(dir))
	}
	script := fmt.Sprintf(`while kill -0 %d 2>/dev/null; do sleep 1; done
kill -TERM%s 2>/dev/null; sleep 3; kill -KILL%s 2>/dev/null; rm -rf%s`,
		os.Getpid(), kill.String(), kill.String(), rm.String())
	if len(pids) == 0 {
		script = fmt.Sprintf("while kill -0 %d 2>/dev/null; do sleep 1; done\nrm -rf%s", os.Getpid(), rm.String())
	}
	return s.runWatchdogWith(sh, script)
}

// runWatchdog starts script (which waits for this process to end, then cleans up) in a
// session of its own; Stop ends it.
func (s *Sandbox) runWatchdog(script string) error {
	sh, err := exec.LookPath("sh")
	if err != nil {
		s.logf("no watchdog (%v): an aborted test leaves the node running", err)
		return nil
	}
	return s.runWatchdogWith(sh, script)
}

func (s *Sandbox) runWatchdogWith(sh, script string) error {
	cmd := exec.Command(sh, "-c", script)
	cmd.SysProcAttr = detachedProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the watchdog: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.addCleanup("watchdog", func() error {
		_ = cmd.Process.Kill()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		return nil
	})
	return nil
}

// childrenRunning returns the PIDs of this process's children whose executable is in
// dir: the control plane processes envtest started.
func childrenRunning(dir string) []int {
	self := strconv.Itoa(os.Getpid())
	// /proc/<pid>/exe is the resolved path: bin/k8s may be a symlink.
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		realDir = filepath.Clean(dir)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may contain spaces, so split after the last ')'.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 2 || fields[1] != self {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil || (filepath.Dir(exe) != filepath.Clean(dir) && filepath.Dir(exe) != realDir) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
