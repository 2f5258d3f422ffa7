package bench

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// needBitTorrent skips the test when a BitTorrent tool is missing, and
// fails it under CI=true, where .ci/run installs them.
func needBitTorrent(t *testing.T) btTools {
	t.Helper()
	bt, err := findBitTorrent()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (.ci/run installs them)", err)
		}
		t.Skip(err)
	}
	return bt
}

func TestBitTorrentCommandLines(t *testing.T) {
	if got, want := mktorrentArgs("/d/seed/rel.bin", "/d/r.torrent", "http://10.77.0.1:6969/announce", 1<<20),
		[]string{"-a", "http://10.77.0.1:6969/announce", "-l", "20", "-d", "-o", "/d/r.torrent", "/d/seed/rel.bin"}; !slices.Equal(got, want) {
		t.Errorf("mktorrent %q, want %q", got, want)
	}
	if got, want := opentrackerArgs("10.77.0.1", 6969, "/d/tracker"),
		[]string{"-i", "10.77.0.1", "-p", "6969", "-P", "6969", "-d", "/d/tracker", "-w", "/whitelist.txt"}; !slices.Equal(got, want) {
		t.Errorf("opentracker %q, want %q", got, want)
	}
	seed := seederArgs("/d/r.torrent", "/d/seed", 6881)
	leech := leecherArgs("/d/r.torrent", "/d/leech-03-0", 6881, 6800, "/d/done.sh")
	for _, args := range [][]string{seed, leech} {
		// Peers meet at the tracker only, and keep seeding until stopped.
		for _, want := range []string{"--enable-dht=false", "--enable-dht6=false", "--enable-peer-exchange=false", "--bt-enable-lpd=false", "--seed-ratio=0.0", "--listen-port=6881"} {
			if !slices.Contains(args, want) {
				t.Errorf("%q: no %s", args, want)
			}
		}
		if args[len(args)-1] != "/d/r.torrent" {
			t.Errorf("%q: the torrent is not last", args)
		}
	}
	if !slices.Contains(seed, "--dir=/d/seed") || !slices.Contains(seed, "--check-integrity=true") {
		t.Errorf("seeder %q", seed)
	}
	for _, want := range []string{"--dir=/d/leech-03-0", "--on-bt-download-complete=/d/done.sh", "--enable-rpc=true", "--rpc-listen-port=6800", "--rpc-listen-all=true"} {
		if !slices.Contains(leech, want) {
			t.Errorf("leecher %q: no %s", leech, want)
		}
	}
}

func TestInfoHash(t *testing.T) {
	info := "d6:lengthi8e4:name3:rel12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae"
	torrent := []byte("d8:announce30:http://10.77.0.1:6969/announce4:info" + info + "e")
	got, err := infoHash(torrent)
	if err != nil {
		t.Fatal(err)
	}
	if want := sha1.Sum([]byte(info)); got != want {
		t.Errorf("info-hash %x, want %x", got, want)
	}
	for _, bad := range []string{"", "l4:infoe", "d4:infoi1e", "d8:announce3:abce", "d4:info99:xe", "d4:infod" + strings.Repeat("l", 100)} {
		if _, err := infoHash([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestMakeTorrent makes a torrent with mktorrent as a run does and checks
// its info-hash against aria2c's reading of it.
func TestMakeTorrent(t *testing.T) {
	bt := needBitTorrent(t)
	dir := t.TempDir()
	r := &runner{cfg: Config{BitTorrentPiece: 256 << 10}, www: filepath.Join(dir, "www"), bt: bt}
	sum, err := WriteRandomFile(filepath.Join(r.www, "release", "rel.bin"), 1<<20+123, 7)
	if err != nil {
		t.Fatal(err)
	}
	torrent, ih, err := r.makeTorrent(filepath.Join(dir, "bt"), object{Path: "/release/rel.bin", Size: 1<<20 + 123, SHA256: sum}, "http://10.77.0.1:6969/announce")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bt.Aria2c, "-S", torrent).CombinedOutput()
	if err != nil {
		t.Fatalf("aria2c -S: %v: %s", err, out)
	}
	for _, want := range []string{"Info Hash: " + hex.EncodeToString(ih[:]), "Piece Length: 256KiB", "The Number of Pieces: 5", "http://10.77.0.1:6969/announce"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("aria2c -S says\n%s\nwant %q", out, want)
		}
	}
	if err := checkCopy(filepath.Join(dir, "bt", "seed", "rel.bin"), object{Size: 1<<20 + 123, SHA256: sum}); err != nil {
		t.Errorf("the seeder's copy: %v", err)
	}
	if err := checkCopy(torrent, object{Size: 1<<20 + 123, SHA256: sum}); err == nil {
		t.Error("a wrong copy passed")
	}
}

func TestBitTorrentParsers(t *testing.T) {
	var ih [20]byte
	copy(ih[:], "abcdefghijklmnopqrst")
	if got, want := scrapeURL("10.77.0.1:6969", ih), "http://10.77.0.1:6969/scrape?info_hash=%61%62%63%64%65%66%67%68%69%6A%6B%6C%6D%6E%6F%70%71%72%73%74"; got != want {
		t.Errorf("scrape URL %s, want %s", got, want)
	}
	for _, c := range []struct {
		body string
		want int64
	}{
		{"d5:filesdee", 0},
		{"d5:filesd20:abcdefghijklmnopqrstd8:completei1e10:downloadedi0e10:incompletei0eeee", 1},
		{"d5:filesd20:abcdefghijklmnopqrstd8:completei3e10:downloadedi2e10:incompletei5eeee", 3},
	} {
		if got, err := parseScrape([]byte(c.body), ih); err != nil || got != c.want {
			t.Errorf("scrape %q: %d, %v; want %d", c.body, got, err, c.want)
		}
	}
	if _, err := parseScrape([]byte("d14:failure reason9:forbiddene"), ih); err == nil {
		t.Error("a failure passed as a scrape")
	}

	if got, err := parseHookTime([]byte("1796662262.392133780\n")); err != nil || !got.Equal(time.Unix(1796662262, 392133780)) {
		t.Errorf("hook time %v, %v", got, err)
	}
	if got, err := parseHookTime([]byte("1796662262.5")); err != nil || !got.Equal(time.Unix(1796662262, 500000000)) {
		t.Errorf("hook time %v, %v", got, err)
	}
	for _, bad := range []string{"", "x", "-1.5", "12.x"} {
		if _, err := parseHookTime([]byte(bad)); err == nil {
			t.Errorf("hook time %q: no error", bad)
		}
	}

	if n, err := parseTellActive([]byte(`{"id":"x","jsonrpc":"2.0","result":[{"completedLength":"262144"}]}`)); err != nil || n != 262144 {
		t.Errorf("tellActive: %d, %v", n, err)
	}
	if n, err := parseTellActive([]byte(`{"id":"x","jsonrpc":"2.0","result":[]}`)); err != nil || n != 0 {
		t.Errorf("tellActive, nothing active: %d, %v", n, err)
	}
	if _, err := parseTellActive([]byte(`{"id":"x","jsonrpc":"2.0","error":{"code":1,"message":"Unauthorized"}}`)); err == nil {
		t.Error("tellActive error: no error")
	}

	tc := `class htb 1:10 root prio 0 rate 25Mbit ceil 25Mbit burst 1600b cburst 1600b 
 Sent 123456 bytes 100 pkt (dropped 0, overlimits 0 requeues 0) 
 backlog 0b 0p requeues 0
class htb 1:20 root prio 0 rate 100Gbit ceil 100Gbit burst 0b cburst 0b 
 Sent 999 bytes 3 pkt (dropped 0, overlimits 0 requeues 0) 
`
	if n, err := parseClassSent([]byte(tc), "1:10"); err != nil || n != 123456 {
		t.Errorf("class 1:10: %d, %v", n, err)
	}
	if n, err := parseClassSent([]byte(tc), "1:20"); err != nil || n != 999 {
		t.Errorf("class 1:20: %d, %v", n, err)
	}
	if _, err := parseClassSent([]byte(tc), "1:30"); err == nil {
		t.Error("class 1:30: no error")
	}
	link := `[{"ifindex":3,"ifname":"eth0","stats64":{"rx":{"bytes":90,"packets":1},"tx":{"bytes":4242,"packets":7}}}]`
	if n, err := parseLinkTxBytes([]byte(link)); err != nil || n != 4242 {
		t.Errorf("link tx: %d, %v", n, err)
	}
}

func TestBitTorrentSkipped(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Scenario: ScenarioMix}, "flash crowd only"},
		{Config{Scenario: ScenarioFlash}, "needs --netns"},
	} {
		r := &runner{cfg: c.cfg}
		if got := r.bitTorrentSkip(); !strings.Contains(got, c.want) {
			t.Errorf("%s, netns %v: skip %q, want %q", c.cfg.Scenario, c.cfg.NetNS, got, c.want)
		}
	}
}

// TestBitTorrentNetns runs the BitTorrent baseline's flash crowd on the
// emulated network (root, ip, tc, aria2c, opentracker, mktorrent): every
// copy verified, and the report's row has its figures.
func TestBitTorrentNetns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs aria2c and opentracker; skipped with -short")
	}
	if err := NetnsUsable(0); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	needBitTorrent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress strings.Builder
	rep, err := Run(ctx, Config{Binary: buildShoal(t), TempDir: t.TempDir(), Progress: &progress, Timeout: time.Minute,
		Scenario: ScenarioFlash, NetNS: true, FleetSizes: []int{4}, Size: 8 << 20, Seed: 11,
		Systems: []string{SystemBitTorrent}, OriginUplink: 200e6, EdgeUplink: 100e6, EdgeDownlink: 1e9})
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatal(err)
	}
	run := rep.Runs[0]
	s, ok := run.system(SystemBitTorrent)
	if !ok || s.Skipped != "" || rep.BitTorrent == nil {
		t.Fatalf("no bittorrent row: %+v", run.Systems)
	}
	if len(s.Clients) != 4 || s.DeliveredBytes != 4*(8<<20) {
		t.Errorf("%d leechers, %d bytes delivered; want 4 and %d", len(s.Clients), s.DeliveredBytes, 4*(8<<20))
	}
	for _, c := range s.Clients {
		if c.Seconds <= 0 || c.TTFB <= 0 || c.TTFB > c.Seconds {
			t.Errorf("leecher %d: first bytes at %.3f s, done at %.3f s", c.Site, c.TTFB, c.Seconds)
		}
	}
	if s.FleetSeconds < 0.9*run.Bounds.KumarRoss {
		t.Errorf("done in %.2f s, under the Kumar–Ross bound %.2f s: the links are not shaped", s.FleetSeconds, run.Bounds.KumarRoss)
	}
	// The seeder sends the release at least once; the leechers the rest.
	if s.OriginBytes < 8<<20 || s.OriginRatio < 1 || s.PeerWireBytes <= 0 {
		t.Errorf("origin egress %d bytes (%.2f×), between sites %d bytes", s.OriginBytes, s.OriginRatio, s.PeerWireBytes)
	}
	if s.OriginBytes+s.PeerWireBytes < 4*(8<<20) {
		t.Errorf("origin %d + peers %d bytes: less than the 4 copies delivered", s.OriginBytes, s.PeerWireBytes)
	}
	if s.TierCPUSeconds <= 0 || s.CPUSecondsPerGB <= 0 || len(s.PeakRSS) != 4 {
		t.Errorf("CPU %.2f s (%.2f s/GB), peak RSS %v", s.TierCPUSeconds, s.CPUSecondsPerGB, s.PeakRSS)
	}
	md := rep.Markdown()
	for _, want := range []string{"| bittorrent |", "- bittorrent: aria2 version", "Kumar–Ross"} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown without %q:\n%s", want, md)
		}
	}
	if _, ok := rep.Charts()["latency-cdf-4.svg"]; !ok {
		t.Error("no latency plot")
	}
}
