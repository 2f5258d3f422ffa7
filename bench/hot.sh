#!/usr/bin/env bash
# Hot content: one Shoal edge serving from its warm memory tier against
# nginx serving the same object from its proxy_cache (a file on disk, in the
# page cache, with sendfile) and, for reference, from the directory itself,
# HTTP/1.1 over loopback, wrk with many keep-alive connections. See bench/README.md, "Hot content vs nginx".
#
#   bench/hot.sh                      # 1 MiB and 1 KiB, 2 rounds of 10 s each
#   HOT_ROUNDS=3 HOT_DURATION=15 HOT_SIZES="1048576" bench/hot.sh
#
# Environment:
#   SHOAL_BIN     the shoal binary (default: go build ./cmd/shoal into the temp dir)
#   SHOAL_BASE    another shoal binary, run as system "base" in the same
#                 rounds (before/after figures of a change)
#   NGINX         the nginx binary (default: nginx on PATH)
#   HOT_SIZES     object sizes in bytes (default "1048576 1024")
#   HOT_SYSTEMS   which to run, in this order (default "shoal nginx static"):
#                 shoal, the edge's memory tier; nginx, nginx's proxy_cache
#                 (the baseline the ratios are to); static, the same nginx
#                 serving the origin's directory itself (root, sendfile,
#                 open_file_cache): nginx at its fastest, for reference
#   HOT_ROUNDS    rounds per system and size, interleaved shoal/nginx (default 2)
#   HOT_DURATION  seconds of each wrk run (default 10)
#   HOT_CONNS     keep-alive connections (default 32)
#   HOT_THREADS   wrk threads (default 2)
#   HOT_FILL      MiB of other objects (4 MiB each) fetched through every
#                 edge and nginx before the runs (default 0): a memory tier
#                 holding more than the hot objects, as in service, which
#                 makes the edge's Go heap large and its GC rare
#   HOT_KEEP      if set, keep the temp dir (logs, configs)
#   HOT_PERF      if set, a directory where `perf record -g` of the edge
#                 during each shoal run is written (perf-SIZE-ROUND.data; the
#                 figures of those runs include perf's overhead)
#
# For every run it prints the load average before it, req/s, MiB/s of body,
# the server's CPU (cores busy: user+system time of the edge process, or of
# nginx's master and workers, over the run's wall time) and that CPU per
# request (us/req: steadier than req/s on a shared machine), wrk's CPU, the
# kernel's softirq time (loopback TCP, charged to no process), and the
# CPU of other processes (the two busiest named), so runs taken while
# other work shared the cores can be told apart. It needs wrk (Debian: wrk)
# and nginx (Debian: nginx) and fails, saying so, without them.
set -euo pipefail

need() { command -v "$1" >/dev/null 2>&1 || { echo "hot.sh: $1 is missing ($2)" >&2; exit 2; }; }
need wrk "apt-get install -y wrk"
NGINX=${NGINX:-nginx}
if ! command -v "$NGINX" >/dev/null 2>&1 && [ "$NGINX" = nginx ] && [ -x /usr/sbin/nginx ]; then NGINX=/usr/sbin/nginx; fi
need "$NGINX" "apt-get install -y nginx"
need curl "apt-get install -y curl"
need python3 "apt-get install -y python3"

SIZES=${HOT_SIZES:-"1048576 1024"}
SYSTEMS=${HOT_SYSTEMS:-"shoal nginx static"}
ROUNDS=${HOT_ROUNDS:-2}
DURATION=${HOT_DURATION:-10}
CONNS=${HOT_CONNS:-32}
THREADS=${HOT_THREADS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d /tmp/shoal-hot-XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ -z "${HOT_KEEP:-}" ]; then rm -rf "$TMP"; else echo "hot.sh: files kept in $TMP" >&2; fi
}
trap cleanup EXIT

if [ -z "${SHOAL_BIN:-}" ]; then
	(cd "$ROOT" && go build -o "$TMP/shoal" ./cmd/shoal)
	SHOAL_BIN=$TMP/shoal
fi
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ORIGIN_PORT=$(freeport); EDGE_PORT=$(freeport); ADMIN_PORT=$(freeport); PEER_PORT=$(freeport); NGINX_PORT=$(freeport); STATIC_PORT=$(freeport)

mkdir -p "$TMP/www" "$TMP/nginx/cache" "$TMP/nginx/tmp"
for s in $SIZES; do head -c "$s" /dev/urandom >"$TMP/www/hot-$s"; done
FILL=${HOT_FILL:-0}
for i in $(seq $((FILL / 4))); do head -c $((4 << 20)) /dev/urandom >"$TMP/www/fill-$i"; done

"$SHOAL_BIN" certs --dir "$TMP/tls" >"$TMP/certs.log" 2>&1
"$SHOAL_BIN" origin --dir "$TMP/www" --listen "127.0.0.1:$ORIGIN_PORT" --log-level warn >"$TMP/origin.log" 2>&1 &
PIDS+=($!)
"$SHOAL_BIN" edge --origin "http://127.0.0.1:$ORIGIN_PORT" --listen "127.0.0.1:$EDGE_PORT" \
	--admin-listen "127.0.0.1:$ADMIN_PORT" --peer-listen "127.0.0.1:$PEER_PORT" --tls-dir "$TMP/tls" \
	--log-level warn >"$TMP/edge.log" 2>&1 &
EDGE_PID=$!
PIDS+=($EDGE_PID)
if [ -n "${SHOAL_BASE:-}" ]; then
	# A second edge from another build, measured in the same rounds:
	# before and after a change, on a machine whose load varies.
	BASE_PORT=$(freeport); BASE_ADMIN=$(freeport); BASE_PEER=$(freeport)
	"$SHOAL_BASE" edge --origin "http://127.0.0.1:$ORIGIN_PORT" --listen "127.0.0.1:$BASE_PORT" \
		--admin-listen "127.0.0.1:$BASE_ADMIN" --peer-listen "127.0.0.1:$BASE_PEER" --tls-dir "$TMP/tls" \
		--log-level warn >"$TMP/edge-base.log" 2>&1 &
	BASE_PID=$!
	PIDS+=($BASE_PID)
	SYSTEMS="base $SYSTEMS"
fi

# nginx as bench/nginx.go configures a site's cache (sendfile, proxy_cache
# on disk), without the slice module: the objects are smaller than a slice.
USERLINE=""
if [ "$(id -u)" = 0 ]; then USERLINE="user root $(id -gn);"; fi
cat >"$TMP/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes auto;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
$USERLINE
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
    client_body_temp_path $TMP/nginx/tmp/client;
    proxy_temp_path $TMP/nginx/tmp/proxy;
    fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
    uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
    scgi_temp_path $TMP/nginx/tmp/scgi;
    proxy_cache_path $TMP/nginx/cache levels=1:2 keys_zone=site:16m max_size=1g inactive=1d use_temp_path=off;
    upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 32; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache site;
            proxy_cache_valid 200 1h;
            proxy_cache_lock on;
            add_header X-Cache-Status \$upstream_cache_status;
        }
    }
    # The same files straight from the directory: nginx at its fastest.
    server {
        listen 127.0.0.1:$STATIC_PORT;
        root $TMP/www;
        open_file_cache max=1000 inactive=60s;
    }
}
EOF
"$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" >"$TMP/nginx.log" 2>&1 &
NGINX_PID=$!
PIDS+=($NGINX_PID)

# Shoal's edge keeps its client keep-alive connections for 1000s of
# requests as nginx does with keepalive_requests above (net/http has no
# per-connection request cap).
waitup() {
	for _ in $(seq 100); do curl -fso /dev/null "$1" && return 0; sleep 0.1; done
	echo "hot.sh: $1 did not answer; logs in $TMP" >&2; HOT_KEEP=1; exit 1
}
waitup "http://127.0.0.1:$ADMIN_PORT/healthz"
EDGES=$EDGE_PORT
if [ -n "${SHOAL_BASE:-}" ]; then
	waitup "http://127.0.0.1:$BASE_ADMIN/healthz"
	EDGES="$EDGES $BASE_PORT"
fi
[ "$FILL" -lt 4 ] || waitup "http://127.0.0.1:$NGINX_PORT/fill-1"
for i in $(seq $((FILL / 4))); do
	for port in $EDGES $NGINX_PORT; do curl -fso /dev/null "http://127.0.0.1:$port/fill-$i"; done
done
for s in $SIZES; do
	waitup "http://127.0.0.1:$NGINX_PORT/hot-$s"
	for _ in 1 2 3; do curl -fso /dev/null "http://127.0.0.1:$NGINX_PORT/hot-$s"; done
	for port in $EDGES; do
		waitup "http://127.0.0.1:$port/hot-$s"
		for _ in 1 2 3; do curl -fso /dev/null "http://127.0.0.1:$port/hot-$s"; done
		cs=$(curl -fsD - -o /dev/null "http://127.0.0.1:$port/hot-$s" | tr -d '\r' | grep -i '^cache-status:' || true)
		case "$cs" in *"hit;"*"detail=memory"*) ;; *) echo "hot.sh: edge on $port is not serving hot-$s from memory: $cs" >&2; HOT_KEEP=1; exit 1 ;; esac
		cmp <(curl -fs "http://127.0.0.1:$port/hot-$s") "$TMP/www/hot-$s"
	done
	xc=$(curl -fsD - -o /dev/null "http://127.0.0.1:$NGINX_PORT/hot-$s" | tr -d '\r' | grep -i '^x-cache-status:' || true)
	case "$xc" in *HIT*) ;; *) echo "hot.sh: nginx is not serving hot-$s from its cache: $xc" >&2; HOT_KEEP=1; exit 1 ;; esac
	cmp <(curl -fs "http://127.0.0.1:$NGINX_PORT/hot-$s") "$TMP/www/hot-$s"
	cmp <(curl -fs "http://127.0.0.1:$STATIC_PORT/hot-$s") "$TMP/www/hot-$s"
done

TCK=$(getconf CLK_TCK)
# snap FILE: user+system ticks of every process (pid ppid comm ticks), then
# the machine's softirq and total busy ticks, so that a run's CPU splits into
# the server, wrk, the kernel's softirq work (loopback TCP) and the rest
snap() {
	python3 - "$1" <<'PY'
import os, sys
with open(sys.argv[1], 'w') as out:
    for p in os.listdir('/proc'):
        if not p.isdigit():
            continue
        try:
            st = open('/proc/%s/stat' % p).read()
        except OSError:
            continue
        comm = st[st.index('(') + 1:st.rindex(')')].replace(' ', '_')
        f = st[st.rindex(')') + 2:].split()
        out.write('%s %s %s %d\n' % (p, f[1], comm, int(f[11]) + int(f[12])))
    c = open('/proc/stat').readline().split()
    out.write('softirq - - %s\nbusy - - %d\n' % (c[7], sum(int(x) for x in (c[1], c[2], c[3], c[6], c[7], c[8]))))
PY
}
# split BEFORE AFTER SERVERPID WRKTICKS SECONDS: cores busy in the server (it
# and its children), wrk, softirq, and other processes ("top" of them named)
split() {
	python3 - "$@" "$TCK" <<'PY'
import sys
before, after, server, wrk, secs, tck = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
def load(f):
    d = {}
    for line in open(f):
        pid, ppid, comm, t = line.split()
        d[pid] = (ppid, comm, int(t))
    return d
b, a = load(before), load(after)
delta = {p: a[p][2] - b.get(p, (0, 0, 0))[2] for p in a if p not in ('softirq', 'busy')}
srv = sum(v for p, v in delta.items() if p == server or a[p][0] == server)
others = sorted(((v, a[p][1]) for p, v in delta.items() if p != server and a[p][0] != server and a[p][1] not in ('wrk', 'time')), reverse=True)
other = sum(v for v, _ in others)
top = ','.join('%s:%.2f' % (c, v / tck / secs) for v, c in others[:2] if v / tck / secs >= 0.05) or '-'
soft = a['softirq'][2] - b['softirq'][2]
print('%.2f %.2f %.2f %.2f %s' % (srv / tck / secs, wrk / secs, soft / tck / secs, other / tck / secs, top))
PY
}

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(uname -r), $("$SHOAL_BIN" version), $("$NGINX" -v 2>&1 | sed 's/.*: //'), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
echo "# wrk -t$THREADS -c$CONNS -d${DURATION}s, HTTP/1.1 keep-alive over loopback; nginx: its proxy_cache (disk file, sendfile); static: nginx from the directory (root)"
printf '%-6s %-8s %5s %-16s %10s %9s %10s %8s %8s %8s %9s %s\n' system size round load-before req/s MiB/s server-cpu us/req wrk-cpu softirq other-cpu busiest-others
RESULTS=$TMP/results
: >"$RESULTS"
for s in $SIZES; do
	for round in $(seq "$ROUNDS"); do
		for sys in $SYSTEMS; do
			case $sys in
			shoal) url="http://127.0.0.1:$EDGE_PORT/hot-$s"; pid=$EDGE_PID ;;
			base) url="http://127.0.0.1:$BASE_PORT/hot-$s"; pid=$BASE_PID ;;
			nginx) url="http://127.0.0.1:$NGINX_PORT/hot-$s"; pid=$NGINX_PID ;;
			static) url="http://127.0.0.1:$STATIC_PORT/hot-$s"; pid=$NGINX_PID ;;
			*) echo "hot.sh: unknown system $sys (shoal, nginx, static)" >&2; exit 2 ;;
			esac
			load=$(cut -d' ' -f1-3 /proc/loadavg)
			perfpid=
			if [ -n "${HOT_PERF:-}" ] && [ $sys = shoal ]; then
				mkdir -p "$HOT_PERF"
				perf record -q -g -p "$pid" -o "$HOT_PERF/perf-$s-$round.data" -- sleep "$((DURATION > 2 ? DURATION - 1 : 1))" >/dev/null 2>&1 &
				perfpid=$!
			fi
			snap "$TMP/before"; t0=$(date +%s.%N)
			out=$(/usr/bin/time -f 'WRKCPU %U %S' wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" "$url" 2>&1)
			t1=$(date +%s.%N); snap "$TMP/after"
			if [ -n "$perfpid" ]; then wait "$perfpid" || true; fi
			if echo "$out" | grep -q 'Non-2xx\|Socket errors'; then echo "hot.sh: errors in the $sys run:" >&2; echo "$out" >&2; HOT_KEEP=1; exit 1; fi
			rps=$(echo "$out" | awk '/^Requests\/sec/{print $2}')
			wrkcpu=$(echo "$out" | awk '/^WRKCPU/{print $2+$3}')
			secs=$(python3 -c "print($t1-$t0)")
			read -r srv wcpu soft other top < <(split "$TMP/before" "$TMP/after" "$pid" "$wrkcpu" "$secs")
			mibs=$(python3 -c "print('%.0f' % ($rps*$s/1048576))")
			usreq=$(python3 -c "print('%.1f' % ($srv*1e6/$rps))")
			printf '%-6s %-8s %5s %-16s %10.0f %9s %10s %8s %8s %8s %9s %s\n' $sys "$s" "$round" "$load" "$rps" "$mibs" "$srv" "$usreq" "$wcpu" "$soft" "$other" "$top"
			echo "$sys $s $rps $srv" >>"$RESULTS"
		done
	done
done
echo
echo "# summary: median req/s over rounds (min–max), ratio of medians to nginx"
python3 - "$RESULTS" <<'EOF'
import sys, statistics, collections
runs = collections.defaultdict(list)
cpu = collections.defaultdict(list)
for line in open(sys.argv[1]):
    sys_, size, rps, srv = line.split()
    runs[(sys_, int(size))].append(float(rps))
    cpu[(sys_, int(size))].append(float(srv))
print('%-6s %-8s %10s %-17s %9s %10s %8s %8s' % ('system', 'size', 'req/s', 'spread', 'MiB/s', 'server-cpu', 'us/req', 'x nginx'))
for size in sorted({k[1] for k in runs}, reverse=True):
    base = statistics.median(runs[('nginx', size)]) if ('nginx', size) in runs else float('nan')
    for s in ('base', 'shoal', 'nginx', 'static'):
        if (s, size) not in runs:
            continue
        v = runs[(s, size)]
        m = statistics.median(v)
        us = statistics.median([c * 1e6 / r for c, r in zip(cpu[(s, size)], v)])
        print('%-6s %-8d %10.0f %-17s %9.0f %10.2f %8.1f %8.2f' % (s, size, m, '%.0f-%.0f' % (min(v), max(v)), m * size / 1048576, statistics.median(cpu[(s, size)]), us, m / base))
EOF
