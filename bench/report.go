package bench

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Report is the outcome of a run: every raw figure, as written to the JSON
// file, from which the Markdown table and the plots are made.
type Report struct {
	Scenario string    `json:"scenario"`
	Started  time.Time `json:"started"`
	// Seconds is the run's wall-clock duration.
	Seconds float64 `json:"seconds"`
	Machine Machine `json:"machine"`
	// ShoalVersion is what the measured binary's `version` says.
	ShoalVersion string `json:"shoal_version"`
	// NginxVersion is the nginx baseline's version, empty when it did not run.
	NginxVersion string `json:"nginx_version,omitempty"`
	// NginxSlice is the nginx baseline's slice size in bytes; 0 when it
	// cached whole objects.
	NginxSlice int64 `json:"nginx_slice,omitempty"`
	// BitTorrent describes the BitTorrent baseline, nil when it did not run.
	BitTorrent *BitTorrentInfo `json:"bittorrent,omitempty"`
	// EdgeFlags are the extra flags every edge got.
	EdgeFlags []string `json:"edge_flags,omitempty"`
	// Release is the flash crowd's object (flash, faults).
	Release Release `json:"release,omitzero"`
	// Workload describes the mix's or media's catalog and requests.
	Workload *Workload `json:"workload,omitempty"`
	// Faults describes the faults scenario's faults.
	Faults *FaultPlan `json:"faults,omitempty"`
	// Soak holds the soak scenario's figures and checks.
	Soak *SoakResult `json:"soak,omitempty"`
	// Network describes the emulated network (NetNS), nil on loopback.
	Network *Network `json:"network,omitempty"`
	// ClientsPerSite is the number of clients at each site.
	ClientsPerSite int    `json:"clients_per_site"`
	Seed           uint64 `json:"seed"`
	// Runs holds one entry per fleet size.
	Runs []FleetRun `json:"runs"`
}

// Release is the object of the flash crowd.
type Release struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// BitTorrentInfo describes the BitTorrent baseline's setting.
type BitTorrentInfo struct {
	// Aria2 is aria2c's version line.
	Aria2 string `json:"aria2"`
	// PieceSize is the torrent's piece size in bytes.
	PieceSize int64 `json:"piece_size"`
}

// Workload describes the catalog and requests of the mix or media.
type Workload struct {
	// Objects is the number of objects the origin serves (media: every
	// segment of every video), CatalogBytes their total size.
	Objects      int   `json:"objects"`
	CatalogBytes int64 `json:"catalog_bytes"`
	// Zipf is the popularity exponent α.
	Zipf float64 `json:"zipf"`
	// Requests is the requests each client makes in turn.
	Requests int `json:"requests_per_client"`
	// LargestObject and RangeShare are the mix's.
	LargestObject int64   `json:"largest_object,omitempty"`
	RangeShare    float64 `json:"range_share,omitempty"`
	// Videos, Segments and SeekShare are media's.
	Videos    int     `json:"videos,omitempty"`
	Segments  int     `json:"segments_per_video,omitempty"`
	SeekShare float64 `json:"seek_share,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model,omitempty"`
	MemTotal  int64  `json:"mem_total,omitempty"`
	Kernel    string `json:"kernel,omitempty"`
	GoVersion string `json:"go_version"`
	// LoadBefore and LoadAfter are the 1, 5 and 15 minute load averages at
	// the start and the end of the run: other work on the machine shows
	// here.
	LoadBefore [3]float64 `json:"load_before"`
	LoadAfter  [3]float64 `json:"load_after"`
}

// FleetRun is every system at one fleet size.
type FleetRun struct {
	Sites   int            `json:"sites"`
	Systems []SystemResult `json:"systems"`
	// Bounds are the lower bounds of the distribution time on the
	// emulated network (NetNS, one object), nil otherwise.
	Bounds *Bounds `json:"bounds,omitempty"`
}

// Network is the emulated network's rates, in bits per second.
type Network struct {
	OriginUplink float64 `json:"origin_uplink_bps"`
	EdgeUplink   float64 `json:"edge_uplink_bps"`
	EdgeDownlink float64 `json:"edge_downlink_bps"`
	// PeerRTTSeconds is the round trip between sites, 0 for none.
	PeerRTTSeconds float64 `json:"peer_rtt_s,omitempty"`
}

// SystemResult holds one system's figures at one fleet size. Byte figures
// are bytes, times seconds, rates bytes per second.
type SystemResult struct {
	System string `json:"system"`
	// Skipped says why the system did not run; it has no figures then.
	Skipped        string `json:"skipped,omitempty"`
	Sites          int    `json:"sites"`
	ClientsPerSite int    `json:"clients_per_site"`
	// Load is the machine's load average when the crowd started (the
	// harness's own processes of the previous system count in it).
	Load [3]float64 `json:"load"`

	// Requests is the number of requests the clients made.
	Requests int `json:"requests"`
	// UniqueBytes is the size of what the clients asked for, each byte
	// counted once: the release; for the mix and media, the union of the
	// ranges asked for of every object.
	UniqueBytes int64 `json:"unique_bytes"`
	// DeliveredBytes is what all clients received.
	DeliveredBytes int64 `json:"delivered_bytes"`
	// OriginBytes and OriginRequests are the origin's response body bytes
	// and the requests it got during the crowd, counted by the proxy in
	// front of it.
	OriginBytes    int64 `json:"origin_bytes"`
	OriginRequests int64 `json:"origin_requests"`
	// OriginRatio is OriginBytes ÷ UniqueBytes: 1 is each byte once.
	OriginRatio float64 `json:"origin_ratio"`
	// OriginWireBytes is what the origin's namespace sent on its link
	// during the crowd, and PeerWireBytes what the sites sent one another
	// (their uplink class to peers), in bytes of IP packets, headers
	// included (NetNS only). For bittorrent, whose seeder has no proxy
	// in front of it to count bodies, OriginBytes is OriginWireBytes.
	OriginWireBytes int64 `json:"origin_wire_bytes,omitempty"`
	PeerWireBytes   int64 `json:"peer_wire_bytes,omitempty"`
	// PeerWireBySite is PeerWireBytes site by site: what each uplink
	// carried (the busiest bounds the crowd's time).
	PeerWireBySite []int64 `json:"peer_wire_by_site,omitempty"`
	// ServedBySource is the edges' shoal_served_bytes_total by source,
	// summed over the fleet (Shoal systems only).
	ServedBySource map[string]int64 `json:"served_by_source,omitempty"`
	// EdgeOriginBytes is the edges' own shoal_origin_bytes_total, to
	// compare with OriginBytes (Shoal systems only).
	EdgeOriginBytes int64 `json:"edge_origin_bytes,omitempty"`

	// Faults are the faults injected (faults scenario), and Failovers the
	// times a client moved to another site after its own failed.
	Faults    []FaultEvent `json:"faults,omitempty"`
	Failovers int64        `json:"failovers,omitempty"`

	// FleetSeconds is the time from the crowd's start until the last client
	// had its last byte.
	FleetSeconds float64 `json:"fleet_seconds"`
	// AggregateRate is DeliveredBytes ÷ FleetSeconds.
	AggregateRate float64 `json:"aggregate_rate"`
	// ClientRate summarizes each client's bytes ÷ the time from its first
	// request's start to its last byte.
	ClientRate Summary `json:"client_rate"`
	// TTFB and Download summarize each request's time to its first body
	// byte and to its last.
	TTFB     Summary `json:"ttfb"`
	Download Summary `json:"download"`
	// Clients is every request of every client, each body verified:
	// whole objects against their SHA-256, ranges byte by byte against
	// the origin's file.
	Clients []ClientResult `json:"clients"`

	// TierCPUSeconds is the CPU time of the serving tier (the edges, the
	// nginx processes, or for direct the origin) from the crowd's start
	// until it was quiet again; CPUSecondsPerGB divides it by the GB (10⁹
	// bytes) delivered. OriginCPUSeconds is the origin's own.
	TierCPUSeconds   float64 `json:"tier_cpu_seconds"`
	CPUSecondsPerGB  float64 `json:"cpu_seconds_per_gb"`
	OriginCPUSeconds float64 `json:"origin_cpu_seconds"`
	// HarnessCPUSeconds is this process's: the clients (which hash every
	// body) and the counting proxy.
	HarnessCPUSeconds float64 `json:"harness_cpu_seconds"`
	// OtherCPU is the CPU the rest of the machine used meanwhile (other
	// processes, and kernel work not charged to these), in cores: a run
	// that shared the machine shows here.
	OtherCPU float64 `json:"other_cpu_cores"`
	// SettleSeconds is how long after the last client the tier took to be
	// quiet (background shard pushes, cache writes).
	SettleSeconds float64 `json:"settle_seconds"`
	// PeakRSS is each site's peak resident set (VmHWM; for nginx the sum
	// over its processes; for direct the origin's).
	PeakRSS []int64 `json:"peak_rss"`

	// HedgedRequests and ShardRequests are the fleet's
	// shoal_hedged_requests_total and shoal_peer_requests_total{op="get_shard"};
	// HedgeRatio is their quotient, the share of shard requests that were
	// extra.
	HedgedRequests int64   `json:"hedged_requests"`
	ShardRequests  int64   `json:"shard_requests"`
	HedgeRatio     float64 `json:"hedge_ratio"`
}

// machineInfo describes this machine, as far as /proc tells.
func machineInfo(p *procReader) Machine {
	m := Machine{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), LoadBefore: p.loadAvg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemTotal, _ = parseStatusKB(b, "MemTotal")
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// Markdown renders the report as Markdown: the setting, then per fleet
// size a table of origin egress and throughput, one of latency, and one of
// bytes by source; with several fleet sizes, a summary across them.
func (r *Report) Markdown() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("## %s\n\n", r.heading())
	switch r.Scenario {
	case ScenarioMix:
		w("Each client makes its requests one after the other, each for an object drawn by Zipf popularity (ranks shuffled, so size and popularity are independent), ")
		w("a share of them for a byte range; whole bodies are verified against their SHA-256, ranges byte by byte against the origin's file. ")
		w("*Unique* is the union of the bytes asked for. ")
	case ScenarioMedia:
		w("Each viewer arrives within the first second, picks a video by Zipf popularity, and fetches its segments in order (as fast as it can, as a player filling its buffer), ")
		w("sometimes seeking to another segment; every segment is verified against its SHA-256. *Unique* is the union of the segments asked for. ")
	case ScenarioSoak:
		w("Sustained load: each client makes the mix's requests one after the other until the time is up, while one edge at a time is killed (SIGKILL) and restarted with the same flags and data directory; ")
		w("whole bodies are verified against their SHA-256, ranges byte by byte. Each life of an edge is checked: its last sample of goroutines, resident memory and open files against its first sample after the warm-up. ")
	case ScenarioFaults:
		w("The flash crowd while sites fail: sites are killed (SIGKILL of the process group) and another is slowed (SIGSTOP/SIGCONT bursts) at set shares of the bytes delivered. ")
		w("A client whose site dies resumes at the next site with a Range, and its whole body is verified against the release's SHA-256: a run with one wrong byte fails. ")
	default:
		w("Every client asks its site for the same new release at the same moment; every body is verified against its SHA-256. ")
	}
	if n := r.Network; n != nil {
		w("Every process runs in a network namespace of its own on an emulated network: origin uplink %s, each site's uplink to its peers %s, each site's downlink %s (tbf and htb); ",
			bitString(n.OriginUplink), bitString(n.EdgeUplink), bitString(n.EdgeDownlink))
		if n.PeerRTTSeconds > 0 {
			w("round trip between sites %s (NFQUEUE delay of what each site receives from the others); ", secString(n.PeerRTTSeconds))
		}
		w("a site's clients are on its LAN (unshaped). Times are distribution times over these links, next to their lower bounds. ")
		w("\"Other CPU\" is what the rest of the machine used meanwhile.\n\n")
	} else {
		w("Origin, sites, counting proxy and clients share this machine's CPUs over loopback, where the origin's bandwidth costs nothing: ")
		w("times here measure CPU cost, not distribution over a network. \"Other CPU\" is what the rest of the machine used meanwhile.\n\n")
	}
	w("- machine: %d CPUs (%s), %s RAM, Linux %s, %s\n", r.Machine.CPUs, orDash(r.Machine.CPUModel), sizeString(r.Machine.MemTotal), orDash(r.Machine.Kernel), r.Machine.GoVersion)
	w("- load average before / after: %s / %s\n", loadString(r.Machine.LoadBefore), loadString(r.Machine.LoadAfter))
	w("- shoal: %s; edge defaults", r.ShoalVersion)
	if len(r.EdgeFlags) > 0 {
		w(" with `%s`", strings.Join(r.EdgeFlags, " "))
	}
	w("\n")
	if r.NginxVersion != "" {
		slice := "whole objects"
		if r.NginxSlice > 0 {
			slice = "slice " + sizeString(r.NginxSlice)
		}
		w("- nginx: %s, proxy_cache_lock on, sendfile on, %s\n", r.NginxVersion, slice)
	}
	if bt := r.BitTorrent; bt != nil {
		w("- bittorrent: %s, one leecher per client in its site's namespace, one seeder with the release in the origin's, opentracker in the hub's; ", bt.Aria2)
		w("torrent by mktorrent, pieces of %s; DHT, peer exchange and local peer discovery off; leechers seed until all are done. ", sizeString(bt.PieceSize))
		w("Its *origin egress* is the origin namespace's link bytes (headers included; the others' is response bodies at the counting proxy: compare the wire columns), ")
		w("its *TTFB* the time until aria2c's RPC reports its first bytes (polled every %s), its *download* time the --on-bt-download-complete hook's, ", secString(btPoll.Seconds()))
		w("its CPU that of every aria2c (seeder included) and opentracker; every copy is checked against the release's SHA-256\n")
	}
	w("- started %s, took %.0f s\n\n", r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Seconds)

	if r.Soak != nil {
		r.soakMarkdown(w)
	}
	for _, run := range r.Runs {
		w("### %d sites", run.Sites)
		if s, ok := run.first(); ok && r.Release.Size == 0 {
			w(": %d requests, %s delivered by each system, %s unique", s.Requests, sizeString(s.DeliveredBytes), sizeString(s.UniqueBytes))
		}
		w("\n\n")
		w("| system | origin egress | ÷ unique | fleet done | aggregate | per client p50 | CPU s/GB | peak RSS/site (max) | hedged | other CPU (cores) |\n")
		w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, s := range run.Systems {
			if s.Skipped != "" {
				w("| %s | skipped: %s |||||||||\n", s.System, s.Skipped)
				continue
			}
			hedged := "–"
			if s.ShardRequests > 0 {
				hedged = fmt.Sprintf("%.1f%%", 100*s.HedgeRatio)
			}
			w("| %s | %s | %.2f× | %.2f s | %s | %s | %.2f | %s | %s | %.2f |\n", s.System, sizeString(s.OriginBytes), s.OriginRatio,
				s.FleetSeconds, rateString(s.AggregateRate), rateString(s.ClientRate.P50), s.CPUSecondsPerGB,
				sizeString(slices.Max(append([]int64{0}, s.PeakRSS...))), hedged, s.OtherCPU)
		}
		w("\n| system | TTFB p50 | p90 | p99 | max | download p50 | p90 | p99 | max |\n")
		w("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, s := range run.Systems {
			if s.Skipped != "" {
				continue
			}
			w("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s.System,
				secString(s.TTFB.P50), secString(s.TTFB.P90), secString(s.TTFB.P99), secString(s.TTFB.Max),
				secString(s.Download.P50), secString(s.Download.P90), secString(s.Download.P99), secString(s.Download.Max))
		}
		if run.Bounds != nil {
			boundTable(w, run)
		}
		if r.Scenario == ScenarioMix {
			r.sizeClassTable(w, run)
		}
		if r.Faults != nil {
			r.faultTable(w, run)
		}
		var edges []SystemResult
		for _, s := range run.Systems {
			if s.ServedBySource != nil {
				edges = append(edges, s)
			}
		}
		if len(edges) > 0 {
			w("\n| system | served from memory | own shards | peers | origin | origin (edges' count) |\n")
			w("|---|---:|---:|---:|---:|---:|\n")
			for _, s := range edges {
				src := s.ServedBySource
				w("| %s | %s | %s | %s | %s | %s |\n", s.System, sizeString(src["memory"]), sizeString(src["disk"]),
					sizeString(src["peer"]), sizeString(src["origin"]), sizeString(s.EdgeOriginBytes))
			}
		}
		w("\n")
	}
	if len(r.Runs) > 1 {
		w("### Origin egress ÷ unique bytes, and time until the last client is done, by fleet size\n\n")
		w("| system |")
		for _, run := range r.Runs {
			w(" %d sites |", run.Sites)
		}
		w("\n|---|")
		for range r.Runs {
			w("---:|")
		}
		w("\n")
		for _, name := range r.systemNames() {
			w("| %s |", name)
			for _, run := range r.Runs {
				if s, ok := run.system(name); ok && s.Skipped == "" {
					w(" %.2f× in %.2f s |", s.OriginRatio, s.FleetSeconds)
				} else {
					w(" – |")
				}
			}
			w("\n")
		}
		w("\n")
	}
	return b.String()
}

// heading is the report's title: the scenario and its workload.
func (r *Report) heading() string {
	per := plural(r.ClientsPerSite, "client") + " per site"
	switch wl := r.Workload; {
	case r.Scenario == ScenarioMix && wl != nil:
		return fmt.Sprintf("CDN mix: %d objects (%s, largest %s), Zipf α %.2f, %.0f%% ranged, %s × %d requests, seed %d",
			wl.Objects, sizeString(wl.CatalogBytes), sizeString(wl.LargestObject), wl.Zipf, 100*wl.RangeShare, per, wl.Requests, r.Seed)
	case r.Scenario == ScenarioMedia && wl != nil:
		return fmt.Sprintf("Media: %d videos × %d segments of 2–6 MiB (%s), Zipf α %.2f, %s × %d segments, %.0f%% seeks, seed %d",
			wl.Videos, wl.Segments, sizeString(wl.CatalogBytes), wl.Zipf, plural(r.ClientsPerSite, "viewer")+" per site", wl.Requests, 100*wl.SeekShare, r.Seed)
	case r.Scenario == ScenarioSoak && wl != nil && r.Soak != nil:
		return fmt.Sprintf("Soak: %s of load, %d objects (%s, largest %s), Zipf α %.2f, %.0f%% ranged, %s, seed %d",
			time.Duration(r.Soak.Seconds*float64(time.Second)).Round(time.Second), wl.Objects, sizeString(wl.CatalogBytes), sizeString(wl.LargestObject), wl.Zipf, 100*wl.RangeShare, per, r.Seed)
	case r.Scenario == ScenarioFaults && r.Faults != nil:
		return fmt.Sprintf("Faults: %s release, %s, %d sites killed and %d slowed mid-crowd, seed %d",
			sizeString(r.Release.Size), per, r.Faults.Kill, r.Faults.Slow, r.Seed)
	}
	return fmt.Sprintf("Flash crowd: %s release, %s, seed %d", sizeString(r.Release.Size), per, r.Seed)
}

// label is a short name of the run for the plots' titles.
func (r *Report) label() string {
	switch r.Scenario {
	case ScenarioMix:
		if r.Workload != nil {
			return fmt.Sprintf("CDN mix, %d objects", r.Workload.Objects)
		}
	case ScenarioMedia:
		if r.Workload != nil {
			return fmt.Sprintf("Media, %d videos", r.Workload.Videos)
		}
	case ScenarioFaults:
		return fmt.Sprintf("Faults, %s release", sizeString(r.Release.Size))
	}
	return fmt.Sprintf("Flash crowd, %s release", sizeString(r.Release.Size))
}

// sizeClassTable writes the mix's latency for small and large bodies
// apart: a CDN's small objects are judged by their first byte, its large
// ones by their throughput.
func (r *Report) sizeClassTable(w func(string, ...any), run FleetRun) {
	w("\n| system | bodies ≤ 1 MiB: n | TTFB p50 | p99 | download p99 | bodies > 1 MiB: n | TTFB p50 | p99 | download p50 | p99 |\n")
	w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range run.Systems {
		if s.Skipped != "" {
			continue
		}
		var st, sd, lt, ld []float64
		for _, c := range s.Clients {
			if c.Bytes <= 1<<20 {
				st, sd = append(st, c.TTFB), append(sd, c.Seconds)
			} else {
				lt, ld = append(lt, c.TTFB), append(ld, c.Seconds)
			}
		}
		a, b, c, d := Summarize(st), Summarize(sd), Summarize(lt), Summarize(ld)
		w("| %s | %d | %s | %s | %s | %d | %s | %s | %s | %s |\n", s.System, a.N, secOrDash(a.N, a.P50), secOrDash(a.N, a.P99), secOrDash(b.N, b.P99),
			c.N, secOrDash(c.N, c.P50), secOrDash(c.N, c.P99), secOrDash(d.N, d.P50), secOrDash(d.N, d.P99))
	}
}

// boundTable writes each system's distribution time next to the lower
// bound of its architecture on the emulated network.
func boundTable(w func(string, ...any), run FleetRun) {
	b := run.Bounds
	w("\nLower bounds of the time until every site has the release: peer-to-peer (Kumar–Ross, max(F/u_s, F/d_min, N·F/(u_s+Σu_i))) %s; ", secString(b.KumarRoss))
	w("every site from the origin (max(N·F/u_s, F/d_min)) %s; every client from the origin %s.\n\n", secString(b.PerSite), secString(b.Direct))
	w("| system | fleet done | its bound | ÷ bound | ÷ Kumar–Ross bound | origin link bytes | ÷ unique | bytes between sites | busiest uplink |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range run.Systems {
		if s.Skipped != "" {
			continue
		}
		wire := 0.0
		if s.UniqueBytes > 0 {
			wire = float64(s.OriginWireBytes) / float64(s.UniqueBytes)
		}
		busiest := "–"
		if len(s.PeerWireBySite) > 0 {
			i := 0
			for j, n := range s.PeerWireBySite {
				if n > s.PeerWireBySite[i] {
					i = j
				}
			}
			busiest = fmt.Sprintf("%s (site %d)", sizeString(s.PeerWireBySite[i]), i)
		}
		w("| %s | %s | %s | %.2f× | %.2f× | %s | %.2f× | %s | %s |\n", s.System, secString(s.FleetSeconds), secString(b.of(s.System)), s.FleetSeconds/b.of(s.System), s.FleetSeconds/b.KumarRoss,
			sizeString(s.OriginWireBytes), wire, sizeString(s.PeerWireBytes), busiest)
	}
}

// bitString formats bits per second as tc and people write them.
func bitString(bps float64) string {
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%g Gbit/s", bps/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%g Mbit/s", bps/1e6)
	}
	return fmt.Sprintf("%g kbit/s", bps/1e3)
}

// faultTable writes what the faults scenario did to each system.
func (r *Report) faultTable(w func(string, ...any), run FleetRun) {
	w("\n| system | faults: site, action, when (share of bytes delivered) | failovers (resumed with a Range) | wrong bytes |\n")
	w("|---|---|---:|---:|\n")
	for _, s := range run.Systems {
		if s.Skipped != "" {
			continue
		}
		var fs []string
		for _, f := range s.Faults {
			fs = append(fs, fmt.Sprintf("%d %s at %s (%.0f%%)", f.Site, f.Action, secString(f.Seconds), 100*f.Share))
		}
		what := strings.Join(fs, "; ")
		if what == "" {
			what = "none: no site process to fail"
		}
		w("| %s | %s | %d | 0 of %s, every body verified |\n", s.System, what, s.Failovers, sizeString(s.DeliveredBytes))
	}
}

func secOrDash(n int, v float64) string {
	if n == 0 {
		return "–"
	}
	return secString(v)
}

// first returns the run's first system that ran.
func (run FleetRun) first() (SystemResult, bool) {
	for _, s := range run.Systems {
		if s.Skipped == "" {
			return s, true
		}
	}
	return SystemResult{}, false
}

// systemNames lists the systems of the report in the order they ran.
func (r *Report) systemNames() []string {
	var names []string
	for _, run := range r.Runs {
		for _, s := range run.Systems {
			if !slices.Contains(names, s.System) {
				names = append(names, s.System)
			}
		}
	}
	return names
}

func (run FleetRun) system(name string) (SystemResult, bool) {
	for _, s := range run.Systems {
		if s.System == name {
			return s, true
		}
	}
	return SystemResult{}, false
}

// sizeString formats a byte count in binary units.
func sizeString(n int64) string {
	switch f := float64(n); {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", f/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", f/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", f/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// rateString formats bytes per second as MB/s (10⁶), as the README's
// other figures are.
func rateString(bps float64) string { return fmt.Sprintf("%.0f MB/s", bps/1e6) }

// secString formats seconds, as milliseconds below one.
func secString(s float64) string {
	switch {
	case math.IsNaN(s):
		return "–"
	case s < 1:
		return fmt.Sprintf("%.0f ms", s*1000)
	}
	return fmt.Sprintf("%.2f s", s)
}

func loadString(l [3]float64) string { return fmt.Sprintf("%.2f, %.2f, %.2f", l[0], l[1], l[2]) }

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}
