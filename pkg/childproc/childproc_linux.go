package childproc

import (
	"os"
	"syscall"
)

const supported = true

// sysProcAttr puts the child in a process group of its own (a Ctrl-C in a terminal reaches the
// parent, which stops it in order) and has the kernel kill it if the parent dies: the two end
// together, as one process would.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// niceThread adds n to the calling thread's niceness (on Linux, PRIO_PROCESS with who 0 is the
// calling thread alone). It cannot be lowered again without privileges.
func niceThread(n int) error {
	if n == 0 {
		return nil
	}
	prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0) // 20 - nice, as the system call returns it
	if err != nil {
		return err
	}
	return syscall.Setpriority(syscall.PRIO_PROCESS, 0, min(19, 20-prio+n))
}

// onMainThread reports whether the calling thread is the process's first (its id is the pid).
func onMainThread() bool { return syscall.Gettid() == os.Getpid() }
