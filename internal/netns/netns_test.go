package netns

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// usable skips the test when a network cannot be built here, and fails it
// under CI=true.
func usable(t *testing.T, latency bool) {
	t.Helper()
	if err := Usable(latency); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

// TestNetwork builds a hub and two hosts: the hub reaches a listener in a
// host, a program run in a host sees the hosts file written for it, and
// Close leaves no namespace or file behind.
func TestNetwork(t *testing.T) {
	usable(t, false)
	ctx := context.Background()
	prefix := fmt.Sprintf("shn%d-", os.Getpid())
	n, err := New(ctx, prefix, "10.79.0")
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var hosts []Host
	for i := range 2 {
		h, err := n.AddHost(ctx, fmt.Sprintf("h%d", i), 10+i)
		if err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, h)
	}
	var ln net.Listener
	if err := Do(hosts[1].NS, func() error {
		var err error
		ln, err = net.Listen("tcp", hosts[1].IP+":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.WriteString(c, "hello from "+hosts[1].NS)
			c.Close()
		}
	}()
	c, err := n.Dial(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	c.Close()
	if got, want := string(b), "hello from "+hosts[1].NS; got != want {
		t.Errorf("from the hub: %q, want %q", got, want)
	}

	if err := n.WriteEtc(hosts[0].NS, "hosts", []byte(hosts[0].IP+" fleet.test\n"+hosts[1].IP+" fleet.test\n")); err != nil {
		t.Fatal(err)
	}
	bin, args := n.Command(hosts[0].NS, "cat", []string{"/etc/hosts"})
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v: %s", bin, args, err, out)
	}
	if !strings.Contains(string(out), hosts[1].IP+" fleet.test") {
		t.Errorf("/etc/hosts in %s:\n%s", hosts[0].NS, out)
	}
	if err := n.WriteEtc("elsewhere", "hosts", nil); err == nil {
		t.Error("WriteEtc for a namespace of no network: no error")
	}

	n.Close()
	list, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(list), prefix) {
		t.Errorf("namespaces left behind:\n%s", list)
	}
	if _, err := os.Stat("/etc/netns/" + hosts[0].NS); !os.IsNotExist(err) {
		t.Errorf("/etc/netns/%s left behind: %v", hosts[0].NS, err)
	}
}
