// Command shoal is the single binary of Shoal: an edge, a reference origin,
// certificate tooling and a self-contained demo.
//
//	shoal certs  --dir D [--hosts 127.0.0.1,localhost]
//	shoal origin --listen 127.0.0.1:9000 --dir ./www [--cache-control "public, max-age=3600"]
//	shoal edge   --listen 127.0.0.1:8080 --origin http://127.0.0.1:9000 --peer-listen 127.0.0.1:7000 \
//	             --peers 127.0.0.1:7000,127.0.0.1:7001 --tls-dir D --admin-listen 127.0.0.1:9100
//	shoal check  (the flags and environment of shoal edge): one line per finding, exit status 1 on any error
//	shoal prefetch --admin http://127.0.0.1:9100 --token T /r/app.tar ...
//	shoal containerd-hosts --registry registry.example.com --mirror http://10.0.0.5:8080 [--dir /etc/containerd/certs.d]
//	shoal keygen [--key shoal-sign.key] [--pub shoal-sign.pub]
//	shoal sign --key shoal-sign.key [--segment-size 4MiB] DIR
//	shoal demo [--exit]
//	shoal bench --scenario flash|mix|media|faults [--edges 8] [--size 256MiB] [--netns] [--out ./bench-out]
//	shoal version
//
// Every flag can also be set with the environment variable SHOAL_<FLAG>,
// upper-cased with dashes as underscores (SHOAL_ORIGIN, SHOAL_PEER_LISTEN).
// A flag given on the command line wins over the environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"go.opentelemetry.io/otel/trace"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"edge", "run an edge node", runEdge},
		{"check", "check an edge's configuration, certificates, peers and origin (the flags of edge), one line per finding", runCheck},
		{"origin", "serve a directory as a reference origin", runOrigin},
		{"certs", "create the fleet CA and a node certificate", runCerts},
		{"prefetch", "bring objects into the fleet before clients ask, through an edge's admin API", runPrefetch},
		{"containerd-hosts", "write containerd's hosts.toml that makes an edge a registry's mirror", runContainerdHosts},
		{"keygen", "create an ed25519 key pair for signing manifests", runKeygen},
		{"sign", "write a signed manifest next to every file under a directory", runSign},
		{"demo", "start an origin and three edges in this process and show the fleet at work", runDemo},
		{"bench", "measure the fleet against per-site caches, nginx and the bare origin, with a report and plots", runBench},
		{"version", "print the version", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		}
		fmt.Fprintf(stderr, "shoal %s: %v\n", c.name, err)
		return 1
	}
	fmt.Fprintf(stderr, "shoal: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Shoal: a peer-to-peer CDN edge accelerator.\n\nUsage: shoal <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-16s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'shoal <command> -h' for a command's flags. Every flag also reads SHOAL_<FLAG> from the environment.")
}

// errUsage reports bad flags; the flag package has already said why.
var errUsage = errors.New("usage")

// parseFlags parses args into fs, then fills every flag not given on the
// command line from SHOAL_<FLAG> in the environment.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	if err := parseFlagsArgs(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "shoal %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return errUsage
	}
	return nil
}

// parseFlagsArgs is parseFlags for commands that take arguments after
// their flags (fs.Args()).
func parseFlagsArgs(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		name := envName(f.Name)
		if v, ok := os.LookupEnv(name); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, e)
			}
		}
	})
	return err
}

func envName(flagName string) string {
	return "SHOAL_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func envUsage(fs *flag.FlagSet) {
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage of shoal %s (each flag also reads SHOAL_<FLAG>):\n", fs.Name())
		fs.PrintDefaults()
	}
}

// logFlags adds --log-format (default format) and --log-level to fs and
// returns the function that makes the logger they describe, once parsed.
func logFlags(fs *flag.FlagSet, format string) func(w io.Writer) (*slog.Logger, error) {
	f := fs.String("log-format", format, "log format: json or text")
	l := fs.String("log-level", "info", "log level: debug, info, warn, error")
	return func(w io.Writer) (*slog.Logger, error) { return newLogger(w, *f, *l) }
}

// newLogger returns a logger writing format ("json" or "text") at level.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(traceHandler{slog.NewJSONHandler(w, opts)}), nil
	case "text":
		return slog.New(traceHandler{slog.NewTextHandler(w, opts)}), nil
	}
	return nil, fmt.Errorf("--log-format %q: want json or text", format)
}

// traceHandler adds trace_id and span_id to records logged with the
// context of a traced request, so that a log line leads to its trace.
type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(as)}
}
func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}

// sizeFlag is a byte count flag that reads 4MiB, 256MiB, 1GiB, 1.5GB, 4096.
type sizeFlag struct{ n *int64 }

func (f sizeFlag) String() string {
	if f.n == nil || *f.n == 0 {
		return ""
	}
	return formatSize(*f.n)
}

func (f sizeFlag) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*f.n = n
	return nil
}

var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"kB", 1e3},
	{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"k", 1 << 10}, {"B", 1},
}

func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := 1.0
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v >= 0) || v*mult > 1<<62 { // !(v >= 0) also catches NaN
		return 0, fmt.Errorf("invalid size %q (want e.g. 4MiB, 256MiB, 1GiB)", s)
	}
	return int64(v * mult), nil
}

func formatSize(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.m && n%u.m == 0 {
			return strconv.FormatInt(n/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10)
}

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "shoal", versionString())
	return nil
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " " + s.Value[:12]
			}
		}
		if v != "" {
			return v
		}
	}
	return "(devel)"
}
