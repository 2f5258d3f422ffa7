package k8stest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/shoalcdn/shoal/swarm"
)

// pod is a container of a rendered pod template made runnable on this
// machine: its volumes are directories filled the way the kubelet fills
// them, its environment is resolved, and $(VAR) in its arguments expanded.
type pod struct {
	Args []string
	Env  []string
	// Mounts maps each mount path in the container to its directory here.
	Mounts map[string]string
}

// fieldValues stands in for the downward API.
type fieldValues struct{ PodName, PodIP, HostIP, NodeName string }

// materialize prepares container c of p to run here, under dir.
func materialize(t *testing.T, m manifest, p podTemplate, c *corev1.Container, fv fieldValues, dir string) pod {
	t.Helper()
	out := pod{Mounts: map[string]string{}}
	spec := &p.Template.Spec
	for _, vm := range c.VolumeMounts {
		host := filepath.Join(dir, "volumes", vm.Name)
		out.Mounts[vm.MountPath] = host
		if _, err := os.Stat(host); err == nil {
			continue // two mounts of one volume
		}
		if err := os.MkdirAll(host, 0o755); err != nil {
			t.Fatal(err)
		}
		v := volume(spec, vm.Name)
		switch {
		case v == nil: // a volumeClaimTemplate: an empty volume
		case v.Secret != nil:
			s := m.get("Secret", v.Secret.SecretName)
			if s == nil {
				t.Fatalf("volume %s: no Secret %s in the manifest", vm.Name, v.Secret.SecretName)
			}
			data := s.Obj.(*corev1.Secret).Data
			files := map[string][]byte{}
			for _, it := range v.Secret.Items {
				b, ok := data[it.Key]
				if !ok {
					t.Fatalf("volume %s: Secret %s has no key %s (the kubelet would not start the pod)", vm.Name, s.Name, it.Key)
				}
				files[it.Path] = b
			}
			if len(v.Secret.Items) == 0 {
				files = data
			}
			writeAtomicDir(t, host, files)
		case v.ConfigMap != nil:
			cm := m.get("ConfigMap", v.ConfigMap.Name)
			if cm == nil {
				t.Fatalf("volume %s: no ConfigMap %s in the manifest", vm.Name, v.ConfigMap.Name)
			}
			files := map[string][]byte{}
			for k, s := range cm.Obj.(*corev1.ConfigMap).Data {
				files[k] = []byte(s)
			}
			writeAtomicDir(t, host, files)
		}
	}
	values := map[string]string{}
	for _, e := range c.Env {
		var val string
		switch {
		case e.ValueFrom == nil:
			val = expand(e.Value, values)
		case e.ValueFrom.FieldRef != nil:
			val = map[string]string{"metadata.name": fv.PodName, "status.podIP": fv.PodIP,
				"status.hostIP": fv.HostIP, "spec.nodeName": fv.NodeName}[e.ValueFrom.FieldRef.FieldPath]
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s := m.get("Secret", ref.Name)
			if s == nil {
				t.Fatalf("env %s: no Secret %s in the manifest", e.Name, ref.Name)
			}
			val = string(s.Obj.(*corev1.Secret).Data[ref.Key])
		default:
			t.Fatalf("env %s: a source this test does not know", e.Name)
		}
		values[e.Name] = val
		// A SHOAL_ variable is a flag: a path under a mount names the same
		// path here.
		if strings.HasPrefix(e.Name, "SHOAL_") {
			val = out.local(val)
		}
		out.Env = append(out.Env, e.Name+"="+val)
	}
	for _, a := range c.Args {
		a = expand(a, values)
		// A flag naming a path under a mount names the same path here.
		if name, value, ok := strings.Cut(a, "="); ok {
			a = name + "=" + out.local(value)
		}
		out.Args = append(out.Args, a)
	}
	return out
}

// local returns the path here of a path in the container, when it is under
// one of its mounts, else value unchanged.
func (p pod) local(value string) string {
	best := ""
	for mp := range p.Mounts {
		if (value == mp || strings.HasPrefix(value, mp+"/")) && len(mp) > len(best) {
			best = mp
		}
	}
	if best == "" {
		return value
	}
	return p.Mounts[best] + strings.TrimPrefix(value, best)
}

// writeAtomicDir fills dir the way the kubelet fills a Secret or ConfigMap
// volume: the files live in a timestamped directory, "..data" links to it,
// and each name is a link through "..data".
func writeAtomicDir(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	ts := "..2026_11_21_12_00_00.000000001"
	if err := os.Mkdir(filepath.Join(dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, ts, name), b, 0o440); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(ts, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

// expand does the kubelet's $(VAR) expansion: a defined variable is
// replaced, an undefined reference is left as it is, and $$ is a $.
func expand(s string, vars map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
			continue
		case '(':
			if end := strings.IndexByte(s[i:], ')'); end > 0 {
				if v, ok := vars[s[i+2:i+end]]; ok {
					b.WriteString(v)
					i += end
					continue
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// freePorts returns n ports free for both TCP and UDP on 127.0.0.1.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for len(ports) < n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, ln)
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		closers = append(closers, pc)
		ports = append(ports, port)
	}
	return ports
}

// localListen makes ":port" listen addresses listen on loopback only.
var localListen = regexp.MustCompile(`^(--[a-z-]*listen)=:`)

// clusterHost is a Service's cluster DNS name in a URL.
var clusterHost = regexp.MustCompile(`//[a-z0-9.-]+\.svc\.cluster\.local:`)

// joinHost is the peers Service's DNS name in --join.
var joinHost = regexp.MustCompile(`^--join=[a-z0-9.-]+\.svc\.cluster\.local:`)

// process is a running shoal process.
type process struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan error
}

func start(t *testing.T, p pod) *process {
	t.Helper()
	return startAt(t, p, "127.0.0.1", "127.0.0.1")
}

// startAt starts p as a pod whose IP is the loopback address ip: ":port"
// listeners listen there. The cluster's DNS does not exist here, so
// Services resolve to 127.0.0.1, and --join's peers Service to seed (the
// address of the pod that stands in for what its DNS name resolves to).
func startAt(t *testing.T, p pod, ip, seed string) *process {
	t.Helper()
	var args []string
	for _, a := range p.Args {
		a = localListen.ReplaceAllString(a, "$1="+ip+":")
		if strings.HasPrefix(a, "--origin=") {
			a = clusterHost.ReplaceAllString(a, "//127.0.0.1:")
		}
		a = joinHost.ReplaceAllString(a, "--join="+seed+":")
		args = append(args, a)
	}
	cmd := exec.Command(shoalBinary(t), args...)
	// A pod sees its own environment, not the test's: SHOAL_* variables
	// of the machine running the tests (CI's SHOAL_HELM) would be unknown
	// flags to an edge run with --strict-env, as the chart runs it.
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "SHOAL_") })
	cmd.Env = append(env, p.Env...)
	out := new(bytes.Buffer)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pr := &process{cmd: cmd, out: out, done: make(chan error, 1)}
	go func() { pr.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-pr.done
		if t.Failed() {
			t.Logf("shoal %s:\n%s", strings.Join(args, " "), out)
		}
	})
	return pr
}

// stop sends SIGTERM, as the kubelet does, and wants a clean exit within
// grace.
func (p *process) stop(t *testing.T, grace time.Duration) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Errorf("after SIGTERM: %v", err)
		}
	case <-time.After(grace):
		t.Errorf("still running %v after SIGTERM: the kubelet would kill it", grace)
	}
}

// waitHTTP polls url until it answers want, or fails after a while.
func waitHTTP(t *testing.T, p *process, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("shoal exited (%v) before %s answered", err, url)
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v, status %v; want %d", url, err, resp, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func get(t *testing.T, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	c := &http.Client{Timeout: 60 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestRenderedPodsRun runs the shoal binary with the arguments, environment
// and volumes the chart renders: the flags must exist and parse, each edge
// must find itself in --peers, the certificates must load from the paths the
// volume items give them, and the edge must serve through the reference
// origin.
func TestRenderedPodsRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		values []string
		fv     fieldValues
		// extra objects standing in for what the user or cert-manager makes
		extra func(t *testing.T, m manifest) manifest
		// check runs more checks against the running edge, whose volumes
		// are under edgeDir/volumes, with the reference origin up.
		check func(t *testing.T, m manifest, edgeDir string, httpsPort int)
	}{
		{name: "statefulset-origin", values: []string{"-f", ciValues(t)["origin"]},
			fv: fieldValues{PodName: "shoal-edge-1", PodIP: "127.0.0.1", HostIP: "127.0.0.1"}},
		{name: "statefulset-static", values: []string{"-f", ciValues(t)["origin"], "--set", "membership.mode=static"},
			fv: fieldValues{PodName: "shoal-edge-2", PodIP: "127.0.0.1", HostIP: "127.0.0.1"}},
		{name: "daemonset", values: []string{"--set", "mode=daemonset", "--set", "referenceOrigin.enabled=true"},
			fv: fieldValues{PodName: "shoal-edge-x7k2p", PodIP: "127.0.0.1", HostIP: "127.0.0.1"}},
		{name: "daemonset-static-peers", values: []string{"--set", "mode=daemonset", "--set", "membership.mode=static", "--set", "referenceOrigin.enabled=true",
			"--set", "storage.type=hostPath", "--set", "daemonset.staticPeers={10.0.0.2:PEER,127.0.0.1:PEER,10.0.0.3:PEER}"},
			fv: fieldValues{PodName: "shoal-edge-q9w8e", PodIP: "10.244.1.7", HostIP: "127.0.0.1"}},
		{name: "cert-manager", values: []string{"--set", "referenceOrigin.enabled=true", "--set", "tls.source=certManager",
			"--set", "tls.certManager.issuerRef.name=fleet-ca", "--set", "storage.type=memory", "--set", "adminToken.enabled=false",
			"--set", "membership.gossipKey.source=none", "--set", "edge.peerUploadLimit=10MB,edge.originLimit=5MB"},
			fv:    fieldValues{PodName: "shoal-edge-2", PodIP: "127.0.0.1", HostIP: "127.0.0.1"},
			extra: certManagerSecret},
		{name: "client-tls", values: []string{"-f", ciValues(t)["client-tls"], "--set", "edge.origin=", "--set", "referenceOrigin.enabled=true",
			"--set", "service.type=ClusterIP,service.httpsNodePort=0", "--set", "storage.type=memory"},
			fv:    fieldValues{PodName: "shoal-edge-0", PodIP: "127.0.0.1", HostIP: "127.0.0.1"},
			extra: clientTLSSecrets, check: checkClientTLSRuns},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ports := freePorts(t, 6)
			httpPort, peer, admin, originPort, gossip, https := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
			var values []string
			for _, v := range tc.values {
				values = append(values, strings.ReplaceAll(v, "PEER", fmt.Sprint(peer)))
			}
			values = append(values,
				"--set", fmt.Sprintf("edge.ports.http=%d,edge.ports.peer=%d,edge.ports.admin=%d,edge.ports.gossip=%d,edge.ports.https=%d", httpPort, peer, admin, gossip, https),
				"--set", fmt.Sprintf("referenceOrigin.port=%d", originPort),
				"--set", "edge.drainDelay=500ms,edge.drainTimeout=5s,edge.logFormat=text")
			m := render(t, values...)
			if tc.extra != nil {
				m = tc.extra(t, m)
			}
			dir := t.TempDir()

			var origin *process
			for _, p := range m.podTemplates() {
				if c := container(&p.Template.Spec, "origin"); c != nil {
					origin = start(t, materialize(t, m, p, c, fieldValues{PodName: "shoal-origin-0", PodIP: "127.0.0.1"}, filepath.Join(dir, "origin")))
				}
			}
			p, c := m.edge(t)
			edge := start(t, materialize(t, m, p, c, tc.fv, filepath.Join(dir, "edge")))
			base := fmt.Sprintf("http://127.0.0.1:%d", admin)
			waitHTTP(t, edge, base+"/readyz", 200)
			waitHTTP(t, edge, base+"/healthz", 200)

			if token := env(c, "SHOAL_ADMIN_TOKEN"); token != nil {
				secret := string(m.get("Secret", token.ValueFrom.SecretKeyRef.Name).Obj.(*corev1.Secret).Data[token.ValueFrom.SecretKeyRef.Key])
				if resp, _ := get(t, base+"/metrics"); resp.StatusCode != 401 {
					t.Errorf("/metrics without the token: %d, want 401", resp.StatusCode)
				}
				if resp, body := get(t, base+"/metrics", "Authorization", "Bearer "+secret); resp.StatusCode != 200 || !strings.Contains(body, "shoal_served_bytes_total") {
					t.Errorf("/metrics with the token from the Secret: %d", resp.StatusCode)
				}
			}
			if origin != nil {
				waitHTTP(t, origin, fmt.Sprintf("http://127.0.0.1:%d/hello.txt", originPort), 200)
				url := fmt.Sprintf("http://127.0.0.1:%d/hello.txt", httpPort)
				for i, want := range []string{"fwd=miss", "hit"} {
					resp, body := get(t, url)
					if resp.StatusCode != 200 || body != "Hello from the Shoal reference origin.\n" {
						t.Fatalf("GET %d through the edge: %d %q", i, resp.StatusCode, body)
					}
					if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, want) {
						t.Errorf("GET %d: Cache-Status %q, want %s", i, cs, want)
					}
				}
				if tc.check != nil {
					tc.check(t, m, filepath.Join(dir, "edge"), https)
				}
				origin.stop(t, 15*time.Second)
			}
			edge.stop(t, time.Duration(*p.Template.Spec.TerminationGracePeriodSeconds)*time.Second)
		})
	}
}

// certManagerSecret adds the Secret cert-manager would write for the
// chart's Certificate (ca.crt, tls.crt, tls.key), made by `shoal certs`.
func certManagerSecret(t *testing.T, m manifest) manifest {
	t.Helper()
	cert := m.get("Certificate", "shoal-peer")
	if cert == nil {
		t.Fatal("no Certificate")
	}
	dir := t.TempDir()
	if out, err := exec.Command(shoalBinary(t), "certs", "--dir", dir, "--hosts", strings.Join(cert.Certificate.Spec.DNSNames, ",")).CombinedOutput(); err != nil {
		t.Fatalf("shoal certs: %v\n%s", err, out)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	s := &corev1.Secret{Data: map[string][]byte{"ca.crt": read("ca.crt"), "tls.crt": read("node.crt"), "tls.key": read("node.key")}}
	s.Name = cert.Certificate.Spec.SecretName
	return append(m, object{Kind: "Secret", Name: s.Name, Obj: s})
}

// TestGeneratedCertificates checks that the CA and node certificate the
// chart generates work for the peer protocol: two edges with them complete
// mutual TLS, and an edge of another release (another CA) is refused.
func TestGeneratedCertificates(t *testing.T) {
	t.Parallel()
	creds := func() *swarm.Credentials {
		m := render(t, "--set", "edge.origin=http://origin.example.com")
		p, c := m.edge(t)
		tp := materialize(t, m, p, c, fieldValues{PodName: "shoal-edge-0"}, t.TempDir())
		cr, err := swarm.LoadCredentials(tp.Mounts["/etc/shoal/tls"])
		if err != nil {
			t.Fatalf("the edge would refuse to start: %v", err)
		}
		s := m.get("Secret", "shoal-tls").Obj.(*corev1.Secret)
		if b, _ := pem.Decode(s.Data["node.key"]); b == nil || b.Type != "EC PRIVATE KEY" {
			t.Errorf("node.key is not an EC key in PEM")
		}
		return cr
	}
	// Every edge of a release mounts the same Secret; another render is
	// another release, with another CA.
	a, other := creds(), creds()
	handshake := func(client, server *swarm.Credentials) error {
		c1, c2 := net.Pipe()
		defer c1.Close()
		defer c2.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		errc := make(chan error, 1)
		go func() { errc <- tls.Server(c2, server.ServerConfig()).HandshakeContext(ctx) }()
		cerr := tls.Client(c1, client.ClientConfig()).HandshakeContext(ctx)
		c1.Close()
		serr := <-errc
		if cerr != nil {
			return cerr
		}
		return serr
	}
	if err := handshake(a, a); err != nil {
		t.Errorf("two edges with the generated certificates: %v", err)
	}
	if err := handshake(other, a); err == nil {
		t.Errorf("an edge with another CA was accepted")
	}
}

// TestRenderedPodsGossip runs two edge pods of one rendered DaemonSet (the
// default membership, gossip, with the chart's generated key) on two
// loopback addresses standing in for pod IPs, 127.0.0.1 and 127.0.0.2, with
// the reference origin. The peers Service's DNS name in --join stands for
// the first pod's address (what the headless Service resolves to). Each
// edge must list the other as alive under its pod name (--node-id) and
// advertised address, both must serve through the origin, and shards or
// records must travel between them over the peer protocol with the
// generated certificates. Each runs in the zone its node's label names (the
// file the zone init container writes), which gossip tells the other.
func TestRenderedPodsGossip(t *testing.T) {
	t.Parallel()
	ips := []string{"127.0.0.1", "127.0.0.2"}
	if ln, err := net.Listen("tcp", ips[1]+":0"); err != nil {
		t.Skipf("skipping: %s is not a loopback address here: %v", ips[1], err)
	} else {
		ln.Close()
	}
	ports := freePorts(t, 5)
	httpPort, peer, admin, originPort, gossip := ports[0], ports[1], ports[2], ports[3], ports[4]
	m := render(t, "--set", "mode=daemonset", "--set", "referenceOrigin.enabled=true", "--set", "zone.enabled=true",
		"--set", fmt.Sprintf("edge.ports.http=%d,edge.ports.peer=%d,edge.ports.admin=%d,edge.ports.gossip=%d", httpPort, peer, admin, gossip),
		"--set", fmt.Sprintf("referenceOrigin.port=%d", originPort),
		"--set", "edge.drainDelay=500ms,edge.drainTimeout=5s,edge.logFormat=text")
	dir := t.TempDir()
	for _, p := range m.podTemplates() {
		if c := container(&p.Template.Spec, "origin"); c != nil {
			origin := start(t, materialize(t, m, p, c, fieldValues{PodName: "shoal-origin-0", PodIP: "127.0.0.1"}, filepath.Join(dir, "origin")))
			waitHTTP(t, origin, fmt.Sprintf("http://127.0.0.1:%d/hello.txt", originPort), 200)
		}
	}
	p, c := m.edge(t)
	if f := flags(c); f["join"] == "" || f["gossip-key-file"] == "" {
		t.Fatalf("the default DaemonSet does not join by gossip with a key: %v", c.Args)
	}
	tokenRef := env(c, "SHOAL_ADMIN_TOKEN").ValueFrom.SecretKeyRef
	token := string(m.get("Secret", tokenRef.Name).Obj.(*corev1.Secret).Data[tokenRef.Key])
	names := []string{"shoal-edge-a1b2c", "shoal-edge-d3e4f"}
	// One zone, as of two nodes in one zone: each holds some of the
	// object's shards, so the one that fills pushes shards to the other.
	zones := []string{"eu-west-1a", "eu-west-1a"}
	var edges []*process
	for i, ip := range ips {
		fv := fieldValues{PodName: names[i], PodIP: ip, HostIP: ip, NodeName: "node-" + fmt.Sprint(i)}
		pd := materialize(t, m, p, c, fv, filepath.Join(dir, names[i]))
		// What the zone init container writes (TestZoneScript runs it).
		if err := os.WriteFile(pd.Mounts["/etc/shoal/zone"]+"/zone", []byte(zones[i]+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		e := startAt(t, pd, ip, ips[0])
		edges = append(edges, e)
		waitHTTP(t, e, fmt.Sprintf("http://%s:%d/readyz", ip, admin), 200)
	}

	type member struct {
		ID, Addr, State, Zone string
		BytesSent             uint64 `json:"bytes_sent"`
		BytesReceived         uint64 `json:"bytes_received"`
	}
	peersOf := func(ip string) map[string]member {
		resp, body := get(t, fmt.Sprintf("http://%s:%d/admin/peers", ip, admin), "Authorization", "Bearer "+token)
		if resp.StatusCode != 200 {
			t.Fatalf("/admin/peers of %s: %d %s", ip, resp.StatusCode, body)
		}
		var doc struct{ Members []member }
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			t.Fatalf("/admin/peers of %s: %v", ip, err)
		}
		out := map[string]member{}
		for _, mb := range doc.Members {
			out[mb.ID] = mb
		}
		return out
	}
	// Wait until each edge sees both pods alive, under their pod names, the
	// addresses they advertise and their zones.
	for i, ip := range ips {
		deadline := time.Now().Add(30 * time.Second)
		for {
			ms := peersOf(ip)
			ok := len(ms) == 2
			for j, name := range names {
				mb := ms[name]
				ok = ok && mb.State == "alive" && mb.Addr == fmt.Sprintf("%s:%d", ips[j], peer) && mb.Zone == zones[j]
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("edge %s (%s) sees %+v after 30 s; want %v alive in %v", names[i], ip, ms, names, zones)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	for i, ip := range ips {
		resp, body := get(t, fmt.Sprintf("http://%s:%d/hello.txt", ip, httpPort))
		if resp.StatusCode != 200 || body != "Hello from the Shoal reference origin.\n" {
			t.Fatalf("GET through edge %d: %d %q", i, resp.StatusCode, body)
		}
	}
	// The two edges share one object: its record and shards go between them
	// over QUIC with the chart's certificates.
	deadline := time.Now().Add(20 * time.Second)
	for {
		other := peersOf(ips[0])[names[1]]
		if other.BytesSent+other.BytesReceived > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no bytes between the edges over the peer protocol: %+v", other)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// SIGTERM makes the second edge leave; the first sees it leave.
	edges[1].stop(t, time.Duration(*p.Template.Spec.TerminationGracePeriodSeconds)*time.Second)
	deadline = time.Now().Add(20 * time.Second)
	for {
		if st := peersOf(ips[0])[names[1]].State; st == "left" || st == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge %s still sees %s as %s after it stopped", names[0], names[1], peersOf(ips[0])[names[1]].State)
		}
		time.Sleep(200 * time.Millisecond)
	}
	edges[0].stop(t, time.Duration(*p.Template.Spec.TerminationGracePeriodSeconds)*time.Second)
}
