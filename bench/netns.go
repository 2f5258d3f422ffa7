package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"
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

// netEnv is the emulated network of a run.
type netEnv struct {
	hub    string   // namespace of the bridge, clients and proxy
	origin string   // namespace of the origin
	sites  []string // namespace of each site
	made   []string // every namespace made, to delete
	delay  []*delayer
}

func nsIP(node int) string { return fmt.Sprintf("10.77.0.%d", node) }

// originIP and siteIP are the nodes' addresses; hubIP is the harness's.
const hubIP = "10.77.0.1"

func originIP() string    { return nsIP(2) }
func siteIP(i int) string { return nsIP(10 + i) }

// NetnsUsable says why --netns cannot run here, or nil: it needs root, ip
// and tc, and for latency (peerRTT > 0) iptables.
func NetnsUsable(peerRTT time.Duration) error {
	if os.Geteuid() != 0 {
		return errors.New("bench: --netns needs root (network namespaces, tc)")
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("bench: --netns needs %s (apt-get install -y iproute2): %w", tool, err)
		}
	}
	if _, err := exec.LookPath("iptables"); err != nil && peerRTT > 0 {
		return fmt.Errorf("bench: --peer-rtt needs iptables (apt-get install -y iptables): %w", err)
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
	p := fmt.Sprintf("shb%d-", os.Getpid())
	e := &netEnv{hub: p + "hub", origin: p + "origin"}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	run := func(args ...string) error {
		out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("bench: %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	addNS := func(name string) error {
		if err := run("ip", "netns", "add", name); err != nil {
			return err
		}
		e.made = append(e.made, name)
		return run("ip", "-n", name, "link", "set", "lo", "up")
	}
	if err := addNS(e.hub); err != nil {
		return e, err
	}
	for _, args := range [][]string{
		{"ip", "-n", e.hub, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", e.hub, "addr", "add", hubIP + "/24", "dev", "br0"},
		{"ip", "-n", e.hub, "link", "set", "br0", "up"},
	} {
		if err := run(args...); err != nil {
			return e, err
		}
	}
	// node adds a namespace wired to the bridge by a veth pair: eth0
	// inside, hubSide on the bridge.
	node := func(name, hubSide, ip string) error {
		if err := addNS(name); err != nil {
			return err
		}
		for _, args := range [][]string{
			{"ip", "-n", e.hub, "link", "add", hubSide, "type", "veth", "peer", "name", "eth0", "netns", name},
			{"ip", "-n", e.hub, "link", "set", hubSide, "master", "br0"},
			{"ip", "-n", e.hub, "link", "set", hubSide, "up"},
			{"ip", "-n", name, "addr", "add", ip + "/24", "dev", "eth0"},
			{"ip", "-n", name, "link", "set", "eth0", "up"},
		} {
			if err := run(args...); err != nil {
				return err
			}
		}
		return nil
	}
	bit := func(bps float64) string { return fmt.Sprintf("%.0fbit", bps) }
	if err := node(e.origin, "vorigin", originIP()); err != nil {
		return e, err
	}
	if err := run("tc", "-n", e.origin, "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", bit(cfg.OriginUplink), "burst", "256kb", "latency", "100ms"); err != nil {
		return e, err
	}
	for i := range sites {
		name := fmt.Sprintf("%ss%02d", p, i)
		hubSide := fmt.Sprintf("vs%02d", i)
		if err := node(name, hubSide, siteIP(i)); err != nil {
			return e, err
		}
		e.sites = append(e.sites, name)
		for _, args := range [][]string{
			// Uplink: to peers u_i, to the hub (LAN clients, requests to
			// the proxy) unshaped.
			{"tc", "-n", name, "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb", "default", "10"},
			{"tc", "-n", name, "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:10", "htb", "rate", bit(cfg.EdgeUplink), "quantum", "60000"},
			{"tc", "-n", name, "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:20", "htb", "rate", "100gbit", "quantum", "60000"},
			{"tc", "-n", name, "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "prio", "1", "u32", "match", "ip", "dst", hubIP + "/32", "flowid", "1:20"},
			// Downlink d_i: what the bridge sends the site.
			{"tc", "-n", e.hub, "qdisc", "add", "dev", hubSide, "root", "tbf", "rate", bit(cfg.EdgeDownlink), "burst", "1mb", "latency", "100ms"},
		} {
			if err := run(args...); err != nil {
				return e, err
			}
		}
		if cfg.PeerRTT > 0 {
			// Latency between zones: hold what arrives from other sites
			// for half the round trip. Incoming, not outgoing: delaying
			// outgoing packets starved TCP here.
			if err := run("ip", "netns", "exec", name, "iptables", "-A", "INPUT", "-i", "eth0", "-m", "iprange",
				"--src-range", siteIP(0)+"-"+nsIP(254), "-j", "NFQUEUE", "--queue-num", "0", "--queue-bypass"); err != nil {
				return e, err
			}
			q, err := startDelayer(name, 0, cfg.PeerRTT/2)
			if err != nil {
				return e, err
			}
			e.delay = append(e.delay, q)
		}
	}
	return e, nil
}

// close deletes the namespaces, and with them their interfaces.
func (e *netEnv) close() {
	for _, q := range e.delay {
		q.close()
	}
	e.delay = nil
	for i := len(e.made) - 1; i >= 0; i-- {
		exec.Command("ip", "netns", "del", e.made[i]).Run()
	}
	e.made = nil
}

// dial connects from the hub namespace.
func (e *netEnv) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	var derr error
	if err := inNetns(e.hub, func() error {
		c, derr = (&net.Dialer{}).DialContext(ctx, network, addr)
		return nil
	}); err != nil {
		return nil, err
	}
	return c, derr
}

// listen listens on the hub's address.
func (e *netEnv) listen() (net.Listener, error) {
	var ln net.Listener
	err := inNetns(e.hub, func() error {
		var err error
		ln, err = net.Listen("tcp", hubIP+":0")
		return err
	})
	return ln, err
}

// command returns the command line that runs bin with args in namespace
// ns: `ip netns exec` enters it and execs bin, which keeps its pid.
func (e *netEnv) command(ns, bin string, args []string) (string, []string) {
	return "ip", append([]string{"netns", "exec", ns, bin}, args...)
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
	case SystemShoal:
		return b.KumarRoss
	case SystemDirect:
		return b.Direct
	}
	return b.PerSite
}
