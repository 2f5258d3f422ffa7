package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// A deployment is one system started for one crowd: the origin, the
// counting proxy in front of it, and the sites the clients go to.

// site is where a group of clients goes: an edge, an nginx, or for direct
// the origin.
type site struct {
	url   string   // base URL for clients
	admin string   // an edge's admin base URL; empty otherwise
	proc  *process // the edge or nginx master; nil for direct
}

// deployment is one system, started for one crowd.
type deployment struct {
	origin    *process
	originURL string
	proxy     *CountingProxy
	sites     []site
	procs     []*process // everything started, the origin first
	// dead holds, by site index, what the faults scenario read of a site
	// just before it killed it. Written only while the crowd runs, by the
	// one goroutine that injects faults; read after.
	dead map[int]deadSite
}

// stop ends every process, the sites first, then the origin.
func (d *deployment) stop() {
	var wg sync.WaitGroup
	for _, p := range d.procs[min(1, len(d.procs)):] {
		wg.Go(func() { p.stop(5 * time.Second) })
	}
	wg.Wait()
	if d.proxy != nil {
		d.proxy.Close()
	}
	if d.origin != nil {
		d.origin.stop(5 * time.Second)
	}
}

// tierRoots are the serving tier's processes (with their children): what
// CPU time and memory are counted for.
func (d *deployment) tierRoots() []int {
	if len(d.sites) > 0 && d.sites[0].proc == nil {
		return []int{d.origin.pid()} // direct: the origin serves
	}
	var pids []int
	for _, s := range d.sites {
		pids = append(pids, s.proc.pid())
	}
	return pids
}

// removeBulk removes what a system stored under dir (edge data
// directories, nginx caches: up to sites × release × 1.5) and leaves the
// logs and configurations.
func removeBulk(dir string) {
	for _, pattern := range []string{"data-*", "nginx-*/cache", "nginx-*/tmp"} {
		matches, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, m := range matches {
			os.RemoveAll(m)
		}
	}
}

// deploy starts the origin, the counting proxy and the system's sites, and
// waits until all are ready. It returns the deployment even on error, so
// that what started is stopped.
func (r *runner) deploy(ctx context.Context, sys string, n int, dir string) (*deployment, error) {
	d := &deployment{}
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(originIP(), nsOriginPort)
	if r.net == nil {
		var err error
		if addr, err = freeAddr("tcp"); err != nil {
			return nil, err
		}
	}
	var err error
	d.origin, err = r.start("origin", logs, -1, r.cfg.Binary, "origin", "--listen", addr, "--dir", r.www,
		"--cache-control", "public, max-age=3600", "--log-format", "text", "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	d.procs = append(d.procs, d.origin)
	if err := d.origin.waitUntil(ctx, "listener on "+addr, func() bool { return tcpUp(r.dial, addr) }); err != nil {
		return d, err
	}
	d.originURL = "http://" + addr
	if r.net == nil {
		d.proxy, err = StartCountingProxy(d.originURL)
	} else {
		var ln net.Listener
		if ln, err = r.net.listen(); err == nil {
			d.proxy, err = startCountingProxy(ln, d.originURL, r.dial)
		}
	}
	if err != nil {
		return d, err
	}

	switch sys {
	case SystemDirect:
		for range n {
			d.sites = append(d.sites, site{url: d.proxy.URL()})
		}
	case SystemShoal, SystemPerSite:
		peerAddrs, addrs, err := r.siteAddrs(n)
		if err != nil {
			return d, err
		}
		for i := range n {
			listen, admin := addrs[2*i], addrs[2*i+1]
			peers := ""
			if sys == SystemShoal {
				peers = strings.Join(peerAddrs, ",")
			}
			args := append([]string{"edge",
				"--listen", listen, "--admin-listen", admin, "--origin", d.proxy.URL(),
				"--peer-listen", peerAddrs[i], "--peers", peers, "--tls-dir", r.tlsDir,
				"--data-dir", filepath.Join(dir, fmt.Sprintf("data-%02d", i)),
				"--log-format", "text", "--log-level", "warn",
			}, r.cfg.EdgeFlags...)
			p, err := r.start(fmt.Sprintf("edge-%02d", i), logs, i, r.cfg.Binary, args...)
			if err != nil {
				return d, err
			}
			d.procs = append(d.procs, p)
			d.sites = append(d.sites, site{url: "http://" + listen, admin: "http://" + admin, proc: p})
		}
		for _, s := range d.sites {
			if err := s.proc.waitUntil(ctx, "readiness", func() bool { return httpOK(r.http, s.admin+"/readyz") }); err != nil {
				return d, err
			}
		}
	case SystemNginx:
		_, all, err := r.siteAddrs(n)
		if err != nil {
			return d, err
		}
		var addrs []string
		for i := range n {
			addrs = append(addrs, all[2*i])
		}
		slice := r.cfg.NginxSlice
		if !r.nginx.Slice {
			slice = 0
		}
		for i := range n {
			s := nginxSite{Prefix: filepath.Join(dir, fmt.Sprintf("nginx-%02d", i)), Listen: addrs[i],
				Upstream: strings.TrimPrefix(d.proxy.URL(), "http://"), Slice: slice, Lock: r.cfg.Timeout}
			var wrap []string
			if r.net != nil {
				bin, args := r.net.command(r.net.sites[i], "", nil)
				wrap = append([]string{bin}, args[:len(args)-1]...)
			}
			p, err := startNginx(r.nginx, s, fmt.Sprintf("nginx-%02d", i), logs, wrap)
			if err != nil {
				return d, err
			}
			d.procs = append(d.procs, p)
			d.sites = append(d.sites, site{url: "http://" + addrs[i], proc: p})
		}
		for _, s := range d.sites {
			host := strings.TrimPrefix(s.url, "http://")
			if err := s.proc.waitUntil(ctx, "listener on "+host, func() bool { return tcpUp(r.dial, host) }); err != nil {
				return d, err
			}
		}
	}
	return d, nil
}

// warm has every site fetch the warm-up objects, all sites at once. It
// also sends the origin itself (not through the counting proxy) a HEAD for
// every object of the scenario, so that the reference origin has hashed
// them for their ETags before the crowd, as a production origin would
// have long before: the hash is not what the crowd should wait for.
func (r *runner) warm(ctx context.Context, d *deployment) error {
	hctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout) // hashing a large release takes a while
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{DialContext: r.dial}}
	for _, obj := range r.cat.objects {
		req, err := http.NewRequestWithContext(hctx, http.MethodHead, d.originURL+obj.Path, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HEAD %s at the origin: %s", obj.Path, resp.Status)
		}
	}
	hc.CloseIdleConnections()
	errs := make([]error, len(d.sites))
	var wg sync.WaitGroup
	for i, s := range d.sites {
		wg.Go(func() {
			c := newClient(r.dial)
			defer c.CloseIdleConnections()
			for _, p := range r.warmup {
				if errs[i] = drain(ctx, c, s.url+p); errs[i] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// start starts a process of the system: on loopback, or under NetNS in
// the namespace of site (-1: the origin's).
func (r *runner) start(name, logDir string, site int, bin string, args ...string) (*process, error) {
	if r.net != nil {
		ns := r.net.origin
		if site >= 0 {
			ns = r.net.sites[site]
		}
		bin, args = r.net.command(ns, bin, args)
	}
	return startProcess(name, logDir, bin, args...)
}

// siteAddrs returns the addresses of n sites: per site a UDP peer address
// (for edges), and a listener and an admin address (TCP). On loopback they
// are free ports; under NetNS fixed ports at each site's address.
func (r *runner) siteAddrs(n int) (peer, tcp []string, err error) {
	if r.net == nil {
		if peer, err = freeAddrs("udp", n); err != nil {
			return nil, nil, err
		}
		tcp, err = freeAddrs("tcp", 2*n)
		return peer, tcp, err
	}
	for i := range n {
		peer = append(peer, net.JoinHostPort(siteIP(i), nsPeerPort))
		tcp = append(tcp, net.JoinHostPort(siteIP(i), nsListenPort), net.JoinHostPort(siteIP(i), nsAdminPort))
	}
	return peer, tcp, nil
}

// drain GETs url and discards the body.
func drain(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}
