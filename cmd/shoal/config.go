package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
)

// Configuration checks of `shoal edge` and `shoal check`: a misspelled
// variable in an environment file, or two flags that contradict each
// other, must not leave an edge running quietly with another meaning.

// unknownEnv returns a finding for every SHOAL_* variable of env (as
// os.Environ) that names no flag of fs, with the closest flag's variable.
func unknownEnv(fs *flag.FlagSet, env []string) []string {
	known := map[string]bool{}
	var names []string
	fs.VisitAll(func(f *flag.Flag) {
		known[envName(f.Name)] = true
		names = append(names, envName(f.Name))
	})
	slices.Sort(names)
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "SHOAL_") || known[name] {
			continue
		}
		msg := fmt.Sprintf("environment variable %s is not a flag of shoal %s and is ignored", name, fs.Name())
		if best := closest(name, names); best != "" {
			msg += fmt.Sprintf("; did you mean %s (--%s)?", best, flagName(best))
		}
		out = append(out, msg)
	}
	slices.Sort(out)
	return out
}

// flagName is the flag that the variable name reads.
func flagName(env string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(env, "SHOAL_"), "_", "-"))
}

// closest returns the name of names nearest to s by edit distance, when
// it is near enough to be a misspelling (at most a third of its length).
func closest(s string, names []string) string {
	best, bestD := "", 0
	for _, n := range names {
		d := editDistance(strings.TrimPrefix(s, "SHOAL_"), strings.TrimPrefix(n, "SHOAL_"))
		if best == "" || d < bestD {
			best, bestD = n, d
		}
	}
	if best == "" || bestD > max(2, len(strings.TrimPrefix(s, "SHOAL_"))/3) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// checkEnv warns (warn, one call per variable) of the SHOAL_* variables
// that name no flag of fs, or refuses them when strict.
func checkEnv(fs *flag.FlagSet, strict bool, warn func(msg string)) error {
	found := unknownEnv(fs, os.Environ())
	if len(found) == 0 {
		return nil
	}
	if strict {
		return fmt.Errorf("%s (--strict-env refuses unknown SHOAL_* variables)", strings.Join(found, "; "))
	}
	for _, f := range found {
		warn(f)
	}
	return nil
}

// flagConflict is two flags that contradict each other, or a flag that
// needs another, with the advice that resolves it.
type flagConflict struct {
	when   func(set map[string]bool, fs *flag.FlagSet) bool
	advice string
}

func value(fs *flag.FlagSet, name string) string {
	if f := fs.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

// edgeConflicts are the contradictions among the flags of `shoal edge`.
var edgeConflicts = []flagConflict{
	{func(set map[string]bool, fs *flag.FlagSet) bool {
		return value(fs, "peers") != "" && value(fs, "join") != ""
	},
		"--peers and --join exclude each other: use --join for gossip membership or --peers for a static list"},
	{func(set map[string]bool, fs *flag.FlagSet) bool {
		return value(fs, "require-signed") == "true" && value(fs, "trust-key") == ""
	}, "--require-signed needs --trust-key: give the public keys that sign the manifests, or drop --require-signed"},
	{func(set map[string]bool, fs *flag.FlagSet) bool {
		return value(fs, "node-id") != "" && value(fs, "join") == ""
	},
		"--node-id names this edge in gossip and needs --join; with --peers an edge is named by its --advertise address: drop --node-id"},
	{func(set map[string]bool, fs *flag.FlagSet) bool {
		return set["h3-advertise-port"] && value(fs, "h3-advertise-port") != "0" && value(fs, "h3-listen") == ""
	}, "--h3-advertise-port is the port Alt-Svc names for --h3-listen, which is not set: set --h3-listen or drop --h3-advertise-port"},
	{func(set map[string]bool, fs *flag.FlagSet) bool {
		return set["rate-burst"] && value(fs, "rate-burst") != "0" && value(fs, "rate-limit") == "0"
	}, "--rate-burst sizes the bucket of --rate-limit, which is 0 (off): set --rate-limit or drop --rate-burst"},
	{func(set map[string]bool, fs *flag.FlagSet) bool {
		return value(fs, "forward-misses") == "true" && value(fs, "ranged-fills") == "true" && (value(fs, "join") != "" || len(splitList(value(fs, "peers"))) > 1)
	}, "--forward-misses with --ranged-fills applies only to an edge alone in its fleet, and this one has --peers or --join: drop --forward-misses (with --ranged-fills a fleet fills through its coordinators)"},
	{func(set map[string]bool, fs *flag.FlagSet) bool {
		return value(fs, "zone") != "" && value(fs, "zone-file") != ""
	},
		"--zone and --zone-file both name this edge's zone: keep one (--zone would win)"},
}

// checkConflicts returns an error naming every conflict of fs's flags.
func checkConflicts(fs *flag.FlagSet, conflicts []flagConflict) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	for _, c := range conflicts {
		if c.when(set, fs) {
			errs = append(errs, errors.New(c.advice))
		}
	}
	return errors.Join(errs...)
}
