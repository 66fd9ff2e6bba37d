#!/usr/bin/env bash
# slip's demo: set up Docker and Caddy, start slipd on a built-in demo config, and deploy a sample app
# through a signed webhook exactly as CI would (openssl + curl), then print the URL that serves it.
#
# Usage: scripts/demo.sh                  set up, start slipd, deploy release v1
#        scripts/demo.sh --release v2     build release v2 and deploy it to the running demo (zero downtime)
#        scripts/demo.sh --stop           stop slipd, Caddy routes stay, containers are removed
# It needs root: run it as root, or from another account it re-runs itself through sudo.
# Everything lives under .slip-demo/ in the repository: config, state, logs, the local registry.
# Ports: slipd 127.0.0.1:7890, Caddy's admin API 127.0.0.1:2019, the demo site on :8080, registry 127.0.0.1:5055.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
demo="$here/.slip-demo"
app=demo
site_port=8080
registry=127.0.0.1:5055

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

stop_demo() {
  for pidfile in "$demo"/*.pid; do
    [ -e "$pidfile" ] || continue
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  done
  docker ps -aq --filter "label=slip.app=$app" | xargs -r docker rm -f >/dev/null 2>&1 || true
}

if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || die "run as root: it installs packages and talks to the Docker socket (sudo is not installed)"
  exec sudo "$0" "$@"
fi

mode=full
release=v1
case "${1:-}" in
  --stop) stop_demo; say "demo stopped (state kept in $demo)"; exit 0 ;;
  --release) mode=release; release=${2:?--release needs a version such as v2} ;;
  "") ;;
  *) die "unknown argument ${1}; use --release VERSION or --stop" ;;
esac

if [ "$mode" = full ]; then
say "installing and starting Docker and Caddy (scripts/setup.sh)"
"$here/scripts/setup.sh"
for pkg in docker-registry busybox-static openssl curl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
done

say "building slipd and slip (cargo build --release)"
(cd "$here" && cargo build --release --quiet --bin slipd --bin slip)
slipd="$here/target/release/slipd"

stop_demo
mkdir -p "$demo/config/apps" "$demo/state" "$demo/registry" "$demo/image/www"
fi
slipd="$here/target/release/slipd"

if [ "$mode" = full ]; then
say "starting a local registry on $registry"
cat > "$demo/registry/config.yml" <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $demo/registry/data
http:
  addr: $registry
EOF
docker-registry serve "$demo/registry/config.yml" >"$demo/registry.log" 2>&1 &
echo $! > "$demo/registry.pid"
for _ in $(seq 50); do curl -fs "http://$registry/v2/" >/dev/null && break; sleep 0.1; done

fi

build_release() { # version
  cp /bin/busybox "$demo/image/busybox"
  printf '%s\n' "$1" > "$demo/image/www/version"
  printf 'ok\n' > "$demo/image/www/health"
  printf '<h1>slip demo</h1><p>release %s, deployed by slip</p>\n' "$1" > "$demo/image/www/index.html"
  cat > "$demo/image/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
COPY www /www
# httpd as PID 1 would ignore SIGTERM; the shell exits on it, so a deploy's stop is immediate.
ENTRYPOINT ["/bin/busybox","sh","-c","trap 'exit 0' TERM; /bin/busybox httpd -f -p 8080 -h /www & wait"]
EOF
  docker build -q -t "$registry/slip-demo:$1" "$demo/image" >/dev/null
  docker push -q "$registry/slip-demo:$1" >/dev/null
}
say "building the sample app image (release $release) and pushing it to the registry"
build_release "$release"

if [ "$mode" = full ]; then
# Two keys, as slipd's own security check asks: SLIP_SECRET signs CI's webhooks, SLIP_ADMIN_TOKEN manages slipd.
random_hex() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
umask 077
touch "$demo/config/slip.env"
grep -q '^SLIP_SECRET=' "$demo/config/slip.env" || echo "SLIP_SECRET=$(random_hex)" >> "$demo/config/slip.env"
grep -q '^SLIP_ADMIN_TOKEN=' "$demo/config/slip.env" || echo "SLIP_ADMIN_TOKEN=$(random_hex)" >> "$demo/config/slip.env"
umask 022
cat > "$demo/config/slip.toml" <<EOF
# The demo's daemon config. Same schema as /etc/slip/slip.toml.
[server]
listen = "127.0.0.1:7890"

[runtime]
backend = "docker"

[auth]
secret = "\${SLIP_SECRET}"
admin_token = "\${SLIP_ADMIN_TOKEN}"

[caddy]
admin_api = "http://127.0.0.1:2019"
listen = [":$site_port"]
tls = "off"

[storage]
path = "$demo/state"
EOF
cat > "$demo/config/apps/$app.toml" <<EOF
[app]
name = "$app"
image = "$registry/slip-demo"

[routing]
domain = "$app.localhost"
port = 8080

[health]
path = "/health"
interval = "1s"
start_period = "10s"

[deploy]
strategy = "blue-green"
drain_timeout = "30s"
EOF

say "checking the config"
"$slipd" --config "$demo/config" --check

say "starting slipd (log: $demo/slipd.log)"
"$slipd" --config "$demo/config" >"$demo/slipd.log" 2>&1 &
echo $! > "$demo/slipd.pid"
for _ in $(seq 100); do curl -fs http://127.0.0.1:7890/healthz >/dev/null && break; sleep 0.1; done
curl -fs http://127.0.0.1:7890/healthz >/dev/null || { tail -20 "$demo/slipd.log"; die "slipd did not start"; }
fi
curl -fs http://127.0.0.1:7890/healthz >/dev/null || die "slipd is not running: run scripts/demo.sh first"

# shellcheck disable=SC1091
SLIP_SECRET=$(sed -n 's/^SLIP_SECRET=//p' "$demo/config/slip.env")
SLIP_ADMIN_TOKEN=$(sed -n 's/^SLIP_ADMIN_TOKEN=//p' "$demo/config/slip.env")

deploy() { # tag — the original README's CI step, verbatim apart from the address
  PAYLOAD="{\"app\":\"$app\",\"tag\":\"$1\"}"
  SIG=$(echo -n "$PAYLOAD" | openssl dgst -sha256 -hmac "$SLIP_SECRET" | cut -d' ' -f2)
  curl -sS -X POST http://127.0.0.1:7890/v1/deploy \
    -H "Content-Type: application/json" \
    -H "X-Slip-Signature: sha256=$SIG" \
    -d "$PAYLOAD"
}

say "sending a signed webhook for $app:$release"
answer=$(deploy "$release")
echo "$answer"
id=$(printf '%s' "$answer" | sed -n 's/.*"deploy_id":"\([^"]*\)".*/\1/p')
[ -n "$id" ] || die "the webhook was not accepted"

say "following $id"
"$here/target/release/slip" watch "$id" --token "$SLIP_ADMIN_TOKEN"

say "the app answers through Caddy:"
curl -fsS -H "Host: $app.localhost" "http://127.0.0.1:$site_port/"
cat <<EOF

  URL:               http://$app.localhost:$site_port/   (or: curl -H 'Host: $app.localhost' http://127.0.0.1:$site_port/)
  status:            $here/target/release/slip status --token \$(sed -n 's/^SLIP_ADMIN_TOKEN=//p' $demo/config/slip.env)
  deploy release v2: $here/scripts/demo.sh --release v2
  stop the demo:     $here/scripts/demo.sh --stop
EOF
