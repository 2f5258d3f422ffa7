package main

import (
	"bytes"
	"encoding/base64"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func parseMembership(t *testing.T, args ...string) *membershipFlags {
	t.Helper()
	fs := flag.NewFlagSet("edge", flag.ContinueOnError)
	m := addMembershipFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMembershipFlags(t *testing.T) {
	// No --join: a static list, no gossip.
	if g, err := parseMembership(t).gossipConfig("10.0.0.5:7000", "10.0.0.5:7000", true); g != nil || err != nil {
		t.Errorf("without --join: got %+v, %v; want no gossip", g, err)
	}
	// Defaults: gossip on the peer host at 7946, advertised at --advertise's IP.
	g, err := parseMembership(t, "--join", "shoal-peers.ns.svc:7946, seed2").gossipConfig("0.0.0.0:7000", "10.1.2.3:7000", false)
	if err != nil {
		t.Fatal(err)
	}
	if g.BindAddr != "0.0.0.0:7946" || g.AdvertiseAddr != "10.1.2.3:7946" {
		t.Errorf("bind %q advertise %q, want 0.0.0.0:7946 and 10.1.2.3:7946", g.BindAddr, g.AdvertiseAddr)
	}
	if strings.Join(g.Join, ",") != "shoal-peers.ns.svc:7946,seed2:7946" {
		t.Errorf("seeds %v, want the port defaulted to 7946", g.Join)
	}
	// A key file, base64.
	key := bytes.Repeat([]byte{5}, 32)
	kf := filepath.Join(t.TempDir(), "gossip.key")
	os.WriteFile(kf, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600)
	g, err = parseMembership(t, "--join", "a:1", "--gossip-listen", "127.0.0.1:8946", "--gossip-key-file", kf).gossipConfig("127.0.0.1:7000", "127.0.0.1:7000", false)
	if err != nil || !bytes.Equal(g.SecretKey, key) || g.BindAddr != "127.0.0.1:8946" {
		t.Errorf("got %+v, %v", g, err)
	}
	for _, tc := range []struct {
		args   []string
		static bool
		want   string
	}{
		{[]string{"--join", "a:1"}, true, "exclude each other"},
		{[]string{"--gossip-listen", "1.2.3.4:1"}, false, "need --join"},
		{[]string{"--join", "a:1", "--gossip-key-file", kf + ".missing"}, false, "--gossip-key-file"},
	} {
		_, err := parseMembership(t, tc.args...).gossipConfig("127.0.0.1:7000", "127.0.0.1:7000", tc.static)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
}

func TestZoneFlags(t *testing.T) {
	zf := filepath.Join(t.TempDir(), "zone")
	os.WriteFile(zf, []byte("  eu-west-1b\n"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, ""},
		{[]string{"--zone-file", zf}, "eu-west-1b"},
		{[]string{"--zone-file", zf, "--zone", "rack-7"}, "rack-7"},
	} {
		if got, err := parseMembership(t, tc.args...).zoneName(); err != nil || got != tc.want {
			t.Errorf("%v: got %q, %v, want %q", tc.args, got, err, tc.want)
		}
	}
	if _, err := parseMembership(t, "--zone-file", zf+".missing").zoneName(); err == nil {
		t.Error("a missing --zone-file was accepted")
	}
}
