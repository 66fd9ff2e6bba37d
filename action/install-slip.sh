#!/usr/bin/env bash
# The Action's first step: downloads a slip release tarball and its .sha256, checks one against the other, and puts
# the `slip` CLI on the job's PATH (through $GITHUB_PATH). Environment: SLIP_VERSION ("latest" or a version),
# SLIP_RELEASE_URL (overrides the tarball's URL; file:// works), RUNNER_TEMP, GITHUB_PATH.
set -euo pipefail

readonly RELEASES=https://github.com/mitchelljphayes/slip/releases
die() { printf '::error title=slip::%s\n' "$1" >&2; exit 1; }

version=${SLIP_VERSION:-latest}
url=${SLIP_RELEASE_URL:-}
if [[ -z $url ]]; then
    if [[ $version == latest ]]; then
        url=$RELEASES/latest/download/slip-x86_64-linux.tar.gz
    else
        [[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+([.-][0-9A-Za-z.-]+)?$ ]] || die "slip-version '$version' is not 'latest' or a version such as 0.1.0"
        url=$RELEASES/download/v$version/slip-$version-x86_64-linux.tar.gz
    fi
fi
[[ $(uname -s) == Linux && $(uname -m) == x86_64 ]] || die "slip releases are built for x86_64 Linux runners (this is $(uname -s) $(uname -m))"

dir=${RUNNER_TEMP:?RUNNER_TEMP is not set (this script runs inside a GitHub Actions job)}/slip-cli
rm -rf "$dir"
mkdir -p "$dir/bin"
curl -fsSL --retry 3 -o "$dir/release.tar.gz" "$url" || die "could not download $url"
curl -fsSL --retry 3 -o "$dir/release.tar.gz.sha256" "$url.sha256" || die "could not download $url.sha256"
expected=$(awk 'NR == 1 { print $1 }' "$dir/release.tar.gz.sha256")
actual=$(sha256sum "$dir/release.tar.gz" | awk '{ print $1 }')
[[ $expected == "$actual" ]] || die "checksum mismatch for $url: expected $expected, got $actual"
tar -xzf "$dir/release.tar.gz" -C "$dir" --wildcards --strip-components=2 '*/bin/slip'
mv "$dir/slip" "$dir/bin/slip"
rm -f "$dir/release.tar.gz" "$dir/release.tar.gz.sha256"
"$dir/bin/slip" --version >/dev/null || die "the downloaded slip does not run on this runner"
echo "$dir/bin" >>"${GITHUB_PATH:?GITHUB_PATH is not set}"
echo "installed $("$dir/bin/slip" --version) from $url (sha256 $actual)"
