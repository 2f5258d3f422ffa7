package netns

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
)

// Do runs f on an OS thread switched into the network namespace
// /run/netns/name, so that the sockets f creates (a dial, a listener)
// belong to it; the thread is switched back afterwards. A socket keeps its
// namespace for its life, whatever thread later uses it.
func Do(name string, f func() error) error {
	target, err := os.Open("/run/netns/" + name)
	if err != nil {
		return err
	}
	defer target.Close()
	runtime.LockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", syscall.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer self.Close()
	if err := setns(target.Fd()); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: entering network namespace %s: %w", name, err)
	}
	ferr := f()
	if err := setns(self.Fd()); err != nil {
		// The thread stays locked, so the runtime ends it with this
		// goroutine rather than reuse it in the wrong namespace.
		return fmt.Errorf("netns: leaving network namespace %s: %w", name, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

func setns(fd uintptr) error {
	if sysSetns == 0 {
		return errors.New("netns: setns: not known on this architecture")
	}
	if _, _, e := syscall.RawSyscall(sysSetns, fd, syscall.CLONE_NEWNET, 0); e != 0 {
		return e
	}
	return nil
}
