package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/shoalcdn/shoal/internal/netns"
)

// With Config.NetNS, every process of a system runs in a network namespace
// of its own, on an emulated network where bandwidth costs what it costs
// between sites, so that distribution time means something:
//
//	                    hub namespace: bridge br0 10.77.0.1/24
//	                    (the harness's clients, the counting proxy)
//	                   /            |                 \
//	      origin 10.77.0.2   site 0 10.77.0.10   …   site i 10.77.0.(10+i)
//	      uplink tbf u_s     uplink htb u_i to peers; to the hub (its
//	                         clients, the proxy's requests) unshaped
//	                         downlink tbf d_i (hub side of its veth)
//
// A site's clients are on its LAN: what it sends them is not limited,
// what it sends its peers is (u_i), and everything it receives, from the
// origin (through the proxy) or from peers, is (d_i). The origin's uplink
// is u_s. tbf and htb shape well on this kernel; netem does not exist
// here. Namespaces and interfaces carry the harness's pid in their names,
// and are deleted at the end of the run; a harness killed with SIGKILL
// leaves them behind (ip netns list | grep ^shb; ip netns del NAME).

// Defaults of the emulated network, in bits per second.
const (
	DefaultOriginUplink = 200e6
	DefaultEdgeUplink   = 100e6
	DefaultEdgeDownlink = 1e9
	// DefaultNetnsSize is the release's size under --netns: what a
	// 200 Mbit/s origin sends 8 sites one after the other in 21 s.
	DefaultNetnsSize = 64 << 20
)

// Fixed ports inside each namespace: every node has its own port space.
const (
	nsOriginPort = "9000"
	nsListenPort = "8080"
	nsAdminPort  = "9100"
	nsPeerPort   = "7000"
)

// netEnv is the emulated network of a run, on internal/netns.
type netEnv struct {
	*netns.Network
	hub    string   // namespace of the bridge, clients and proxy
	origin string   // namespace of the origin
	sites  []string // namespace of each site
	delay  []*netns.Delayer
}

// netnsSubnet is the emulated network's /24.
const netnsSubnet = "10.77.0"

func nsIP(node int) string { return fmt.Sprintf("%s.%d", netnsSubnet, node) }

// originIP and siteIP are the nodes' addresses; hubIP is the harness's.
const hubIP = netnsSubnet + ".1"

func originIP() string    { return nsIP(2) }
func siteIP(i int) string { return nsIP(10 + i) }

// NetnsUsable says why --netns cannot run here, or nil: it needs root, ip
// and tc, and for latency (peerRTT > 0) iptables.
func NetnsUsable(peerRTT time.Duration) error {
	if err := netns.Usable(peerRTT > 0); err != nil {
		return fmt.Errorf("bench: --netns: %w", err)
	}
	return nil
}

// newNetEnv builds the network for up to sites sites with cfg's rates.
func newNetEnv(ctx context.Context, cfg Config, sites int) (_ *netEnv, err error) {
	if err := NetnsUsable(cfg.PeerRTT); err != nil {
		return nil, err
	}
	if sites > 200 {
		return nil, fmt.Errorf("bench: --netns: %d sites: at most 200", sites)
	}
	nw, err := netns.New(ctx, fmt.Sprintf("shb%d-", os.Getpid()), netnsSubnet)
	if err != nil {
		return nil, err
	}
	e := &netEnv{Network: nw, hub: nw.Hub}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	bit := func(bps float64) string { return fmt.Sprintf("%.0fbit", bps) }
	o, err := nw.AddHost(ctx, "origin", 2)
	if err != nil {
		return e, err
	}
	e.origin = o.NS
	if err := nw.Run(ctx, "tc", "-n", e.origin, "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", bit(cfg.OriginUplink), "burst", "256kb", "latency", "100ms"); err != nil {
		return e, err
	}
	for i := range sites {
		h, err := nw.AddHost(ctx, fmt.Sprintf("s%02d", i), 10+i)
		if err != nil {
			return e, err
		}
		name := h.NS
		e.sites = append(e.sites, name)
		for _, args := range [][]string{
			// Uplink: to peers u_i, to the hub (LAN clients, requests to
			// the proxy) unshaped.
			{"tc", "-n", name, "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb", "default", "10"},
			{"tc", "-n", name, "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:10", "htb", "rate", bit(cfg.EdgeUplink), "quantum", "60000"},
			{"tc", "-n", name, "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:20", "htb", "rate", "100gbit", "quantum", "60000"},
			{"tc", "-n", name, "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "prio", "1", "u32", "match", "ip", "dst", hubIP + "/32", "flowid", "1:20"},
			// Downlink d_i: what the bridge sends the site.
			{"tc", "-n", e.hub, "qdisc", "add", "dev", h.HubSide, "root", "tbf", "rate", bit(cfg.EdgeDownlink), "burst", "1mb", "latency", "100ms"},
		} {
			if err := nw.Run(ctx, args...); err != nil {
				return e, err
			}
		}
		if cfg.PeerRTT > 0 {
			// Latency between sites: hold what arrives from other sites
			// for half the round trip.
			q, err := nw.Delay(ctx, name, 0, siteIP(0)+"-"+nsIP(254), cfg.PeerRTT/2)
			if err != nil {
				return e, err
			}
			e.delay = append(e.delay, q)
		}
	}
	return e, nil
}

// close deletes the namespaces, and with them their interfaces.
func (e *netEnv) close() { e.Network.Close() }

// dial connects from the hub namespace.
func (e *netEnv) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return e.Dial(ctx, network, addr)
}

// listen listens on the hub's address.
func (e *netEnv) listen() (net.Listener, error) { return e.Listen() }

// command returns the command line that runs bin with args in namespace
// ns: `ip netns exec` enters it and execs bin, which keeps its pid.
func (e *netEnv) command(ns, bin string, args []string) (string, []string) {
	return e.Command(ns, bin, args)
}

// Bounds are the lower bounds of the time to give every site (or client)
// a file of f bytes on the emulated network, in seconds.
type Bounds struct {
	// KumarRoss is the peer-to-peer bound for n sites that upload to one
	// another (Kumar and Ross, 2006): max(F/u_s, F/d_min, N·F/(u_s+Σu_i)).
	KumarRoss float64 `json:"kumar_ross_s"`
	// PerSite is the bound when every site fetches from the origin alone
	// (per-site caches, nginx): max(N·F/u_s, F/d_min).
	PerSite float64 `json:"per_site_s"`
	// Direct is the bound when every client fetches from the origin:
	// clients·F/u_s.
	Direct float64 `json:"direct_s"`
}

// bounds computes Bounds for n sites of clients clients each, a file of f
// bytes, and rates in bits per second.
func bounds(f int64, n, clients int, us, ui, dmin float64) Bounds {
	F := float64(f) * 8
	N := float64(n)
	return Bounds{
		KumarRoss: max(F/us, F/dmin, N*F/(us+N*ui)),
		PerSite:   max(N*F/us, F/dmin),
		Direct:    N * float64(clients) * F / us,
	}
}

// of returns the bound of a system.
func (b Bounds) of(system string) float64 {
	switch system {
	case SystemShoal, SystemBitTorrent:
		return b.KumarRoss
	case SystemDirect:
		return b.Direct
	}
	return b.PerSite
}

// wireBytes returns what the origin's namespace has sent on its link so
// far, and what the sites have sent one another (their uplink class to
// peers, 1:10; for BitTorrent also the leechers' acknowledgements to the
// seeder), in bytes of IP packets, headers included. A counter that
// cannot be read counts zero: the figures are then low, not wrong by a
// wild amount, and the crowd's checks do not depend on them.
func (e *netEnv) wireBytes() (origin int64, sites []int64) {
	if out, err := exec.Command("ip", "-s", "-j", "-n", e.origin, "link", "show", "dev", "eth0").Output(); err == nil {
		origin, _ = parseLinkTxBytes(out)
	}
	sites = make([]int64, len(e.sites))
	for i, ns := range e.sites {
		if out, err := exec.Command("tc", "-s", "-n", ns, "class", "show", "dev", "eth0").Output(); err == nil {
			sites[i], _ = parseClassSent(out, "1:10")
		}
	}
	return origin, sites
}

// wireDelta is what each of the first n sites (those of the crowd: the
// namespaces are made for the largest fleet of a run) sent its peers
// between two wireBytes readings, and their sum.
func wireDelta(before, after []int64, n int) (total int64, sites []int64) {
	sites = make([]int64, min(n, len(after)))
	for i := range sites {
		sites[i] = after[i]
		if i < len(before) {
			sites[i] -= before[i]
		}
		total += sites[i]
	}
	return total, sites
}

// parseLinkTxBytes reads the bytes sent from `ip -s -j link show dev X`.
func parseLinkTxBytes(b []byte) (int64, error) {
	var links []struct {
		Stats struct {
			TX struct {
				Bytes int64 `json:"bytes"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(b, &links); err != nil {
		return 0, fmt.Errorf("bench: ip -s -j link: %w", err)
	}
	if len(links) != 1 {
		return 0, fmt.Errorf("bench: ip -s -j link: %d links, want 1", len(links))
	}
	return links[0].Stats.TX.Bytes, nil
}

// parseClassSent reads the bytes a class has sent from `tc -s class show`
// (this tc has no JSON for classes): the "Sent N bytes" line after the
// line naming the class.
func parseClassSent(b []byte, class string) (int64, error) {
	in := false
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "class":
			in = f[2] == class
		case in && len(f) >= 3 && f[0] == "Sent" && f[2] == "bytes":
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("bench: tc -s class: no bytes sent by class %s", class)
}
