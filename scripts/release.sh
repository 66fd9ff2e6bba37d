#!/usr/bin/env bash
# Builds slip's release artefacts for x86_64 Linux:
#   dist/slip-<version>-x86_64-linux.tar.gz (+ .sha256)   slipd and slip, statically linked, with the unit, README,
#                                                          licence and install.sh; install.sh --from takes it
#   dist/slip-x86_64-linux.tar.gz (+ .sha256)             the same bytes under the name "latest" downloads use
#   dist/slip_<version>-1_amd64.deb                       the Debian package (cargo-deb), from the same binaries
#
#   scripts/release.sh [--out DIR] [--no-deb] [--dev-build]
#
# --dev-build packages the ordinary dev-profile binaries (target/debug, dynamically linked against glibc) under the
# same names instead: scripts/test.sh uses it so the installer tests need no second, optimised build of everything.
#
# The binaries are linked with glibc's static libraries (crt-static on the gnu target; no musl target is
# available here), with SQLite bundled and rustls instead of OpenSSL: they need no shared library at all, and the
# script fails if either binary has a dynamic dependency.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

readonly TARGET=x86_64-unknown-linux-gnu
out=dist
deb=1
dev_build=0

die() {
    printf 'release: error: %s\n' "$1" >&2
    [[ $# -gt 1 ]] && printf 'hint: %s\n' "$2" >&2
    exit 1
}
say() { printf 'release: %s\n' "$*"; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --out) [[ $# -ge 2 ]] || die "--out needs a directory"; out=$2; shift ;;
        --no-deb) deb=0 ;;
        --dev-build) dev_build=1 ;;
        -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1'; valid options are --out DIR, --no-deb and --help" ;;
    esac
    shift
done

version=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version = "\(.*\)"/\1/p' Cargo.toml)
[[ -n $version ]] || die "no version in [workspace.package] of Cargo.toml"
name=slip-$version-x86_64-linux
target_dir=${CARGO_TARGET_DIR:-$root/target}
if [[ $dev_build -eq 1 ]]; then
    bin_dir=$target_dir/debug
    say "building slipd and slip $version (dev profile, for tests: dynamically linked)"
    cargo build --locked -p slip-daemon -p slip-cli --bin slipd --bin slip
else
    bin_dir=$target_dir/$TARGET/release
    # --target keeps crt-static away from build scripts and proc macros, which must stay dynamic.
    say "building slipd and slip $version (release, $TARGET, crt-static)"
    RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
        cargo build --release --locked --target "$TARGET" -p slip-daemon -p slip-cli --bin slipd --bin slip
fi

for bin in slipd slip; do
    [[ -x $bin_dir/$bin ]] || die "cargo did not produce $bin_dir/$bin"
    [[ $dev_build -eq 1 ]] && continue
    if readelf -d "$bin_dir/$bin" | grep -q '(NEEDED)'; then
        die "$bin links shared libraries: $(readelf -d "$bin_dir/$bin" | grep '(NEEDED)' | tr -s ' ' | cut -d' ' -f6- | tr '\n' ' ')"
    fi
    if readelf -l "$bin_dir/$bin" | grep -q 'INTERP'; then
        die "$bin asks for a dynamic loader; it is not self-contained"
    fi
done
[[ $dev_build -eq 1 ]] || say "slipd and slip are statically linked (no NEEDED entries, no interpreter)"

mkdir -p "$out"
out=$(cd "$out" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name/bin"
cp "$bin_dir/slipd" "$bin_dir/slip" "$stage/$name/bin/"
# Dev binaries carry hundreds of MiB of debug info that nobody installing them needs.
[[ $dev_build -eq 0 ]] || strip --strip-debug "$stage/$name/bin/slipd" "$stage/$name/bin/slip"
cp packaging/slipd.service README.md LICENSE install.sh "$stage/$name/"
chmod 0755 "$stage/$name/bin/slipd" "$stage/$name/bin/slip" "$stage/$name/install.sh"
chmod 0644 "$stage/$name/slipd.service" "$stage/$name/README.md" "$stage/$name/LICENSE"

# Reproducible: fixed owner, order and time (the last commit's, when there is one).
mtime=$(git log -1 --format=%ct 2>/dev/null || echo 0)
tarball=$out/$name.tar.gz
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$mtime" -C "$stage" -cf - "$name" | gzip -n >"$tarball"
(cd "$out" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
cp "$tarball" "$out/slip-x86_64-linux.tar.gz"
(cd "$out" && sha256sum slip-x86_64-linux.tar.gz >slip-x86_64-linux.tar.gz.sha256)
say "wrote $tarball ($(du -h "$tarball" | cut -f1)) and its .sha256"

if [[ $deb -eq 1 ]]; then
    cargo deb --version >/dev/null 2>&1 || die "cargo-deb is not installed" "cargo install cargo-deb --locked (scripts/setup.sh --dev does it)"
    say "building the Debian package (cargo-deb, from the binaries above)"
    # cargo-deb takes its assets from <target dir>/release/ ("target/release/..." in [package.metadata.deb]): the
    # binaries packed above, and the unit with Debian's ExecStart.
    deb_target=$stage/deb-target
    mkdir -p "$deb_target/release"
    cp "$stage/$name/bin/slipd" "$stage/$name/bin/slip" "$deb_target/release/"
    sed 's|/usr/local/bin/slipd|/usr/bin/slipd|g; s|^# slipd as a systemd service.*|# slipd as a systemd service (Debian package).|' \
        packaging/slipd.service >"$deb_target/release/slipd.service"
    fast=()
    [[ $dev_build -eq 0 ]] || fast=(--fast)
    CARGO_TARGET_DIR=$deb_target cargo deb -p slip-daemon --no-build --no-strip "${fast[@]}" --output "$out" >/dev/null
    say "wrote $(ls "$out"/slip_"$version"*_amd64.deb)"
fi
