#!/usr/bin/env bash
# make bench-proxy: corsproxy against nginx and the net/http + rs/cors baseline: each contender pinned
# to one core (PROXY_CPU) with GOMAXPROCS=1 or one nginx worker; wrk and an nginx upstream
# answering like the seed's pipy-ok on the other core (LOAD_CPU); 64 connections; the
# contenders interleaved (A B C D A B C D ...) over ROUNDS rounds.
#
# Contenders: direct (the upstream itself), corsproxy, nginx (hack/bench/nginx/cors.conf.tmpl),
# rscors (hack/bench/rscors), and on request evloop (hack/bench/evloop: a fast-path-only epoll
# study measuring what an event loop of corsproxy's own would buy). Request kinds: get (allowed actual GET, Origin http://www.bbb.com)
# and preflight (OPTIONS with Origin and Access-Control-Request-Method). Every contender's
# answers are checked with curl first; a mismatch aborts.
#
# Per run: requests/s, p50 and p99 latency (wrk --latency), CPU per request of the
# contender's process (utime+stime from /proc/PID/stat over the run / requests), peak RSS
# (VmHWM; for nginx the worker), and how busy both cores were (noise indicator). Then an
# open-loop run (hack/bench/openloop, constant rate, latency from the scheduled send time) at
# OPENLOOP_FRACTION of corsproxy's median GET rate: the p99 corsproxy adds over direct.
#
# Writes hack/bench/results/proxy-<date>.md (medians, ratios to nginx and to direct) and
# proxy-<date>.raw.tsv (every run), and prints the report. Loopback only; every process it
# starts is stopped by PID on exit.
#
# Knobs (environment): ROUNDS=3 DURATION=10s WARMUP=2s CONNS=64 WRK_THREADS=1 PROXY_CPU=0
# LOAD_CPU=1 PORT_BASE=19100 CONTENDERS="direct corsproxy nginx rscors" KINDS="get preflight"
# OPENLOOP_FRACTION=0.5 OPENLOOP_CONTENDERS="direct corsproxy nginx" RESULTS_DIR=hack/bench/results
# PROFILE=1 also CPU-profiles the proxy (hack/bench/proxyprof, the same corsproxy/proxy
# package) under wrk and under the open-loop rate, and adds the top functions to the report.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-64}
WRK_THREADS=${WRK_THREADS:-1}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT_BASE=${PORT_BASE:-19100}
CONTENDERS=${CONTENDERS:-direct corsproxy nginx rscors}
KINDS=${KINDS:-get preflight}
OPENLOOP_FRACTION=${OPENLOOP_FRACTION:-0.5}
OPENLOOP_CONTENDERS=${OPENLOOP_CONTENDERS:-direct corsproxy nginx}
PROFILE=${PROFILE:-0}

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	exit 0
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
RESULTS_DIR=${RESULTS_DIR:-hack/bench/results}
command_line="ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS WRK_THREADS=$WRK_THREADS PROXY_CPU=$PROXY_CPU LOAD_CPU=$LOAD_CPU PORT_BASE=$PORT_BASE CONTENDERS=\"$CONTENDERS\" KINDS=\"$KINDS\" OPENLOOP_FRACTION=$OPENLOOP_FRACTION OPENLOOP_CONTENDERS=\"$OPENLOOP_CONTENDERS\" PROFILE=$PROFILE hack/bench/proxy.sh"

die() { echo "bench-proxy: $*" >&2; exit 1; }
log() { echo "==> $*" >&2; }

seconds() { # 10s, 2m or 10 -> seconds
	case $1 in
	*[0-9]s) echo "${1%s}" ;;
	*[0-9]m) echo $((${1%m} * 60)) ;;
	*[0-9]) echo "$1" ;;
	*) die "bad duration $1 (want e.g. 10s or 1m)" ;;
	esac
}
dur_s=$(seconds "$DURATION")
warm_s=$(seconds "$WARMUP")
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
((dur_s > 0)) || die "DURATION must be positive"
(($(nproc) >= 2)) || die "needs 2 cores (the proxy on one, load on the other); nproc=$(nproc)"
for c in $CONTENDERS; do [[ $c =~ ^(direct|corsproxy|nginx|rscors|evloop)$ ]] || die "unknown contender $c"; done
for k in $KINDS; do [[ $k =~ ^(get|preflight)$ ]] || die "unknown kind $k"; done

# --- processes and cleanup -------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-proxy.XXXXXX")
pids=()         # every process started in the background, stopped in reverse order
created_policy_rc=""
cleanup() {
	local rc=$? i pid
	trap - EXIT INT TERM
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		pid=${pids[i]}
		kill -TERM "$pid" 2>/dev/null || continue
	done
	for pid in "${pids[@]}"; do
		for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	[[ -n $created_policy_rc ]] && rm -f "$created_policy_rc"
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- tools -----------------------------------------------------------------------------
install_pkgs() {
	log "installing $*"
	# Keep Debian's maintainer scripts from starting a system nginx on port 80.
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
		created_policy_rc=/usr/sbin/policy-rc.d
	fi
	local sudo=""
	((EUID == 0)) || sudo=sudo
	$sudo apt-get install -y --no-install-recommends "$@" >/dev/null ||
		{ $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends "$@" >/dev/null; }
	if [[ -n $created_policy_rc ]]; then rm -f "$created_policy_rc"; created_policy_rc=""; fi
}
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
command -v curl >/dev/null || missing+=(curl)
command -v taskset >/dev/null || missing+=(util-linux)
((${#missing[@]} == 0)) || install_pkgs "${missing[@]}"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
CLK_TCK=$(getconf CLK_TCK)

# --- build -----------------------------------------------------------------------------
bin=$tmp/bin
mkdir -p "$bin"
log "building corsproxy, the rs/cors baseline and the open-loop generator"
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$bin/corsproxy" ./cmd/corsproxy
(cd hack/bench/rscors && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$bin/rscors" .)
(cd hack/bench/openloop && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$bin/openloop" .)
if [[ " $CONTENDERS " == *" evloop "* ]]; then
	CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$bin/evloop" ./hack/bench/evloop
fi
if [[ $PROFILE == 1 ]]; then
	# Tracks the working tree's corsproxy (replace => ../../..), so let go.sum follow it.
	(cd hack/bench/proxyprof && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -o "$bin/proxyprof" .)
fi

# --- start -----------------------------------------------------------------------------
up_port=$PORT_BASE
declare -A port=([direct]=$PORT_BASE [corsproxy]=$((PORT_BASE + 1)) [nginx]=$((PORT_BASE + 3)) [rscors]=$((PORT_BASE + 4)) [evloop]=$((PORT_BASE + 6)))
admin_port=$((PORT_BASE + 2))
prof_port=$((PORT_BASE + 5))
for p in "$up_port" "${port[corsproxy]}" "$admin_port" "${port[nginx]}" "${port[rscors]}" "$prof_port" "${port[evloop]}"; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then die "127.0.0.1:$p is in use (set PORT_BASE)"; fi
done

wait_http() { # url: until it answers at all
	for _ in $(seq 100); do
		curl -s -o /dev/null --max-time 1 "$1" && return 0
		sleep 0.1
	done
	die "$1 did not come up"
}
nginx_worker() { # master pid -> its one worker's pid
	local w
	for _ in $(seq 50); do
		w=$(awk '{print $1}' "/proc/$1/task/$1/children" 2>/dev/null || true)
		[[ -n $w ]] && { echo "$w"; return 0; }
		sleep 0.1
	done
	die "nginx $1 has no worker"
}
start_nginx() { # name template cpu listen [upstream] -> sets started_pid
	local name=$1 tmpl=$2 cpu=$3 listen=$4 upstream=${5:-}
	local pfx=$tmp/nginx-$name
	mkdir -p "$pfx"
	sed -e "s#@PREFIX@#$pfx#g" -e "s#@LISTEN@#$listen#g" -e "s#@UPSTREAM@#$upstream#g" "$tmpl" >"$pfx/nginx.conf"
	"$NGINX" -t -q -p "$pfx" -c "$pfx/nginx.conf" -e "$pfx/error.log" || die "nginx $name: bad config"
	taskset -c "$cpu" "$NGINX" -p "$pfx" -c "$pfx/nginx.conf" -e "$pfx/error.log" &
	started_pid=$!
	pids+=("$started_pid")
}

declare -A pid        # the process whose CPU and memory count for each contender
start_nginx upstream hack/bench/nginx/upstream.conf.tmpl "$LOAD_CPU" "127.0.0.1:$up_port"
up_master=$started_pid
wait_http "http://127.0.0.1:$up_port/"
up_worker=$(nginx_worker "$up_master")
pid[direct]=$up_worker

if [[ " $CONTENDERS " == *" corsproxy "* ]]; then
	GOMAXPROCS=1 taskset -c "$PROXY_CPU" "$bin/corsproxy" --config corsproxy/proxy/testdata/seed-config.json \
		--listen "127.0.0.1:${port[corsproxy]}" --admin-listen "127.0.0.1:$admin_port" \
		--upstream "127.0.0.1:$up_port" --policy-port 8080 --log-level warn 2>>"$tmp/corsproxy.log" &
	pid[corsproxy]=$!
	pids+=("$!")
	wait_http "http://127.0.0.1:$admin_port/readyz"
	curl -fs -o /dev/null "http://127.0.0.1:$admin_port/readyz" || die "corsproxy not ready: $(cat "$tmp/corsproxy.log")"
fi
if [[ " $CONTENDERS " == *" nginx "* ]]; then
	start_nginx cors hack/bench/nginx/cors.conf.tmpl "$PROXY_CPU" "127.0.0.1:${port[nginx]}" "127.0.0.1:$up_port"
	wait_http "http://127.0.0.1:${port[nginx]}/"
	pid[nginx]=$(nginx_worker "$started_pid")
fi
if [[ " $CONTENDERS " == *" rscors "* ]]; then
	GOMAXPROCS=1 taskset -c "$PROXY_CPU" "$bin/rscors" --listen "127.0.0.1:${port[rscors]}" \
		--upstream "127.0.0.1:$up_port" 2>>"$tmp/rscors.log" &
	pid[rscors]=$!
	pids+=("$!")
	wait_http "http://127.0.0.1:${port[rscors]}/"
fi
if [[ " $CONTENDERS " == *" evloop "* ]]; then
	GOMAXPROCS=1 taskset -c "$PROXY_CPU" "$bin/evloop" --config corsproxy/proxy/testdata/seed-config.json \
		--listen "127.0.0.1:${port[evloop]}" --upstream "127.0.0.1:$up_port" --policy-port 8080 2>>"$tmp/evloop.log" &
	pid[evloop]=$!
	pids+=("$!")
	wait_http "http://127.0.0.1:${port[evloop]}/"
fi

# --- correctness: the seed's answers, checked before anything is measured ---------------
ORIGIN=http://www.bbb.com
BODY="Hi, I am PIPY-OK v1!"
check_failures=0
fail() { echo "  MISMATCH $*" >&2; check_failures=$((check_failures + 1)); }
request() { # port method origin [header...] -> $tmp/h (headers), $tmp/b (body), prints status
	local p=$1 m=$2 o=$3
	shift 3
	local args=(-s --max-time 5 -X "$m" -D "$tmp/h" -o "$tmp/b" -w '%{http_code}')
	[[ -n $o ]] && args+=(-H "Origin: $o")
	for h in "$@"; do args+=(-H "$h"); done
	curl "${args[@]}" "http://127.0.0.1:$p/" || echo 000
}
hval() { grep -i "^$1:" "$tmp/h" | head -1 | cut -d: -f2- | sed 's/^ *//' | tr -d '\r'; }
hcount() { grep -ic "^$1:" "$tmp/h" || true; }
expect() { # what name got want
	[[ $3 == "$4" ]] || fail "$1: $2 = '$3', want '$4'"
}
check_contender() {
	local c=$1 p=${port[$1]} st
	# The allowed actual request, as the seed guide's first curl.
	st=$(request "$p" GET "$ORIGIN")
	expect "$c get" status "$st" 200
	expect "$c get" body "$(cat "$tmp/b")" "$BODY"
	if [[ $c == direct ]]; then
		expect "$c get" "access-control-* lines" "$(hcount 'access-control-[a-z-]*')" 0
	else
		expect "$c get" "access-control-allow-origin lines" "$(hcount access-control-allow-origin)" 1
		expect "$c get" access-control-allow-origin "$(hval access-control-allow-origin)" "$ORIGIN"
		expect "$c get" access-control-allow-credentials "$(hval access-control-allow-credentials)" true
		local expose
		expose=$(hval access-control-expose-headers)
		[[ $c == rscors ]] && expose=${expose//, /,} # rs/cors joins with ", "
		expect "$c get" access-control-expose-headers "$expose" "Content-Encoding,Kuma-Revision"
		[[ $(hval vary) == *Origin* ]] || fail "$c get: vary = '$(hval vary)', want it to name Origin"
	fi
	# The preflight, as the seed guide's second curl plus what a browser sends.
	st=$(request "$p" OPTIONS "$ORIGIN" "Access-Control-Request-Method: PATCH")
	expect "$c preflight" status "$st" 200
	if [[ $c == direct ]]; then
		expect "$c preflight" "access-control-* lines" "$(hcount 'access-control-[a-z-]*')" 0
		return
	fi
	expect "$c preflight" "body bytes" "$(wc -c <"$tmp/b")" 0
	expect "$c preflight" access-control-allow-origin "$(hval access-control-allow-origin)" "$ORIGIN"
	expect "$c preflight" access-control-allow-credentials "$(hval access-control-allow-credentials)" true
	expect "$c preflight" access-control-max-age "$(hval access-control-max-age)" 86400
	if [[ $c == rscors ]]; then
		# rs/cors echoes the requested method and omits what was not asked for.
		expect "$c preflight" access-control-allow-methods "$(hval access-control-allow-methods)" PATCH
	else
		expect "$c preflight" content-length "$(hval content-length)" 0
		expect "$c preflight" access-control-expose-headers "$(hval access-control-expose-headers)" "Content-Encoding,Kuma-Revision"
		expect "$c preflight" access-control-allow-methods "$(hval access-control-allow-methods)" "POST,GET,PATCH,DELETE"
		expect "$c preflight" access-control-allow-headers "$(hval access-control-allow-headers)" "X-Foo-Bar-1"
	fi
	# The three origin rules: exact, prefix (not host-bounded, as in the seed), anchored regex.
	local o want
	for o in http://www.aaa.com http://www.bbb.com http://www.bbb.com.evil.net http://www.bbb.com:8443 \
		http://www.test.cn https://www.test.cn \
		-http://www.aaa.com.evil.net -http://www.test.cn.evil.com -https://www.bbb.com -http://evil.example -""; do
		want=$o
		[[ $o == -* ]] && { o=${o#-}; want=""; }
		st=$(request "$p" GET "$o")
		expect "$c get Origin '$o'" status "$st" 200
		expect "$c get Origin '$o'" access-control-allow-origin "$(hval access-control-allow-origin)" "$want"
	done
	# A preflight from a rejected origin gets no CORS headers.
	st=$(request "$p" OPTIONS http://evil.example "Access-Control-Request-Method: PATCH")
	[[ $st == 2* ]] || fail "$c rejected preflight: status $st, want 2xx"
	expect "$c rejected preflight" access-control-allow-origin "$(hval access-control-allow-origin)" ""
}
log "checking every contender's answers against the seed's"
for c in $CONTENDERS; do check_contender "$c"; done
((check_failures == 0)) || die "$check_failures mismatches: not measuring contenders that answer differently"
echo "  all contenders answer as expected" >&2

# --- measurement helpers ---------------------------------------------------------------
cpu_ticks() { # utime+stime of a process (all threads), in clock ticks
	local s
	s=$(cat "/proc/$1/stat") || die "process $1 is gone"
	s=${s##*) }
	awk '{print $12 + $13}' <<<"$s"
}
vmhwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
core_busy() { # prints "busy total" ticks of one core from /proc/stat
	awk -v c="cpu$1" '$1 == c { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}
to_us() { # wrk's 1.23ms / 456.00us / 1.01s -> microseconds
	awk -v v="$1" 'BEGIN {
		if (v ~ /us$/) { sub(/us$/, "", v); f = 1 } else if (v ~ /ms$/) { sub(/ms$/, "", v); f = 1000 }
		else if (v ~ /m$/) { sub(/m$/, "", v); f = 60e6 } else if (v ~ /s$/) { sub(/s$/, "", v); f = 1e6 } else f = 1
		printf "%.1f", v * f }'
}
for k in get preflight; do
	{
		if [[ $k == get ]]; then echo 'wrk.method = "GET"'; else echo 'wrk.method = "OPTIONS"'; fi
		echo "wrk.headers[\"Origin\"] = \"$ORIGIN\""
		[[ $k == preflight ]] && echo 'wrk.headers["Access-Control-Request-Method"] = "PATCH"'
	} >"$tmp/$k.lua"
done
wrk_run() { # contender kind duration -> wrk output
	taskset -c "$LOAD_CPU" timeout $(($(seconds "$3") + 30)) \
		wrk -t"$WRK_THREADS" -c"$CONNS" -d"$3" --timeout 2s --latency -s "$tmp/$2.lua" "http://127.0.0.1:${port[$1]}/"
}

raw=$tmp/raw.tsv
printf 'phase\tround\tkind\tcontender\ttarget_rps\trps\trequests\tp50_us\tp90_us\tp99_us\tp999_us\tmax_us\tcpu_us_per_req\tcontender_cpu_pct\trss_kib\tupstream_cpu_us_per_req\tproxy_core_busy_pct\tload_core_busy_pct\terrors\tnon2xx\tsend_lag_p99_us\tgen_lag_p99_us\tloadavg1\n' >"$raw"

measure() { # phase round kind contender target -> one raw row; runs wrk or openloop
	local phase=$1 round=$2 kind=$3 c=$4 target=${5:-}
	local p=${pid[$c]} t0 u0 t1 u1 pc0 lc0 pc1 lc1 out rc=0 load
	load=$(cut -d' ' -f1 /proc/loadavg)
	local pt0 lt0 pt1 lt1
	read -r pc0 pt0 < <(core_busy "$PROXY_CPU")
	read -r lc0 lt0 < <(core_busy "$LOAD_CPU")
	t0=$(cpu_ticks "$p")
	u0=$(cpu_ticks "$up_worker")
	if [[ $phase == closed ]]; then
		out=$(wrk_run "$c" "$kind" "$DURATION" 2>&1) || rc=$?
	else
		out=$(GOMAXPROCS=1 taskset -c "$LOAD_CPU" timeout $((dur_s + 60)) "$bin/openloop" \
			--url "http://127.0.0.1:${port[$c]}/" --rate "$target" --duration "$DURATION" --warmup 1s \
			--conns "$CONNS" -H "Origin: $ORIGIN" 2>&1) || rc=$?
	fi
	t1=$(cpu_ticks "$p")
	u1=$(cpu_ticks "$up_worker")
	read -r pc1 pt1 < <(core_busy "$PROXY_CPU")
	read -r lc1 lt1 < <(core_busy "$LOAD_CPU")
	echo "$out" >>"$tmp/runs.log"
	local rps requests p50 p90 p99 p999="" max="" errors non2xx lag="" glag=""
	if [[ $phase == closed ]]; then
		((rc == 0)) || die "wrk failed on $c $kind: $out"
		requests=$(awk '/requests in/ {print $1; exit}' <<<"$out")
		rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
		p50=$(to_us "$(awk '$1 == "50%" {print $2}' <<<"$out")")
		p90=$(to_us "$(awk '$1 == "90%" {print $2}' <<<"$out")")
		p99=$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")")
		max=$(to_us "$(awk '$1 == "Latency" && NF >= 4 {print $4; exit}' <<<"$out")")
		errors=$(awk '/Socket errors:/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' <<<"$out")
		non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
		errors=${errors:-0} non2xx=${non2xx:-0}
		[[ -n $requests && -n $rps && -n $p99 ]] || die "could not parse wrk's output: $out"
	else
		kv() { grep -o " $1=[^ ]*" <<<"$out" | head -1 | cut -d= -f2; }
		requests=$(kv ok)
		rps=$(kv achieved_rps) p50=$(kv p50_us) p90=$(kv p90_us) p99=$(kv p99_us) p999=$(kv p999_us)
		max=$(kv max_us) errors=$(kv errors) non2xx=$(kv non2xx) lag=$(kv lag_p99_us) glag=$(kv gen_lag_p99_us)
		[[ -n $requests ]] || die "open-loop generator failed on $c: $out"
		((rc == 0)) || echo "  warning: open-loop run against $c had errors: $(tail -1 <<<"$out")" >&2
	fi
	awk -v OFS='\t' -v phase="$phase" -v round="$round" -v kind="$kind" -v c="$c" -v target="$target" \
		-v rps="$rps" -v req="$requests" -v p50="$p50" -v p90="$p90" -v p99="$p99" -v p999="$p999" -v max="$max" \
		-v dt=$((t1 - t0)) -v du=$((u1 - u0)) -v hz="$CLK_TCK" -v dur="$dur_s" -v rss="$(vmhwm_kib "$p")" \
		-v pb=$((pc1 - pc0)) -v pt=$((pt1 - pt0)) -v lb=$((lc1 - lc0)) -v lt=$((lt1 - lt0)) \
		-v errors="$errors" -v non2xx="$non2xx" -v lag="$lag" -v glag="$glag" -v load="$load" 'BEGIN {
		# The open-loop generator warms up for 1 s at the same rate inside the CPU window
		# but counts only the measured requests: add the warm-up to both counts.
		n = req + 0; secs = dur
		if (phase == "open") { n = req + non2xx + target; secs = dur + 1 }
		cpu = n > 0 ? dt / hz * 1e6 / n : 0
		ucpu = n > 0 ? du / hz * 1e6 / n : 0
		print phase, round, kind, c, target, rps, req, p50, p90, p99, p999, max,
			sprintf("%.2f", cpu), sprintf("%.0f", dt / hz / secs * 100), rss, sprintf("%.2f", ucpu),
			sprintf("%.0f", pt > 0 ? pb / pt * 100 : 0), sprintf("%.0f", lt > 0 ? lb / lt * 100 : 0),
			errors, non2xx, lag, glag, load }' >>"$raw"
	tail -1 "$raw" | awk -F'\t' '{ printf "  %-6s r%s %-9s %-9s %9s req/s  p50 %8sus  p99 %8sus  cpu %6sus/req  rss %6sKiB  cores %s%%/%s%%  err %s/%s\n",
		$1, $2, $3, $4, $6, $8, $10, $13, $15, $17, $18, $19, $20 }' >&2
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
nc=$(wc -w <<<"$CONTENDERS")
nk=$(wc -w <<<"$KINDS")
no=$(wc -w <<<"$OPENLOOP_CONTENDERS")
est=$(((nc * nk * warm_s) + ROUNDS * (nc * nk + no) * dur_s + ROUNDS * no * 2))
log "measuring: $ROUNDS round(s) x $nk kind(s) x $nc contender(s) x $DURATION, then open loop (about ${est}s); load average $load_start"

# --- closed loop: wrk, interleaved ------------------------------------------------------
if ((warm_s > 0)); then
	for k in $KINDS; do for c in $CONTENDERS; do wrk_run "$c" "$k" "$WARMUP" >/dev/null 2>&1 || die "warm-up failed on $c $k"; done; done
fi
for r in $(seq "$ROUNDS"); do
	for k in $KINDS; do
		for c in $CONTENDERS; do measure closed "$r" "$k" "$c"; done
	done
done

median_of() { # phase kind contender column -> median over rounds
	awk -F'\t' -v ph="$1" -v k="$2" -v c="$3" -v col="$4" 'NR > 1 && $1 == ph && $3 == k && $4 == c && $col != "" { print $col }' "$raw" |
		sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
col() { # column number by name
	head -1 "$raw" | tr '\t' '\n' | grep -nx "$1" | cut -d: -f1
}

# --- open loop: constant rate at a fraction of corsproxy's peak ---------------------------
ol_rate=""
if [[ -n $OPENLOOP_CONTENDERS && " $CONTENDERS " == *" corsproxy "* && " $KINDS " == *" get "* ]]; then
	peak=$(median_of closed get corsproxy "$(col rps)")
	ol_rate=$(awk -v p="$peak" -v f="$OPENLOOP_FRACTION" 'BEGIN { printf "%.0f", p * f }')
	log "open loop at $ol_rate req/s ($OPENLOOP_FRACTION x corsproxy's median $peak req/s)"
	for r in $(seq "$ROUNDS"); do
		for c in $OPENLOOP_CONTENDERS; do
			[[ -n ${pid[$c]:-} ]] || die "open-loop contender $c is not running"
			measure open "$r" get "$c" "$ol_rate"
		done
	done
fi
# --- optional: where corsproxy's CPU goes ---------------------------------------------------
profiles=()
if [[ $PROFILE == 1 ]]; then
	for mode in wrk openloop; do
		[[ $mode == openloop && -z $ol_rate ]] && continue
		log "profiling corsproxy/proxy under $mode for $DURATION"
		GOMAXPROCS=1 taskset -c "$PROXY_CPU" "$bin/proxyprof" --config corsproxy/proxy/testdata/seed-config.json \
			--listen "127.0.0.1:$prof_port" --upstream "127.0.0.1:$up_port" --policy-port 8080 \
			--cpuprofile "$tmp/cpu-$mode.pprof" --delay 1s --duration "$DURATION" --keep-serving 2>>"$tmp/proxyprof.log" &
		prof_pid=$!
		pids+=("$prof_pid")
		wait_http "http://127.0.0.1:$prof_port/"
		port[proxyprof]=$prof_port
		if [[ $mode == wrk ]]; then
			wrk_run proxyprof get "$((dur_s + 2))s" >/dev/null 2>&1 || true
		else
			GOMAXPROCS=1 taskset -c "$LOAD_CPU" timeout $((dur_s + 60)) "$bin/openloop" --url "http://127.0.0.1:$prof_port/" \
				--rate "$ol_rate" --duration "$((dur_s + 1))s" --warmup 1s --conns "$CONNS" -H "Origin: $ORIGIN" >/dev/null 2>&1 || true
		fi
		for _ in $(seq 100); do [[ -s $tmp/cpu-$mode.pprof ]] && grep -q wrote "$tmp/proxyprof.log" && break; sleep 0.1; done
		kill -TERM "$prof_pid" 2>/dev/null || true
		wait "$prof_pid" 2>/dev/null || true
		profiles+=("$mode")
	done
fi
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report ----------------------------------------------------------------------------
stamp=$(date +%Y-%m-%d-%H%M%S)
mkdir -p "$RESULTS_DIR"
md=$RESULTS_DIR/proxy-$stamp.md
cp "$raw" "$RESULTS_DIR/proxy-$stamp.raw.tsv"

paired() { # kind contender -> a table row: its per-round ratios to nginx in that round
	awk -F'\t' -v k="$1" -v c="$2" -v rps="$(col rps)" -v cpu="$(col cpu_us_per_req)" 'NR > 1 && $1 == "closed" && $3 == k {
		if ($4 == c) { r[$2] = $rps; u[$2] = $cpu }
		if ($4 == "nginx") { nr[$2] = $rps; nu[$2] = $cpu }
	}
	END {
		for (i in r) {
			if (!(i in nr) || nr[i] <= 0 || nu[i] <= 0 || u[i] <= 0) continue
			x = r[i] / nr[i]; y = u[i] / nu[i]; n++
			lx += log(x); ly += log(y)
			if (n == 1 || x < xmin) xmin = x
			if (n == 1 || x > xmax) xmax = x
			if (n == 1 || y < ymin) ymin = y
			if (n == 1 || y > ymax) ymax = y
			if (x >= 1) ahead++
		}
		if (n > 0) printf "| %s | %s | %.2f (%.2f–%.2f) | %d of %d | %.2f (%.2f–%.2f) |\n", k, c, exp(lx / n), xmin, xmax, ahead, n, exp(ly / n), ymin, ymax
	}' "$raw"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "–"; else printf "%.2f", a / b }'; }
cell() { # value nginx direct [format]
	local v
	[[ -z $1 ]] && { echo "–"; return; }
	v=$(awk -v v="$1" -v f="${4:-%.0f}" 'BEGIN { printf f, v }')
	echo "$v ($(ratio "$1" "$2") / $(ratio "$1" "$3"))"
}
go_version=$(go version | awk '{print $3}')
nginx_version=$("$NGINX" -v 2>&1 | sed 's/.*nginx\///')
wrk_version=$( (wrk -v 2>&1 || true) | awk 'NR == 1 {print $2}')
fasthttp_version=$(awk '$1 == "github.com/valyala/fasthttp" {print $2}' go.mod)
rscors_version=$(awk '{ for (i = 1; i < NF; i++) if ($i == "github.com/rs/cors") print $(i + 1) }' hack/bench/rscors/go.mod | head -1)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain 2>/dev/null | grep -q . && echo " (uncommitted changes)" || true)
noisy=""
if awk -v l="${load_start%% *}" 'BEGIN { exit !(l > 1.0) }'; then
	noisy="**Noisy machine:** load average $load_start at the start (the bench itself adds about 2). Compare ratios within this run only; rerun on a quiet machine for absolute numbers."
fi

{
	echo "# corsproxy benchmark, $(date '+%Y-%m-%d %H:%M:%S %Z')"
	echo
	echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -sr)"
	echo "- load average: $load_start at start, $load_end at end"
	echo "- versions: $go_version, corsproxy $commit$dirty with fasthttp $fasthttp_version, nginx $nginx_version, rs/cors $rscors_version, wrk $wrk_version"
	echo "- command: \`$command_line\`"
	echo "- setup: contenders on core $PROXY_CPU (GOMAXPROCS=1, or 1 nginx worker); wrk (-t$WRK_THREADS -c$CONNS), the open-loop generator and the upstream (nginx, 1 worker, \`return 200 \"$BODY\"\`) on core $LOAD_CPU; loopback; $ROUNDS interleaved round(s) of $DURATION after a $WARMUP warm-up per contender"
	echo "- get: \`GET /\` with \`Origin: $ORIGIN\` (allowed, proxied); preflight: \`OPTIONS /\` with that Origin and \`Access-Control-Request-Method: PATCH\` (answered by the proxy; direct is the upstream answering it)"
	[[ -n $noisy ]] && { echo; echo "$noisy"; }
	echo
	echo "Medians over rounds. Each cell: value (ratio to nginx / ratio to direct)."
	echo "CPU is the contender's own process (nginx: its worker; direct: the upstream's worker), µs per request; \"core busy\" is the whole proxy core from /proc/stat, whoever used it (100 % with a low contender share means other load)."
	for k in $KINDS; do
		echo
		echo "## $k (closed loop, wrk)"
		echo
		echo "| contender | req/s | p50 µs | p99 µs | CPU µs/req | peak RSS MiB | contender CPU % | proxy core busy % | load core busy % |"
		echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
		for c in $CONTENDERS; do
			row="| $c"
			for name in rps p50_us p99_us cpu_us_per_req rss_kib; do
				v=$(median_of closed "$k" "$c" "$(col $name)")
				n=$(median_of closed "$k" nginx "$(col $name)")
				d=$(median_of closed "$k" direct "$(col $name)")
				fmt=%.0f
				[[ $name == cpu_us_per_req ]] && fmt=%.2f
				if [[ $name == rss_kib ]]; then
					v=$(awk -v x="$v" 'BEGIN { if (x != "") printf "%.1f", x / 1024 }')
					n=$(awk -v x="$n" 'BEGIN { if (x != "") printf "%.1f", x / 1024 }')
					d=$(awk -v x="$d" 'BEGIN { if (x != "") printf "%.1f", x / 1024 }')
					fmt=%.1f
				fi
				row+=" | $(cell "$v" "$n" "$d" "$fmt")"
			done
			for name in contender_cpu_pct proxy_core_busy_pct load_core_busy_pct; do
				row+=" | $(median_of closed "$k" "$c" "$(col $name)")"
			done
			echo "$row |"
		done
	done
	if [[ " $CONTENDERS " == *" nginx "* ]]; then
		echo
		echo "## Paired with nginx, round by round"
		echo
		echo "Each round runs the contenders back to back, so a ratio taken within one round shares that round's machine; the geometric mean of those ratios is steadier on a noisy machine than a ratio of medians. min–max shows how far single rounds strayed."
		echo
		echo "| kind | contender | req/s ÷ nginx: geo. mean (min–max) | rounds at or above nginx | CPU µs/req ÷ nginx: geo. mean (min–max) |"
		echo "| --- | --- | --- | --- | --- |"
		for k in $KINDS; do
			for c in $CONTENDERS; do
				[[ $c == nginx || $c == direct ]] || paired "$k" "$c"
			done
		done
	fi
	if [[ -n $ol_rate ]]; then
		echo
		echo "## Open loop: GET at $ol_rate req/s ($OPENLOOP_FRACTION × corsproxy's median), $CONNS connections"
		echo
		echo "Latency from each request's scheduled send time (no coordinated omission). \"added\" = this contender minus direct, medians over rounds. Send lag p99: how late requests left because all $CONNS connections were busy (the contender was behind). Generator lag p99: how late the generator itself was (high = the load core fell behind; then the row says little about the contender). *behind*: the contender fell short of the rate, or requests waited over 100 ms for a free connection (a backlog it never caught up with)."
		echo
		echo "Contender CPU %: how busy the contender's core was at this rate. Per request, every contender costs two to four times its closed-loop CPU here (a wake-up per request instead of many requests per wake-up), so half the closed-loop peak can be most of a core: read the added latency against this column."
		echo
		echo "| contender | achieved req/s | p50 µs | p99 µs | p99.9 µs | added p50 µs | added p99 µs | added p99.9 µs | CPU µs/req | contender CPU % | send lag p99 µs | generator lag p99 µs |"
		echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
		d50=$(median_of open get direct "$(col p50_us)")
		d99=$(median_of open get direct "$(col p99_us)")
		d999=$(median_of open get direct "$(col p999_us)")
		for c in $OPENLOOP_CONTENDERS; do
			v50=$(median_of open get "$c" "$(col p50_us)")
			v99=$(median_of open get "$c" "$(col p99_us)")
			v999=$(median_of open get "$c" "$(col p999_us)")
			add() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "") print "–"; else printf "%+.0f", a - b }'; }
			achieved=$(median_of open get "$c" "$(col rps)")
			behind=$(awk -v a="$achieved" -v t="$ol_rate" -v l="$(median_of open get "$c" "$(col send_lag_p99_us)")" \
				'BEGIN { if (a < 0.97 * t || l > 100000) print " *behind*" }')
			printf '| %s | %.0f%s | %.0f | %.0f | %.0f | %s | %s | %s | %.2f | %.0f | %.0f | %.0f |\n' "$c" \
				"$achieved" "$behind" "$v50" "$v99" "$v999" \
				"$(add "$v50" "$d50")" "$(add "$v99" "$d99")" "$(add "$v999" "$d999")" \
				"$(median_of open get "$c" "$(col cpu_us_per_req)")" "$(median_of open get "$c" "$(col contender_cpu_pct)")" \
				"$(median_of open get "$c" "$(col send_lag_p99_us)")" \
				"$(median_of open get "$c" "$(col gen_lag_p99_us)")"
		done
	fi
	disturbed=$(awk -F'\t' 'NR > 1 && $1 == "closed" && $4 != "direct" && $17 - $14 > 15 { printf "%s%s r%s %s (core %s%% busy, contender %s%%)", sep, $3, $2, $4, $17, $14; sep = "; " }' "$raw")
	if [[ -n $disturbed ]]; then
		echo
		echo "**Other load on the proxy core** (busy minus the contender's share above 15 points) in: $disturbed."
	fi
	for mode in "${profiles[@]}"; do
		cp "$tmp/cpu-$mode.pprof" "$RESULTS_DIR/proxy-$stamp.cpu-$mode.pprof"
		echo
		echo "## CPU profile of corsproxy/proxy under $mode (GET, $DURATION; \`go tool pprof -top $RESULTS_DIR/proxy-$stamp.cpu-$mode.pprof\`)"
		echo
		echo '```'
		(cd hack/bench/proxyprof && go tool pprof -top -nodecount=25 "$bin/proxyprof" "$tmp/cpu-$mode.pprof" 2>/dev/null | sed -n '4,40p') || true
		echo '```'
	done
	echo
	echo "## Notes"
	echo
	echo "- All contenders were checked first (curl) for the seed's answers to both request kinds and the three origin rules; rscors is held to what rs/cors documents instead on the preflight: it echoes the requested method in allow-methods, sends allow-headers only when asked and no expose-headers, and joins expose-headers with \", \"."
	echo "- Peak RSS is VmHWM, the process's high-water mark since it started (so it includes the warm-up and earlier rounds)."
	echo "- CPU per request comes from /proc/PID/stat (clock ticks of 1/$CLK_TCK s), so very short runs are coarse."
	echo
	echo "## Raw runs"
	echo
	echo '```tsv'
	cat "$raw"
	echo '```'
} >"$md"

cat "$md"
echo
log "wrote $md and $RESULTS_DIR/proxy-$stamp.raw.tsv"
