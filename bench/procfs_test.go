package bench

import (
	"encoding/binary"
	"os"
	"testing"
	"unsafe"
)

func TestParseProcStat(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want procStat
	}{
		{"plain", "4242 (shoal) S 1 4242 4242 0 -1 4194560 2620 0 0 0 153 47 3 4 20 0 9 0 1234 1 2 3\n",
			procStat{PPID: 1, UTime: 153, STime: 47, CUTime: 3, CSTime: 4}},
		{"name with spaces and parentheses", "77 (nginx: (worker) x) R 76 76 76 0 -1 0 0 0 0 0 9 8 0 0 20 0 1 0 5 6 7\n",
			procStat{PPID: 76, UTime: 9, STime: 8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcStat([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "12 shoal S 1", "12 (shoal) S 1 2 3", "12 (shoal) S x 1 1 0 -1 0 0 0 0 0 1 1 0 0", "12 (shoal) S 1 1 1 0 -1 0 0 0 0 0 u 1 0 0"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("parseProcStat(%q) succeeded, want an error", bad)
		}
	}
}

func TestParseStatusKB(t *testing.T) {
	status := "Name:\tshoal\nVmPeak:\t 2000000 kB\nVmHWM:\t  123456 kB\nVmRSS:\t  100000 kB\n"
	got, err := parseStatusKB([]byte(status), "VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(123456 << 10); got != want {
		t.Errorf("VmHWM = %d, want %d", got, want)
	}
	if _, err := parseStatusKB([]byte(status), "VmSwap"); err == nil {
		t.Error("a missing field gave no error")
	}
	if _, err := parseStatusKB([]byte("VmHWM:\t12 MB\n"), "VmHWM"); err == nil {
		t.Error("a value not in kB gave no error")
	}
}

func TestParseAuxvClkTck(t *testing.T) {
	w := int(unsafe.Sizeof(uintptr(0)))
	put := func(b []byte, pairs ...uint64) []byte {
		for _, v := range pairs {
			p := make([]byte, w)
			if w == 8 {
				binary.NativeEndian.PutUint64(p, v)
			} else {
				binary.NativeEndian.PutUint32(p, uint32(v))
			}
			b = append(b, p...)
		}
		return b
	}
	auxv := put(nil, 33, 0x7fff0000, 16, 0xbfebfbff, 6, 4096, atClkTck, 250, 0, 0)
	if got, ok := parseAuxvClkTck(auxv); !ok || got != 250 {
		t.Errorf("got %d, %v, want 250, true", got, ok)
	}
	if _, ok := parseAuxvClkTck(put(nil, 6, 4096, 0, 0, atClkTck, 100)); ok {
		t.Error("found AT_CLKTCK after the end of the vector")
	}
	if _, ok := parseAuxvClkTck([]byte{1, 2, 3}); ok {
		t.Error("found AT_CLKTCK in a truncated vector")
	}
}

func TestParseLoadAvgAndCPU(t *testing.T) {
	l, err := parseLoadAvg([]byte("3.59 10.50 13.01 4/812 20405\n"))
	if err != nil || l != [3]float64{3.59, 10.50, 13.01} {
		t.Errorf("parseLoadAvg = %v, %v", l, err)
	}
	if _, err := parseLoadAvg([]byte("1.0 2.0")); err == nil {
		t.Error("short /proc/loadavg gave no error")
	}
	stat := "cpu  100 5 50 1000 20 7 9 3 0 0\ncpu0 50 2 25 500 10 3 4 1 0 0\nintr 1 2 3\n"
	busy, err := parseCPUBusy([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(100 + 5 + 50 + 3); busy != want {
		t.Errorf("busy = %d, want %d (user+nice+system+steal)", busy, want)
	}
	if _, err := parseCPUBusy([]byte("intr 1 2 3\n")); err == nil {
		t.Error("no cpu line gave no error")
	}
}

// TestProcReaderSelf reads this test process: the parsers meet the real
// file formats.
func TestProcReaderSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	var p procReader
	if tck := p.ticksPerSecond(); tck < 10 || tck > 10000 {
		t.Errorf("ticks per second = %d", tck)
	}
	x := 0
	for i := range 20_000_000 { // burn a little CPU so it is not zero
		x += i
	}
	_ = x
	if s, err := p.cpuSeconds(os.Getpid()); err != nil || s <= 0 {
		t.Errorf("cpuSeconds = %v, %v", s, err)
	}
	if s, err := p.treeCPUSeconds(os.Getpid()); err != nil || s <= 0 {
		t.Errorf("treeCPUSeconds = %v, %v", s, err)
	}
	if rss, err := p.peakRSS(os.Getpid()); err != nil || rss < 1<<20 {
		t.Errorf("peakRSS = %d, %v", rss, err)
	}
	if p.machineBusy() <= 0 {
		t.Error("machineBusy = 0")
	}
	if kids := p.children(os.Getppid()); len(kids) == 0 {
		t.Errorf("children of our parent %d: none, want at least this process", os.Getppid())
	}
}
