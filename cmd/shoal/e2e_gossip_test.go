package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// adminPeers reads an edge's /admin/peers: peer address → state.
func adminPeers(e *edgeProc, token string) (map[string]string, string, error) {
	req, err := http.NewRequest(http.MethodGet, e.admin+"/admin/peers", nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := e.client(2 * time.Second).Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("status %s", resp.Status)
	}
	var doc struct {
		Zone    string `json:"zone"`
		Members []struct {
			Addr  string `json:"addr"`
			State string `json:"state"`
		} `json:"members"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return nil, "", err
	}
	out := map[string]string{}
	for _, m := range doc.Members {
		out[m.Addr] = m.State
	}
	return out, doc.Zone, nil
}

// Three edge processes find each other by gossip through one seed, with an
// encryption key and zones from a file; SIGTERM makes one leave, SIGKILL
// makes another die, and the survivor says so.
func TestE2EGossipJoinLeaveCrash(t *testing.T) {
	www := t.TempDir()
	o := writeObject(t, www, "gossip.bin", 5<<20+17, 41)
	origin := startOrigin(t, www)
	tlsDir := fleetTLS(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	zoneFile := filepath.Join(dir, "zone")
	if err := os.WriteFile(zoneFile, []byte("zone-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const token = "t0k"
	seed := freeTCP(t)
	var edges []*edgeProc
	for i := range 3 {
		gossip := seed
		if i > 0 {
			gossip = freeTCP(t)
		}
		edges = append(edges, startEdge(t, edgeSpec{
			name: fmt.Sprintf("edge%d", i+1), origin: origin.url, tlsDir: tlsDir, peer: freeUDP(t),
			extra: []string{"--join", seed, "--gossip-listen", gossip, "--gossip-key-file", keyFile, "--admin-token", token},
			env:   []string{"SHOAL_ZONE_FILE=" + zoneFile},
		}))
	}
	for _, e := range edges {
		e.waitReady(t)
	}
	for _, e := range edges {
		waitFor(t, e.proc, "3 alive members in /admin/peers", func() bool {
			ps, zone, err := adminPeers(e, token)
			if err != nil || len(ps) != 3 || zone != "zone-1" {
				return false
			}
			for _, st := range ps {
				if st != "alive" {
					return false
				}
			}
			return true
		})
	}
	c := newClient()
	for i, e := range edges {
		_, sum, n := fetch(t, c, http.MethodGet, e.url+o.path, nil)
		if n != o.size || sum != o.sum {
			t.Fatalf("via edge %d: %d bytes, sha256 %s; want %d, %s", i+1, n, sum, o.size, o.sum)
		}
	}

	// SIGTERM: a graceful leave.
	if err := edges[1].cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := edges[1].exitCode(t, 30*time.Second); code != 0 {
		t.Errorf("edge2 exited %d after SIGTERM, want 0", code)
	}
	waitFor(t, edges[0].proc, "edge2 reported as left", func() bool {
		ps, _, err := adminPeers(edges[0], token)
		return err == nil && ps[edges[1].peer] == "left"
	})

	// SIGKILL: a crash, noticed by probes.
	start := time.Now()
	edges[2].kill(t)
	waitFor(t, edges[0].proc, "edge3 reported as dead", func() bool {
		ps, _, err := adminPeers(edges[0], token)
		return err == nil && ps[edges[2].peer] == "dead"
	})
	t.Logf("a killed edge was declared dead after %v", time.Since(start).Round(100*time.Millisecond))
	_, sum, n := fetch(t, c, http.MethodGet, edges[0].url+o.path, nil)
	if n != o.size || sum != o.sum {
		t.Fatalf("the survivor: %d bytes, sha256 %s; want %d, %s", n, sum, o.size, o.sum)
	}
}
