#!/usr/bin/env bash
# The data plane alone: corsproxy with the seed's PluginConfig in front of an app that
# answers like the seed's pipy-ok, and the seed's two curl checks against it.
# No root, no cluster: the proxy forwards with --upstream instead of iptables.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=bin
config=corsproxy/proxy/testdata/seed-config.json
app_port=${APP_PORT:-18080}
proxy_port=${PROXY_PORT:-18003}
admin_port=${ADMIN_PORT:-18000}

echo "==> building corsproxy and the pipy-ok stand-in"
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$bin/corsproxy" ./cmd/corsproxy
go build -o "$bin/pipyok" ./test/pipyok

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

"$bin/pipyok" --listen "127.0.0.1:$app_port" 2>/dev/null & pids+=($!)
"$bin/corsproxy" --config "$config" --listen "127.0.0.1:$proxy_port" --admin-listen "127.0.0.1:$admin_port" \
	--upstream "127.0.0.1:$app_port" --policy-port 8080 --log-level warn & pids+=($!)
for _ in $(seq 50); do
	curl -fs "http://127.0.0.1:$admin_port/readyz" >/dev/null 2>&1 && break
	sleep 0.1
done

echo "==> policy: the seed's PluginConfig ($config)"
status=0
check() {
	local title=$1; shift
	echo
	echo "\$ curl -ksi http://pipy-ok.pipy:8080 -H \"Origin: http://www.bbb.com\" $*"
	out=$(curl -ksi "http://127.0.0.1:$proxy_port" -H "Host: pipy-ok.pipy:8080" -H "Origin: http://www.bbb.com" "$@")
	printf '%s\n' "$out"
	shift $#
}
check "actual request"
grep -qi '^access-control-allow-origin: http://www.bbb.com' <<<"$out" && grep -q 'Hi, I am PIPY-OK v1!' <<<"$out" || status=1
check "preflight" -X OPTIONS
grep -qi '^access-control-max-age: 86400' <<<"$out" || status=1
echo
if [ $status -eq 0 ]; then echo "PASS: both responses carry the seed's CORS headers"; else echo "FAIL"; fi
exit $status
