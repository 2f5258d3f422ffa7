package main

// Process-level tests of the durable shard store (--data-dir): SIGKILL in
// the middle of writes, damaged files on disk, and a full disk. They use
// the helpers of e2e_test.go; an edge here is alone in its fleet, so what
// its store lacks comes from the origin, through the counting proxy.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The layout of a shard file, as store/store.go documents it: a fixed part
// (magic 4, shard ID 37, descriptor length D 2), the descriptor (D), its
// hash (32), then the shard's bytes.
const (
	shardHeaderLen   = 4 + 37 + 2
	shardDescHashLen = 32
)

// startStoreEdge starts a lone edge of f (its only member, f.peers[0]) with
// dataDir as --data-dir, and waits until it is ready.
func startStoreEdge(t *testing.T, f *fleet, name, dataDir string, extra ...string) *edgeProc {
	t.Helper()
	e := startEdge(t, edgeSpec{
		name: name, origin: f.proxy.url, tlsDir: fleetTLS(t),
		peer: f.peers[0], peers: f.peers,
		extra: append([]string{"--data-dir", dataDir}, extra...),
	})
	e.waitReady(t)
	return e
}

// loneFleet is an origin serving www and the counting proxy in front of it,
// with one peer address for the single edge the test starts (and restarts)
// itself.
func loneFleet(t *testing.T, www string) *fleet {
	t.Helper()
	f := startFleet(t, www, 0)
	f.peers = []string{freeUDP(t)}
	return f
}

// stopEdge sends SIGTERM and waits for a clean exit.
func stopEdge(t *testing.T, e *edgeProc) {
	t.Helper()
	if err := e.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM to %s: %v", e.name, err)
	}
	if code := e.exitCode(t, 30*time.Second); code != 0 {
		t.Fatalf("%s exited %d after SIGTERM, want 0", e.name, code)
	}
}

// waitMetrics scrapes e until ok accepts a scrape, for at most readyTimeout,
// and returns that scrape.
func waitMetrics(t *testing.T, e *edgeProc, what string, ok func(promMetrics) bool) promMetrics {
	t.Helper()
	var m promMetrics
	waitFor(t, e.proc, what, func() bool {
		m = scrape(t, e)
		if ok(m) {
			return true
		}
		time.Sleep(80 * time.Millisecond) // scrapes are not free; 100 ms between them
		return false
	})
	return m
}

// getResult is the outcome of a GET that may be cut: status and body
// digest of what arrived, and the error that ended it, if any.
type getResult struct {
	obj    object
	status int
	n      int64
	sum    string
	err    error
}

// tryGet is fetch for a download that may legitimately fail (the edge is
// being killed): it reports instead of failing the test, and may run on
// any goroutine.
func tryGet(ctx context.Context, c *http.Client, base string, o object) getResult {
	r := getResult{obj: o}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+o.path, nil)
	if err != nil {
		r.err = err
		return r
	}
	resp, err := c.Do(req)
	if err != nil {
		r.err = err
		return r
	}
	defer resp.Body.Close()
	r.status = resp.StatusCode
	h := sha256.New()
	r.n, r.err = io.Copy(h, resp.Body)
	r.sum = hex.EncodeToString(h.Sum(nil))
	return r
}

// shardFiles lists the files under dataDir/shards, sorted.
func shardFiles(t *testing.T, dataDir string) []string {
	t.Helper()
	var out []string
	root := filepath.Join(dataDir, "shards")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("listing %s: %v", root, err)
	}
	slices.Sort(out)
	return out
}

// tmpLeftovers lists the *.tmp files under dataDir/tmp.
func tmpLeftovers(t *testing.T, dataDir string) []string {
	t.Helper()
	out, err := filepath.Glob(filepath.Join(dataDir, "tmp", "*.tmp"))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// TestE2EStoreSurvivesKill9 SIGKILLs a lone edge with a --data-dir in the
// middle of concurrent downloads, round after round (six of twelve objects
// a round, so each round meets shard writes of objects not yet stored and
// reads of stored ones). No completed body may ever differ
// from the origin's; after the rounds the index comes back from the files,
// no interrupted write is left behind, no file under a final name is
// damaged (a full scrub pass finds nothing), and once every object has
// been read the edge serves them all, across a clean restart too, without
// asking the origin for a byte.
//
// SHOAL_E2E_KILL_ROUNDS sets the number of rounds (8) for longer soaks.
func TestE2EStoreSurvivesKill9(t *testing.T) {
	shoalBinary(t)
	rounds := 8
	if s := os.Getenv("SHOAL_E2E_KILL_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("SHOAL_E2E_KILL_ROUNDS=%q: want a positive integer", s)
		}
		rounds = n
	}
	rng := rand.New(rand.NewPCG(0x5ba1, uint64(rounds)))
	www, dataDir := t.TempDir(), t.TempDir()
	var objs []object
	for i := range 12 {
		size := 2<<20 + rng.Int64N(4<<20)
		objs = append(objs, writeObject(t, www, fmt.Sprintf("k9/obj-%02d.bin", i), size, uint64(100+i)))
	}
	f := loneFleet(t, www)

	var corrupt float64 // shoal_corrupt_shards_total{where="store"} over every round
	var cut, completed, leftovers int
	for round := range rounds {
		e := startStoreEdge(t, f, fmt.Sprintf("edge-r%d", round), dataDir)
		if tmp := tmpLeftovers(t, dataDir); len(tmp) > 0 {
			t.Fatalf("round %d: %s is ready with interrupted writes still in %s/tmp: %q", round, e.name, dataDir, tmp)
		}
		m := scrape(t, e)
		if got, want := int(m.sum("shoal_store_shards")), len(shardFiles(t, dataDir)); got != want {
			t.Errorf("round %d: shoal_store_shards %d after start, want %d (the shard files on disk)", round, got, want)
		}

		ctx, cancel := context.WithCancel(t.Context())
		c := newClient()
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			results []getResult
		)
		// Six objects, two clients each: the second of a pair shares the
		// first's fills, so the kill meets both readers and writers.
		for _, i := range rng.Perm(len(objs))[:6] {
			for range 2 {
				wg.Go(func() {
					r := tryGet(ctx, c, e.url, objs[i])
					mu.Lock()
					results = append(results, r)
					mu.Unlock()
				})
			}
		}
		delay := time.Duration(20+rng.IntN(281)) * time.Millisecond
		time.Sleep(delay)
		corrupt += scrape(t, e).sum("shoal_corrupt_shards_total", "where=store")
		e.kill(t)
		wg.Wait()
		cancel()
		c.CloseIdleConnections()

		var roundCut int
		for _, r := range results {
			switch {
			case r.err != nil:
				roundCut++ // the edge died under it: a short body is fine, a wrong one is not
			case r.status != http.StatusOK:
				t.Errorf("round %d: GET %s completed with status %d, want 200", round, r.obj.path, r.status)
			case r.n != r.obj.size || r.sum != r.obj.sum:
				t.Errorf("round %d: GET %s completed with %d bytes, sha256 %s; want %d bytes, %s: a wrong body",
					round, r.obj.path, r.n, r.sum, r.obj.size, r.obj.sum)
			default:
				completed++
			}
		}
		cut += roundCut
		tmp := tmpLeftovers(t, dataDir)
		leftovers += len(tmp)
		t.Logf("round %d: SIGKILL after %v: %d of %d downloads cut, %d shard files, %d interrupted writes left in tmp",
			round, delay, roundCut, len(results), len(shardFiles(t, dataDir)), len(tmp))
	}
	t.Logf("%d rounds: %d downloads completed byte-identical, %d cut; %d interrupted writes left behind in all",
		rounds, completed, cut, leftovers)
	if corrupt != 0 {
		t.Errorf("the store found %v damaged shard files during the rounds, want 0: a SIGKILL left a partial file under a final name", corrupt)
	}

	// Plant one more leftover, in case no kill happened to leave one.
	planted := filepath.Join(dataDir, "tmp", "00112233445566778899.tmp")
	if err := os.WriteFile(planted, []byte("half a shard"), 0o644); err != nil {
		t.Fatal(err)
	}
	onDisk := len(shardFiles(t, dataDir))
	e := startStoreEdge(t, f, "edge-after", dataDir, "--scrub-rate", "1GiB")
	if tmp := tmpLeftovers(t, dataDir); len(tmp) > 0 {
		t.Errorf("%s is ready with interrupted writes still in %s/tmp: %q (OpenStore removes them)", e.name, dataDir, tmp)
	}
	// Before any download can rewrite a file: a whole scrub pass must find
	// every file the kills left intact.
	m := waitMetrics(t, e, "a complete scrub pass", func(m promMetrics) bool { return m.sum("shoal_store_scrub_passes_total") >= 1 })
	shards := m.sum("shoal_store_shards")
	t.Logf("%s: %v shards in the index (%d files on disk before start), %v verified by the scrub",
		e.name, shards, onDisk, m.sum("shoal_store_scrubbed_shards_total"))
	if shards <= 0 || int(shards) != onDisk {
		t.Errorf("%s: shoal_store_shards %v after restart, want the %d shard files on disk (> 0): the index did not come back", e.name, shards, onDisk)
	}
	if bad := m.sum("shoal_corrupt_shards_total", "where=store"); bad != 0 {
		t.Errorf("%s: the scrub found %v damaged shard files after the SIGKILLs, want 0", e.name, bad)
	}

	c := newClient()
	for _, o := range objs {
		resp, sum, n := fetch(t, c, http.MethodGet, e.url+o.path, nil)
		checkWhole(t, e.name, o, resp, sum, n)
	}
	before, nreq := f.proxy.bytes.Load(), f.proxy.nreqs()
	for _, o := range objs {
		resp, sum, n := fetch(t, c, http.MethodGet, e.url+o.path, nil)
		checkWhole(t, e.name, o, resp, sum, n)
	}
	if got, reqs := f.proxy.bytes.Load()-before, f.proxy.requests(nreq); got != 0 || len(reqs) != 0 {
		t.Errorf("%s: the second pass over every object cost the origin %d body bytes and %d requests %q, want none",
			e.name, got, len(reqs), reqs)
	}
	// Every own shard is written in the background; wait for all of them
	// (a 1 MiB segment has 6 shards, all on this edge) before stopping.
	var want int
	for _, o := range objs {
		want += int((o.size+e2eSegment-1)/e2eSegment) * 6
	}
	waitMetrics(t, e, fmt.Sprintf("%d shards in the store", want), func(m promMetrics) bool { return int(m.sum("shoal_store_shards")) >= want })
	stopEdge(t, e)

	e = startStoreEdge(t, f, "edge-restarted", dataDir)
	c = newClient()
	before, nreq = f.proxy.bytes.Load(), f.proxy.nreqs()
	for _, o := range objs {
		resp, sum, n := fetch(t, c, http.MethodGet, e.url+o.path, nil)
		checkWhole(t, e.name, o, resp, sum, n)
		if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "hit") {
			t.Errorf("%s: GET %s after a clean restart: Cache-Status %q, want a hit", e.name, o.path, cs)
		}
	}
	if got, reqs := f.proxy.bytes.Load()-before, f.proxy.requests(nreq); got != 0 || len(reqs) != 0 {
		t.Errorf("%s: after a clean restart the origin sent %d body bytes for %d requests %q, want none: records and shards are on disk",
			e.name, got, len(reqs), reqs)
	}
	srv := scrape(t, e).served()
	t.Logf("%s served: memory %s, disk %s, peer %s, origin %s", e.name, mibs(srv["memory"]), mibs(srv["disk"]), mibs(srv["peer"]), mibs(srv["origin"]))
}

// TestE2EStoreCorruptFilesNeverServed damages a stopped edge's shard files
// (a flipped bit in every shard of one object; every other shard of another
// truncated, the last into its header) and leaves a garbage file under a
// valid name and a stray file under a bad one. The restarted edge must
// serve both objects byte-identical, count what it dropped, store good
// shards in their place (a second restart serves both without the origin),
// and its scrub must find the garbage file.
func TestE2EStoreCorruptFilesNeverServed(t *testing.T) {
	shoalBinary(t)
	www, dataDir := t.TempDir(), t.TempDir()
	a := writeObject(t, www, "bitrot/a.bin", 3<<20+5000, 201) // 4 segments
	b := writeObject(t, www, "bitrot/b.bin", 5<<20+777, 202)  // 6 segments
	shardsOf := func(o object) int { return int((o.size+e2eSegment-1)/e2eSegment) * 6 }
	f := loneFleet(t, www)
	c := newClient()

	e := startStoreEdge(t, f, "edge-fill", dataDir)
	resp, sum, n := fetch(t, c, http.MethodGet, e.url+a.path, nil)
	checkWhole(t, e.name, a, resp, sum, n)
	waitMetrics(t, e, "a's shards in the store", func(m promMetrics) bool { return int(m.sum("shoal_store_shards")) >= shardsOf(a) })
	filesA := shardFiles(t, dataDir)
	resp, sum, n = fetch(t, c, http.MethodGet, e.url+b.path, nil)
	checkWhole(t, e.name, b, resp, sum, n)
	waitMetrics(t, e, "b's shards in the store", func(m promMetrics) bool {
		return int(m.sum("shoal_store_shards")) >= shardsOf(a)+shardsOf(b)
	})
	stopEdge(t, e)
	filesB := slices.DeleteFunc(shardFiles(t, dataDir), func(p string) bool { _, found := slices.BinarySearch(filesA, p); return found })
	if len(filesA) != shardsOf(a) || len(filesB) != shardsOf(b) {
		t.Fatalf("%d shard files for a and %d for b, want %d and %d", len(filesA), len(filesB), shardsOf(a), shardsOf(b))
	}

	// a: one bit flipped in the middle of every shard's data.
	for _, p := range filesA {
		buf, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		data := shardHeaderLen + int(binary.BigEndian.Uint16(buf[41:43])) + shardDescHashLen
		if data >= len(buf) {
			t.Fatalf("%s: %d bytes, descriptor ends at %d: not the documented layout", p, len(buf), data)
		}
		buf[data+(len(buf)-data)/2] ^= 0x10
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// b: every other shard file cut in half, the last one inside its header.
	var truncated []string
	for i := 0; i < len(filesB); i += 2 {
		truncated = append(truncated, filesB[i])
	}
	for i, p := range truncated {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		size := st.Size() / 2
		if i == len(truncated)-1 {
			size = shardHeaderLen / 2
		}
		if err := os.Truncate(p, size); err != nil {
			t.Fatal(err)
		}
	}
	headerCut := truncated[len(truncated)-1]
	// A garbage file under the name of a shard of an object nobody has, in
	// an existing directory, and a file whose name is no shard's.
	dir := filepath.Dir(filesA[0])
	garbage := filepath.Join(dir, filepath.Base(dir)+strings.Repeat("e", 62)+"-0-3")
	junk := make([]byte, 4096)
	for i := range junk {
		junk[i] = byte(i * 7)
	}
	stray := filepath.Join(dir, "not-a-shard.txt")
	for _, p := range []string{garbage, stray} {
		if err := os.WriteFile(p, junk, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// No scrub: the read path alone must catch every damaged file.
	e = startStoreEdge(t, f, "edge-damaged", dataDir, "--scrub-rate", "0")
	if exists(stray) {
		t.Errorf("%s is still in the store after a restart; a name that is no shard's is removed on open", stray)
	}
	if exists(headerCut) {
		t.Errorf("%s (cut inside its header) is still in the store after a restart; it is removed on open", headerCut)
	}
	before := f.proxy.bytes.Load()
	for _, o := range []object{a, b} {
		resp, sum, n := fetch(t, c, http.MethodGet, e.url+o.path, nil)
		checkWhole(t, e.name, o, resp, sum, n)
	}
	m := scrape(t, e)
	dropped := m.sum("shoal_corrupt_shards_total", "where=store")
	damaged := len(filesA) + len(truncated) - 1 // the one cut in its header is gone at open
	t.Logf("%s: %v damaged shards dropped (%d damaged files in the store), origin sent %s to replace them; served %v",
		e.name, dropped, damaged, mibs(f.proxy.bytes.Load()-before), m.served())
	// No segment of a or b has k good shards, so every damaged file is
	// read, and each must be caught by the store, not later by the decoder.
	if dropped < float64(damaged) {
		t.Errorf("%s: shoal_corrupt_shards_total{where=\"store\"} %v, want at least %d: every damaged shard file is read, and the store must catch each",
			e.name, dropped, damaged)
	}
	if got := f.proxy.bytes.Load() - before; got < a.size {
		t.Errorf("%s: the origin sent %s, want at least a's %s: no segment of a has one good shard", e.name, mibs(got), mibs(a.size))
	}
	// The good shards are written back in the background.
	want := shardsOf(a) + shardsOf(b) + 1 // and the garbage file, never read
	waitMetrics(t, e, fmt.Sprintf("%d shards in the store", want), func(m promMetrics) bool { return int(m.sum("shoal_store_shards")) >= want })
	stopEdge(t, e)

	// The scrub, fast, finds the garbage file and nothing else; the
	// rewritten shards serve both objects without the origin.
	e = startStoreEdge(t, f, "edge-scrubbed", dataDir, "--scrub-rate", "1GiB")
	before, nreq := f.proxy.bytes.Load(), f.proxy.nreqs()
	for _, o := range []object{a, b} {
		resp, sum, n := fetch(t, c, http.MethodGet, e.url+o.path, nil)
		checkWhole(t, e.name, o, resp, sum, n)
		if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "hit") {
			t.Errorf("%s: GET %s: Cache-Status %q, want a hit from the repaired store", e.name, o.path, cs)
		}
	}
	if got, reqs := f.proxy.bytes.Load()-before, f.proxy.requests(nreq); got != 0 || len(reqs) != 0 {
		t.Errorf("%s: the origin sent %d body bytes for %q after the repair, want nothing: the replaced shards should be on disk", e.name, got, reqs)
	}
	m = waitMetrics(t, e, "a complete scrub pass", func(m promMetrics) bool { return m.sum("shoal_store_scrub_passes_total") >= 1 })
	if got := m.sum("shoal_corrupt_shards_total", "where=store"); got != 1 {
		t.Errorf("%s: the scrub dropped %v shards, want 1 (the garbage file; the rewritten shards are good)", e.name, got)
	}
	if exists(garbage) {
		t.Errorf("%s: the garbage file %s survived a full scrub pass", e.name, garbage)
	}
}

// TestE2EStoreFullDisk gives an edge a 6 MiB tmpfs as --data-dir and reads
// far more through it: every download is served right, the store says it
// stopped storing (metrics, /readyz) while the edge stays ready, and once
// the file system grows, the store's probe finds it writable again and new
// shards are stored. It needs root (mount); CI=true makes a skip a failure.
func TestE2EStoreFullDisk(t *testing.T) {
	shoalBinary(t)
	cannot := func(why string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("full-disk test cannot run on CI: %s", why)
		}
		t.Skipf("full-disk test needs root and tmpfs: %s", why)
	}
	if os.Geteuid() != 0 {
		cannot("not running as root")
	}
	mnt := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=6m", "shoal-e2e", mnt).CombinedOutput(); err != nil {
		cannot(fmt.Sprintf("mount -t tmpfs: %v: %s", err, bytes.TrimSpace(out)))
	}
	// Registered before the edge starts, so it runs after the edge is killed.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount -l %s: %v: %s", mnt, err, bytes.TrimSpace(out))
		}
	})

	www := t.TempDir()
	var objs []object
	for i := range 4 {
		objs = append(objs, writeObject(t, www, fmt.Sprintf("full/o%d.bin", i), 4<<20, uint64(300+i)))
	}
	late := writeObject(t, www, "full/late.bin", 2<<20, 310)
	f := loneFleet(t, www)
	e := startStoreEdge(t, f, "edge-tmpfs", mnt, "--disk-cache", "1GiB")
	c := newClient()
	for _, o := range objs {
		resp, sum, n := fetch(t, c, http.MethodGet, e.url+o.path, nil)
		checkWhole(t, e.name, o, resp, sum, n)
	}
	// Shards are written after the response; the store gives up on the
	// first write the disk refuses.
	m := waitMetrics(t, e, "shoal_store_writable 0", func(m promMetrics) bool { return m.sum("shoal_store_writable") == 0 })
	errs, skipped := m.sum("shoal_store_write_errors_total"), m.sum("shoal_store_writes_skipped_total")
	t.Logf("%s on a full disk: %v shards stored, %v write errors, %v writes skipped", e.name, m.sum("shoal_store_shards"), errs, skipped)
	if errs+skipped <= 0 {
		t.Errorf("%s: shoal_store_write_errors_total %v and shoal_store_writes_skipped_total %v, want one > 0", e.name, errs, skipped)
	}
	resp, body := fetchBytes(t, c, http.MethodGet, e.admin+"/readyz", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "disk full") {
		t.Errorf("%s /readyz on a full disk: %s %q, want 200 mentioning \"disk full\"", e.name, resp.Status, body)
	}
	// Served right again, while not storing.
	resp, sum, n := fetch(t, c, http.MethodGet, e.url+objs[0].path, nil)
	checkWhole(t, e.name, objs[0], resp, sum, n)

	if out, err := exec.Command("mount", "-o", "remount,size=64m", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount -o remount,size=64m %s: %v: %s", mnt, err, bytes.TrimSpace(out))
	}
	start := time.Now()
	m = waitMetrics(t, e, "shoal_store_writable 1 after the disk grew", func(m promMetrics) bool { return m.sum("shoal_store_writable") == 1 })
	had := m.sum("shoal_store_shards")
	t.Logf("%s: storing again %v after the disk grew, with %v shards", e.name, time.Since(start).Round(time.Millisecond), had)
	resp, body = fetchBytes(t, c, http.MethodGet, e.admin+"/readyz", nil, nil)
	if resp.StatusCode != http.StatusOK || strings.Contains(string(body), "disk full") {
		t.Errorf("%s /readyz after the disk grew: %s %q, want 200 without \"disk full\"", e.name, resp.Status, body)
	}
	resp, sum, n = fetch(t, c, http.MethodGet, e.url+late.path, nil)
	checkWhole(t, e.name, late, resp, sum, n)
	want := had + float64(late.size/e2eSegment*6)
	waitMetrics(t, e, fmt.Sprintf("%v shards in the store after a new download", want), func(m promMetrics) bool {
		return m.sum("shoal_store_shards") >= want
	})
}
