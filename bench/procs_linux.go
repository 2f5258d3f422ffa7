package bench

import "syscall"

// childAttr puts a child in a process group of its own, so that a Ctrl-C
// at the terminal reaches the harness, which stops its children in order,
// and so that nginx's workers can be killed with their master; and it has
// the kernel kill the child if the harness dies first.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup SIGKILLs the process group led by pid, a child started with
// childAttr.
func killGroup(pid int) { syscall.Kill(-pid, syscall.SIGKILL) }
