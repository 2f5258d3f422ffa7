package edge

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestStatusHistory(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	reading := func(i int) counters {
		c := counters{t: t0.Add(time.Duration(i) * statusInterval)}
		c.served = [numSources]int64{int64(i) * 10, int64(i) * 20, int64(i) * 30, int64(i) * 40}
		c.originBytes, c.requests = int64(i)*5, int64(i)
		return c
	}
	tests := []struct {
		name     string
		readings int
		wantLen  int
		wantT0   int64 // end of the first interval
	}{
		{"empty", 0, 0, 0},
		{"one reading: only the running interval", 1, 1, t0.Add(90 * time.Second).Unix()},
		{"some", 10, 10, t0.Add(statusInterval).Unix()},
		{"full", statusReadings, statusReadings, t0.Add(statusInterval).Unix()},
		{"wrapped", statusReadings + 37, statusReadings, t0.Add(38 * statusInterval).Unix()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h history
			for i := range tt.readings {
				h.add(reading(i))
			}
			now := reading(tt.readings)
			now.t = now.t.Add(-3 * time.Second) // 2 s into the running interval
			if tt.readings == 1 {
				now.t = t0.Add(90 * time.Second)
			}
			s := h.series(now)
			if len(s) != tt.wantLen {
				t.Fatalf("got %d points, want %d", len(s), tt.wantLen)
			}
			if len(s) == 0 {
				return
			}
			if s[0].T != tt.wantT0 {
				t.Errorf("first point ends at %d, want %d", s[0].T, tt.wantT0)
			}
			for i, p := range s[:len(s)-1] {
				want := statusPoint{T: p.T, Seconds: 5, Memory: 10, Disk: 20, Peer: 30, Origin: 40, OriginBytes: 5, Requests: 1}
				if p != want {
					t.Fatalf("point %d: got %+v, want %+v", i, p, want)
				}
				if i > 0 && p.T != s[i-1].T+5 {
					t.Fatalf("point %d ends at %d, want %d", i, p.T, s[i-1].T+5)
				}
			}
			if last := s[len(s)-1]; !last.Partial || last.T != now.t.Unix() {
				t.Errorf("last point %+v, want the running interval ending at %d", last, now.t.Unix())
			}
		})
	}

	// A counter that goes down (it cannot, but) gives no negative bytes.
	var h history
	h.add(reading(5))
	if p := h.series(reading(4))[0]; p.Memory != 0 || p.Origin != 0 {
		t.Errorf("decreasing counters gave %+v, want zeros", p)
	}
}

// waitServed waits until e has counted want body bytes served: the client
// can read the last bytes a moment before the edge counts them.
func waitServed(t *testing.T, e *Edge, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int64
		for _, v := range e.Stats().Served {
			n += v
		}
		if n >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge counted %d bytes served, want %d", n, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStatusRoutes(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	c := newCluster(t, o, 1, nil)
	adm := httptest.NewServer(c.edges[0].Admin("s3cret"))
	t.Cleanup(adm.Close)
	tests := []struct {
		path, auth  string
		wantCode    int
		wantType    string
		wantCSP     bool
		wantContain string
	}{
		{"/", "", 200, "text/html; charset=utf-8", true, `<svg id="chart"`},
		{"/status.js", "", 200, "text/javascript; charset=utf-8", true, "status.json"},
		{"/status.css", "", 200, "text/css; charset=utf-8", true, "#chart"},
		{"/status.json", "", 401, "", false, ""},
		{"/status.json", "Bearer wrong", 401, "", false, ""},
		{"/status.json", "Bearer s3cret", 200, "application/json", false, `"series"`},
		{"/metrics", "", 401, "", false, ""},
		{"/healthz", "", 200, "", false, "ok"},
		{"/nothing-here", "", 404, "", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path+" "+tt.auth, func(t *testing.T) {
			req, _ := http.NewRequest("GET", adm.URL+tt.path, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantCode)
			}
			if tt.wantType != "" && resp.Header.Get("Content-Type") != tt.wantType {
				t.Errorf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), tt.wantType)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); tt.wantCSP && (!strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe")) {
				t.Errorf("Content-Security-Policy %q, want script-src 'self' and nothing unsafe", csp)
			}
			if !strings.Contains(string(body), tt.wantContain) {
				t.Errorf("body does not contain %q", tt.wantContain)
			}
		})
	}

	// The page loads nothing from elsewhere.
	for _, name := range []string{"status.html", "status.js", "status.css"} {
		b, err := statusFiles.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		// The SVG namespace is a name, not a fetch.
		src := strings.ReplaceAll(string(b), "http://www.w3.org/2000/svg", "")
		for _, bad := range []string{"http://", "https://", "//cdn", "<script>", "style=\"", "@import"} {
			if strings.Contains(src, bad) {
				t.Errorf("%s contains %q: the page must be self-contained, without inline script or style attributes", name, bad)
			}
		}
	}
}

// lookup returns the value at a dotted path of a decoded JSON document.
func lookup(doc any, path string) (any, bool) {
	v := doc
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

func TestStatusJSON(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	c := newCluster(t, o, 3, nil)
	e := c.edges[0]
	adm := httptest.NewServer(e.Admin(""))
	t.Cleanup(adm.Close)

	const key, size = "/status/object.bin", 1<<20 + 4321
	want := o.put(t, key, size, 7)
	for range 2 { // the second time from memory
		resp, body := c.get(0, key)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d", key, resp.StatusCode)
		}
		sameBytes(t, key, body, want)
	}
	waitServed(t, e.Edge, 2*size)

	resp, err := http.Get(adm.URL + "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	t.Logf("status.json: %s", raw)

	st := e.Stats()
	var served int64
	for _, v := range st.Served {
		served += v
	}
	offload := 1 - float64(st.OriginBytes)/float64(served)
	num := func(v int64) any { return float64(v) }
	tests := []struct {
		path string
		want any // nil: present, any value
	}{
		{"node.self", e.Node().Self()},
		{"node.state", "ready"},
		{"node.now", nil},
		{"node.uptime_seconds", nil},
		{"node.members", num(3)},
		{"node.segment_size", num(testLayout.SegmentSize)},
		{"node.k", num(4)},
		{"node.m", num(2)},
		{"node.memory.bytes", nil},
		{"node.memory.limit", num(64 << 20)},
		{"node.memory.segments", nil},
		{"node.store.bytes", nil},
		{"node.store.limit", num(64 << 20)},
		{"node.store.shards", nil},
		{"node.store.writable", true},
		{"totals.served.memory", num(st.Served[srcMemory])},
		{"totals.served.disk", num(st.Served[srcDisk])},
		{"totals.served.peer", num(st.Served[srcPeer])},
		{"totals.served.origin", num(st.Served[srcOrigin])},
		{"totals.served_total", num(2 * size)},
		{"totals.origin_bytes", num(st.OriginBytes)},
		{"totals.origin_requests", num(st.OriginRequests)},
		{"totals.requests", nil},
		{"totals.offload", offload},
	}
	for _, tt := range tests {
		got, ok := lookup(doc, tt.path)
		switch {
		case !ok:
			t.Errorf("%s: missing", tt.path)
		case tt.want != nil && got != tt.want:
			t.Errorf("%s: got %v (%T), want %v (%T)", tt.path, got, got, tt.want, tt.want)
		}
	}
	if st.Served[srcMemory] < size {
		t.Errorf("served %d bytes from memory, want the second read (%d bytes) from there", st.Served[srcMemory], size)
	}

	// The typed view for the lists.
	var d statusDoc
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	var addrs []string
	selves, connected := 0, 0
	for _, p := range d.Peers {
		addrs = append(addrs, p.Addr)
		if p.Self {
			selves++
			if p.Addr != e.Node().Self() {
				t.Errorf("peer %s is marked self, want %s", p.Addr, e.Node().Self())
			}
		}
		if p.Connected {
			connected++
			if p.RTTMillis < 0 {
				t.Errorf("peer %s: rtt_ms %v", p.Addr, p.RTTMillis)
			}
		}
		if p.Zone != "" {
			t.Errorf("peer %s: zone %q, want empty", p.Addr, p.Zone)
		}
	}
	if !slices.Equal(addrs, e.Node().Members()) || selves != 1 {
		t.Errorf("peers %v (%d self), want %v with one self", addrs, selves, e.Node().Members())
	}
	if connected == 0 {
		t.Errorf("no peer connected after reading shards from them: %+v", d.Peers)
	}
	for _, p := range d.Peers {
		if _, ok := peerMap(t, raw, p.Addr)["zone"]; !ok {
			t.Errorf("peer %s: no zone field", p.Addr)
		}
	}

	if len(d.Hot) == 0 || d.Hot[0].Key != key || d.Hot[0].Bytes < size {
		t.Errorf("hot %+v, want %s first with at least %d bytes", d.Hot, key, size)
	}

	// Everything served after Admin was made is in the series.
	var inSeries, originInSeries int64
	for _, p := range d.Series {
		inSeries += p.Memory + p.Disk + p.Peer + p.Origin
		originInSeries += p.OriginBytes
	}
	if inSeries != 2*size || originInSeries != st.OriginBytes {
		t.Errorf("series sums to %d bytes served and %d from the origin, want %d and %d", inSeries, originInSeries, 2*size, st.OriginBytes)
	}
	if last := d.Series[len(d.Series)-1]; !last.Partial {
		t.Errorf("last point %+v, want the running interval", last)
	}
	if math.IsNaN(offload) || offload > 1 {
		t.Errorf("offload %v", offload)
	}
}

// peerMap returns the raw JSON object of the peer with addr.
func peerMap(t *testing.T, raw []byte, addr string) map[string]any {
	t.Helper()
	var doc struct {
		Peers []map[string]any `json:"peers"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range doc.Peers {
		if p["addr"] == addr {
			return p
		}
	}
	t.Fatalf("no peer %s in %s", addr, raw)
	return nil
}

func TestStatusOffloadNullBeforeServing(t *testing.T) {
	o := newTestOrigin(t, "public, max-age=3600")
	c := newCluster(t, o, 1, nil)
	rec := httptest.NewRecorder()
	c.edges[0].Admin("").ServeHTTP(rec, httptest.NewRequest("GET", "/status.json", nil))
	if !strings.Contains(rec.Body.String(), `"offload":null`) {
		t.Errorf("status.json before serving anything: %s, want \"offload\":null", rec.Body)
	}
	var d statusDoc
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	if d.Hot == nil || len(d.Hot) != 0 {
		t.Errorf("hot %#v, want an empty list", d.Hot)
	}
	if len(d.Series) != 1 || !d.Series[0].Partial {
		t.Errorf("series %+v, want the running interval only", d.Series)
	}
}
