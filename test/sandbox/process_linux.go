package sandbox

import "syscall"

// sysProcAttr kills the child when the thread that started it dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// detachedProcAttr starts a child in a session of its own, so that signals to the test's
// process group (Ctrl-C) do not reach it.
func detachedProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true}
}
