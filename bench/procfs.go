package bench

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"
)

// The harness reads what the kernel says about the processes it started:
// CPU time from /proc/<pid>/stat and the peak resident set from
// /proc/<pid>/status. Parsers take bytes so that tests feed them samples.

// procStat is what the harness needs from /proc/<pid>/stat.
type procStat struct {
	PPID int
	// UTime and STime are the process's own CPU time, CUTime and CSTime
	// that of its children it has waited for, in clock ticks.
	UTime, STime, CUTime, CSTime uint64
}

// parseProcStat parses the contents of /proc/<pid>/stat. The second field,
// the command name in parentheses, may itself hold spaces and parentheses,
// so the fields after it are found from the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("bench: /proc stat: no command name")
	}
	// After ')': state(3) ppid(4) pgrp(5) session(6) tty_nr(7) tpgid(8)
	// flags(9) minflt(10) cminflt(11) majflt(12) cmajflt(13) utime(14)
	// stime(15) cutime(16) cstime(17), numbered as in proc(5).
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("bench: /proc stat: %d fields after the command name, want at least 15", len(f))
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, fmt.Errorf("bench: /proc stat: ppid: %w", err)
	}
	var t [4]uint64
	for j, name := range []string{"utime", "stime", "cutime", "cstime"} {
		// cutime and cstime are signed in the kernel's format, but never
		// negative in practice.
		if t[j], err = strconv.ParseUint(f[11+j], 10, 64); err != nil {
			return procStat{}, fmt.Errorf("bench: /proc stat: %s: %w", name, err)
		}
	}
	return procStat{PPID: ppid, UTime: t[0], STime: t[1], CUTime: t[2], CSTime: t[3]}, nil
}

// parseStatusKB returns the value of the field (e.g. "VmHWM") of
// /proc/<pid>/status, given in kB there, in bytes.
func parseStatusKB(b []byte, field string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("bench: /proc status: %s: unexpected %q", field, rest)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: /proc status: %s: %w", field, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("bench: /proc status: no %s", field)
}

// atClkTck is the auxiliary vector's entry for the clock tick rate.
const atClkTck = 17

// parseAuxvClkTck returns the clock ticks per second from the contents of
// /proc/self/auxv: (type, value) pairs of native words, ended by type 0.
func parseAuxvClkTck(b []byte) (int, bool) {
	w := int(unsafe.Sizeof(uintptr(0)))
	word := func(p []byte) uint64 {
		if w == 8 {
			return binary.NativeEndian.Uint64(p)
		}
		return uint64(binary.NativeEndian.Uint32(p))
	}
	for len(b) >= 2*w {
		typ, val := word(b), word(b[w:])
		b = b[2*w:]
		switch {
		case typ == 0:
			return 0, false
		case typ == atClkTck && val > 0:
			return int(val), true
		}
	}
	return 0, false
}

// parseLoadAvg returns the 1, 5 and 15 minute load averages from the
// contents of /proc/loadavg.
func parseLoadAvg(b []byte) ([3]float64, error) {
	var l [3]float64
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return l, errors.New("bench: /proc/loadavg: too few fields")
	}
	for i := range l {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return l, fmt.Errorf("bench: /proc/loadavg: %w", err)
		}
		l[i] = v
	}
	return l, nil
}

// parseCPUBusy returns the busy clock ticks of all CPUs together from the
// contents of /proc/stat: the first line's user, nice, system and steal.
// Not idle and iowait; guest time is already in user; and not irq and
// softirq, which the kernel may account apart from any process, so that
// the loopback traffic of the processes under test would look like
// someone else's work.
func parseCPUBusy(b []byte) (uint64, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, errors.New("bench: /proc/stat: no cpu line")
	}
	var busy uint64
	for _, i := range []int{1, 2, 3, 8} { // user nice system [idle iowait irq softirq] steal
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: /proc/stat: %w", err)
		}
		busy += v
	}
	return busy, nil
}

// procReader reads processes' CPU time and peak memory. Its zero value
// reads /proc and learns the clock tick rate on first use.
type procReader struct {
	// Root is the proc file system's mount point. Empty means /proc.
	Root string
	tck  int
}

func (p *procReader) root() string {
	if p.Root == "" {
		return "/proc"
	}
	return p.Root
}

// ticksPerSecond is the kernel's USER_HZ: from the auxiliary vector, else
// 100, which it is on every Linux architecture in use.
func (p *procReader) ticksPerSecond() int {
	if p.tck == 0 {
		p.tck = 100
		if b, err := os.ReadFile(filepath.Join(p.root(), "self", "auxv")); err == nil {
			if t, ok := parseAuxvClkTck(b); ok {
				p.tck = t
			}
		}
	}
	return p.tck
}

func (p *procReader) stat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join(p.root(), strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(b)
}

// cpuSeconds returns the user plus system CPU time pid has used so far.
func (p *procReader) cpuSeconds(pid int) (float64, error) {
	st, err := p.stat(pid)
	if err != nil {
		return 0, err
	}
	return float64(st.UTime+st.STime) / float64(p.ticksPerSecond()), nil
}

// treeCPUSeconds returns the CPU time used so far by pid, its live
// children, and the children it has already reaped (nginx's cache loader
// exits on its own; its time then moves to the master's cutime).
func (p *procReader) treeCPUSeconds(pid int) (float64, error) {
	st, err := p.stat(pid)
	if err != nil {
		return 0, err
	}
	ticks := st.UTime + st.STime + st.CUTime + st.CSTime
	for _, c := range p.children(pid) {
		if cs, err := p.stat(c); err == nil {
			ticks += cs.UTime + cs.STime
		}
	}
	return float64(ticks) / float64(p.ticksPerSecond()), nil
}

// peakRSS returns pid's peak resident set size (VmHWM) in bytes.
func (p *procReader) peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join(p.root(), strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	return parseStatusKB(b, "VmHWM")
}

// children returns the processes whose parent is pid (nginx's workers).
func (p *procReader) children(pid int) []int {
	ents, err := os.ReadDir(p.root())
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(p.root(), e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		if st, err := parseProcStat(b); err == nil && st.PPID == pid {
			out = append(out, c)
		}
	}
	return out
}

// machineBusy returns the CPU time all processes (and the kernel) have
// used so far, in seconds.
func (p *procReader) machineBusy() float64 {
	b, err := os.ReadFile(filepath.Join(p.root(), "stat"))
	if err != nil {
		return 0
	}
	busy, err := parseCPUBusy(b)
	if err != nil {
		return 0
	}
	return float64(busy) / float64(p.ticksPerSecond())
}

// loadAvg returns the machine's load averages, zero if unknown.
func (p *procReader) loadAvg() [3]float64 {
	b, err := os.ReadFile(filepath.Join(p.root(), "loadavg"))
	if err != nil {
		return [3]float64{}
	}
	l, _ := parseLoadAvg(b)
	return l
}

// treePeakRSS is the sum of the peak resident sets of pid and its
// children (nginx's master and workers), in bytes.
func (p *procReader) treePeakRSS(pid int) int64 {
	var sum int64
	for _, q := range append([]int{pid}, p.children(pid)...) {
		v, _ := p.peakRSS(q)
		sum += v
	}
	return sum
}
