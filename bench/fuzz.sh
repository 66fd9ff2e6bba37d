#!/usr/bin/env bash
# The long fuzzing run (issue 15): every target of fuzz/ for SECONDS each (default 600, i.e. 90 minutes for the
# nine targets), then docs/fuzzing.md with the inputs run, the coverage reached and any crash.
#
# Usage: bench/fuzz.sh [SECONDS] [TARGET...]     (on a machine set up by `sudo scripts/setup.sh --dev`)
#
# The corpus grows in fuzz/corpus/ from run to run. Run it on a quiet machine: each target takes a whole core.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=600
if [[ ${1:-} =~ ^[0-9]+$ ]]; then
    seconds=$1
    shift
fi
exec bash scripts/fuzz.sh --long "$seconds" "$@"
