#!/usr/bin/env bash
# Issue 16 research: can Caddy switch an app between releases without a config load?
#
# Each release listens on its own loopback address (127.0.1.1, 127.0.1.2: all of 127/8 reaches `lo` on Linux) and
# one fixed port. Caddy's route uses `dynamic_upstreams` (source `a`, refresh 100ms) with a `resolver` at a tiny DNS
# responder on loopback; switching rewrites the responder's answer and loads no config. The baseline switches the
# way slip does today, by PATCHing the route's upstreams (a config load, which closes idle keep-alive connections).
# Four strict keep-alive clients (no retry) run through 20 switches in each mode, on every Caddy found.
#
# Usage: bench/research/dns_switch.sh [SECONDS]   (a machine set up by scripts/setup.sh --dev; extra Caddy builds
# may be listed in CADDY_BUILDS="name=/path/to/caddy ...")
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
seconds=${1:-20}
builds=("2.6.2=$(command -v caddy)" "2.11.7=/usr/local/lib/slip-tests/caddy-2.11.7/caddy")
# shellcheck disable=SC2206
[[ -n ${CADDY_BUILDS:-} ]] && builds+=($CADDY_BUILDS)

tmp=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dns_port=$(free_port) upstream_port=$(free_port) caddy_port=$(free_port) admin_port=$(free_port)

echo 127.0.1.1 >"$tmp/address"
python3 "$here/dns_responder.py" "$dns_port" "$tmp/address" "$tmp/dns.log" & pids+=($!)
python3 "$here/upstream.py" 127.0.1.1 "$upstream_port" one & pids+=($!)
python3 "$here/upstream.py" 127.0.1.2 "$upstream_port" two & pids+=($!)
for address in 127.0.1.1 127.0.1.2; do
    for _ in $(seq 100); do curl -sf -m1 "http://$address:$upstream_port/" >/dev/null && break; sleep 0.1; done
done

# Caddy 2.6 uses the resolver only when its address names the network (`udp/`); 2.8 and later take either form.
proxy_dynamic="{\"handler\":\"reverse_proxy\",\"dynamic_upstreams\":{\"source\":\"a\",\"name\":\"app.slip.test\",\"port\":\"$upstream_port\",\"refresh\":\"100ms\",\"resolver\":{\"addresses\":[\"udp/127.0.0.1:$dns_port\"]}}}"
proxy_static="{\"handler\":\"reverse_proxy\",\"upstreams\":[{\"dial\":\"127.0.1.1:$upstream_port\"}]}"

printf '| Caddy | switching | requests | strict failures | answered by one / two |\n|---|---|---|---|---|\n'
for build in "${builds[@]}"; do
    name=${build%%=*} binary=${build#*=}
    for mode in dns reload; do
        proxy=$proxy_static
        [[ $mode == dns ]] && proxy=$proxy_dynamic
        echo 127.0.1.1 >"$tmp/address"
        printf '{"admin":{"listen":"127.0.0.1:%s"},"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:%s"],"automatic_https":{"disable":true},"routes":[{"handle":[%s]}]}}}}}' \
            "$admin_port" "$caddy_port" "$proxy" >"$tmp/caddy.json"
        HOME=$tmp "$binary" run --config "$tmp/caddy.json" >"$tmp/caddy-$name-$mode.log" 2>&1 &
        caddy_pid=$!
        for _ in $(seq 100); do curl -sf -m1 "http://127.0.0.1:$admin_port/config/" >/dev/null && break; sleep 0.1; done
        result=$(python3 "$here/strict_load.py" "$mode" "$caddy_port" "$admin_port" "$upstream_port" "$seconds" "$tmp/address")
        kill "$caddy_pid"
        wait "$caddy_pid" 2>/dev/null || true
        python3 - "$name" "$result" <<'PY'
import json, sys
name, r = sys.argv[1], json.loads(sys.argv[2])
mode = {"dns": "DNS answer only (no config load)", "reload": "PATCH upstreams (config load)"}[r["mode"]]
b = r["bodies"]
print(f"| {name} | {mode} | {r['requests']} | {r['failures']} | {b.get('one', 0)} / {b.get('two', 0)} |")
PY
    done
done
