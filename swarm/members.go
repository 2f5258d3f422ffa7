package swarm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/shoalcdn/shoal/erasure"
)

// MemberState is what membership says of a member.
type MemberState string

// Member states. Alive and suspect members take part in placement: a
// suspect one missed its probes and others are asked to confirm, and
// memberlist keeps it until it is declared dead or refutes the suspicion.
// A member that failed its probes long enough is dead, one that said
// goodbye has left, and both are dropped from placement at once.
const (
	StateAlive   MemberState = "alive"
	StateSuspect MemberState = "suspect"
	StateDead    MemberState = "dead"
	StateLeft    MemberState = "left"
)

// Member is one member of the fleet as membership knows it.
type Member struct {
	// ID names the member in gossip; with a static list it is Addr.
	ID string
	// Addr is the member's QUIC peer address. Placement ranks members by
	// it, and it is what GetShard and the other calls take as peer.
	Addr string
	// Zone is the member's zone; members of a zone hold that zone's shards.
	Zone string
	// Gossip is the member's gossip address, empty with a static list.
	Gossip string
	// State is alive, suspect, dead or left.
	State MemberState
	// Since is when the member entered State, as this node saw it.
	Since time.Time
}

// memberView is an immutable snapshot of the members taking part in
// placement, published atomically so that the read
// path never waits for membership.
type memberView struct {
	all    []string          // addresses, sorted, this node included
	byAddr map[string]Member // every member in all
	zones  map[string][]string
	// incompatible are the members kept out of all for a layout that
	// differs from this node's, sorted by address.
	incompatible []Member
}

// newMemberView makes the view of ms, keeping out those whose address is
// in excluded.
func newMemberView(ms []Member, excluded map[string]bool) *memberView {
	v := &memberView{byAddr: make(map[string]Member, len(ms)), zones: map[string][]string{}}
	for _, m := range ms {
		if _, dup := v.byAddr[m.Addr]; dup {
			continue
		}
		if excluded[m.Addr] {
			if !slices.ContainsFunc(v.incompatible, func(o Member) bool { return o.Addr == m.Addr }) {
				v.incompatible = append(v.incompatible, m)
			}
			continue
		}
		v.byAddr[m.Addr] = m
		v.all = append(v.all, m.Addr)
		v.zones[m.Zone] = append(v.zones[m.Zone], m.Addr)
	}
	slices.Sort(v.all)
	slices.SortFunc(v.incompatible, func(a, b Member) int { return strings.Compare(a.Addr, b.Addr) })
	for _, z := range v.zones {
		slices.Sort(z)
	}
	return v
}

// membership holds the member set of a Node: the static list, or the
// members gossip reports (gossip.go). Updates are serialized by mu;
// readers load the current view without locking.
type membership struct {
	self     string        // this node's peer address
	zone     string        // this node's zone
	gossip   *GossipConfig // nil: a static list
	onChange func()        // Config.OnMembersChange, may be nil
	log      *slog.Logger
	// layout is this node's FleetLayout (unknown: it compares nothing).
	layout FleetLayout

	view atomic.Pointer[memberView]

	mu sync.Mutex
	// gone remembers members that died or left, for /admin/peers, by ID.
	gone map[string]Member
	// live is the source of the view, by ID.
	live map[string]Member
	// suspect holds, by ID, when this node first saw memberlist suspect
	// each member it suspects now; see suspects.
	suspect    map[string]time.Time
	ml         *memberlist.Memberlist // nil without gossip, or once stopped
	stopJoin   context.CancelFunc
	gossipDone chan struct{}
	// layouts is what each peer said of its layout, by address;
	// incompatible the addresses whose layout differs from this node's,
	// kept out of the view.
	layouts      map[string]FleetLayout
	incompatible map[string]bool
}

// maxGone bounds how many departed members are remembered for display.
const maxGone = 256

// Members returns every member taking part in placement, this node
// included, sorted by address.
func (n *Node) Members() []string { return slices.Clone(n.mem.view.Load().all) }

// MemberList returns every member known to this node with its zone and
// state: those in placement first (by address), then those that recently
// died or left.
func (n *Node) MemberList() []Member { return n.mem.list() }

// list implements MemberList.
func (m *membership) list() []Member {
	sus := m.suspects()
	v := m.view.Load()
	out := make([]Member, 0, len(v.all))
	for _, a := range v.all {
		out = append(out, sus.apply(v.byAddr[a]))
	}
	m.mu.Lock()
	var gone []Member
	for _, g := range m.gone {
		if _, back := v.byAddr[g.Addr]; !back {
			gone = append(gone, g)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(gone, func(a, b Member) int { return b.Since.Compare(a.Since) })
	return append(out, gone...)
}

// Zone returns this node's zone.
func (n *Node) Zone() string { return n.cfg.Zone }

// ZoneOf returns the zone of a member, or "" for an address that is not one.
func (n *Node) ZoneOf(peer string) string { return n.mem.view.Load().byAddr[peer].Zone }

// Zones returns the zones that have members, this node's first, then the
// others sorted by name.
func (n *Node) Zones() []string {
	v := n.mem.view.Load()
	out := []string{n.cfg.Zone}
	var others []string
	for z := range v.zones {
		if z != n.cfg.Zone {
			others = append(others, z)
		}
	}
	slices.Sort(others)
	return append(out, others...)
}

// Rank orders the members of this node's zone for key, highest rendezvous
// weight first.
func (n *Node) Rank(key []byte) []string {
	return Rank(n.mem.view.Load().zones[n.cfg.Zone], key)
}

// RankAll orders every member, whatever its zone, for key: an object's
// record has one coordinator in the whole fleet.
func (n *Node) RankAll(key []byte) []string {
	return Rank(n.mem.view.Load().all, key)
}

// ZoneMembers returns the members of this node's zone, sorted, this node
// included: the set placement ranks.
func (n *Node) ZoneMembers() []string {
	return slices.Clone(n.mem.view.Load().zones[n.cfg.Zone])
}

// Holders returns the member of this node's zone holding each of a
// segment's total shards.
func (n *Node) Holders(seg erasure.SegmentID, total int) []string {
	return n.ZoneHolders(n.cfg.Zone, seg, total)
}

// ZoneHolders returns the member of zone holding each of a segment's
// total shards, or nil when the zone has no members.
func (n *Node) ZoneHolders(zone string, seg erasure.SegmentID, total int) []string {
	return Holders(n.mem.view.Load().zones[zone], seg, total)
}

// setStatic installs the static member list: every member in this node's
// zone, as a static list says nothing of zones.
func (m *membership) setStatic(peers []string) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.live = map[string]Member{}
	m.gone = map[string]Member{}
	m.live[m.nodeID()] = Member{ID: m.nodeID(), Addr: m.self, Zone: m.zone, State: StateAlive, Since: now}
	for _, p := range peers {
		if p == "" || p == m.self {
			continue
		}
		m.live[p] = Member{ID: p, Addr: p, Zone: m.zone, State: StateAlive, Since: now}
	}
	m.publishLocked()
}

// upsert adds or updates a member that gossip reports alive or suspect.
func (m *membership) upsert(nm Member) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.live[nm.ID]
	if ok && old == (Member{ID: nm.ID, Addr: nm.Addr, Zone: nm.Zone, Gossip: nm.Gossip, State: nm.State, Since: old.Since}) {
		return
	}
	if !ok || old.State != nm.State {
		nm.Since = time.Now()
	} else {
		nm.Since = old.Since
	}
	m.live[nm.ID] = nm
	delete(m.gone, nm.ID)
	m.publishLocked()
	if !ok {
		m.log.Info("member joined", "id", nm.ID, "addr", nm.Addr, "zone", nm.Zone)
	}
}

// remove drops a member that died or left from placement.
func (m *membership) remove(id string, state MemberState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	gm, ok := m.live[id]
	if !ok || id == m.nodeID() {
		// This node leaves by stopping, and never drops itself. A goodbye
		// from a member already taken for dead (a false death under load,
		// or its goodbye overtaken) says what became of it.
		if g, gone := m.gone[id]; gone && state == StateLeft && g.State == StateDead {
			g.State = StateLeft
			m.gone[id] = g
		}
		return
	}
	delete(m.live, id)
	gm.State, gm.Since = state, time.Now()
	if len(m.gone) >= maxGone {
		var oldest string
		for k, g := range m.gone {
			if oldest == "" || g.Since.Before(m.gone[oldest].Since) {
				oldest = k
			}
		}
		delete(m.gone, oldest)
	}
	m.gone[id] = gm
	m.publishLocked()
	m.log.Info("member removed", "id", id, "addr", gm.Addr, "zone", gm.Zone, "state", string(state))
}

func (m *membership) publishLocked() {
	ms := make([]Member, 0, len(m.live))
	for _, lm := range m.live {
		ms = append(ms, lm)
	}
	// A stable order, so that two IDs claiming one address resolve the
	// same way on every node.
	slices.SortFunc(ms, func(a, b Member) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	m.view.Store(newMemberView(ms, m.incompatible))
	if m.onChange != nil {
		m.onChange()
	}
}

// peerLayout records the layout a peer at addr said it has (as it met
// this node on side, "dial" or "accept", or through gossip) and reports
// whether it is compatible. A peer found to differ is kept out of the
// view, and one that comes back with the same layout (restarted with the
// fleet's settings) is let in again; both are logged, with both values.
func (m *membership) peerLayout(addr string, theirs FleetLayout, side string) bool {
	if addr == "" || addr == m.self {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.layouts == nil {
		m.layouts, m.incompatible = map[string]FleetLayout{}, map[string]bool{}
	}
	if theirs.Known() {
		m.layouts[addr] = theirs
	}
	ok := m.layout.Compatible(theirs)
	if ok == !m.incompatible[addr] {
		return ok
	}
	if ok {
		delete(m.incompatible, addr)
		m.log.Info("peer's layout now agrees with this edge's: using it again", "peer", addr, "layout", theirs.String())
	} else {
		m.incompatible[addr] = true
		m.log.Warn("peer's layout differs from this edge's: not using it for shards or coordination (each side is a fleet of its own until the settings agree)",
			"peer", addr, "via", side, "differences", m.layout.Diff(theirs), "this_layout", m.layout.String(), "peer_layout", theirs.String())
	}
	m.publishLocked()
	return ok
}

// layoutOf returns what the peer at addr said of its layout.
func (m *membership) layoutOf(addr string) FleetLayout {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.layouts[addr]
}

// isIncompatible reports whether the peer at addr is kept out for its
// layout.
func (m *membership) isIncompatible(addr string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.incompatible[addr]
}

// nodeID is this node's ID in gossip: GossipConfig.NodeID, else Self.
func (m *membership) nodeID() string {
	if m.gossip != nil && m.gossip.NodeID != "" {
		return m.gossip.NodeID
	}
	return m.self
}

// ProtocolVersion is the version of the peer protocol this node speaks,
// carried in its gossip metadata. Members with another version are kept
// out of placement.
const ProtocolVersion = 1

// nodeMeta is what a node tells the fleet about itself through gossip
// (memberlist's node metadata, at most 512 bytes): JSON, so that fields
// can be added without breaking older members.
type nodeMeta struct {
	Version int    `json:"v"`
	ID      string `json:"id"`
	Addr    string `json:"addr"`
	Zone    string `json:"zone,omitempty"`
	// The layout (FleetLayout; the protocol version is Version), absent
	// from members of a release before the exchange: unknown.
	SegmentSize int64 `json:"seg,omitempty"`
	K           int   `json:"k,omitempty"`
	M           int   `json:"m,omitempty"`
	Hash        int   `json:"hash,omitempty"`
}

// layout returns the FleetLayout the metadata announces.
func (m nodeMeta) layout() FleetLayout {
	if m.SegmentSize == 0 && m.K == 0 {
		return FleetLayout{}
	}
	return FleetLayout{SegmentSize: m.SegmentSize, K: m.K, M: m.M, Hash: m.Hash, Protocol: m.Version}
}

// Limits of the metadata fields.
const (
	maxMetaID   = 128
	maxMetaZone = 63
)

func (m nodeMeta) encode(limit int) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, fmt.Errorf("swarm: node metadata of %d bytes exceeds gossip's %d", len(b), limit)
	}
	return b, nil
}

// decodeMeta parses and checks a member's metadata; it trusts nothing in b.
func decodeMeta(b []byte) (nodeMeta, error) {
	var m nodeMeta
	if len(b) == 0 {
		return m, errors.New("swarm: member has no metadata (not a shoal edge?)")
	}
	if len(b) > 512 {
		return m, fmt.Errorf("swarm: member metadata of %d bytes", len(b))
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("swarm: member metadata: %w", err)
	}
	if m.Version != ProtocolVersion {
		return m, fmt.Errorf("swarm: member speaks peer protocol version %d, this node %d", m.Version, ProtocolVersion)
	}
	if m.ID == "" || len(m.ID) > maxMetaID {
		return m, fmt.Errorf("swarm: member ID of %d bytes (want 1..%d)", len(m.ID), maxMetaID)
	}
	if len(m.Zone) > maxMetaZone {
		return m, fmt.Errorf("swarm: member zone of %d bytes (want at most %d)", len(m.Zone), maxMetaZone)
	}
	if err := checkHostPort(m.Addr); err != nil {
		return m, fmt.Errorf("swarm: member peer address %q: %w", m.Addr, err)
	}
	return m, nil
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("no host")
	}
	p, err := strconv.Atoi(port)
	if err != nil || p <= 0 || p > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}
