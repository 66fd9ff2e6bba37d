#!/usr/bin/env bash
# slipd's idle memory benchmark (SPEC §1 target: idle RSS ≤ 30 MiB; issue target ≤ 40 MB).
#
# Usage: sudo bench/idle_rss.sh              (on a machine set up by `sudo scripts/setup.sh --dev`)
#
# It measures the resident set size of an idle slipd in two configurations, in the same run so the ratio means
# something on a shared machine:
#   - baseline: no apps and an empty database;
#   - loaded:   100 apps (apps/*.toml) and 100k deploys (plus one status event each) in the history.
# Each slipd runs on a temporary config and state directory, next to a private Caddy (admin API on a free
# loopback port). The history is written straight into the database with sqlite3 after a first boot created
# the schema. After boot, slipd is left idle for IDLE_SECS, then VmRSS is sampled once a second for SAMPLES
# seconds (median and max are reported); then one `GET /v1/status` and one page of `GET /v1/deploys` are
# served and it is sampled again ("after reads"), since the first reads warm SQLite's page cache.
#
# It writes only its own section of docs/benchmarks.md, between `<!-- idle-rss:start -->` and
# `<!-- idle-rss:end -->` (appended when the markers are missing); other sections are left as they are.
# Nothing is left behind (processes, temporary files).
#
# Knobs (environment): SLIPD (binary to measure; default target/release/slipd, built with
# `cargo build --release -p slip-daemon --bin slipd` unless NO_BUILD=1), APPS (default 100), ROWS (default
# 100000), IDLE_SECS (default 5), SAMPLES (default 5), OUT (default docs/benchmarks.md).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
apps=${APPS:-100}
rows=${ROWS:-100000}
idle_secs=${IDLE_SECS:-5}
samples=${SAMPLES:-5}
out=${OUT:-$here/docs/benchmarks.md}
slipd_bin=${SLIPD:-$here/target/release/slipd}
token="bench-admin-token-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() {
  printf 'bench: error: %s\n' "$1" >&2
  [ $# -gt 1 ] && printf 'hint: %s\n' "$2" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || die "run as root: slipd talks to the Docker socket" "sudo bench/idle_rss.sh"
for tool in docker caddy sqlite3 curl python3; do
  command -v "$tool" >/dev/null || die "$tool is not installed" "sudo scripts/setup.sh --dev"
done
docker info >/dev/null 2>&1 || die "the Docker engine does not answer" "sudo scripts/setup.sh --dev"
if [ -z "${SLIPD:-}" ] && [ "${NO_BUILD:-0}" != 1 ]; then
  say "building slipd (cargo build --release)"
  (cd "$here" && cargo build --release --quiet -p slip-daemon --bin slipd)
fi
[ -x "$slipd_bin" ] || die "no slipd binary at $slipd_bin" "cargo build --release -p slip-daemon --bin slipd"

work=$(mktemp -d /tmp/slip-idle-rss.XXXXXX)
pids=()
cleanup() {
  local status=$?
  set +e
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  done
  if [ "$status" -ne 0 ]; then
    printf 'bench: failed; logs kept in %s\n' "$work" >&2
  else
    rm -rf "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

caddy_admin=$(free_port)
caddy_http=$(free_port)
printf '{"admin":{"listen":"127.0.0.1:%s"}}' "$caddy_admin" >"$work/caddy.json"
XDG_DATA_HOME="$work/caddy-data" XDG_CONFIG_HOME="$work/caddy-config" \
  caddy run --config "$work/caddy.json" >"$work/caddy.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$caddy_admin/config/" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "http://127.0.0.1:$caddy_admin/config/" >/dev/null || die "caddy did not start; see $work/caddy.log"

# write_config DIR PORT NAPPS: slip.toml and NAPPS app files under DIR.
write_config() {
  local dir=$1 port=$2 napps=$3
  mkdir -p "$dir/config/apps" "$dir/state"
  cat >"$dir/config/slip.toml" <<EOF
[server]
listen = "127.0.0.1:$port"

[runtime]
backend = "docker"

[auth]
admin_token = "$token"

[caddy]
admin_api = "http://127.0.0.1:$caddy_admin"
listen = ["127.0.0.1:$caddy_http"]
tls = "off"

[storage]
path = "$dir/state"
EOF
  local i
  for i in $(seq 1 "$napps"); do
    cat >"$dir/config/apps/app-$i.toml" <<EOF
[app]
name = "app-$i"
image = "registry.invalid/bench/app-$i"

[routing]
domain = "app-$i.bench.localhost"
port = 8080

[health]
path = "/health"
EOF
  done
}

# boot DIR PORT: starts slipd in the background and waits for /healthz; sets $slipd_pid.
boot() {
  local dir=$1 port=$2
  "$slipd_bin" --config "$dir/config" >>"$dir/slipd.log" 2>&1 &
  slipd_pid=$!
  pids+=("$slipd_pid")
  for _ in $(seq 300); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$slipd_pid" 2>/dev/null || die "slipd exited during boot; see $dir/slipd.log"
    sleep 0.1
  done
  die "slipd did not answer /healthz within 30s; see $dir/slipd.log"
}

stop() {
  kill -TERM "$slipd_pid"
  for _ in $(seq 300); do kill -0 "$slipd_pid" 2>/dev/null || return 0; sleep 0.1; done
  die "slipd did not stop on SIGTERM"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# sample PID: "<median KiB> <max KiB>" over $samples one-second samples.
sample() {
  local values=() i
  for i in $(seq 1 "$samples"); do
    values+=("$(rss_kib "$1")")
    sleep 1
  done
  printf '%s\n' "${values[@]}" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)], v[NR]}'
}

# measure NAME NAPPS NROWS: prints "NAME idle_median idle_max read_median read_max" (KiB).
measure() {
  local name=$1 napps=$2 nrows=$3 dir="$work/$1" port
  port=$(free_port)
  write_config "$dir" "$port" "$napps"
  if [ "$nrows" -gt 0 ]; then
    say "$name: creating the schema, then writing $nrows deploys into the history"
    boot "$dir" "$port"
    stop
    sqlite3 "$dir/state/slip.db" >/dev/null <<EOF
PRAGMA journal_mode=WAL;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $nrows)
INSERT INTO deploys (id, app, "trigger", tag, images, kind, strategy, status, attempt, created_at, started_at, finished_at)
SELECT printf('dep_%026d', i), 'app-' || (i % $napps + 1), 'webhook', 'v' || i, '{}', 'web', 'blue-green', 'completed', 1,
       1700000000000 + i * 1000, 1700000000000 + i * 1000, 1700000000000 + i * 1000 + 500 FROM n;
INSERT INTO deploy_events (deploy_id, seq, at, kind, status, message)
SELECT id, 1, finished_at, 'status', 'completed', 'completed' FROM deploys;
COMMIT;
EOF
  fi
  say "$name: $napps apps, $(sqlite3 "$dir/state/slip.db" 'SELECT count(*) FROM deploys' 2>/dev/null || echo 0) deploys; idle ${idle_secs}s, then sampling"
  boot "$dir" "$port"
  sleep "$idle_secs"
  local idle reads
  idle=$(sample "$slipd_pid")
  curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v1/status" >/dev/null
  curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v1/deploys?limit=200" >/dev/null
  sleep 1
  reads=$(sample "$slipd_pid")
  stop
  echo "$name $idle $reads"
}

base=$(measure baseline 0 0)
loaded=$(measure loaded "$apps" "$rows")
read -r _ b_idle b_idle_max b_read b_read_max <<<"$base"
read -r _ l_idle l_idle_max l_read l_read_max <<<"$loaded"
for v in "$b_idle" "$b_read_max" "$l_idle" "$l_read_max"; do
  [[ "$v" =~ ^[0-9]+$ ]] && [ "$v" -gt 0 ] || die "a measurement is missing (baseline: '$base', loaded: '$loaded')"
done

mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k * 1024 / 1000000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
verdict=$(awk -v k="$l_read_max" 'BEGIN {print (k * 1024 <= 40000000) ? "meets" : "misses"}')
commit=$(cd "$here" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
binary_note="$(basename "$slipd_bin") built $(date -u -r "$slipd_bin" +%Y-%m-%dT%H:%MZ) ($(file -b "$slipd_bin" 2>/dev/null | cut -d, -f1-2 || echo binary)), $(du -h "$slipd_bin" | cut -f1)"

section=$(cat <<EOF
<!-- idle-rss:start -->
## Idle memory (bench/idle_rss.sh)

Resident set size (VmRSS) of an idle slipd, measured on $(date -u +%Y-%m-%d) at commit \`$commit\` with \`$binary_note\`, on $(nproc) cores.
Both configurations ran in the same invocation, one after the other; medians and maxima of $samples one-second samples.
"Idle" is after boot plus ${idle_secs} s with no request; "after reads" is after one \`GET /v1/status\` and one 200-deploy page of \`GET /v1/deploys\`.

| configuration | idle median | idle max | after reads median | after reads max |
|---|---|---|---|---|
| baseline: 0 apps, empty database | $(mib "$b_idle") MiB | $(mib "$b_idle_max") MiB | $(mib "$b_read") MiB | $(mib "$b_read_max") MiB |
| loaded: $apps apps, $rows deploys + $rows events | $(mib "$l_idle") MiB | $(mib "$l_idle_max") MiB | $(mib "$l_read") MiB | $(mib "$l_read_max") MiB |
| ratio loaded / baseline | $(ratio "$l_idle" "$b_idle") | $(ratio "$l_idle_max" "$b_idle_max") | $(ratio "$l_read" "$b_read") | $(ratio "$l_read_max" "$b_read_max") |

Target: at most 40 MB (issue 4) with $apps apps and $rows history rows; the worst loaded sample is $(mb "$l_read_max") MB, so this run **$verdict** it.
The product's own target is at most 30 MiB idle.
<!-- idle-rss:end -->
EOF
)

mkdir -p "$(dirname "$out")"
[ -f "$out" ] || printf '# Benchmarks\n' >"$out"
SECTION="$section" python3 - "$out" <<'EOF'
import os, sys
path = sys.argv[1]
text = open(path).read()
section = os.environ["SECTION"]
start, end = "<!-- idle-rss:start -->", "<!-- idle-rss:end -->"
if start in text and end in text:
    before = text[: text.index(start)]
    after = text[text.index(end) + len(end):]
    text = before + section + after
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
open(path, "w").write(text)
EOF
say "idle RSS: baseline $(mib "$b_idle") MiB, loaded $(mib "$l_idle") MiB idle / $(mib "$l_read_max") MiB after reads; written to $out"
