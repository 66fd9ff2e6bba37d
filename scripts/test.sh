#!/usr/bin/env bash
# The one command that checks slip: formatting, lints, then every test, including the ones that drive a real Docker
# engine, Podman, Caddy and a registry (they fail, never skip, when those are missing).
#
#   scripts/test.sh                     everything
#   scripts/test.sh -p slip-engine      lints, then only slip-engine's tests (arguments go to the test runner)
#
# Tests run under cargo-nextest when it is installed (with .config/nextest.toml: each test once, no retries, a
# slow-test timeout), else under cargo test. Set up the machine first with `sudo scripts/setup.sh --dev`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

# As root, make sure the machine has everything first (idempotent, quick when nothing is missing).
if [[ $(id -u) -eq 0 && -z ${SLIP_SKIP_SETUP:-} ]]; then
    step "scripts/setup.sh --dev"
    bash scripts/setup.sh --dev </dev/null
fi

if ! docker info --format '{{.ServerVersion}}' >/dev/null 2>&1; then
    printf 'error: Docker engine unreachable at /var/run/docker.sock\n' >&2
    printf 'hint: sudo scripts/setup.sh --dev\n' >&2
    exit 1
fi

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

# Arguments select what to test (`-p crate`, a name filter); without any, the whole workspace is tested.
# (`--workspace` would override `-p`.)
if [[ $# -eq 0 ]]; then
    set -- --workspace
    whole_workspace=1
else
    whole_workspace=0
fi

# The installer tests (slip-daemon's tests/install) install these artefacts in fresh Debian roots. They package the
# dev build: an optimised static build of everything would add minutes; `scripts/release.sh` alone checks that one.
if [[ $whole_workspace -eq 1 ]]; then
    step "scripts/release.sh --dev-build --out target/dist"
    bash scripts/release.sh --dev-build --out "${CARGO_TARGET_DIR:-target}/dist"
fi

# A short run of every fuzz target (about a minute after the build; long runs are scripts/fuzz.sh --long), before the
# tests, so the test runner's summary stays the last word.
fuzz_status=0
if [[ $whole_workspace -eq 1 ]]; then
    step "scripts/fuzz.sh (${SLIP_FUZZ_SECONDS:-6}s per target)"
    bash scripts/fuzz.sh || fuzz_status=$?
fi

if cargo nextest --version >/dev/null 2>&1; then
    # nextest does not run doc tests, so they run first; the nextest summary stays the last word.
    if [[ $whole_workspace -eq 1 ]]; then
        step "cargo test --workspace --doc"
        cargo test --workspace --doc
    fi
    step "cargo nextest run $*"
    status=$fuzz_status
    cargo nextest run "$@" || status=$?
    if [[ $whole_workspace -eq 1 ]]; then
        # Tests that restart the Docker engine cannot share the machine; they are #[ignore]d above and run alone.
        step "cargo nextest run -p slip-daemon --test it --run-ignored only (alone: restarts the Docker engine)"
        cargo nextest run -p slip-daemon --test it --run-ignored only || status=$?
    fi
    exit "$status"
else
    step "cargo test --no-fail-fast $* (cargo-nextest not installed)"
    log=$(mktemp)
    trap 'rm -f "$log"' EXIT
    status=$fuzz_status
    cargo test --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
    if [[ $whole_workspace -eq 1 ]]; then
        # Tests that restart the Docker engine cannot share the machine; they are #[ignore]d above and run alone.
        cargo test -p slip-daemon --test it -- --ignored 2>&1 | tee -a "$log" || status=$?
    fi
    # cargo test prints one result line per test binary; add them up into one closing line.
    awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i + 1) ~ /^passed/) p += $i; if ($(i + 1) ~ /^failed/) f += $i } }
         END { printf "\ntests: %d passed, %d failed\n", p, f }' "$log"
    exit "$status"
fi
