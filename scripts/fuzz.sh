#!/usr/bin/env bash
# Runs slip's libFuzzer targets (fuzz/, cargo-fuzz on the nightly toolchain) over the parsers of untrusted input.
#
#   scripts/fuzz.sh                  a short run of every target (SLIP_FUZZ_SECONDS each, default 6): CI's smoke run
#   scripts/fuzz.sh --long [SECS]    SECS per target (default 600), then writes docs/fuzzing.md with the results
#   scripts/fuzz.sh TARGET...        only these targets (with either mode)
#
# Seeds come from fuzz/seeds/<target>; new inputs go to a temporary corpus (or fuzz/corpus/<target> with --long,
# kept between long runs, not committed). A crash stops the run with the input saved under fuzz/artifacts/<target>/;
# turn it into a regression test beside the parser before fixing it. Needs `scripts/setup.sh --dev` (cargo-fuzz).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly ALL_TARGETS=(webhook server_config app_config repo_config pod_manifest env_file duration_size log_frames image_ref)

long=0
seconds=${SLIP_FUZZ_SECONDS:-6}
targets=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --long)
            long=1
            seconds=600
            if [[ ${2:-} =~ ^[0-9]+$ ]]; then
                seconds=$2
                shift
            fi
            ;;
        -h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) printf 'fuzz: unknown option %s; valid: --long [SECONDS], --help\n' "$1" >&2; exit 2 ;;
        *) targets+=("$1") ;;
    esac
    shift
done
[[ ${#targets[@]} -gt 0 ]] || targets=("${ALL_TARGETS[@]}")

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    printf 'fuzz: error: cargo-fuzz on the nightly toolchain is missing\nhint: sudo scripts/setup.sh --dev\n' >&2
    exit 1
fi

# No sanitizer: the targets are safe Rust, so ASan adds time and finds nothing; debug assertions catch overflows.
readonly FLAGS=(--sanitizer none --debug-assertions)
printf '==> cargo +nightly fuzz build\n'
(cd fuzz && cargo +nightly fuzz build "${FLAGS[@]}")

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
results=()
status=0
for target in "${targets[@]}"; do
    if [[ $long -eq 1 ]]; then
        corpus=$PWD/fuzz/corpus/$target
    else
        corpus=$work/$target
    fi
    mkdir -p "$corpus" "fuzz/seeds/$target"
    printf '==> %s (%ss)\n' "$target" "$seconds"
    log=$work/$target.log
    # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: a parser must not need more than 1 GiB.
    if (cd fuzz && cargo +nightly fuzz run "${FLAGS[@]}" "$target" "$corpus" "seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1) >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
        results+=("| \`$target\` | ${seconds} s | ${runs:-?} | ${cov:-?} | none |")
        printf '    %s runs, coverage %s, no crash\n' "${runs:-?}" "${cov:-?}"
    else
        status=1
        results+=("| \`$target\` | ${seconds} s | | | **crash**: see fuzz/artifacts/$target |")
        grep -E 'panicked|ERROR|SUMMARY|artifact' "$log" | head -5 >&2
        printf 'fuzz: %s crashed; the input is in fuzz/artifacts/%s/\n' "$target" "$target" >&2
    fi
done

if [[ $long -eq 1 ]]; then
    {
        printf '# Fuzzing\n\n'
        printf 'Written by `scripts/fuzz.sh --long %s` on %s (%s, %s cores).\n' "$seconds" "$(date -u +%Y-%m-%d)" \
            "$(uname -m)" "$(nproc)"
        printf 'Each target ran for the time shown with libFuzzer, no sanitizer, debug assertions on; the corpus grows in fuzz/corpus/ between runs.\n'
        printf 'Load average (1, 5, 15 min) at the start: %s; at the end: %s. Inputs run depend on the CPU the targets got.\n' \
            "$load_before" "$(cut -d' ' -f1-3 /proc/loadavg)"
        printf 'A crash is saved under fuzz/artifacts/ and becomes a regression test beside the parser (see docs/testing.md).\n\n'
        printf '| target | time | inputs run | coverage (edges) | crashes |\n|---|---|---|---|---|\n'
        printf '%s\n' "${results[@]}"
        printf '\n'
        cat fuzz/doc.md
    } > docs/fuzzing.md
    printf '==> wrote docs/fuzzing.md\n'
fi
exit "$status"
