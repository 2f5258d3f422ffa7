package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"net/url"
	"path"
	"path/filepath"
	"strings"

	"github.com/shoalcdn/shoal/erasure"
	"github.com/shoalcdn/shoal/manifest"
)

func runKeygen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	envUsage(fs)
	var (
		key = fs.String("key", "shoal-sign.key", "where to write the private key (PKCS #8 PEM, mode 0600; never overwritten)")
		pub = fs.String("pub", "shoal-sign.pub", "where to write the public key (PKIX PEM), for edges' --trust-key")
	)
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	id, err := manifest.GenerateKey(*key, *pub)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s and %s (key id %s)\n", *key, *pub, id)
	return nil
}

func runSign(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	envUsage(fs)
	var (
		key     = fs.String("key", "", "the private key, as made by 'shoal keygen' (required)")
		prefix  = fs.String("prefix", "/", "URL path under which DIR is served")
		segSize = int64(erasure.DefaultSegmentSize)
	)
	fs.Var(sizeFlag{&segSize}, "segment-size", "segment size; must match the edges' --segment-size")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: shoal sign --key K [flags] DIR...\n\nWrites FILE%s next to every file under each DIR.\n", manifest.Suffix)
		fs.PrintDefaults()
	}
	if err := parseFlagsArgs(fs, args, stderr); err != nil {
		return err
	}
	if *key == "" || fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	if !strings.HasPrefix(*prefix, "/") {
		return fmt.Errorf("--prefix %q must begin with /", *prefix)
	}
	priv, err := manifest.ReadPrivateKey(*key)
	if err != nil {
		return err
	}
	var files, bytes int64
	for _, dir := range fs.Args() {
		err := filepath.WalkDir(dir, func(p string, d iofs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if !d.Type().IsRegular() || strings.HasSuffix(p, manifest.Suffix) || strings.HasPrefix(d.Name(), ".") {
				return nil
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			m, err := manifest.SignFile(p, urlPath(*prefix, rel), segSize, priv)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			files++
			bytes += m.Size
			return nil
		})
		if err != nil {
			return err
		}
	}
	if files == 0 {
		return errors.New("no files to sign")
	}
	fmt.Fprintf(stdout, "signed %d files (%d bytes) with key %s\n", files, bytes, manifest.KeyID(priv.Public().(ed25519.PublicKey)))
	return nil
}

// urlPath returns the escaped URL path of the file rel (slash-separated
// once converted) served under prefix.
func urlPath(prefix, rel string) string {
	u := url.URL{Path: path.Join(prefix, filepath.ToSlash(rel))}
	return u.EscapedPath()
}
