package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// startTimeout bounds how long a started process may take to listen.
const startTimeout = 20 * time.Second

// process is a child the harness started: a shoal origin or edge, or an
// nginx master. Its output goes to a log file, shown when it fails.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed once it has exited
	err  error         // Wait's result, set before done is closed
}

// startProcess starts bin with args, its output in logDir/name.log. The
// child gets the harness's environment without SHOAL_* variables, so that
// the settings of `shoal bench` (SHOAL_SIZE, SHOAL_EDGES...) do not leak
// into the edges; everything it needs is on its command line.
func startProcess(name, logDir, bin string, args ...string) (*process, error) {
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "SHOAL_") })
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks the process to end with SIGTERM and kills its process group
// if it is still there after grace.
func (p *process) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		killGroup(p.pid())
		<-p.done
	}
}

// failure describes a process that failed: its exit and its log's tail.
func (p *process) failure(what string) error {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	state := "still running"
	if p.exited() {
		state = fmt.Sprintf("exited: %v", p.err)
	}
	return fmt.Errorf("%s: %s (%s); log %s:\n%s", p.name, what, state, p.log, bytes.TrimSpace(b))
}

// waitUntil polls ok until it holds, the process exits, or startTimeout
// passes.
func (p *process) waitUntil(ctx context.Context, what string, ok func() bool) error {
	deadline := time.Now().Add(startTimeout)
	for !ok() {
		if p.exited() {
			return p.failure("exited while waiting for " + what)
		}
		if time.Now().After(deadline) {
			return p.failure(fmt.Sprintf("no %s after %v", what, startTimeout))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// freeAddr returns a loopback address of network ("tcp" or "udp") that was
// free a moment ago. Another process could take it before the child binds
// it; the child then fails to start, loudly.
func freeAddr(network string) (string, error) {
	if network == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer pc.Close()
		return pc.LocalAddr().String(), nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// freeAddrs returns n free loopback addresses, all different.
func freeAddrs(network string, n int) ([]string, error) {
	// Hold them all open until every one is chosen, so none repeats.
	var out []string
	var closers []func() error
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	for range n {
		if network == "udp" {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				return nil, err
			}
			closers = append(closers, pc.Close)
			out = append(out, pc.LocalAddr().String())
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		closers = append(closers, ln.Close)
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// tcpUp says whether addr accepts a TCP connection made with dial (nil:
// the default dialer).
func tcpUp(dial func(context.Context, string, string) (net.Conn, error), addr string) bool {
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := dial(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// httpOK says whether GET url answers 200.
func httpOK(c *http.Client, url string) bool {
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
