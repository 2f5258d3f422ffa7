package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/shoalcdn/shoal/swarm"
)

// membershipFlags are the flags of gossip membership and zones.
type membershipFlags struct {
	join, gossipListen, keyFile, nodeID, zone, zoneFile *string
}

func addMembershipFlags(fs *flag.FlagSet) *membershipFlags {
	return &membershipFlags{
		join:         fs.String("join", "", "comma-separated gossip seeds (host:port; a DNS name may resolve to many edges, e.g. a headless Service, re-resolved every 30s); turns on gossip membership instead of --peers"),
		gossipListen: fs.String("gossip-listen", "", "TCP and UDP address of gossip membership (default: the host of --peer-listen, port "+strconv.Itoa(swarm.DefaultGossipPort)+")"),
		keyFile:      fs.String("gossip-key-file", "", "file holding the gossip encryption key: 16, 24 or 32 bytes, base64 (openssl rand -base64 32) or raw; the same on every edge"),
		nodeID:       fs.String("node-id", "", "this edge's unique name in gossip (default: its peer address)"),
		zone:         fs.String("zone", "", "this edge's zone; shards are placed within the reader's zone, other zones are read before the origin (wins over --zone-file)"),
		zoneFile:     fs.String("zone-file", "", "file whose trimmed content is this edge's zone, as the Helm chart writes it"),
	}
}

// zoneName returns the zone from --zone, else --zone-file.
func (f *membershipFlags) zoneName() (string, error) {
	if *f.zone != "" || *f.zoneFile == "" {
		return *f.zone, nil
	}
	b, err := os.ReadFile(*f.zoneFile)
	if err != nil {
		return "", fmt.Errorf("--zone-file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// gossipConfig returns the swarm's GossipConfig, or nil with a static
// member list. peerListen and advertise are the peer protocol's.
func (f *membershipFlags) gossipConfig(peerListen, advertise string, static bool) (*swarm.GossipConfig, error) {
	seeds := splitList(*f.join)
	if len(seeds) == 0 {
		if *f.gossipListen != "" || *f.keyFile != "" {
			return nil, errors.New("--gossip-listen and --gossip-key-file need --join (the seeds of gossip membership)")
		}
		return nil, nil
	}
	if static {
		return nil, errors.New("--peers and --join exclude each other: use --join for gossip membership or --peers for a static list")
	}
	bind := *f.gossipListen
	if bind == "" {
		host, _, err := net.SplitHostPort(peerListen)
		if err != nil {
			return nil, fmt.Errorf("--peer-listen %q: %w", peerListen, err)
		}
		bind = net.JoinHostPort(host, strconv.Itoa(swarm.DefaultGossipPort))
	}
	g := &swarm.GossipConfig{BindAddr: bind, Join: seeds, NodeID: *f.nodeID}
	_, bport, err := net.SplitHostPort(bind)
	if err != nil {
		return nil, fmt.Errorf("--gossip-listen %q: %w", bind, err)
	}
	// Others reach gossip at the advertised peer host, when it is an IP.
	if host, _, err := net.SplitHostPort(advertise); err == nil && bport != "0" {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			g.AdvertiseAddr = net.JoinHostPort(host, bport)
		}
	}
	for i, s := range seeds {
		if _, _, err := net.SplitHostPort(s); err != nil {
			// A seed without a port is at the default gossip port.
			seeds[i] = net.JoinHostPort(s, strconv.Itoa(swarm.DefaultGossipPort))
		}
	}
	if *f.keyFile != "" {
		if g.SecretKey, err = swarm.LoadGossipKey(*f.keyFile); err != nil {
			return nil, fmt.Errorf("--gossip-key-file: %w", err)
		}
	}
	return g, nil
}
