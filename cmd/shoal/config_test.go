package main

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func edgeFlagSet(t *testing.T) *flag.FlagSet {
	t.Helper()
	fs := flag.NewFlagSet("edge", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("origin", "", "")
	fs.String("peer-listen", "", "")
	fs.String("peers", "", "")
	fs.String("join", "", "")
	fs.String("node-id", "", "")
	fs.String("trust-key", "", "")
	fs.Bool("require-signed", false, "")
	return fs
}

func TestUnknownEnv(t *testing.T) {
	fs := edgeFlagSet(t)
	got := unknownEnv(fs, []string{"SHOAL_ORIGN=x", "SHOAL_PEERS=a:1", "HOME=/root", "SHOAL_NOTHING_LIKE_IT=1"})
	if len(got) != 2 {
		t.Fatalf("got %q, want two findings", got)
	}
	if !strings.Contains(got[1], "SHOAL_ORIGN") || !strings.Contains(got[1], "did you mean SHOAL_ORIGIN (--origin)") {
		t.Errorf("got %q, want SHOAL_ORIGN with SHOAL_ORIGIN suggested", got[1])
	}
	if strings.Contains(got[0], "did you mean") {
		t.Errorf("got %q, want no suggestion for a name far from every flag", got[0])
	}
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"ORIGIN", "ORIGN", 1}, {"PEERS", "PEER", 1}, {"abc", "xyz", 3}, {"kitten", "sitting", 3}} {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestConflicts(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--peers", "a:1", "--join", "b:2"}, "exclude each other"},
		{[]string{"--require-signed"}, "--trust-key"},
		{[]string{"--node-id", "x", "--peers", "a:1"}, "--node-id"},
		{[]string{"--peers", "a:1"}, ""},
	} {
		fs := edgeFlagSet(t)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		err := checkConflicts(fs, edgeConflicts)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%q: got %v, want no conflict", tt.args, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%q: got %v, want an error with %q", tt.args, err, tt.want)
		}
	}
}
