package swarm

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"maps"
	"net"
	"os"
	"reflect"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/hashicorp/memberlist"
)

// GossipConfig turns on dynamic membership: the node joins the fleet by
// gossip (hashicorp/memberlist, the SWIM protocol behind Consul and Serf)
// instead of reading a static list.
type GossipConfig struct {
	// BindAddr is the host:port memberlist listens on, TCP and UDP. Port 0
	// picks a free port (tests). Required.
	BindAddr string
	// AdvertiseAddr is the host:port other members reach this node's gossip
	// at. The host must be an IP address. Empty means BindAddr, or a
	// private IP of this machine when BindAddr is a wildcard.
	AdvertiseAddr string
	// NodeID names this node in gossip and must be unique in the fleet.
	// Empty means Config.Self.
	NodeID string
	// Join lists seeds, host:port each. A name may resolve to many
	// addresses (a Kubernetes headless Service); they are re-resolved
	// every RejoinInterval and those not yet members are joined. Empty
	// means this node waits for others to join it.
	Join []string
	// RejoinInterval is how often the seeds are re-resolved. Zero means
	// 30s; while this node is alone it retries sooner, from 1s.
	RejoinInterval time.Duration
	// SecretKey encrypts and authenticates gossip with AES-GCM: 16, 24 or
	// 32 bytes, the same on every member. Nil means plaintext gossip.
	SecretKey []byte
	// ProbeInterval is how often a member probes another. Zero means 1s
	// (memberlist's LAN default): a crashed member is declared dead after
	// a few seconds. Other timings scale with it.
	ProbeInterval time.Duration
	// Resolve looks up the addresses of a seed's host. Nil means
	// net.DefaultResolver.LookupHost.
	Resolve func(ctx context.Context, host string) ([]string, error)
}

// DefaultGossipPort is the port of --gossip-listen when none is given,
// memberlist's (and Serf's) usual one.
const DefaultGossipPort = 7946

func (g *GossipConfig) check() error {
	if g.BindAddr == "" {
		return errors.New("swarm: GossipConfig.BindAddr is required")
	}
	if _, _, err := splitPort(g.BindAddr); err != nil {
		return fmt.Errorf("swarm: gossip bind address %q: %w", g.BindAddr, err)
	}
	if g.AdvertiseAddr != "" {
		host, _, err := splitPort(g.AdvertiseAddr)
		if err != nil || net.ParseIP(host) == nil {
			return fmt.Errorf("swarm: gossip advertise address %q: want ip:port", g.AdvertiseAddr)
		}
	}
	for _, s := range g.Join {
		if err := checkHostPort(s); err != nil {
			return fmt.Errorf("swarm: gossip seed %q: %w (want host:port)", s, err)
		}
	}
	switch len(g.SecretKey) {
	case 0, 16, 24, 32:
	default:
		return fmt.Errorf("swarm: gossip key of %d bytes (want 16, 24 or 32)", len(g.SecretKey))
	}
	if len(g.NodeID) > maxMetaID {
		return fmt.Errorf("swarm: node ID of %d bytes (want at most %d)", len(g.NodeID), maxMetaID)
	}
	return nil
}

func splitPort(hostport string) (string, int, error) {
	host, ps, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(ps)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	return host, p, nil
}

// LoadGossipKey reads a gossip key file: the key in standard base64 (as
// `openssl rand -base64 32` writes it; surrounding white space ignored),
// or the raw 16, 24 or 32 bytes.
func LoadGossipKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("swarm: gossip key: %w", err)
	}
	return ParseGossipKey(b)
}

// ParseGossipKey parses the content of a gossip key file; see LoadGossipKey.
func ParseGossipKey(b []byte) ([]byte, error) {
	if t := bytes.TrimSpace(b); len(t) > 0 {
		if k, err := base64.StdEncoding.DecodeString(string(t)); err == nil {
			switch len(k) {
			case 16, 24, 32:
				return k, nil
			}
			return nil, fmt.Errorf("swarm: gossip key decodes from base64 to %d bytes (want 16, 24 or 32)", len(k))
		}
	}
	switch len(b) {
	case 16, 24, 32:
		return bytes.Clone(b), nil
	}
	return nil, fmt.Errorf("swarm: gossip key file of %d bytes is neither base64 nor a raw key of 16, 24 or 32 bytes", len(b))
}

// startGossip creates this node's memberlist and starts joining the seeds;
// the joining ends with ctx or stopGossip.
func (m *membership) startGossip(ctx context.Context) error {
	g := m.gossip
	mc := memberlist.DefaultLANConfig()
	mc.Name = m.nodeID()
	host, port, _ := splitPort(g.BindAddr)
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertisePort = port
	if g.AdvertiseAddr != "" {
		h, p, _ := splitPort(g.AdvertiseAddr)
		mc.AdvertiseAddr, mc.AdvertisePort = h, p
	} else if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		mc.AdvertiseAddr = host
	} else if host == "" || (ip != nil && ip.IsUnspecified()) {
		mc.BindAddr = "0.0.0.0"
		if ip != nil && ip.To4() == nil {
			mc.BindAddr = "::"
		}
	}
	if g.ProbeInterval > 0 {
		mc.ProbeInterval = g.ProbeInterval
		mc.ProbeTimeout = g.ProbeInterval / 2
		mc.GossipInterval = max(g.ProbeInterval/5, 10*time.Millisecond)
	}
	// A member that stops answering is suspect for SuspicionMult probe
	// intervals (scaled by log10 of the fleet size) once others confirm
	// it; cap the wait without confirmations at three times that.
	mc.SuspicionMaxTimeoutMult = 3
	// A restarted member may come back under its old ID at a new address.
	mc.DeadNodeReclaimTime = 10 * time.Second
	mc.SecretKey = g.SecretKey
	mc.Delegate = (*gossipDelegate)(m)
	mc.Events = (*gossipEvents)(m)
	mc.Logger = log.New(&memberlistLog{log: m.log}, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("swarm: gossip on %s: %w", g.BindAddr, err)
	}
	// memberlist does not always report this node to itself as joined.
	m.gossipAlive(ml.LocalNode())
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	m.mu.Lock()
	m.ml, m.stopJoin, m.gossipDone = ml, cancel, done
	m.mu.Unlock()
	go func() {
		defer close(done)
		m.joinLoop(ctx, ml)
	}()
	m.log.Info("gossip listening", "addr", ml.LocalNode().Address(), "id", mc.Name, "zone", m.zone, "seeds", g.Join, "encrypted", len(g.SecretKey) > 0)
	return nil
}

// GossipAddr returns the address other members join this node's gossip
// at, or "" when gossip is off or not started.
func (n *Node) GossipAddr() string {
	m := n.mem
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ml == nil {
		return ""
	}
	return m.ml.LocalNode().Address()
}

// stopGossip leaves the fleet (announcing it, when leave is set, so that
// the others drop this node at once rather than after failed probes) and
// stops gossip.
func (m *membership) stopGossip(leave bool) {
	m.mu.Lock()
	ml, stop, done := m.ml, m.stopJoin, m.gossipDone
	m.ml = nil
	m.mu.Unlock()
	if ml == nil {
		return
	}
	stop()
	<-done
	if leave {
		// memberlist reports a leave to the others as a death: say
		// goodbye to each first (one datagram each), then leave.
		msg := append([]byte(leavingMsg), m.nodeID()...)
		for _, o := range m.list() {
			if o.ID == m.nodeID() || o.Gossip == "" {
				continue
			}
			if host, port, err := splitPort(o.Gossip); err == nil {
				ml.SendBestEffort(&memberlist.Node{Name: o.ID, Addr: net.ParseIP(host), Port: uint16(port)}, msg)
			}
		}
		if err := ml.Leave(2 * time.Second); err != nil {
			m.log.Warn("leaving the fleet", "err", err)
		}
	}
	if err := ml.Shutdown(); err != nil {
		m.log.Warn("stopping gossip", "err", err)
	}
}

// joinLoop joins the seeds now and then every RejoinInterval, so that a
// fleet split by a network failure heals and pods behind a headless
// Service that started later are found.
func (m *membership) joinLoop(ctx context.Context, ml *memberlist.Memberlist) {
	interval := m.gossip.RejoinInterval
	if interval <= 0 {
		interval = 30 * time.Second
	}
	retry := time.Second
	for {
		if len(m.gossip.Join) > 0 {
			m.joinSeeds(ctx, ml)
		}
		wait := interval
		if ml.NumMembers() <= 1 {
			wait, retry = min(retry, interval), min(2*retry, interval)
		} else {
			retry = time.Second
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// joinSeeds resolves the seeds and joins those that are not members yet.
func (m *membership) joinSeeds(ctx context.Context, ml *memberlist.Memberlist) {
	// memberlist's own Members hands out nodes it goes on changing: the
	// gossip addresses come from this node's view instead.
	known := map[string]bool{}
	for _, vm := range m.view.Load().byAddr {
		known[vm.Gossip] = true
	}
	resolve := m.gossip.Resolve
	if resolve == nil {
		resolve = net.DefaultResolver.LookupHost
	}
	var addrs []string
	for _, s := range m.gossip.Join {
		host, port, _ := net.SplitHostPort(s)
		ips := []string{host}
		if net.ParseIP(host) == nil {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			var err error
			ips, err = resolve(rctx, host)
			cancel()
			if err != nil {
				m.log.Warn("resolving a gossip seed", "seed", s, "err", err)
				continue
			}
		}
		for _, ip := range ips {
			if a := net.JoinHostPort(ip, port); !known[a] {
				known[a] = true
				addrs = append(addrs, a)
			}
		}
	}
	if len(addrs) == 0 || ctx.Err() != nil {
		return
	}
	joined, err := ml.Join(addrs)
	if err != nil && joined == 0 {
		level := slog.LevelWarn
		if ml.NumMembers() > 1 {
			level = slog.LevelDebug // seeds not answering yet, or gone
		}
		m.log.Log(ctx, level, "joining gossip seeds: none answered", "seeds", addrs, "err", err)
		return
	}
	m.log.Debug("joined gossip seeds", "asked", len(addrs), "answered", joined, "members", ml.NumMembers())
}

// gossipDelegate gives memberlist this node's metadata; shoal sends no
// other gossip of its own.
type gossipDelegate membership

func (d *gossipDelegate) NodeMeta(limit int) []byte {
	m := (*membership)(d)
	l := m.layout
	b, err := nodeMeta{Version: ProtocolVersion, ID: m.nodeID(), Addr: m.self, Zone: m.zone,
		SegmentSize: l.SegmentSize, K: l.K, M: l.M, Hash: l.Hash}.encode(limit)
	if err != nil {
		m.log.Error("node metadata does not fit gossip", "err", err)
		return nil
	}
	return b
}

// leavingMsg, followed by the node's ID, is the one message shoal sends
// over gossip: a member saying goodbye.
const leavingMsg = "shoal/leaving:"

func (d *gossipDelegate) NotifyMsg(b []byte) {
	if id, ok := bytes.CutPrefix(b, []byte(leavingMsg)); ok && len(id) <= maxMetaID {
		(*membership)(d).remove(string(id), StateLeft)
	}
}

func (d *gossipDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *gossipDelegate) LocalState(join bool) []byte                { return nil }
func (d *gossipDelegate) MergeRemoteState(buf []byte, join bool)     {}

// gossipEvents turns memberlist's events into member set changes. They
// are called with memberlist's locks held: they must not call it back.
type gossipEvents membership

func (e *gossipEvents) NotifyJoin(nd *memberlist.Node)   { (*membership)(e).gossipAlive(nd) }
func (e *gossipEvents) NotifyUpdate(nd *memberlist.Node) { (*membership)(e).gossipAlive(nd) }
func (e *gossipEvents) NotifyLeave(nd *memberlist.Node) {
	// A member that said goodbye is gone already; this is a death.
	(*membership)(e).remove(nd.Name, StateDead)
}

func (m *membership) gossipAlive(nd *memberlist.Node) {
	meta, err := decodeMeta(nd.Meta)
	if err == nil && meta.ID != nd.Name {
		err = fmt.Errorf("swarm: member metadata names %q", meta.ID)
	}
	if err != nil {
		m.log.Warn("ignoring a gossip member", "id", nd.Name, "gossip", nd.Address(), "err", err)
		m.remove(nd.Name, StateDead)
		return
	}
	if nd.Name != m.nodeID() {
		// Before upsert, so that a member that differs never enters
		// placement.
		m.peerLayout(meta.Addr, meta.layout(), "gossip")
	}
	m.upsert(Member{ID: nd.Name, Addr: meta.Addr, Zone: meta.Zone, Gossip: nd.Address(), State: StateAlive})
}

// memberlistLog passes memberlist's log lines ("[LEVEL] memberlist: ...")
// to slog: errors and warnings as such, the rest at debug.
type memberlistLog struct{ log *slog.Logger }

func (w *memberlistLog) Write(p []byte) (int, error) {
	msg := string(bytes.TrimSpace(p))
	level := slog.LevelDebug
	switch {
	case bytes.HasPrefix(p, []byte("[ERR]")):
		level = slog.LevelError
	case bytes.HasPrefix(p, []byte("[WARN]")):
		level = slog.LevelWarn
	}
	w.log.Log(context.Background(), level, msg, "component", "memberlist")
	return len(p), nil
}

// suspicions is the members memberlist suspects, by ID, with when this
// node first saw each suspected.
type suspicions map[string]time.Time

// apply returns m as suspect when it is suspected and alive otherwise.
func (s suspicions) apply(m Member) Member {
	if since, ok := s[m.ID]; ok && m.State == StateAlive {
		m.State, m.Since = StateSuspect, since
	}
	return m
}

// suspects returns the members memberlist suspects now: they missed
// their probes and are not yet declared dead. Nil without gossip. It
// takes memberlist's node lock: not from within memberlist's callbacks.
func (m *membership) suspects() suspicions {
	m.mu.Lock()
	ml := m.ml
	m.mu.Unlock()
	if ml == nil {
		return nil
	}
	// memberlist's locks are taken without mu: its callbacks take mu
	// under them.
	states := memberlistStates(ml)
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	next := suspicions{}
	for id, st := range states {
		if st != memberlist.StateSuspect || id == m.nodeID() {
			continue
		}
		since, ok := m.suspect[id]
		if !ok {
			since = now
		}
		next[id] = since
	}
	m.suspect = next
	return maps.Clone(next)
}

// memberlistStates reads memberlist's own state of each node (alive,
// suspect, dead, left), by name. memberlist v0.7 exports no such view:
// the Nodes that Members hands out carry a State field it never sets
// (its nodeState's own State shadows it). So this reads its node table,
// Memberlist.nodes ([]*nodeState), by reflection, under its node lock,
// Memberlist.nodeLock. It returns nil when memberlist's layout is not
// the one expected (an upgrade changed it): members then show alive
// until declared dead, and TestGossipSuspect fails.
func memberlistStates(ml *memberlist.Memberlist) map[string]memberlist.NodeStateType {
	v := reflect.ValueOf(ml).Elem()
	lockF, nodesF := v.FieldByName("nodeLock"), v.FieldByName("nodes")
	if !lockF.IsValid() || lockF.Type() != reflect.TypeFor[sync.RWMutex]() ||
		!nodesF.IsValid() || nodesF.Kind() != reflect.Slice {
		return nil
	}
	ptr := nodesF.Type().Elem()
	if ptr.Kind() != reflect.Pointer || ptr.Elem().Kind() != reflect.Struct {
		return nil
	}
	nameF, okName := ptr.Elem().FieldByName("Name")
	stateF, okState := ptr.Elem().FieldByName("State") // nodeState's, not Node's
	if !okName || !okState || len(stateF.Index) != 1 || nameF.Type.Kind() != reflect.String ||
		stateF.Type != reflect.TypeFor[memberlist.NodeStateType]() {
		return nil
	}
	lock := (*sync.RWMutex)(unsafe.Pointer(lockF.UnsafeAddr()))
	lock.RLock()
	defer lock.RUnlock()
	out := make(map[string]memberlist.NodeStateType, nodesF.Len())
	for i := range nodesF.Len() {
		ns := nodesF.Index(i)
		if ns.IsNil() {
			continue
		}
		ns = ns.Elem()
		out[ns.FieldByIndex(nameF.Index).String()] = memberlist.NodeStateType(ns.FieldByIndex(stateF.Index).Int())
	}
	return out
}
