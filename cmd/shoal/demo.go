package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/shoalcdn/shoal/edge"
	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/front"
	"github.com/shoalcdn/shoal/internal/samplefile"
	"github.com/shoalcdn/shoal/origin"
	"github.com/shoalcdn/shoal/swarm"
)

// runDemo starts an origin with sample content and a fleet of edges in this
// process, downloads the release through every edge, and shows where the
// bytes came from.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	envUsage(fs)
	exit := fs.Bool("exit", false, "stop after printing the table instead of serving until Ctrl-C")
	edges := fs.Int("edges", 3, "number of edges")
	logLevel := fs.String("log-level", "warn", "log level of the nodes: debug, info, warn, error")
	size := int64(64 << 20)
	fs.Var(sizeFlag{&size}, "size", "size of the sample release")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if *edges < 1 || *edges > 32 {
		return fmt.Errorf("--edges %d: want 1..32", *edges)
	}
	log, err := newLogger(stderr, "text", *logLevel)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "shoal-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	fmt.Fprintf(stdout, "Shoal demo: an origin and %d edges on loopback (files in %s)\n\n", *edges, dir)
	tlsDir := filepath.Join(dir, "tls")
	if err := swarm.WriteCerts(tlsDir, []string{"127.0.0.1", "localhost"}); err != nil {
		return err
	}
	creds, err := swarm.LoadCredentials(tlsDir)
	if err != nil {
		return err
	}
	www := filepath.Join(dir, "www")
	release := "/releases/shoal-demo-1.0.tar"
	releaseSum, err := samplefile.WriteFile(filepath.Join(www, release), size, 1)
	if err != nil {
		return err
	}
	var media []string
	unique := size
	for i, n := range []int64{2 << 20, 4 << 20, 3 << 20, 6 << 20} {
		unique += n
		p := fmt.Sprintf("/media/clip/seg-%05d.ts", i+1)
		if _, err := samplefile.WriteFile(filepath.Join(www, p), n, uint64(100+i)); err != nil {
			return err
		}
		media = append(media, p)
	}

	// The origin, with its egress counted as it leaves.
	osrv, err := origin.NewServer(origin.ServerConfig{Dir: www, CacheControl: "public, max-age=3600", Logger: log})
	if err != nil {
		return err
	}
	defer osrv.Close()
	oln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	egress := &countingHandler{next: osrv}
	originHTTP := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: egress}
	go originHTTP.Serve(oln)
	defer originHTTP.Close()
	originURL := "http://" + oln.Addr().String()

	// The fleet: every edge gets the same peer list.
	type node struct {
		e           *edge.Edge
		url, admin  string
		pc          net.PacketConn
		ln, adminLn net.Listener
	}
	nodes := make([]*node, *edges)
	var peers []string
	for i := range nodes {
		n := &node{}
		if n.pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			return err
		}
		if n.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return err
		}
		if n.adminLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return err
		}
		n.url, n.admin = "http://"+n.ln.Addr().String(), "http://"+n.adminLn.Addr().String()
		peers = append(peers, n.pc.LocalAddr().String())
		nodes[i] = n
	}
	for i, n := range nodes {
		n.e, err = edge.New(edge.Config{
			Origin: origin.ClientConfig{Base: originURL, Logger: log},
			Swarm:  swarm.Config{Self: peers[i], Peers: peers, Credentials: creds},
			Layout: erasure.Layout{},
			Logger: log.With("edge", i+1),
		})
		if err != nil {
			return err
		}
		go n.e.ServePeers(n.pc)
		if err := serveDemoEdge(n.e, n.ln, log); err != nil {
			return err
		}
		adm := &http.Server{Handler: n.e.Admin(""), ReadHeaderTimeout: 10 * time.Second}
		go adm.Serve(n.adminLn)
		defer adm.Close()
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, n := range nodes {
			n.e.Shutdown(sctx)
			n.pc.Close()
		}
	}()

	fmt.Fprintf(stdout, "origin  %s   release %s: %s, sha256 %s…\n", originURL, release, formatSize(size), releaseSum[:16])
	for i, n := range nodes {
		fmt.Fprintf(stdout, "edge %d  %s   peer %s   admin %s\n", i+1, n.url, peers[i], n.admin)
	}
	fmt.Fprintln(stdout)

	client := &http.Client{Timeout: 5 * time.Minute}
	type result struct {
		dur time.Duration
		ok  bool
	}
	results := make([]result, len(nodes))
	for i, n := range nodes {
		start := time.Now()
		sum, got, err := download(ctx, client, n.url+release)
		if err != nil {
			return fmt.Errorf("download through edge %d: %w", i+1, err)
		}
		results[i] = result{dur: time.Since(start), ok: sum == releaseSum && got == size}
		if !results[i].ok {
			return fmt.Errorf("edge %d served %d bytes with sha256 %s, want %d bytes with %s", i+1, got, sum, size, releaseSum)
		}
	}
	for i, p := range media {
		if _, _, err := download(ctx, client, nodes[i%len(nodes)].url+p); err != nil {
			return fmt.Errorf("media through edge %d: %w", i%len(nodes)+1, err)
		}
	}

	fmt.Fprintf(stdout, "Downloaded the release through each edge in turn (sha256 verified), then %d media segments:\n\n", len(media))
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "edge\trelease time\tMB/s\tfrom memory\tfrom own shards\tfrom peers\tfrom origin\tsha256\t")
	var delivered int64
	for i, n := range nodes {
		st := n.e.Stats()
		for _, v := range st.Served {
			delivered += v
		}
		r := results[i]
		fmt.Fprintf(tw, "%d\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t\n", i+1, r.dur.Round(time.Millisecond), float64(size)/r.dur.Seconds()/1e6,
			mib(st.Served["memory"]), mib(st.Served["disk"]), mib(st.Served["peer"]), mib(st.Served["origin"]), map[bool]string{true: "ok", false: "MISMATCH"}[r.ok])
	}
	tw.Flush()
	originBytes, originReqs := egress.counts()
	fmt.Fprintf(stdout, "\norigin egress: %s in %d requests, for %s delivered to clients (%.2f× unique bytes; without the fleet: %.2f×)\n",
		mib(originBytes), originReqs, mib(delivered), float64(originBytes)/float64(unique), float64(delivered)/float64(unique))

	if *exit {
		return nil
	}
	fmt.Fprintf(stdout, "\nThe fleet keeps running. Try:\n")
	fmt.Fprintf(stdout, "  curl -sI %s%s                       # headers, Cache-Status\n", nodes[0].url, release)
	fmt.Fprintf(stdout, "  curl -s -r 1000-2000000 %s%s | wc -c   # a range\n", nodes[len(nodes)-1].url, release)
	fmt.Fprintf(stdout, "  curl -s %s%s -o /dev/null -w '%%{http_code} %%{size_download}\\n'\n", nodes[0].url, media[0])
	fmt.Fprintf(stdout, "  curl -s %s/metrics | grep ^shoal_                              # metrics\n", nodes[0].admin)
	fmt.Fprintln(stdout, "Press Ctrl-C to stop.")
	<-ctx.Done()
	fmt.Fprintln(stdout, "\nstopping")
	return nil
}

// serveDemoEdge serves e to clients on ln as shoal edge does: a
// front.Server with front's default limits, attached to e so that e's
// Shutdown stops it.
func serveDemoEdge(e *edge.Edge, ln net.Listener, log *slog.Logger) error {
	srv, err := front.New(front.Config{Handler: e, Logger: log, Registerer: e.Registerer()})
	if err != nil {
		return err
	}
	if err := e.Attach(srv); err != nil {
		return err
	}
	go srv.Serve(ln)
	return nil
}

// countingHandler counts the requests the origin answers and the body
// bytes it sends: the origin's egress, which the fleet exists to save.
type countingHandler struct {
	next        http.Handler
	bytes, reqs atomic.Int64
}

func (h *countingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.reqs.Add(1)
	h.next.ServeHTTP(&countingWriter{ResponseWriter: w, n: &h.bytes}, r)
}

// counts returns the body bytes sent and the requests answered so far.
func (h *countingHandler) counts() (bytes, reqs int64) { return h.bytes.Load(), h.reqs.Load() }

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n.Add(int64(n))
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (the origin
// server's deadlines and flushes).
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// download GETs url and returns the sha256 and length of the body.
func download(ctx context.Context, c *http.Client, url string) (string, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
