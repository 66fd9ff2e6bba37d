#!/usr/bin/env bash
# slip's deploy benchmark. Writes docs/benchmarks.md.
#
# Usage: sudo bench/deploy.sh                  (on a machine set up by `sudo scripts/setup.sh --dev`)
#
# It builds slipd and loadgen in release mode, then starts everything it measures privately, on free
# loopback ports, in a temporary directory: a registry, a Caddy (admin API on loopback, tls off), slipd on a
# temporary config, and one app with the original README's health settings (GET /health every 2s, timeout
# 5s, 5 retries, start_period 10s; blue-green; drain_timeout 30s) built from busybox like scripts/demo.sh.
#   1. Load: keep-alive clients (crates/slip-bench, `loadgen`) request the app through Caddy while slip does
#      back-to-back deploys; failures are counted per deploy, for a strict client and for one that retries
#      once after a keep-alive race (RFC 9112 §9.3.1).
#   2. Latency: webhook -> `completed`, with no load, alternating with a baseline that does the same steps by
#      hand (docker pull / run, curl until /health answers, PATCH the upstream through Caddy's admin API, wait
#      for the old upstream's in-flight requests to reach 0, docker stop / rm). Medians and their ratio.
# The whole run takes well under a minute after the build. Nothing is left behind (containers, images,
# processes, temporary files); docs/benchmarks.md is rewritten, except the idle RSS section that bench/idle_rss.sh owns.
#
# Knobs (environment): ROUNDS (latency rounds, default 7), LOAD_DEPLOYS (default 6), LOAD_CLIENTS (default 4),
# LOAD_PAUSE_MS (pause between a client's requests, default 5), BASELINE_POLL (seconds between the baseline's
# health polls, default 0.1), OUT (default docs/benchmarks.md), NO_BUILD=1 (use the release binaries already in
# target/release).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
rounds=${ROUNDS:-7}
load_deploys=${LOAD_DEPLOYS:-6}
load_clients=${LOAD_CLIENTS:-4}
load_pause_ms=${LOAD_PAUSE_MS:-5}
baseline_poll=${BASELINE_POLL:-0.1}
out=${OUT:-$here/docs/benchmarks.md}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() {
  printf 'bench: error: %s\n' "$1" >&2
  [ $# -gt 1 ] && printf 'hint: %s\n' "$2" >&2
  exit 1
}
now_ms() { date +%s%3N; }

[ "$(id -u)" -eq 0 ] || die "run as root: it talks to the Docker socket" "sudo bench/deploy.sh"
for tool in docker caddy docker-registry busybox curl jq openssl cargo; do
  command -v "$tool" >/dev/null || die "$tool is not installed" "sudo scripts/setup.sh --dev"
done
docker info >/dev/null 2>&1 || die "the Docker engine does not answer" "sudo scripts/setup.sh --dev"
[ "$rounds" -ge 5 ] || die "ROUNDS must be at least 5 (medians of fewer runs mean little), not $rounds"
[ "$load_deploys" -ge 1 ] || die "LOAD_DEPLOYS must be at least 1, not $load_deploys"

work=$(mktemp -d /tmp/slip-bench.XXXXXX)
run_id=$(basename "$work" | tr -dc 'a-z0-9' | tail -c 6)
app="bench-$run_id"
domain="$app.localhost"
base_domain="baseline-$run_id.localhost"
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
pids=()

cleanup() {
  local status=$?
  set +e
  [ -n "${loadgen_pid:-}" ] && kill -TERM "$loadgen_pid" 2>/dev/null && wait "$loadgen_pid" 2>/dev/null
  if [ -n "${slipd_pid:-}" ]; then
    kill -TERM "$slipd_pid" 2>/dev/null
    for _ in $(seq 300); do kill -0 "$slipd_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  docker ps -aq --filter "label=slip.app=$app" | xargs -r docker rm -f >/dev/null 2>&1
  docker ps -aq --filter "label=slip-bench=$run_id" | xargs -r docker rm -f >/dev/null 2>&1
  if [ -n "${registry:-}" ]; then
    docker images --format '{{.Repository}}:{{.Tag}}' | grep "^$registry/" | xargs -r docker rmi -f >/dev/null 2>&1
    docker images --format '{{.Repository}}@{{.Digest}}' | grep "^$registry/" | xargs -r docker rmi -f >/dev/null 2>&1
  fi
  if [ "$status" -ne 0 ] && [ -d "$work" ]; then
    printf 'bench: failed; logs kept in %s\n' "$work" >&2
  else
    rm -rf "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

used_ports=" "
port='' site_port='' base_site_port='' slip_port='' base_port=''
free_port() { # NAME: sets NAME to a loopback port nothing listens on and not handed out before in this run
  local candidate
  for _ in $(seq 500); do
    # Below Linux's ephemeral range (32768-60999), whose ports client connections hold, and away from
    # slip's port_range (below 20000) and the test suite's (20000-28999).
    candidate=$((29000 + RANDOM % 3700))
    case "$used_ports" in *" $candidate "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
      used_ports="$used_ports$candidate "
      printf -v "$1" '%s' "$candidate"
      return
    fi
  done
  die "no free loopback port found"
}

wait_for() { # what seconds command...
  local what=$1 seconds=$2
  shift 2
  for ((i = 0; i < seconds * 20; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  die "$what did not answer within ${seconds}s (logs: $work)"
}

median() { # numbers... -> the median (mean of the middle two for an even count)
  printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "n/a"; exit }
    if (NR % 2) print v[(NR + 1) / 2]; else printf "%d\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
secs() { awk -v ms="$1" 'BEGIN { printf "%.2f s", ms / 1000 }'; }
iso_ms() { date -d "$1" +%s%3N; }

# ---------------------------------------------------------------------------------------------- build
slipd_bin="$here/target/release/slipd"
loadgen_bin="$here/target/release/loadgen"
if [ "${NO_BUILD:-0}" = 1 ]; then
  for bin in "$slipd_bin" "$loadgen_bin"; do
    [ -x "$bin" ] || die "NO_BUILD=1 needs $bin" "run without NO_BUILD"
  done
  say "using the release binaries already built (NO_BUILD=1)"
else
  say "building slipd and loadgen (cargo build --release)"
  (cd "$here" && cargo build --release --quiet -p slip-daemon --bin slipd -p slip-bench --bin loadgen)
fi
bench_started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------------------------------- registry
free_port port
registry="127.0.0.1:$port"
mkdir -p "$work/registry" "$work/image/www" "$work/config/apps" "$work/state" "$work/caddy" "$work/steps"
cat >"$work/registry/config.yml" <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/registry/data
http:
  addr: $registry
EOF
say "starting a registry on $registry"
docker-registry serve "$work/registry/config.yml" >"$work/registry.log" 2>&1 &
pids+=($!)
wait_for "the registry on $registry" 10 curl -fs "http://$registry/v2/"

# ---------------------------------------------------------------------------------------------- caddy
free_port port
caddy_admin="127.0.0.1:$port"
free_port site_port
free_port base_site_port
printf '{"admin":{"listen":"%s"}}\n' "$caddy_admin" >"$work/caddy/config.json"
say "starting Caddy (admin API on $caddy_admin)"
HOME="$work/caddy" XDG_CONFIG_HOME="$work/caddy/config" XDG_DATA_HOME="$work/caddy/data" \
  caddy run --config "$work/caddy/config.json" >"$work/caddy.log" 2>&1 &
pids+=($!)
wait_for "Caddy's admin API on $caddy_admin" 15 curl -fs "http://$caddy_admin/config/"

# ------------------------------------------------------------------------------------------- images
image="$registry/bench-app"
build_image() { # tag: a busybox httpd that is ready at once and exits promptly on SIGTERM (as scripts/demo.sh)
  printf '%s\n' "$1" >"$work/image/www/version"
  printf 'ok\n' >"$work/image/www/health"
  docker build -q -t "$image:$1" "$work/image" >/dev/null 2>"$work/build.log" || die "docker build failed: $(cat "$work/build.log")"
  docker push -q "$image:$1" >/dev/null 2>>"$work/build.log" || die "docker push failed: $(cat "$work/build.log")"
  # Only the registry keeps it: every deploy, slip's and the baseline's, pulls for real.
  docker rmi -f "$image:$1" >/dev/null
}
cp "$(command -v busybox)" "$work/image/busybox"
cat >"$work/image/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
COPY www /www
ENTRYPOINT ["/bin/busybox","sh","-c","trap 'exit 0' TERM; /bin/busybox httpd -f -p 8080 -h /www & wait"]
EOF
load_tags=()
for ((i = 1; i <= load_deploys + 1; i++)); do load_tags+=("v$i"); done
slip_tags=()
base_tags=(b0)
for ((i = 1; i <= rounds; i++)); do slip_tags+=("s$i"); base_tags+=("b$i"); done
say "building and pushing $((${#load_tags[@]} + ${#slip_tags[@]} + ${#base_tags[@]})) releases of the test image"
for tag in "${load_tags[@]}" "${slip_tags[@]}" "${base_tags[@]}"; do build_image "$tag"; done

# ---------------------------------------------------------------------------------------------- slipd
free_port slip_port
slip_url="http://127.0.0.1:$slip_port"
range_base=$((11000 + (RANDOM % 80) * 100))
cat >"$work/config/slip.toml" <<EOF
[server]
listen = "127.0.0.1:$slip_port"

[runtime]
backend = "docker"
port_range = "$range_base-$((range_base + 99))"

[auth]
secret = "$secret"
admin_token = "$secret"

[caddy]
admin_api = "http://$caddy_admin"
listen = ["127.0.0.1:$site_port"]
tls = "off"

[storage]
path = "$work/state"
EOF
# The original README's health settings, spelled out (they are also slip's defaults).
cat >"$work/config/apps/$app.toml" <<EOF
[app]
name = "$app"
image = "$image"

[routing]
domain = "$domain"
port = 8080

[health]
path = "/health"
interval = "2s"
timeout = "5s"
retries = 5
start_period = "10s"

[deploy]
strategy = "blue-green"
drain_timeout = "30s"
EOF
"$slipd_bin" --config "$work/config" --check >"$work/check.log" 2>&1 || die "the bench config is invalid: $(cat "$work/check.log")"
say "starting slipd on $slip_url"
RUST_LOG=${RUST_LOG:-info} "$slipd_bin" --config "$work/config" >"$work/slipd.log" 2>&1 &
slipd_pid=$!
wait_for "slipd on $slip_url" 30 curl -fs "$slip_url/healthz"

# slip_deploy TAG: sends the README's signed webhook and waits for the deploy to end; sets deploy_id and
# deploy_sent (Unix ms just before the webhook). Dies unless it completed.
slip_deploy() {
  local payload sig sent answer id status=""
  payload="{\"app\":\"$app\",\"tag\":\"$1\"}"
  sig=$(printf '%s' "$payload" | openssl dgst -sha256 -hmac "$secret" | cut -d' ' -f2)
  sent=$(now_ms)
  answer=$(curl -sS -X POST "$slip_url/v1/deploy" -H "Content-Type: application/json" \
    -H "X-Slip-Signature: sha256=$sig" -d "$payload")
  id=$(jq -r '.deploy_id // empty' <<<"$answer")
  [ -n "$id" ] || die "slipd did not accept the webhook for $1: $answer"
  for _ in $(seq 1200); do
    sleep 0.1
    curl -fsS -H "Authorization: Bearer $secret" "$slip_url/v1/deploys/$id" >"$work/steps/$id.json" || continue
    status=$(jq -r .status "$work/steps/$id.json")
    case "$status" in
      completed) deploy_id=$id; deploy_sent=$sent; return ;;
      failed | superseded | rolled_back) die "deploy $id of $1 ended $status: $(jq -c '{error, error_code}' "$work/steps/$id.json")" ;;
    esac
  done
  die "deploy $id of $1 did not end within 120s (last status: $status)"
}
# "webhook sent -> completed recorded" of a finished deploy, in ms.
slip_latency() { # id sent_ms
  echo $(($(iso_ms "$(jq -r .finished_at "$work/steps/$1.json")") - $2))
}

# ------------------------------------------------------------------------------------- load phase
say "first deploy of $app (v1)"
slip_deploy v1
curl -fsS -H "Host: $domain" "http://127.0.0.1:$site_port/version" | grep -qx v1 ||
  die "the app does not answer v1 through Caddy after its first deploy"

say "load: $load_clients keep-alive clients through Caddy while slip deploys ${load_tags[*]:1}"
: >"$work/marks"
"$loadgen_bin" --url "http://127.0.0.1:$site_port/version" --host "$domain" --clients "$load_clients" \
  --pause-ms "$load_pause_ms" --marks "$work/marks" --out "$work/load.json" 2>"$work/loadgen.log" &
loadgen_pid=$!
sleep 2
load_latencies=()
for tag in "${load_tags[@]:1}"; do
  echo "$(now_ms) $tag" >>"$work/marks"
  slip_deploy "$tag"
  load_latencies+=("$(slip_latency "$deploy_id" "$deploy_sent")")
done
sleep 1
echo "$(now_ms) after ${load_tags[-1]}" >>"$work/marks"
sleep 2
kill -TERM "$loadgen_pid"
wait "$loadgen_pid" || die "loadgen failed: $(cat "$work/loadgen.log")"
loadgen_pid=
cat "$work/loadgen.log" >&2
curl -fsS -H "Host: $domain" "http://127.0.0.1:$site_port/version" | grep -qx "${load_tags[-1]}" ||
  die "the app does not answer ${load_tags[-1]} through Caddy after the load phase"

# ----------------------------------------------------------------------------------------- baseline
# The by-hand deploy, on its own Caddy server and route in the same Caddy.
free_port base_port
base_name=
base_upstream=
declare -A base_step_ms=()
base_old_listed=0 # deploys whose first drain poll still found the old upstream listed
base_steps=(pull run health switch drain stop remove)

base_deploy() { # tag; sets base_last_ms to the wall time in ms and adds per-step times to base_step_ms
  local tag=$1 port name t0 t1 upstreams n
  free_port port
  name="bench-base-$run_id-$tag"
  local marks=()
  t0=$(now_ms)
  docker pull -q "$image:$tag" >/dev/null
  marks+=("$(now_ms)")
  docker run -d --name "$name" --label "slip-bench=$run_id" -p "127.0.0.1:$port:8080" "$image:$tag" >/dev/null
  marks+=("$(now_ms)")
  for ((n = 0; ; n++)); do
    curl -fs -o /dev/null --max-time 5 "http://127.0.0.1:$port/health" && break
    [ "$n" -lt 300 ] || die "baseline $tag: /health did not answer 200"
    sleep "$baseline_poll"
  done
  marks+=("$(now_ms)")
  curl -fsS -o /dev/null -X PATCH -H "Content-Type: application/json" -d "[{\"dial\":\"127.0.0.1:$port\"}]" \
    "http://$caddy_admin/id/bench-baseline/handle/0/upstreams"
  marks+=("$(now_ms)")
  # Drained when Caddy reports no request in flight to the old upstream (an address no config uses any
  # more drops out of the list: that counts as drained too).
  for ((n = 0; ; n++)); do
    upstreams=$(curl -fsS "http://$caddy_admin/reverse_proxy/upstreams")
    if [ "$n" = 0 ] && jq -e --arg a "$base_upstream" 'any(.[]; .address == $a)' <<<"$upstreams" >/dev/null; then
      base_old_listed=$((base_old_listed + 1))
    fi
    [ "$(jq --arg a "$base_upstream" '[.[] | select(.address == $a) | .num_requests] | add // 0' <<<"$upstreams")" = 0 ] && break
    [ "$n" -lt 120 ] || break
    sleep 0.25
  done
  marks+=("$(now_ms)")
  docker stop -t 10 "$base_name" >/dev/null
  marks+=("$(now_ms)")
  docker rm "$base_name" >/dev/null
  t1=$(now_ms)
  marks+=("$t1")
  local previous=$t0 i=0
  for at in "${marks[@]}"; do
    base_step_ms[${base_steps[$i]}]+="$((at - previous)) "
    previous=$at
    i=$((i + 1))
  done
  base_name=$name
  base_upstream="127.0.0.1:$port"
  base_last_ms=$((t1 - t0))
}

say "baseline: first release b0 by hand"
docker pull -q "$image:b0" >/dev/null
base_name="bench-base-$run_id-b0"
docker run -d --name "$base_name" --label "slip-bench=$run_id" -p "127.0.0.1:$base_port:8080" "$image:b0" >/dev/null
base_upstream="127.0.0.1:$base_port"
wait_for "the baseline container" 30 curl -fs "http://$base_upstream/health"
curl -fsS -o /dev/null -X PUT -H "Content-Type: application/json" "http://$caddy_admin/config/apps/http/servers/baseline" -d "{
  \"listen\": [\"127.0.0.1:$base_site_port\"], \"automatic_https\": {\"disable\": true},
  \"routes\": [{\"@id\": \"bench-baseline\", \"match\": [{\"host\": [\"$base_domain\"]}],
                \"handle\": [{\"handler\": \"reverse_proxy\", \"upstreams\": [{\"dial\": \"$base_upstream\"}]}]}]}"
wait_for "the baseline route" 10 curl -fs -H "Host: $base_domain" "http://127.0.0.1:$base_site_port/health"

# ------------------------------------------------------------------------------------ latency phase
latency_since=$(date +%s)
say "latency: $rounds rounds of one slip deploy and one baseline deploy (alternating which goes first)"
slip_ms=()
base_ms=()
slip_ids=()
server_ms=()
run_slip() {
  local json
  slip_deploy "$1"
  json=$work/steps/$deploy_id.json
  slip_ids+=("$deploy_id")
  slip_ms+=("$(slip_latency "$deploy_id" "$deploy_sent")")
  server_ms+=($(($(iso_ms "$(jq -r .finished_at "$json")") - $(iso_ms "$(jq -r .started_at "$json")"))))
}
for ((r = 1; r <= rounds; r++)); do
  if ((r % 2)); then order=(slip base); else order=(base slip); fi
  for who in "${order[@]}"; do
    if [ "$who" = slip ]; then
      run_slip "s$r"
    else
      base_deploy "b$r" # in this shell, not a subshell: it keeps the old container's name and upstream
      base_ms+=("$base_last_ms")
    fi
  done
  printf '  round %d: slip %s, baseline %s\n' "$r" "$(secs "${slip_ms[-1]}")" "$(secs "${base_ms[-1]}")" >&2
done
latency_until=$(($(date +%s) + 1))
curl -fsS -H "Host: $domain" "http://127.0.0.1:$site_port/version" | grep -qx "s$rounds" ||
  die "the app does not serve s$rounds after the latency phase"
curl -fsS -H "Host: $base_domain" "http://127.0.0.1:$base_site_port/version" | grep -qx "b$rounds" ||
  die "the baseline does not serve b$rounds after the latency phase"

# ------------------------------------------------------------------------------------------- report
slip_median=$(median "${slip_ms[@]}")
base_median=$(median "${base_ms[@]}")
server_median=$(median "${server_ms[@]}")
load_median=$(median "${load_latencies[@]}")
ratio=$(awk -v a="$slip_median" -v b="$base_median" 'BEGIN { printf "%.2f", a / b }')
verdict() { if [ "$1" = 1 ]; then echo "met"; else echo "**missed**"; fi; }
lenient=$(jq '.total.lenient_failures' "$work/load.json")
strict=$(jq '.total.strict_failures' "$work/load.json")
races=$(jq '.total.races' "$work/load.json")
total_requests=$(jq '.total.requests' "$work/load.json")
latency_ok=$(awk -v m="$slip_median" 'BEGIN { print (m < 3000) ? 1 : 0 }')
ratio_ok=$(awk -v r="$ratio" 'BEGIN { print (r <= 1.1) ? 1 : 0 }')
load_ok=$([ "$lenient" = 0 ] && echo 1 || echo 0)

# Per-step medians of slip's measured deploys, from GET /v1/deploys/{id} steps.
slip_step_table=$(for id in "${slip_ids[@]}"; do jq -c '.steps[] | select(.duration_ms != null) | [.status, .duration_ms]' "$work/steps/$id.json"; done |
  jq -rs 'group_by(.[0]) | map({s: .[0][0], v: (map(.[1]) | sort)}) |
    map([.s, (.v | if length % 2 == 1 then .[(length - 1) / 2] else ((.[length / 2 - 1] + .[length / 2]) / 2 | floor) end)]) |
    .[] | "\(.[0]) \(.[1])"')
step_order=(accepted pulling configuring starting health_checking switching watching draining)
steps_md=""
for s in "${step_order[@]}"; do
  ms=$(awk -v s="$s" '$1 == s { print $2 }' <<<"$slip_step_table")
  [ -n "$ms" ] && steps_md+="| \`$s\` | $ms |"$'\n'
done
# slip's `draining` status covers the wait for in-flight requests to reach 0, the old container's stop and its
# removal. The engine's own events (kill = SIGTERM sent, die, destroy) split it.
docker events --since "$latency_since" --until "$latency_until" --filter type=container \
  --filter "label=slip.app=$app" --format '{{.TimeNano}} {{.Action}}' >"$work/events.txt"
first_events() { # from_ms to_ms action...: the first time (ms) of each action in the window, "-" when absent
  local from=$1 to=$2
  shift 2
  awk -v from="$from" -v to="$to" -v actions="$*" '{ ms = substr($1, 1, length($1) - 6) }
    ms + 0 >= from + 0 && ms + 0 <= to + 0 && !($2 in t) { t[$2] = ms }
    END { n = split(actions, a, " "); for (i = 1; i <= n; i++) printf "%s%s", (a[i] in t) ? t[a[i]] : "-", (i < n) ? " " : "\n" }' \
    "$work/events.txt"
}
step_at() { iso_ms "$(jq -r --arg s "$2" '.steps[] | select(.status == $s) | .at' "$1")"; }
drain_wait=() stop_wait=() remove_wait=() record_wait=() before_create=() create_start=() after_start=()
for id in "${slip_ids[@]}"; do
  json=$work/steps/$id.json
  from=$(step_at "$json" draining)
  to=$(iso_ms "$(jq -r .finished_at "$json")")
  read -r kill stopped destroy < <(first_events "$from" "$to" kill stop destroy)
  if [ "$kill" != - ] && [ "$stopped" != - ] && [ "$destroy" != - ]; then
    drain_wait+=($((kill - from)))
    stop_wait+=($((stopped - kill)))
    remove_wait+=($((destroy - stopped)))
    record_wait+=($((to - destroy)))
  fi
  from=$(step_at "$json" starting)
  to=$(step_at "$json" health_checking)
  read -r create start < <(first_events "$from" "$to" create start)
  if [ "$create" != - ] && [ "$start" != - ]; then
    before_create+=($((create - from)))
    create_start+=($((start - create)))
    after_start+=($((to - start)))
  fi
done
read -r -a base_drains <<<"${base_step_ms[drain]}"
gap_md="Difference of the medians, slip − baseline: $((slip_median - base_median)) ms."
draining_split="The engine's events did not show the old containers' kill/stop/destroy, so \`draining\` is not split."
if [ "${#drain_wait[@]}" -gt 0 ]; then
  draining_split="Inside \`draining\` (split by the engine's container events, median of ${#drain_wait[@]}): waiting until Caddy
reports no request in flight to the old release **$(median "${drain_wait[@]}") ms** (0 in two polls in a row,
250 ms apart), stop (SIGTERM sent → engine reports stopped) $(median "${stop_wait[@]}") ms, removal
$(median "${remove_wait[@]}") ms, then recording \`completed\` $(median "${record_wait[@]}") ms."
  gap_md+=" Of that, slip's wait for the old release's in-flight requests to reach 0 accounts for
$(($(median "${drain_wait[@]}") - $(median "${base_drains[@]}"))) ms (its median minus the baseline's drain step; see *Deploy latency*)."
fi
if [ "${#before_create[@]}" -gt 0 ]; then
  draining_split+="

Inside \`starting\` (same source, median of ${#before_create[@]}): $(median "${before_create[@]}") ms until the engine reports the
container created, $(median "${create_start[@]}") ms from created to started (the engine's start, with its userland port proxy),
$(median "${after_start[@]}") ms from started to \`health_checking\` recorded."
fi
base_steps_md=""
for s in "${base_steps[@]}"; do
  read -r -a values <<<"${base_step_ms[$s]}"
  base_steps_md+="| $s | $(median "${values[@]}") |"$'\n'
done
rounds_md=""
for ((r = 0; r < rounds; r++)); do
  health=$(jq '[.steps[] | select(.status == "health_checking") | .duration_ms] | first // "n/a"' "$work/steps/${slip_ids[$r]}.json")
  rounds_md+="| $((r + 1)) | ${slip_ms[$r]} | ${server_ms[$r]} | $health | ${base_ms[$r]} |"$'\n'
done
segments_md=$(jq -r '.segments[] | "| \(.label) | \(.requests) | \(.ok) | \(.non_2xx) | \(.errors) | \(.races) | \(.strict_failures) | \(.lenient_failures) |"' "$work/load.json")
messages_md=$(jq -r '.messages | to_entries[] | "- `\(.key)`: \(.value)"' "$work/load.json")
[ -n "$messages_md" ] || messages_md="- none"
load_seconds=$(jq '.seconds' "$work/load.json")
load_rps=$(jq '.requests_per_second' "$work/load.json")
commit=$(cd "$here" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=
if [ -n "$(cd "$here" && git --no-optional-locks status --porcelain 2>/dev/null)" ]; then dirty=" (with uncommitted changes)"; fi

mkdir -p "$(dirname "$out")"
# bench/idle_rss.sh owns the section between its markers: carry it over unchanged.
idle_rss_section=
if [ -f "$out" ]; then
  idle_rss_section=$(sed -n '/<!-- idle-rss:start -->/,/<!-- idle-rss:end -->/p' "$out")
fi
cat >"$out" <<EOF
# Benchmarks

Written by \`bench/deploy.sh\` on $bench_started; rerun it rather than editing this file (see the end).
Every number below comes from one run of that script. The machine is shared and noisy, so latencies are
medians over several deploys, and slip is compared with a baseline measured in the same run, interleaved.

## Machine

| | |
|---|---|
| CPUs (\`nproc\`) | $(nproc) × $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1) |
| memory | $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) |
| kernel | $(uname -r) |
| Docker engine | $(docker version --format '{{.Server.Version}}') (API $(docker version --format '{{.Server.APIVersion}}')) |
| Caddy | $(caddy version | cut -d' ' -f1) |
| registry | $(docker-registry --version 2>/dev/null | awk '{ print $NF }') |
| slip | $commit$dirty, release build |
| load average at start | $load_at_start |

## Results

| measure | result | target | |
|---|---|---|---|
| failed requests for a client that retries once after a keep-alive race, across $load_deploys back-to-back deploys | $lenient of $total_requests | 0 | $(verdict "$load_ok") |
| keep-alive races a strict client would have seen, same run | $races (a strict client failed $strict requests in all) | reported | |
| webhook → \`completed\`, app ready at once (median of $rounds) | $(secs "$slip_median") | < 3 s | $(verdict "$latency_ok") |
| slip / baseline, medians of $rounds each | ${ratio}× ($(secs "$slip_median") / $(secs "$base_median")) | ≤ 1.1× | $(verdict "$ratio_ok") |

$gap_md

## Method

- **Setup.** A private registry, a private Caddy $(caddy version | cut -d' ' -f1) (admin API on a loopback port, \`tls = "off"\`,
  slip's server on \`127.0.0.1:<port>\`) and a release build of \`slipd\` on a temporary config, all on this machine.
  The app is a \`FROM scratch\` busybox httpd image (as \`scripts/demo.sh\` builds it): ready at once, and its shell
  exits on SIGTERM. Each release differs by a \`version\` file and is pushed to the registry and removed from the
  engine, so every deploy (slip's and the baseline's) pulls for real. App config: the README's quick-start settings,
  \`[health] path = "/health", interval = "2s", timeout = "5s", retries = 5, start_period = "10s"\`,
  \`[deploy] strategy = "blue-green", drain_timeout = "30s"\`.
- **Load.** \`loadgen\` (crates/slip-bench) runs $load_clients clients, each with one HTTP/1.1 keep-alive connection
  to Caddy, sending \`GET /version\` with the app's \`Host\` back to back with a ${load_pause_ms} ms pause, while the
  script sends the README's signed webhook for each release and waits for \`completed\` before the next. A failed
  request on a *reused* connection with no byte of the answer received is a keep-alive race (RFC 9112 §9.3.1):
  the strict view counts it as a failure; the lenient view retries it once on a new connection and counts a
  failure only if that retry fails too. Everything else that is not a 2xx (errors, non-2xx, partial answers,
  timeouts) is a failure in both views. Requests are assigned to the deploy whose webhook preceded them.
- **Latency.** With no load: webhook sent (client clock) → \`finished_at\` of the deploy record, status
  \`completed\`; the deploy is blue-green from the previous release, so it includes pull, the image's
  \`/slip/slip.toml\` read, start, health check, switch, drain and the old container's stop and removal.
- **Baseline.** The same steps by hand, timed from the first command to the last one's return:
  \`docker pull\`; \`docker run -d -p 127.0.0.1:PORT:8080\`; \`curl /health\` every ${baseline_poll} s until 200;
  \`curl -X PATCH /id/<route>/handle/0/upstreams\` on Caddy's admin API; poll \`GET /reverse_proxy/upstreams\`
  every 0.25 s until the old upstream shows \`num_requests\` 0 (or is no longer listed); \`docker stop -t 10\`;
  \`docker rm\`. It uses its own Caddy server and route in the same Caddy. Rounds alternate which of slip and the
  baseline goes first.

## Deploy latency

Medians: slip **$(secs "$slip_median")** webhook → \`completed\` ($(secs "$server_median") from acceptance to
\`completed\` inside slipd), baseline **$(secs "$base_median")**, ratio **${ratio}×**. Under load (the load phase
above) slip's median was $(secs "$load_median").

| round | slip: webhook → completed (ms) | slip: accepted → completed (ms) | slip: health check (ms) | baseline (ms) |
|---|---|---|---|---|
$rounds_md
Where slip's time goes (median ms per status, from \`GET /v1/deploys/{id}\` \`steps\`):

| status | ms |
|---|---|
$steps_md
$draining_split

Where the baseline's time goes (median ms per step). In $base_old_listed of $rounds baseline deploys the first drain poll
still listed the old upstream; otherwise Caddy 2.6.2 had already dropped the address (no route names it any more),
so the by-hand drain check passes at once without seeing in-flight requests, whereas slip keeps the old address
listed with a never-matching drain route so that it can wait for them.

| step | ms |
|---|---|
$base_steps_md
## Load across deploys

$load_clients clients for ${load_seconds} s, about $load_rps requests/s through Caddy. One row per deploy, from its
webhook to the next deploy's webhook.

| deploy | requests | 2xx | non-2xx | errors | races | failed (strict) | failed (lenient) |
|---|---|---|---|---|---|---|---|
$segments_md

Failure and race messages:
$messages_md

## Rerun

\`\`\`
sudo scripts/setup.sh --dev    # once: Docker, Caddy, docker-registry, busybox-static, jq
sudo bench/deploy.sh           # builds release binaries, then runs for under a minute; rewrites docs/benchmarks.md
\`\`\`

Knobs: \`ROUNDS\` (default 7), \`LOAD_DEPLOYS\` (6), \`LOAD_CLIENTS\` (4), \`LOAD_PAUSE_MS\` (5), \`BASELINE_POLL\`
(0.1 s), \`OUT\`, \`NO_BUILD=1\` (reuse target/release). \`loadgen --help\` describes the load generator, which can also be pointed at any URL.
EOF
if [ -n "$idle_rss_section" ]; then
  printf '\n%s\n' "$idle_rss_section" >>"$out"
fi
say "wrote $out"
printf 'lenient failures %s of %s (strict: %s races); webhook -> completed median %s; slip/baseline %s×\n' \
  "$lenient" "$total_requests" "$races" "$(secs "$slip_median")" "$ratio" >&2
