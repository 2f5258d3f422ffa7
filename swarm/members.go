package swarm

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

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
}

func newMemberView(ms []Member) *memberView {
	v := &memberView{byAddr: make(map[string]Member, len(ms)), zones: map[string][]string{}}
	for _, m := range ms {
		if _, dup := v.byAddr[m.Addr]; dup {
			continue
		}
		v.byAddr[m.Addr] = m
		v.all = append(v.all, m.Addr)
		v.zones[m.Zone] = append(v.zones[m.Zone], m.Addr)
	}
	slices.Sort(v.all)
	for _, z := range v.zones {
		slices.Sort(z)
	}
	return v
}

// membership holds the member set of a Node. Updates come from gossip
// (or once, from the static list) and are serialized by the Node's memMu;
// readers load the current view without locking.
type membership struct {
	view atomic.Pointer[memberView]
	// gone remembers members that died or left, for /admin/peers, by ID.
	gone map[string]Member
	// live is the source of the view, by ID.
	live map[string]Member
	// suspect holds, by ID, when this node first saw memberlist suspect
	// each member it suspects now; see suspects.
	suspect map[string]time.Time
}

// maxGone bounds how many departed members are remembered for display.
const maxGone = 256

// Members returns every member taking part in placement, this node
// included, sorted by address.
func (n *Node) Members() []string { return slices.Clone(n.mem.view.Load().all) }

// MemberList returns every member known to this node with its zone and
// state: those in placement first (by address), then those that recently
// died or left.
func (n *Node) MemberList() []Member {
	sus := n.suspects()
	v := n.mem.view.Load()
	out := make([]Member, 0, len(v.all))
	for _, a := range v.all {
		out = append(out, sus.apply(v.byAddr[a]))
	}
	n.memMu.Lock()
	var gone []Member
	for _, m := range n.mem.gone {
		if _, back := v.byAddr[m.Addr]; !back {
			gone = append(gone, m)
		}
	}
	n.memMu.Unlock()
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
func (n *Node) setStatic(peers []string) {
	now := time.Now()
	n.memMu.Lock()
	defer n.memMu.Unlock()
	n.mem.live = map[string]Member{}
	n.mem.gone = map[string]Member{}
	n.mem.live[n.nodeID()] = Member{ID: n.nodeID(), Addr: n.cfg.Self, Zone: n.cfg.Zone, State: StateAlive, Since: now}
	for _, p := range peers {
		if p == "" || p == n.cfg.Self {
			continue
		}
		n.mem.live[p] = Member{ID: p, Addr: p, Zone: n.cfg.Zone, State: StateAlive, Since: now}
	}
	n.publishLocked()
}

// upsertMember adds or updates a member that gossip reports alive or
// suspect.
func (n *Node) upsertMember(m Member) {
	n.memMu.Lock()
	defer n.memMu.Unlock()
	old, ok := n.mem.live[m.ID]
	if ok && old == (Member{ID: m.ID, Addr: m.Addr, Zone: m.Zone, Gossip: m.Gossip, State: m.State, Since: old.Since}) {
		return
	}
	if !ok || old.State != m.State {
		m.Since = time.Now()
	} else {
		m.Since = old.Since
	}
	n.mem.live[m.ID] = m
	delete(n.mem.gone, m.ID)
	n.publishLocked()
	if !ok {
		n.log.Info("member joined", "id", m.ID, "addr", m.Addr, "zone", m.Zone)
	}
}

// removeMember drops a member that died or left from placement.
func (n *Node) removeMember(id string, state MemberState) {
	n.memMu.Lock()
	defer n.memMu.Unlock()
	m, ok := n.mem.live[id]
	if !ok || id == n.nodeID() {
		// This node leaves by stopping, and never drops itself. A goodbye
		// from a member already taken for dead (a false death under load,
		// or its goodbye overtaken) says what became of it.
		if g, gone := n.mem.gone[id]; gone && state == StateLeft && g.State == StateDead {
			g.State = StateLeft
			n.mem.gone[id] = g
		}
		return
	}
	delete(n.mem.live, id)
	m.State, m.Since = state, time.Now()
	if len(n.mem.gone) >= maxGone {
		var oldest string
		for k, g := range n.mem.gone {
			if oldest == "" || g.Since.Before(n.mem.gone[oldest].Since) {
				oldest = k
			}
		}
		delete(n.mem.gone, oldest)
	}
	n.mem.gone[id] = m
	n.publishLocked()
	n.log.Info("member removed", "id", id, "addr", m.Addr, "zone", m.Zone, "state", string(state))
}

func (n *Node) publishLocked() {
	ms := make([]Member, 0, len(n.mem.live))
	for _, m := range n.mem.live {
		ms = append(ms, m)
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
	n.mem.view.Store(newMemberView(ms))
	if n.cfg.OnMembersChange != nil {
		n.cfg.OnMembersChange()
	}
}

func (n *Node) nodeID() string {
	if n.cfg.Gossip != nil && n.cfg.Gossip.NodeID != "" {
		return n.cfg.Gossip.NodeID
	}
	return n.cfg.Self
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
