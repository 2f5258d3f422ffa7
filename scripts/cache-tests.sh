#!/usr/bin/env bash
# Runs the HTTP caching conformance suite http-tests/cache-tests
# (https://cache-tests.fyi, npm package http-cache-tests) against one Shoal
# edge in front of the suite's own test server, and compares the result
# with the published results of Apache Traffic Server, nginx and Varnish
# shipped in the package.
#
#   scripts/cache-tests.sh [results.json]
#
# Needs node and npm (Debian: nodejs, npm) and a registry npm can reach;
# the package is installed once under $CACHE_TESTS_DIR (default
# ~/.cache/shoal/cache-tests). Ports: 18000 (test server), 18080 (edge),
# 17000/udp (peers), override with CT_SERVER_PORT, CT_EDGE_PORT,
# CT_PEER_PORT. Prints a summary; writes the raw results to $1 if given.
# CT_ID=<test id> runs that one test with the suite's dump of every
# request and response, and no summary.
set -euo pipefail

version=0.4.5
dir=${CACHE_TESTS_DIR:-$HOME/.cache/shoal/cache-tests}
server_port=${CT_SERVER_PORT:-18000}
edge_port=${CT_EDGE_PORT:-18080}
peer_port=${CT_PEER_PORT:-17000}
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-}

for tool in node npm go; do
	command -v "$tool" >/dev/null || { echo "cache-tests: $tool is missing" >&2; exit 2; }
done
pkg=$dir/node_modules/http-cache-tests
if [ ! -f "$pkg/package.json" ] || ! grep -q "\"version\": \"$version\"" "$pkg/package.json"; then
	mkdir -p "$dir"
	(cd "$dir" && npm install --no-audit --no-fund --silent "http-cache-tests@$version" >/dev/null)
fi

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/shoal" "$root/cmd/shoal"
"$work/shoal" certs --dir "$work/tls" >/dev/null

(cd "$pkg" && npm_config_port=$server_port npm_config_pidfile="$work/server.pid" \
	npm_package_config_protocol=http exec node server/server.mjs >"$work/server.log" 2>&1) &
pids+=($!)
"$work/shoal" edge --origin "http://127.0.0.1:$server_port" --listen "127.0.0.1:$edge_port" \
	--peer-listen "127.0.0.1:$peer_port" --tls-dir "$work/tls" --admin-listen "" \
	--forward-misses --log-level warn >"$work/edge.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
	if curl -fsS -o /dev/null "http://127.0.0.1:$server_port/" 2>/dev/null || [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$server_port/")" != 000 ]; then
		if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$edge_port/")" != 000 ]; then
			break
		fi
	fi
	sleep 0.1
done

if [ -n "${CT_ID:-}" ]; then
	(cd "$pkg" && npm_config_base="http://127.0.0.1:$edge_port" npm_config_id="$CT_ID" npm_package_config_id="$CT_ID" \
		node --no-warnings cli.mjs)
	exit 0
fi
(cd "$pkg" && npm_config_base="http://127.0.0.1:$edge_port" npm_config_id="" npm_package_config_id="" \
	node --no-warnings cli.mjs) >"$work/results.json"
[ -n "$out" ] && cp "$work/results.json" "$out"

node --input-type=module - "$pkg" "$work/results.json" <<'JS'
import fs from 'fs'
import path from 'path'
const [pkg, mine] = process.argv.slice(2)
const tests = (await import(path.join(pkg, 'tests/index.mjs'))).default
const byId = {}
for (const suite of tests) for (const t of suite.tests) byId[t.id] = t
const load = f => JSON.parse(fs.readFileSync(f, 'utf8'))
const impls = { shoal: load(mine) }
for (const [name, file] of [['ATS', 'trafficserver.json'], ['nginx', 'nginx.json'], ['Varnish', 'varnish.json']]) {
  impls[name] = load(path.join(pkg, 'results', file))
}
// A test passes when its result is true; "required" tests are those of
// kind "required" (RFC conformance), the others optimal or informational.
const kind = id => (byId[id] && byId[id].kind) || 'required'
const ids = Object.keys(byId)
const rows = []
for (const [name, res] of Object.entries(impls)) {
  let pass = 0, reqPass = 0, reqTotal = 0
  for (const id of ids) {
    if (!(id in res)) continue
    const ok = res[id] === true
    if (ok) pass++
    if (kind(id) === 'required') { reqTotal++; if (ok) reqPass++ }
  }
  rows.push(`${name.padEnd(8)} passed ${String(pass).padStart(4)} of ${ids.length}; required ${reqPass}/${reqTotal}`)
}
console.log(rows.join('\n'))
const lost = ids.filter(id => kind(id) === 'required' && impls.shoal[id] !== true &&
  (impls.nginx[id] === true || impls.Varnish[id] === true))
console.log(`required tests shoal fails that nginx or Varnish passes: ${lost.length}`)
for (const id of lost) console.log(`  ${id}: ${JSON.stringify(impls.shoal[id])}`)
JS
