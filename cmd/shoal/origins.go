package main

import (
	"errors"
	"fmt"
	"strings"
)

// parseOrigins reads --origin: either one base URL, the origin of every
// Host (base), or comma-separated host=URL pairs, one origin per site,
// with "*" the origin of any Host not listed (sites; see edge.Config.Origins).
func parseOrigins(s string) (base string, sites map[string]string, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil, errors.New("--origin is required (e.g. --origin http://127.0.0.1:9000, or host=URL pairs)")
	}
	items := splitList(s)
	if len(items) == 1 && !isOriginPair(items[0]) {
		return items[0], nil, nil
	}
	sites = map[string]string{}
	for _, it := range items {
		if !isOriginPair(it) {
			return "", nil, fmt.Errorf("--origin %q: give one URL, or host=URL pairs only (a default origin for other hosts is *=URL)", it)
		}
		host, u, _ := strings.Cut(it, "=")
		host, u = strings.ToLower(strings.TrimSpace(host)), strings.TrimSpace(u)
		if host == "" || u == "" {
			return "", nil, fmt.Errorf("--origin %q: want host=URL", it)
		}
		if _, dup := sites[host]; dup {
			return "", nil, fmt.Errorf("--origin: host %q given twice", host)
		}
		sites[host] = u
	}
	return "", sites, nil
}

// isOriginPair reports whether an --origin item is host=URL rather than
// a URL: an "=" before any ":" or "/".
func isOriginPair(it string) bool {
	i := strings.IndexByte(it, '=')
	return i >= 0 && !strings.ContainsAny(it[:i], ":/")
}
