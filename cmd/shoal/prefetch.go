package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/shoalcdn/shoal/edge"
)

func runPrefetch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("prefetch", flag.ContinueOnError)
	envUsage(fs)
	var (
		admin    = fs.String("admin", "http://127.0.0.1:9100", "an edge's admin listener")
		token    = fs.String("token", "", "the edges' --admin-token")
		interval = fs.Duration("interval", 500*time.Millisecond, "how often to ask for progress")
		quiet    = fs.Bool("quiet", false, "no progress bar; only the summary")
		warm     = fs.String("warm", "", `"all" also loads every segment into every edge's memory tier`)
	)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: shoal prefetch [flags] URL...\n\nBrings each URL (a path, or a URL whose path is used) into the fleet through one edge,\nwith one origin fetch per segment for the whole fleet, and waits until done.\nExits 1 if any object failed.\n")
		fs.PrintDefaults()
	}
	if err := parseFlagsArgs(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	base := strings.TrimSuffix(*admin, "/")
	body, _ := json.Marshal(edge.PrefetchRequest{URLs: fs.Args(), Warm: *warm})
	var job edge.PrefetchJob
	if err := adminCall(ctx, http.MethodPost, base+"/admin/prefetch", *token, body, http.StatusAccepted, &job); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "prefetch job %s: %d objects\n", job.ID, len(job.Objects))
	bar := progressBar{w: stderr, on: !*quiet}
	for job.State == "running" {
		bar.draw(&job)
		select {
		case <-time.After(*interval):
		case <-ctx.Done():
			bar.end()
			return fmt.Errorf("interrupted; the job %s goes on at the edge", job.ID)
		}
		if err := adminCall(ctx, http.MethodGet, base+"/admin/prefetch/"+job.ID, *token, nil, http.StatusOK, &job); err != nil {
			bar.end()
			return err
		}
	}
	bar.draw(&job)
	bar.end()
	var failed []string
	var total int64
	for _, o := range job.Objects {
		total += o.Bytes
		if o.Error != "" {
			failed = append(failed, fmt.Sprintf("  %s: %s", o.URL, o.Error))
		}
	}
	took := time.Duration(0)
	if job.Finished != nil {
		took = job.Finished.Sub(job.Created).Round(time.Millisecond)
	}
	fmt.Fprintf(stdout, "prefetched %d of %d objects, %s, in %v\n", len(job.Objects)-len(failed), len(job.Objects), humanBytes(total), took)
	if len(failed) > 0 {
		fmt.Fprintln(stderr, strings.Join(failed, "\n"))
		return fmt.Errorf("%d of %d objects failed", len(failed), len(job.Objects))
	}
	return nil
}

// adminCall sends a request to an edge's admin API and decodes the JSON
// answer into out, or returns the API's error.
func adminCall(ctx context.Context, method, url, token string, body []byte, want int, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, e.Error)
		}
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	return nil
}

// progressBar redraws one line on a terminal (or whatever w is).
type progressBar struct {
	w     io.Writer
	on    bool
	drawn bool
}

func (p *progressBar) draw(job *edge.PrefetchJob) {
	if !p.on {
		return
	}
	var done, total int
	var bytes, size int64
	failed := 0
	for _, o := range job.Objects {
		done += o.Done
		total += o.Segments
		bytes += o.Bytes
		if o.Size > 0 {
			size += o.Size
		}
		if o.Error != "" {
			failed++
		}
	}
	frac := 0.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	const width = 30
	n := int(frac * width)
	fmt.Fprintf(p.w, "\r[%s%s] %3.0f%%  %d/%d segments  %s of %s  %d failed ",
		strings.Repeat("#", n), strings.Repeat(".", width-n), 100*frac, done, total, humanBytes(bytes), humanBytes(size), failed)
	p.drawn = true
}

func (p *progressBar) end() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
