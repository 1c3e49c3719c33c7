#!/usr/bin/env bash
# A/B of two corsproxy builds on the forwarding path: same nginx upstream, same wrk load,
# the two binaries alternating (A B, B A, A B ...) for ROUNDS pairs, each pinned to core 0 with
# GOMAXPROCS=1 while wrk and the upstream share core 1. Prints each pair's ratios B/A of
# req/s, CPU per request, read system calls per request (syscr in /proc/PID/io), p50 and p99 latency (wrk's, closed loop: each connection sends
# its next request when the last is answered), and their geometric means: on a noisy
# shared machine only paired ratios say anything.
#
#   hack/bench/proxy-ab.sh OLD_BINARY NEW_BINARY
#   (build them with: CGO_ENABLED=0 go build -o /tmp/new ./cmd/corsproxy, and the same at
#   another commit from a git worktree)
#
# Knobs (environment): ROUNDS=8 DURATION=5 (seconds) CONNS=64 PORT_BASE=19600
# REQUEST=get (an allowed origin's GET, forwarded) or preflight (answered by the proxy)
set -euo pipefail

[[ $# -eq 2 ]] || { sed -n '2,12p' "$0"; exit 2; }
a=$(realpath "$1") b=$(realpath "$2")
ROUNDS=${ROUNDS:-8}
DURATION=${DURATION:-5}
CONNS=${CONNS:-64}
PORT_BASE=${PORT_BASE:-19600}
for tool in nginx wrk taskset; do
	command -v "$tool" >/dev/null || { echo "proxy-ab: $tool is missing (apt-get install nginx-light wrk util-linux)" >&2; exit 1; }
done
[[ $ROUNDS =~ ^[1-9][0-9]?$ && $DURATION =~ ^[1-9][0-9]?$ ]] || { echo "proxy-ab: ROUNDS and DURATION must be 1..99" >&2; exit 2; }
REQUEST=${REQUEST:-get}
[[ $REQUEST == get || $REQUEST == preflight ]] || { echo "proxy-ab: REQUEST must be get or preflight" >&2; exit 2; }

root=$(cd "$(dirname "$0")/../.." && pwd)
config=$root/corsproxy/proxy/testdata/seed-config.json
work=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	[[ -f $work/nginx.pid ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

upstream_port=$PORT_BASE
cat >"$work/nginx.conf" <<EOF
worker_processes 1;
daemon on;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  server { listen 127.0.0.1:$upstream_port; location / { return 200 "Hi, I am PIPY-OK v1!"; } }
}
EOF
taskset -c 1 nginx -c "$work/nginx.conf" -p "$work"

# wrk's request: an allowed origin's GET, or its preflight.
wrkargs=(-H 'Origin: http://www.bbb.com')
if [[ $REQUEST == preflight ]]; then
	printf 'wrk.method = "OPTIONS"\nwrk.headers["Access-Control-Request-Method"] = "PATCH"\n' >"$work/preflight.lua"
	wrkargs+=(-s "$work/preflight.lua")
fi

# one BINARY PORT: prints "req/s cpu-µs-per-request p50-µs p99-µs reads-per-request".
one() {
	local bin=$1 port=$2
	GOMAXPROCS=1 taskset -c 0 "$bin" --config "$config" --listen "127.0.0.1:$port" \
		--admin-listen "127.0.0.1:$((port + 1))" --upstream "127.0.0.1:$upstream_port" --policy-port 8080 \
		>"$work/proxy.log" 2>&1 &
	local pid=$!
	pids+=("$pid")
	for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$((port + 1))/readyz" && break; sleep 0.1; done
	taskset -c 1 wrk -t1 -c"$CONNS" -d2s "${wrkargs[@]}" "http://127.0.0.1:$port/" >/dev/null
	local t0 t1 r0 r1 out
	t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
	r0=$(awk '/^syscr/ {print $2}' "/proc/$pid/io")
	out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "${wrkargs[@]}" "http://127.0.0.1:$port/")
	t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
	r1=$(awk '/^syscr/ {print $2}' "/proc/$pid/io")
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	awk -v out="$out" -v ticks=$((t1 - t0)) -v reads=$((r1 - r0)) -v hz="$(getconf CLK_TCK)" '
	# wrk prints latencies as 812.00us, 1.68ms or 1.02s.
	function us(v) {
		if (v ~ /us$/) return v + 0
		if (v ~ /ms$/) return v * 1000
		if (v ~ /s$/) return v * 1e6
		return v + 0
	}
	BEGIN {
		n = split(out, lines, "\n")
		for (i = 1; i <= n; i++) {
			if (lines[i] ~ /Requests\/sec/) { split(lines[i], f, " "); rps = f[2] }
			if (lines[i] ~ /requests in/) { split(lines[i], f, " "); reqs = f[1] }
			if (lines[i] ~ /^ +50% /) { split(lines[i], f, " "); p50 = us(f[2]) }
			if (lines[i] ~ /^ +99% /) { split(lines[i], f, " "); p99 = us(f[2]) }
		}
		printf "%.0f %.2f %.0f %.0f %.2f\n", rps, ticks / hz * 1e6 / reqs, p50, p99, reads / reqs
	}'
}

echo "A: $a"
echo "B: $b"
echo "request: $REQUEST"
for i in $(seq "$ROUNDS"); do
	# Which runs first alternates (A B, B A, ...): the second of a pair was measured slower
	# on this machine whichever binary it was.
	if ((i % 2)); then
		read -r ra ca a50 a99 ard < <(one "$a" $((PORT_BASE + 10)))
		read -r rb cb b50 b99 brd < <(one "$b" $((PORT_BASE + 20)))
	else
		read -r rb cb b50 b99 brd < <(one "$b" $((PORT_BASE + 20)))
		read -r ra ca a50 a99 ard < <(one "$a" $((PORT_BASE + 10)))
	fi
	echo "$i $ra $rb $ca $cb $a50 $b50 $a99 $b99 $(cut -d' ' -f1 /proc/loadavg) $ard $brd" | tee -a "$work/pairs" |
		awk '{printf "pair %s: A %s req/s %s µs/req %s reads/req p50 %s p99 %s µs, B %s req/s %s µs/req %s reads/req p50 %s p99 %s µs (load %s)\n", $1, $2, $4, $11, $6, $8, $3, $5, $12, $7, $9, $10}' >&2
done
awk '
	BEGIN {
		printf "%-5s %8s %8s %9s %9s %7s %7s %7s %7s %8s %8s %8s %8s %5s %6s %6s\n", "pair", "A req/s", "B req/s", "A µs/req", "B µs/req",
			"A p50", "B p50", "A p99", "B p99", "B/A rps", "B/A cpu", "B/A p50", "B/A p99", "load", "A rd/r", "B rd/r"
	}
	{
		printf "%-5s %8d %8d %9.2f %9.2f %7d %7d %7d %7d %8.3f %8.3f %8.3f %8.3f %5s %6.2f %6.2f\n", $1, $2, $3, $4, $5, $6, $7, $8, $9,
			$3 / $2, $5 / $4, $7 / $6, $9 / $8, $10, $11, $12
		r += log($3 / $2); c += log($5 / $4); m += log($7 / $6); t += log($9 / $8); ra += $11; rb += $12; n++
	}
	END {
		printf "geometric mean over %d pairs: B/A req/s %.3f, B/A CPU per request %.3f, B/A p50 %.3f, B/A p99 %.3f\n",
			n, exp(r / n), exp(c / n), exp(m / n), exp(t / n)
		printf "read system calls per request, mean: A %.2f, B %.2f\n", ra / n, rb / n
	}
' "$work/pairs"
