// Package netns builds emulated networks of Linux network namespaces for
// the multi-host tests and the bench harness: a hub namespace holding a
// bridge, and hosts, each a namespace of its own wired to the bridge by a
// veth pair, all on one /24:
//
//	        hub namespace: bridge br0 <subnet>.1/24
//	       /              |               \
//	host <subnet>.a   host <subnet>.b  …  host <subnet>.z
//	(eth0 inside, v<a> on the bridge)
//
// Shaping is tc's (tbf, htb: Network.Run); latency is a Delayer, an
// iptables NFQUEUE rule feeding packets to a userspace delayer, because
// the kernel this runs on has no netem. Programs run inside a host with
// Network.Command (ip netns exec), which also bind-mounts the host's
// files written by Network.WriteEtc (a hosts file: a DNS name that
// resolves to many hosts) over /etc.
//
// Building a network needs root, ip (iproute2), tc and, for latency,
// iptables: Usable says which is missing. Namespaces are named after a
// caller's prefix (carry the pid in it) and deleted by Close; a process
// killed with SIGKILL leaves them behind (ip netns list; ip netns del
// NAME).
package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Usable says why a network cannot be built here, or nil: it needs root,
// ip and tc, and with latency iptables.
func Usable(latency bool) error {
	if os.Geteuid() != 0 {
		return errors.New("netns: network namespaces need root")
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("netns: %s is missing (apt-get install -y iproute2): %w", tool, err)
		}
	}
	if _, err := exec.LookPath("iptables"); err != nil && latency {
		return fmt.Errorf("netns: latency needs iptables (apt-get install -y iptables): %w", err)
	}
	return nil
}

// Network is an emulated network: a bridge in the hub namespace and the
// hosts added to it.
type Network struct {
	// Hub is the namespace of the bridge; HubIP its address on it.
	Hub, HubIP string
	prefix     string
	subnet     string // the first three octets
	made       []string
	etc        []string // /etc/netns/NAME folders written
	delays     []*Delayer
}

// Host is one emulated host.
type Host struct {
	// NS is its namespace; IP its address (on eth0 inside NS); HubSide
	// the name of its veth's other end, on the bridge in the hub
	// namespace (what shapes the host's downlink).
	NS, IP, HubSide string
}

// New builds the hub namespace, prefix+"hub", with a bridge at
// subnet.1/24; subnet is three octets ("10.77.0"). Two networks alive at
// once need different prefixes and subnets.
func New(ctx context.Context, prefix, subnet string) (_ *Network, err error) {
	if ip := net.ParseIP(subnet + ".1"); ip == nil || ip.To4() == nil {
		return nil, fmt.Errorf("netns: subnet %q: want three octets of an IPv4 address", subnet)
	}
	n := &Network{Hub: prefix + "hub", HubIP: subnet + ".1", prefix: prefix, subnet: subnet}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if err := n.addNS(ctx, n.Hub); err != nil {
		return nil, err
	}
	for _, args := range [][]string{
		{"ip", "-n", n.Hub, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", n.Hub, "addr", "add", n.HubIP + "/24", "dev", "br0"},
		{"ip", "-n", n.Hub, "link", "set", "br0", "up"},
	} {
		if err := n.Run(ctx, args...); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// IP returns the address of host number i (2–254) on the network.
func (n *Network) IP(i int) string { return fmt.Sprintf("%s.%d", n.subnet, i) }

// Run runs a command (ip, tc, iptables) to completion; its output is in
// the error.
func (n *Network) Run(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netns: %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (n *Network) addNS(ctx context.Context, name string) error {
	if err := n.Run(ctx, "ip", "netns", "add", name); err != nil {
		return err
	}
	n.made = append(n.made, name)
	return n.Run(ctx, "ip", "-n", name, "link", "set", "lo", "up")
}

// AddHost adds host number i (2–254) as namespace prefix+name, at IP(i).
// Its links are not shaped: shape them with tc through Run.
func (n *Network) AddHost(ctx context.Context, name string, i int) (Host, error) {
	if i < 2 || i > 254 {
		return Host{}, fmt.Errorf("netns: host number %d: want 2 to 254", i)
	}
	h := Host{NS: n.prefix + name, IP: n.IP(i), HubSide: fmt.Sprintf("v%d", i)}
	if err := n.addNS(ctx, h.NS); err != nil {
		return Host{}, err
	}
	for _, args := range [][]string{
		{"ip", "-n", n.Hub, "link", "add", h.HubSide, "type", "veth", "peer", "name", "eth0", "netns", h.NS},
		{"ip", "-n", n.Hub, "link", "set", h.HubSide, "master", "br0"},
		{"ip", "-n", n.Hub, "link", "set", h.HubSide, "up"},
		{"ip", "-n", h.NS, "addr", "add", h.IP + "/24", "dev", "eth0"},
		{"ip", "-n", h.NS, "link", "set", "eth0", "up"},
	} {
		if err := n.Run(ctx, args...); err != nil {
			return Host{}, err
		}
	}
	return h, nil
}

// Delay holds the packets that arrive in namespace ns from the addresses
// in srcRange ("a.b.c.d-a.b.c.e") for d before they go on, with an
// iptables rule on INPUT feeding NFQUEUE queue and a Delayer on it; the
// Delayer stops with the network. Incoming, not outgoing: delaying
// outgoing packets starved TCP here. Each rule of one namespace needs its
// own queue.
func (n *Network) Delay(ctx context.Context, ns string, queue uint16, srcRange string, d time.Duration) (*Delayer, error) {
	if err := n.Run(ctx, "ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-i", "eth0", "-m", "iprange",
		"--src-range", srcRange, "-j", "NFQUEUE", "--queue-num", fmt.Sprint(queue), "--queue-bypass"); err != nil {
		return nil, err
	}
	q, err := StartDelayer(ns, queue, d)
	if err != nil {
		return nil, err
	}
	n.delays = append(n.delays, q)
	return q, nil
}

// WriteEtc writes the file /etc/netns/NS/name, which `ip netns exec NS`
// (Command) bind-mounts over /etc/name for the programs it runs: a hosts
// file gives them DNS names that resolve to many hosts. Close removes it.
func (n *Network) WriteEtc(ns, name string, content []byte) error {
	if !strings.HasPrefix(ns, n.prefix) || strings.ContainsAny(name, "/") {
		return fmt.Errorf("netns: WriteEtc(%q, %q): not a file of this network's namespaces", ns, name)
	}
	dir := filepath.Join("/etc/netns", ns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	n.etc = append(n.etc, dir)
	return os.WriteFile(filepath.Join(dir, name), content, 0o644)
}

// Close stops the delayers and deletes the namespaces, and with them their
// interfaces, and the files of WriteEtc.
func (n *Network) Close() {
	for _, q := range n.delays {
		q.Close()
	}
	n.delays = nil
	for i := len(n.made) - 1; i >= 0; i-- {
		exec.Command("ip", "netns", "del", n.made[i]).Run()
	}
	n.made = nil
	for _, dir := range n.etc {
		os.RemoveAll(dir)
	}
	n.etc = nil
}

// Dial connects from the hub namespace.
func (n *Network) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	var derr error
	if err := Do(n.Hub, func() error {
		c, derr = (&net.Dialer{}).DialContext(ctx, network, addr)
		return nil
	}); err != nil {
		return nil, err
	}
	return c, derr
}

// Listen listens on the hub's address, at a free TCP port.
func (n *Network) Listen() (net.Listener, error) {
	var ln net.Listener
	err := Do(n.Hub, func() error {
		var err error
		ln, err = net.Listen("tcp", n.HubIP+":0")
		return err
	})
	return ln, err
}

// Command returns the command line that runs bin with args in namespace
// ns: `ip netns exec` enters it and execs bin, which keeps its pid.
func (n *Network) Command(ns, bin string, args []string) (string, []string) {
	return "ip", append([]string{"netns", "exec", ns, bin}, args...)
}
