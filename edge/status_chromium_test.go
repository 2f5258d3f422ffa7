package edge

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// chromiumPath finds Debian's chromium: skipped without it, except in CI
// (.ci/run installs it), where its absence is a failure.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	const msg = "chromium not found (apt-get install chromium; .ci/run installs it)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// runChromium runs headless chromium on url with extra flags and returns
// its standard output.
func runChromium(t *testing.T, bin, url string, extra ...string) []byte {
	t.Helper()
	tmp := t.TempDir()
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-breakpad", "--disable-crash-reporter", "--disable-dev-shm-usage",
		"--user-data-dir=" + filepath.Join(tmp, "profile"),
		"--virtual-time-budget=8000",
	}
	args = append(append(args, extra...), url)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+tmp, "XDG_CONFIG_HOME="+tmp, "XDG_CACHE_HOME="+tmp)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\nstderr:\n%s", strings.Join(extra, " "), err, stderr.Bytes())
	}
	t.Logf("chromium %s: %v", strings.Join(extra, " "), time.Since(start).Round(time.Millisecond))
	return stdout.Bytes()
}

// domIndex is what the test looks for in the rendered page.
type domIndex struct {
	byID     map[string]*html.Node
	peers    map[string]string // data-addr -> data-state
	hot      map[string]int64  // data-key -> data-bytes
	chart    map[string]int64  // data-source -> data-total of the chart's groups
	rects    map[string]int    // data-source -> rects drawn
	bodyAttr map[string]string
}

func attr(n *html.Node, name string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val, true
		}
	}
	return "", false
}

func textOf(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return strings.TrimSpace(b.String())
}

func indexDOM(t *testing.T, dom []byte) domIndex {
	t.Helper()
	root, err := html.Parse(bytes.NewReader(dom))
	if err != nil {
		t.Fatalf("parsing the dumped DOM: %v", err)
	}
	ix := domIndex{byID: map[string]*html.Node{}, peers: map[string]string{}, hot: map[string]int64{},
		chart: map[string]int64{}, rects: map[string]int{}, bodyAttr: map[string]string{}}
	for n := range root.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		if id, ok := attr(n, "id"); ok {
			ix.byID[id] = n
		}
		if n.Data == "body" {
			for _, a := range n.Attr {
				ix.bodyAttr[a.Key] = a.Val
			}
		}
		if addr, ok := attr(n, "data-addr"); ok && n.Data == "tr" {
			ix.peers[addr], _ = attr(n, "data-state")
		}
		if key, ok := attr(n, "data-key"); ok && n.Data == "tr" {
			v, _ := attr(n, "data-bytes")
			ix.hot[key], _ = strconv.ParseInt(v, 10, 64)
		}
		if src, ok := attr(n, "data-source"); ok && n.Data == "g" {
			v, _ := attr(n, "data-total")
			ix.chart[src], _ = strconv.ParseInt(v, 10, 64)
			for c := range n.ChildNodes() {
				if c.Type == html.ElementNode && c.Data == "rect" {
					ix.rects[src]++
				}
			}
		}
	}
	return ix
}

// TestStatusPageChromium loads the status page of a 3-edge fleet that has
// served an object in headless Chromium and checks the figures it renders.
func TestStatusPageChromium(t *testing.T) {
	bin := chromiumPath(t)
	o := newTestOrigin(t, "public, max-age=3600")
	c := newCluster(t, o, 3, nil)
	e := c.edges[0]
	adm := httptest.NewServer(e.Admin(""))
	t.Cleanup(adm.Close)

	const key, size = "/videos/intro.mp4", 3<<20 + 777
	o.put(t, key, size, 11)
	for range 2 { // from the fleet and the origin, then from memory
		if resp, _ := c.get(0, key); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d", key, resp.StatusCode)
		}
	}
	// Another edge reads it too, so peers have traffic both ways.
	if resp, _ := c.get(1, key); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s via edge 1: status %d", key, resp.StatusCode)
	}
	waitServed(t, e.Edge, 2*size)

	dom := runChromium(t, bin, adm.URL+"/", "--dump-dom")
	out := t.ArtifactDir()
	if err := os.WriteFile(filepath.Join(out, "status.html"), dom, 0o644); err != nil {
		t.Fatal(err)
	}
	ix := indexDOM(t, dom)

	if ix.bodyAttr["data-ready"] != "1" {
		t.Fatalf("the page never rendered status.json (body data-ready=%q); DOM in %s", ix.bodyAttr["data-ready"], out)
	}
	for _, m := range e.Node().Members() {
		state, ok := ix.peers[m]
		if !ok {
			t.Errorf("peers table has no row for member %s: %v", m, ix.peers)
		}
		if m == e.Node().Self() && state != "self" {
			t.Errorf("own row %s is %q, want self", m, state)
		}
	}
	if len(ix.peers) != 3 {
		t.Errorf("peers table has %d rows, want 3: %v", len(ix.peers), ix.peers)
	}
	for _, id := range []string{"offload", "served-total", "self"} {
		n := ix.byID[id]
		if n == nil || textOf(n) == "" || textOf(n) == "—" || textOf(n) == "…" {
			t.Errorf("#%s is empty in the rendered page", id)
		}
	}
	if n := ix.byID["offload"]; n != nil {
		if txt := textOf(n); !strings.HasSuffix(txt, "%") {
			t.Errorf("#offload reads %q, want a percentage", txt)
		}
	}
	if got := textOf(ix.byID["self"]); got != e.Node().Self() {
		t.Errorf("#self reads %q, want %s", got, e.Node().Self())
	}
	if got := ix.hot[key]; got < size {
		t.Errorf("hot objects %v, want %s with at least %d bytes", ix.hot, key, size)
	}
	if len(ix.chart) != 4 {
		t.Errorf("chart has groups for %v, want memory, disk, peer and origin", ix.chart)
	}
	var drawn int64
	for src, n := range ix.chart {
		if n > 0 && ix.rects[src] > 0 {
			drawn += n
		}
	}
	if drawn != 2*size {
		t.Errorf("chart draws %d bytes (%v, rects %v), want %d", drawn, ix.chart, ix.rects, 2*size)
	}

	shot := filepath.Join(out, "status.png")
	runChromium(t, bin, adm.URL+"/", "--screenshot="+shot, "--window-size=1280,900", "--hide-scrollbars")
	png, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 20<<10 {
		t.Errorf("screenshot %s is %d bytes, want a PNG of some substance", shot, len(png))
	}
	t.Logf("screenshot: %s (%d bytes; kept with go test -artifacts)", shot, len(png))

	// Behind a token: the page asks for it, and takes it from #token=.
	locked := httptest.NewServer(e.Admin("s3cret"))
	t.Cleanup(locked.Close)
	ix = indexDOM(t, runChromium(t, bin, locked.URL+"/", "--dump-dom"))
	if _, hidden := attr(ix.byID["auth"], "hidden"); hidden || ix.bodyAttr["data-ready"] == "1" {
		t.Errorf("without the token: the token form is hidden=%v and the page rendered=%q; want the form and no figures", hidden, ix.bodyAttr["data-ready"])
	}
	ix = indexDOM(t, runChromium(t, bin, locked.URL+"/#token=s3cret", "--dump-dom"))
	if ix.bodyAttr["data-ready"] != "1" || ix.hot[key] < size {
		t.Errorf("with #token=: rendered=%q, hot %v; want the figures", ix.bodyAttr["data-ready"], ix.hot)
	}
}
