package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/shoalcdn/shoal/swarm"
)

func runCerts(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("certs", flag.ContinueOnError)
	envUsage(fs)
	dir := fs.String("dir", "", "directory for ca.crt, ca.key, node.crt, node.key (required)")
	hosts := fs.String("hosts", "127.0.0.1,localhost", "comma-separated IP addresses and DNS names for the node certificate")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("--dir is required")
	}
	if err := swarm.WriteCerts(*dir, splitList(*hosts)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "fleet CA:         %s (keep ca.key private; reuse the directory to sign more nodes)\n", filepath.Join(*dir, swarm.CACertFile))
	fmt.Fprintf(stdout, "node certificate: %s, %s\n", filepath.Join(*dir, swarm.NodeCertFile), filepath.Join(*dir, swarm.NodeKeyFile))
	return nil
}
