package k8stest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"testing"

	sigsyaml "sigs.k8s.io/yaml"
)

// documentedAsWhole are values documented as one row though they are maps.
var documentedAsWhole = []string{"resources", "check.resources", "referenceOrigin.resources", "referenceOrigin.files",
	"grafanaDashboard.labels", "probes.liveness", "probes.readiness"}

// valueKeys lists the keys of values.yaml down to its leaves.
func valueKeys(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir(t), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := sigsyaml.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var keys []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, val := range m {
			p := prefix + k
			if sub, ok := val.(map[string]any); ok && len(sub) > 0 && !slices.Contains(documentedAsWhole, p) {
				walk(p+".", sub)
				continue
			}
			keys = append(keys, p)
		}
	}
	walk("", v)
	sort.Strings(keys)
	return keys
}

// TestREADMEListsEveryValue checks that helm/shoal/README.md's table has a
// row for every value, and no row for a value that does not exist.
func TestREADMEListsEveryValue(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Za-z0-9.]+)` \\|").FindAllSubmatch(b, -1) {
		rows[string(m[1])] = true
	}
	keys := valueKeys(t)
	for _, k := range keys {
		if !rows[k] {
			t.Errorf("helm/shoal/README.md has no row for %s", k)
		}
		delete(rows, k)
	}
	for k := range rows {
		t.Errorf("helm/shoal/README.md documents %s, which values.yaml does not have", k)
	}
}
