package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corsmesh/corsmesh/hack/images/catalog"
)

// TestPauseReapsAndStops runs the pause image's binary as PID 1 of a new PID
// namespace, as a pod sandbox does: an orphan left in the namespace becomes
// its child and, once it exits, must not stay a zombie; SIGTERM stops it
// with status 0.
func TestPauseReapsAndStops(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root: a PID namespace (uid %d)", os.Geteuid())
	}
	for _, b := range []string{"nsenter", "sh", "sleep"} {
		if _, err := exec.LookPath(b); err != nil {
			skipOrFail(t, "needs %s on PATH", b)
		}
	}
	dir := sharedBuild(t)
	var archive string
	for _, img := range catalog.Of(catalog.Sandbox, catalog.DefaultVersion) {
		if img.Name == "pause" {
			archive = img.Archive(dir)
		}
	}
	_, files := readImage(t, archive)
	bin := filepath.Join(t.TempDir(), "pause")
	if err := os.WriteFile(bin, files["/pause"].data, 0o755); err != nil {
		t.Fatal(err)
	}

	pause := exec.Command(bin)
	pause.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	if err := pause.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = pause.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = pause.Process.Kill()
		<-exited
	})
	pid := pause.Process.Pid

	// sh starts sleep in the background and exits: sleep is orphaned and
	// re-parented to the namespace's PID 1.
	orphan := exec.CommandContext(t.Context(), "nsenter", "-t", strconv.Itoa(pid), "-p", "--", "sh", "-c", "sleep 2 </dev/null >/dev/null 2>&1 & exit 0")
	if out, err := orphan.CombinedOutput(); err != nil {
		t.Fatalf("nsenter: %v\n%s", err, out)
	}
	if len(children(t, pid)) == 0 {
		t.Fatal("the orphan did not become pause's child: the test proves nothing")
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		kids := children(t, pid)
		if len(kids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pause's children well after they should have exited: %v (Z = an unreaped zombie)", kids)
		}
		time.Sleep(100 * time.Millisecond)
	}

	if err := pause.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("pause after SIGTERM: %v, want exit status 0", waitErr)
		}
	case <-time.After(10 * time.Second):
		t.Error("pause still running 10 s after SIGTERM")
	}
}

// children lists the processes whose parent is pid, as "pid:state".
func children(t *testing.T, pid int) []string {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range stats {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		s := string(data)
		rest := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(rest) >= 2 && rest[1] == strconv.Itoa(pid) {
			out = append(out, strings.Fields(s)[0]+":"+rest[0])
		}
	}
	return out
}
