package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The BitTorrent baseline (SystemBitTorrent) is what a reader of the
// README would compare Shoal with for a fleet update: the same release,
// the same emulated network, the same figures, measured in the same run.
//
//   - opentracker (whitelist-only, the torrent's info-hash whitelisted) in
//     the hub namespace, where the harness's clients and proxy live;
//   - one aria2c seeder holding the release in the origin's namespace: it
//     is the origin, so its uplink is the origin's;
//   - per client, one aria2c leecher in its site's namespace, started at
//     the crowd's start, with DHT, peer exchange and local peer discovery
//     off (the tracker is the only way peers meet) and --seed-ratio=0.0,
//     so that it seeds until the harness stops it, after every leecher is
//     done.
//
// The torrent is made with mktorrent at Config.BitTorrentPiece. A
// leecher's completion time is the timestamp its --on-bt-download-complete
// hook writes (date +%s.%N: the wall clock, like the crowd's start); its
// time to first byte is when its JSON-RPC first reports completed bytes
// (polled every btPoll). Every copy is then hashed against the release's
// SHA-256: one wrong byte fails the run. Origin egress is what the
// origin's namespace sent on its link (there is no HTTP proxy to count
// bodies), CPU time is that of every aria2c and of opentracker.
//
// On loopback the baseline is skipped: one loopback interface carries
// everyone's traffic, so the seeder's upload could only be taken from
// aria2c's own counters, and with no link to share, its time would say
// nothing about distribution.

// Ports of the BitTorrent baseline inside the namespaces.
const (
	btTrackerPort = 6969
	btPeerPort    = 6881  // the leechers of a site's clients take the next ones
	btRPCPort     = 16800 // likewise; far from the peer ports, which 256 clients per site reach
)

// btPoll is how often the harness looks at the leechers.
const btPoll = 25 * time.Millisecond

// btTools is what the harness found of the BitTorrent tools.
type btTools struct {
	Aria2c, Opentracker, Mktorrent string
	// Version is aria2c's, e.g. "aria2 version 1.36.0".
	Version string
}

// findBitTorrent looks up aria2c, opentracker and mktorrent on PATH; its
// error names what is missing and the Debian packages that bring it.
func findBitTorrent() (btTools, error) {
	var t btTools
	var missing, pkgs []string
	for _, x := range []struct {
		dst       *string
		name, pkg string
	}{{&t.Aria2c, "aria2c", "aria2"}, {&t.Opentracker, "opentracker", "opentracker"}, {&t.Mktorrent, "mktorrent", "mktorrent"}} {
		p, err := exec.LookPath(x.name)
		if err != nil {
			missing, pkgs = append(missing, x.name), append(pkgs, x.pkg)
			continue
		}
		*x.dst = p
	}
	if len(missing) > 0 {
		return t, fmt.Errorf("%s not found (apt-get install -y %s)", strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
	out, err := exec.Command(t.Aria2c, "--version").Output()
	if err != nil {
		return t, fmt.Errorf("bench: %s --version: %w", t.Aria2c, err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	t.Version = strings.TrimSpace(first)
	return t, nil
}

// mktorrentArgs is the command line that makes a torrent of file with
// pieces of piece bytes (a power of two), announced at announce.
func mktorrentArgs(file, out, announce string, piece int64) []string {
	return []string{"-a", announce, "-l", strconv.Itoa(bits.TrailingZeros64(uint64(piece))), "-d", "-o", out, file}
}

// opentrackerArgs runs opentracker at ip:port (TCP and UDP), chrooted to
// dir, serving only the info-hashes in dir/whitelist.txt.
func opentrackerArgs(ip string, port int, dir string) []string {
	p := strconv.Itoa(port)
	return []string{"-i", ip, "-p", p, "-P", p, "-d", dir, "-w", "/whitelist.txt"}
}

// aria2Args is the command line of an aria2c that downloads (or, with
// its complete copy in dir, seeds) torrent into dir, listening for peers
// on port: peers meet at the tracker only, and it seeds until stopped.
func aria2Args(torrent, dir string, port int) []string {
	return []string{
		"--dir=" + dir, "--listen-port=" + strconv.Itoa(port),
		"--enable-dht=false", "--enable-dht6=false", "--enable-peer-exchange=false", "--bt-enable-lpd=false",
		"--seed-ratio=0.0", "--disable-ipv6=true", "--file-allocation=none",
		"--auto-file-renaming=false", "--allow-overwrite=true",
		"--summary-interval=0", "--console-log-level=warn", "--enable-color=false",
		torrent,
	}
}

// seederArgs adds a check of the copy it seeds, so that it seeds at once
// (and nothing else).
func seederArgs(torrent, dir string, port int) []string {
	return append([]string{"--check-integrity=true", "--bt-seed-unverified=false"}, aria2Args(torrent, dir, port)...)
}

// leecherArgs adds the completion hook and the JSON-RPC listener the
// harness polls for the first bytes.
func leecherArgs(torrent, dir string, port, rpcPort int, hook string) []string {
	return append([]string{"--on-bt-download-complete=" + hook,
		"--enable-rpc=true", "--rpc-listen-all=true", "--rpc-listen-port=" + strconv.Itoa(rpcPort)}, aria2Args(torrent, dir, port)...)
}

// btHookScript is the --on-bt-download-complete hook: aria2c calls it
// with the GID, the number of files and the first file's path; it writes
// the wall-clock time next to the file, atomically.
const btHookScript = `#!/bin/sh
# Written by shoal bench: records when aria2c completed "$3".
t=$(date +%s.%N)
printf '%s\n' "$t" >"$3.done.tmp" && mv "$3.done.tmp" "$3.done"
`

// parseHookTime reads the hook's file: seconds since the epoch.
func parseHookTime(b []byte) (time.Time, error) {
	s := strings.TrimSpace(string(b))
	sec, frac, _ := strings.Cut(s, ".")
	secs, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || secs <= 0 {
		return time.Time{}, fmt.Errorf("bench: completion time %q: want seconds since the epoch", s)
	}
	var ns int64
	if frac != "" {
		frac = (frac + "000000000")[:9]
		if ns, err = strconv.ParseInt(frac, 10, 64); err != nil {
			return time.Time{}, fmt.Errorf("bench: completion time %q: %w", s, err)
		}
	}
	return time.Unix(secs, ns), nil
}

// bdecode decodes the bencoded value at b[i:] and returns it (int64,
// string, []any or map[string]any) and the offset after it. Nesting is
// limited, so that no input exhausts the stack.
func bdecode(b []byte, i, depth int) (any, int, error) {
	if depth > 32 {
		return nil, 0, errors.New("bench: bencode: nested too deep")
	}
	if i >= len(b) {
		return nil, 0, errors.New("bench: bencode: truncated")
	}
	switch c := b[i]; {
	case c == 'i':
		end := bytes.IndexByte(b[i:], 'e')
		if end < 0 {
			return nil, 0, errors.New("bench: bencode: unterminated integer")
		}
		v, err := strconv.ParseInt(string(b[i+1:i+end]), 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("bench: bencode: %w", err)
		}
		return v, i + end + 1, nil
	case c == 'l' || c == 'd':
		var list []any
		dict := map[string]any{}
		i++
		for {
			if i >= len(b) {
				return nil, 0, errors.New("bench: bencode: unterminated list")
			}
			if b[i] == 'e' {
				if c == 'l' {
					return list, i + 1, nil
				}
				return dict, i + 1, nil
			}
			if c == 'd' {
				k, next, err := bdecode(b, i, depth+1)
				if err != nil {
					return nil, 0, err
				}
				key, ok := k.(string)
				if !ok {
					return nil, 0, errors.New("bench: bencode: dictionary key is not a string")
				}
				v, next, err := bdecode(b, next, depth+1)
				if err != nil {
					return nil, 0, err
				}
				dict[key], i = v, next
				continue
			}
			v, next, err := bdecode(b, i, depth+1)
			if err != nil {
				return nil, 0, err
			}
			list, i = append(list, v), next
		}
	case c >= '0' && c <= '9':
		colon := bytes.IndexByte(b[i:], ':')
		if colon < 0 {
			return nil, 0, errors.New("bench: bencode: string without length")
		}
		n, err := strconv.Atoi(string(b[i : i+colon]))
		start := i + colon + 1
		if err != nil || n < 0 || n > len(b)-start {
			return nil, 0, fmt.Errorf("bench: bencode: string length %q", b[i:i+colon])
		}
		return string(b[start : start+n]), start + n, nil
	}
	return nil, 0, fmt.Errorf("bench: bencode: unexpected %q at %d", b[i], i)
}

// infoHash returns the info-hash of a torrent file's contents: the SHA-1
// of its bencoded info dictionary, as it stands in the file.
func infoHash(torrent []byte) ([20]byte, error) {
	if len(torrent) == 0 || torrent[0] != 'd' {
		return [20]byte{}, errors.New("bench: torrent: not a dictionary")
	}
	for i := 1; i < len(torrent) && torrent[i] != 'e'; {
		k, next, err := bdecode(torrent, i, 1)
		if err != nil {
			return [20]byte{}, fmt.Errorf("bench: torrent: %w", err)
		}
		_, end, err := bdecode(torrent, next, 1)
		if err != nil {
			return [20]byte{}, fmt.Errorf("bench: torrent: %w", err)
		}
		if k == "info" {
			if torrent[next] != 'd' {
				return [20]byte{}, errors.New("bench: torrent: info is not a dictionary")
			}
			return sha1.Sum(torrent[next:end]), nil
		}
		i = end
	}
	return [20]byte{}, errors.New("bench: torrent: no info dictionary")
}

// scrapeURL is the tracker's scrape of one torrent: the info-hash as
// raw bytes, every one percent-encoded.
func scrapeURL(tracker string, ih [20]byte) string {
	var b strings.Builder
	for _, c := range ih {
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return "http://" + tracker + "/scrape?info_hash=" + b.String()
}

// parseScrape returns the seeders ("complete") the tracker counts for ih
// in its scrape answer; zero when it knows no peer of it yet.
func parseScrape(body []byte, ih [20]byte) (int64, error) {
	v, _, err := bdecode(body, 0, 0)
	if err != nil {
		return 0, err
	}
	top, _ := v.(map[string]any)
	files, ok := top["files"].(map[string]any)
	if !ok {
		return 0, fmt.Errorf("bench: scrape: no files in %q", body)
	}
	f, ok := files[string(ih[:])].(map[string]any)
	if !ok {
		return 0, nil
	}
	n, _ := f["complete"].(int64)
	return n, nil
}

// btLeecher is one client's aria2c.
type btLeecher struct {
	site, client int
	proc         *process
	file         string // its copy of the release
	rpc          string // host:port of its JSON-RPC
	first, done  time.Time
}

// btSwarm is the BitTorrent baseline started for one crowd.
type btSwarm struct {
	tracker, seeder *process
	leechers        []*btLeecher
}

// procs are every process of the swarm that has started.
func (s *btSwarm) procs() []*process {
	var ps []*process
	for _, p := range []*process{s.tracker, s.seeder} {
		if p != nil {
			ps = append(ps, p)
		}
	}
	for _, l := range s.leechers {
		ps = append(ps, l.proc)
	}
	return ps
}

// cpu is the CPU time of every process of the swarm so far.
func (s *btSwarm) cpu(p *procReader) float64 {
	var sum float64
	for _, q := range s.procs() {
		v, _ := p.treeCPUSeconds(q.pid())
		sum += v
	}
	return sum
}

func (s *btSwarm) stop() {
	var wg sync.WaitGroup
	for _, p := range s.procs() {
		wg.Go(func() { p.stop(5 * time.Second) })
	}
	wg.Wait()
}

// bittorrent runs the BitTorrent baseline's flash crowd with n sites:
// tracker and seeder first, then every leecher at the crowd's start; it
// measures until the last is done, stops them all, and checks every copy.
func (r *runner) bittorrent(ctx context.Context, n int, pl *plan) (res SystemResult, err error) {
	cfg := r.cfg
	res = SystemResult{System: SystemBitTorrent, Sites: n, ClientsPerSite: cfg.Clients, UniqueBytes: pl.unique, Requests: n * cfg.Clients}
	dir := filepath.Join(r.dir, fmt.Sprintf("%s-%d", SystemBitTorrent, n))
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return res, err
	}
	sw := &btSwarm{}
	defer func() {
		sw.stop()
		switch {
		case cfg.KeepTemp:
		case err != nil: // keep the logs, the torrent and the tracker's whitelist
			matches, _ := filepath.Glob(filepath.Join(dir, "leech-*"))
			for _, m := range matches {
				os.RemoveAll(m)
			}
		default:
			os.RemoveAll(dir)
		}
	}()
	t0 := time.Now()
	torrent, hook, err := r.btStart(ctx, sw, dir, logs)
	if err != nil {
		return res, err
	}
	up := time.Since(t0)

	// The crowd: every leecher starts now.
	rel := r.cat.objects[0]
	before := r.btSnapshot(sw)
	res.Load = before.load
	start := time.Now()
	for si := range n {
		for ci := range cfg.Clients {
			ldir := filepath.Join(dir, fmt.Sprintf("leech-%02d-%d", si, ci))
			if err := os.MkdirAll(ldir, 0o755); err != nil {
				return res, err
			}
			l := &btLeecher{site: si, client: ci, file: filepath.Join(ldir, path.Base(rel.Path)),
				rpc: net.JoinHostPort(siteIP(si), strconv.Itoa(btRPCPort+ci))}
			args := leecherArgs(torrent, ldir, btPeerPort+ci, btRPCPort+ci, hook)
			if l.proc, err = r.start(fmt.Sprintf("leech-%02d-%d", si, ci), logs, si, r.bt.Aria2c, args...); err != nil {
				return res, err
			}
			sw.leechers = append(sw.leechers, l)
		}
	}
	if err := r.btWait(ctx, sw, start); err != nil {
		return res, err
	}
	after := r.btSnapshot(sw)
	for _, l := range sw.leechers {
		res.PeakRSS = append(res.PeakRSS, r.proc.treePeakRSS(l.proc.pid()))
	}
	sw.stop()
	if err := btMeasure(&res, sw, rel, start, before, after); err != nil {
		return res, err
	}
	r.progressf("  %-10s %2d sites: up in %.1f s; %d leechers done in %.2f s (first bytes p50 %s), origin %.2f× unique (wire), %s, %.2f CPU s/GB, every copy verified",
		SystemBitTorrent, n, up.Seconds(), len(res.Clients), res.FleetSeconds, secString(res.TTFB.P50), res.OriginRatio, rateString(res.AggregateRate), res.CPUSecondsPerGB)
	return res, nil
}

// btStart makes the torrent under dir, starts the tracker in the hub
// whitelisting it and the seeder at the origin's place, and waits until
// the tracker counts the seeder. It returns the torrent's path and the
// leechers' completion hook.
func (r *runner) btStart(ctx context.Context, sw *btSwarm, dir, logs string) (torrent, hook string, err error) {
	tracker := net.JoinHostPort(hubIP, strconv.Itoa(btTrackerPort))
	torrent, ih, err := r.makeTorrent(dir, r.cat.objects[0], "http://"+tracker+"/announce")
	if err != nil {
		return "", "", err
	}
	chroot := filepath.Join(dir, "tracker")
	if err := os.MkdirAll(chroot, 0o755); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(chroot, "whitelist.txt"), []byte(hex.EncodeToString(ih[:])+"\n"), 0o644); err != nil {
		return "", "", err
	}
	bin, args := r.net.command(r.net.hub, r.bt.Opentracker, opentrackerArgs(hubIP, btTrackerPort, chroot))
	if sw.tracker, err = startProcess("opentracker", logs, bin, args...); err != nil {
		return "", "", err
	}
	seeders := func() int64 {
		resp, err := r.http.Get(scrapeURL(tracker, ih))
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if err != nil || resp.StatusCode != http.StatusOK {
			return -1
		}
		c, err := parseScrape(body, ih)
		if err != nil {
			return -1
		}
		return c
	}
	if err := sw.tracker.waitUntil(ctx, "scrape answer", func() bool { return seeders() >= 0 }); err != nil {
		return "", "", err
	}
	if sw.seeder, err = r.start("seeder", logs, -1, r.bt.Aria2c, seederArgs(torrent, filepath.Join(dir, "seed"), btPeerPort)...); err != nil {
		return "", "", err
	}
	if err := sw.seeder.waitUntil(ctx, "its announce at the tracker (scrape: 1 seeder)", func() bool { return seeders() >= 1 }); err != nil {
		return "", "", err
	}
	hook = filepath.Join(dir, "done.sh")
	return torrent, hook, os.WriteFile(hook, []byte(btHookScript), 0o755)
}

// btMeasure checks every leecher's copy against the release and fills
// res from the leechers' times and the snapshots around the crowd.
func btMeasure(res *SystemResult, sw *btSwarm, rel object, start time.Time, before, after btSnap) error {
	var clients []ClientResult
	for _, l := range sw.leechers {
		if err := checkCopy(l.file, rel); err != nil {
			var ie *IntegrityError
			if errors.As(err, &ie) {
				ie.System, ie.Site, ie.Client = SystemBitTorrent, l.site, l.client
			}
			return err
		}
		first := l.first
		if first.IsZero() || first.After(l.done) { // done between two polls
			first = l.done
		}
		clients = append(clients, ClientResult{Site: l.site, Client: l.client, TTFB: first.Sub(start).Seconds(),
			Seconds: l.done.Sub(start).Seconds(), Bytes: rel.Size})
	}
	measureClients(res, clients)
	res.OriginWireBytes = after.originWire - before.originWire
	res.PeerWireBytes, res.PeerWireBySite = wireDelta(before.peerWire, after.peerWire, res.Sites)
	res.OriginBytes = res.OriginWireBytes
	if res.UniqueBytes > 0 {
		res.OriginRatio = float64(res.OriginBytes) / float64(res.UniqueBytes)
	}
	res.TierCPUSeconds = after.tierCPU - before.tierCPU
	res.HarnessCPUSeconds = after.selfCPU - before.selfCPU
	if wall := after.at.Sub(before.at).Seconds(); wall > 0 {
		res.OtherCPU = max(0, (after.machineCPU-before.machineCPU-res.TierCPUSeconds-res.HarnessCPUSeconds)/wall)
	}
	if res.DeliveredBytes > 0 {
		res.CPUSecondsPerGB = res.TierCPUSeconds / (float64(res.DeliveredBytes) / 1e9)
	}
	return nil
}

// makeTorrent links the release into dir/seed (the seeder's copy) and
// makes its torrent with mktorrent; it returns the torrent's path and
// info-hash.
func (r *runner) makeTorrent(dir string, rel object, announce string) (string, [20]byte, error) {
	seed := filepath.Join(dir, "seed")
	if err := os.MkdirAll(seed, 0o755); err != nil {
		return "", [20]byte{}, err
	}
	src, dst := filepath.Join(r.www, filepath.FromSlash(rel.Path)), filepath.Join(seed, path.Base(rel.Path))
	if err := os.Link(src, dst); err != nil {
		if err := os.Symlink(src, dst); err != nil {
			return "", [20]byte{}, err
		}
	}
	torrent := filepath.Join(dir, "release.torrent")
	if out, err := exec.Command(r.bt.Mktorrent, mktorrentArgs(dst, torrent, announce, r.cfg.BitTorrentPiece)...).CombinedOutput(); err != nil {
		return "", [20]byte{}, fmt.Errorf("bench: mktorrent: %w: %s", err, out)
	}
	b, err := os.ReadFile(torrent)
	if err != nil {
		return "", [20]byte{}, err
	}
	ih, err := infoHash(b)
	return torrent, ih, err
}

// btSnap is the counters the BitTorrent crowd's figures are the
// difference of.
type btSnap struct {
	tierCPU, selfCPU, machineCPU float64
	originWire                   int64
	peerWire                     []int64 // by site
	at                           time.Time
	load                         [3]float64
}

func (r *runner) btSnapshot(sw *btSwarm) btSnap {
	s := btSnap{tierCPU: sw.cpu(r.proc), machineCPU: r.proc.machineBusy(), at: time.Now(), load: r.proc.loadAvg()}
	s.selfCPU, _ = r.proc.cpuSeconds(os.Getpid())
	s.originWire, s.peerWire = r.net.wireBytes()
	return s
}

// btWait polls the leechers until every one is done: the first bytes
// from its JSON-RPC, completion from its hook's file. A leecher that
// exits, or the run's timeout, fails the crowd.
func (r *runner) btWait(ctx context.Context, sw *btSwarm, start time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	rpc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: r.dial}}
	defer rpc.CloseIdleConnections()
	tick := time.NewTicker(btPoll)
	defer tick.Stop()
	last := time.Now()
	for {
		left := 0
		for _, l := range sw.leechers {
			if !l.done.IsZero() {
				continue
			}
			left++
			if b, err := os.ReadFile(l.file + ".done"); err == nil {
				t, err := parseHookTime(b)
				if err != nil {
					return err
				}
				l.done = t
				left--
				continue
			}
			if l.proc.exited() {
				return l.proc.failure("exited before its download was complete")
			}
			if l.first.IsZero() {
				if n, err := aria2Completed(ctx, rpc, l.rpc); err == nil && n > 0 {
					l.first = time.Now()
				}
			}
		}
		if left == 0 {
			return nil
		}
		if time.Since(last) >= progressEvery {
			last = time.Now()
			r.progressf("  %-10s %2d sites: … %d of %d leechers done, %.0f s", SystemBitTorrent, len(sw.leechers)/r.cfg.Clients,
				len(sw.leechers)-left, len(sw.leechers), time.Since(start).Seconds())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d leechers not done: %w", left, len(sw.leechers), ctx.Err())
		case <-tick.C:
		}
	}
}

// aria2Completed asks an aria2c's JSON-RPC at addr for the bytes its
// active download has (aria2.tellActive's completedLength).
func aria2Completed(ctx context.Context, c *http.Client, addr string) (int64, error) {
	body := `{"jsonrpc":"2.0","id":"shoal-bench","method":"aria2.tellActive","params":[["completedLength"]]}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/jsonrpc", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, err
	}
	return parseTellActive(b)
}

// parseTellActive sums completedLength over the downloads of an
// aria2.tellActive answer.
func parseTellActive(b []byte) (int64, error) {
	var ans struct {
		Result []struct {
			CompletedLength string `json:"completedLength"`
		} `json:"result"`
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		return 0, fmt.Errorf("bench: aria2 RPC: %w", err)
	}
	if ans.Error != nil {
		return 0, fmt.Errorf("bench: aria2 RPC: %s", ans.Error.Message)
	}
	var sum int64
	for _, d := range ans.Result {
		n, err := strconv.ParseInt(d.CompletedLength, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: aria2 RPC: completedLength: %w", err)
		}
		sum += n
	}
	return sum, nil
}

// checkCopy hashes a leecher's copy and compares it with the release.
func checkCopy(file string, rel object) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("bench: bittorrent: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return fmt.Errorf("bench: bittorrent: reading %s: %w", file, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != rel.SHA256 || n != rel.Size {
		return &IntegrityError{URL: file, Bytes: n, Want: rel.Size, Got: sum, WantSum: rel.SHA256, At: -1}
	}
	return nil
}
