package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/shoalcdn/shoal/origin"
)

func runOrigin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("origin", flag.ContinueOnError)
	envUsage(fs)
	var (
		listen       = fs.String("listen", "127.0.0.1:9000", "HTTP listen address")
		dir          = fs.String("dir", "", "directory to serve (required)")
		cacheControl = fs.String("cache-control", "public, max-age=3600", "Cache-Control sent with every response; empty for none")
		logger       = logFlags(fs, "json")
	)
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	log, err := logger(stderr)
	if err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("--dir is required")
	}
	h, err := origin.NewServer(origin.ServerConfig{Dir: *dir, CacheControl: *cacheControl, Logger: log})
	if err != nil {
		return err
	}
	defer h.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("origin serving", "listen", ln.Addr().String(), "dir", *dir)
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
