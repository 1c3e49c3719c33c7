package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/corsmesh/corsmesh/test/sandbox"
)

// clockTicks is USER_HZ, the unit of /proc's CPU times (100 on Linux everywhere).
const clockTicks = 100

// components are the processes whose CPU time the bench accounts for, by name.
type components struct {
	pids  map[string]int // kube-apiserver, etcd, kube-controller-manager, corsmesh-webhook, bench
	order []string
}

// findComponents finds the sandbox's control plane processes in /proc by their command
// lines: kube-apiserver serving the sandbox's port, the etcd it talks to, the
// kube-controller-manager using the sandbox's kubeconfig.
func findComponents(s *sandbox.Sandbox) *components {
	c := &components{pids: map[string]int{benchName: os.Getpid()}}
	u, err := url.Parse(s.RestConfig.Host)
	if err != nil {
		return c
	}
	cmdlines := map[int][]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		cmdlines[pid] = strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	}
	arg := func(args []string, name string) string {
		for _, a := range args {
			if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
				return v
			}
		}
		return ""
	}
	var etcdURL string
	for pid, args := range cmdlines {
		if filepath.Base(args[0]) == "kube-apiserver" && arg(args, "secure-port") == u.Port() {
			c.pids["kube-apiserver"] = pid
			etcdURL = arg(args, "etcd-servers")
		}
	}
	kcmKubeconfig := filepath.Join(s.WorkDir, "kube-controller-manager", "kubeconfig")
	for pid, args := range cmdlines {
		switch filepath.Base(args[0]) {
		case "etcd":
			if etcdURL != "" && arg(args, "listen-client-urls") == etcdURL {
				c.pids["etcd"] = pid
			}
		case "kube-controller-manager":
			if arg(args, "kubeconfig") == kcmKubeconfig {
				c.pids["kube-controller-manager"] = pid
			}
		}
	}
	return c
}

// Names of the bench's own processes.
const (
	benchName       = "bench (client, cert-manager)"
	noopHostName    = "no-op and replay webhooks"
	webhookProcName = "corsmesh-webhook"
)

// setNoopHost accounts the no-op host process (the no-op and replay webhooks).
func (c *components) setNoopHost(pid int) { c.pids[noopHostName] = pid }

func (c *components) setWebhook(pid int) {
	if pid == os.Getpid() {
		return // in-process: part of the bench process
	}
	c.pids[webhookProcName] = pid
}

// names in a fixed order.
func (c *components) names() []string {
	var out []string
	for _, n := range []string{"kube-apiserver", "etcd", "kube-controller-manager", webhookProcName, noopHostName, benchName} {
		if _, ok := c.pids[n]; ok {
			out = append(out, n)
		}
	}
	return out
}

// cpuSample is the CPU time of each component and of the whole machine.
type cpuSample struct {
	at      time.Time
	procs   map[string]time.Duration
	machine time.Duration // busy time of all cores (user+nice+system+irq+softirq+steal)
}

func (c *components) sample() cpuSample {
	s := cpuSample{at: time.Now(), procs: map[string]time.Duration{}}
	for name, pid := range c.pids {
		if d, err := procCPU(pid); err == nil {
			s.procs[name] = d
		}
	}
	s.machine = machineBusy()
	return s
}

// sub is the CPU used between two samples.
func (s cpuSample) sub(before cpuSample) cpuSample {
	out := cpuSample{at: s.at, procs: map[string]time.Duration{}, machine: s.machine - before.machine}
	for n, d := range s.procs {
		if b, ok := before.procs[n]; ok {
			out.procs[n] = d - b
		}
	}
	return out
}

func (s cpuSample) add(o cpuSample) cpuSample {
	out := cpuSample{procs: map[string]time.Duration{}, machine: s.machine + o.machine}
	for n, d := range s.procs {
		out.procs[n] = d
	}
	for n, d := range o.procs {
		out.procs[n] += d
	}
	return out
}

// procCPU is a process's user+system CPU time from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command may contain spaces: fields start after the last ')'.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * time.Second / clockTicks
}

// quiesce waits until the machine is nearly idle (under 15% of one core busy, over 2s)
// or max has passed, and says how long it waited and how busy it last was.
func quiesce(ctx context.Context, max time.Duration) (time.Duration, float64) {
	start := time.Now()
	var busy float64
	for time.Since(start) < max && ctx.Err() == nil {
		before := machineBusy()
		time.Sleep(2 * time.Second)
		busy = float64(machineBusy()-before) / float64(2*time.Second)
		if busy < 0.15 {
			break
		}
	}
	return time.Since(start), busy
}
