#!/usr/bin/env bash
# The Action's second step: `slip deploy` (signed with SLIP_SECRET, always with a timestamp), then the step outputs
# (deploy-id, status, url, preview-url) and a job summary with the deploy's steps. The exit code is slip's: 0 when
# the deploy completed (or, without wait, was accepted), 1 failed or rolled back, 3 superseded, 6 timed out.
# Environment: SLIP_SERVER, SLIP_SECRET, INPUT_APP, INPUT_TAG, INPUT_PREVIEW_ID, INPUT_WAIT, INPUT_WAIT_TIMEOUT,
# INPUT_URL, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY (and GITHUB_SHA for previews, when set).
set -uo pipefail

die() { printf '::error title=slip::%s\n' "$1" >&2; exit 2; }
[[ -n ${SLIP_SERVER:-} ]] || die "the server input is empty"
[[ -n ${SLIP_SECRET:-} ]] || die "the secret input is empty (is the repository secret set for this workflow?)"
[[ -n ${INPUT_APP:-} && -n ${INPUT_TAG:-} ]] || die "the app and tag inputs are required"
command -v jq >/dev/null || die "jq is not installed on this runner"
echo "::add-mask::$SLIP_SECRET"

args=(deploy "$INPUT_APP" "$INPUT_TAG" --json)
# The commit and run travel as deploy metadata: slipd shows them in history and uses the commit as the GitHub
# deployment's ref ([github] in the app's config).
[[ -n ${GITHUB_SHA:-} ]] && args+=(--meta "sha=$GITHUB_SHA")
if [[ -n ${GITHUB_RUN_ID:-} && -n ${GITHUB_REPOSITORY:-} ]]; then
    args+=(--meta "run_url=${GITHUB_SERVER_URL:-https://github.com}/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID")
fi
if [[ -n ${INPUT_PREVIEW_ID:-} ]]; then
    args+=(--preview "$INPUT_PREVIEW_ID")
    [[ -n ${GITHUB_SHA:-} ]] && args+=(--sha "$GITHUB_SHA")
fi
case "${INPUT_WAIT:-true}" in
    true) args+=(--wait --wait-timeout "${INPUT_WAIT_TIMEOUT:-15m}") ;;
    false) args+=(--no-wait) ;;
    *) die "the wait input must be \"true\" or \"false\", not \"$INPUT_WAIT\"" ;;
esac

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# slip reads SLIP_SERVER and SLIP_SECRET from the environment, so the key never appears in a command line.
slip "${args[@]}" | tee "$log"
code=${PIPESTATUS[0]}

# The first line is the 202 answer; with wait, event frames follow (or, when slipd's stream was unavailable, the
# final deploy object, which carries the whole timeline).
accepted=$(grep -m1 '"deploy_id"' "$log" || true)
deploy_id=$(jq -r '.deploy_id // empty' <<<"$accepted" 2>/dev/null || true)
preview_url=$(jq -r '.preview_url // empty' <<<"$accepted" 2>/dev/null || true)
status=$(jq -r '.status // empty' <<<"$accepted" 2>/dev/null || true)
terminal=$(jq -r 'select(.type? and (.type | test("^deploy\\.(completed|failed|rolled_back|superseded)$"))) | .type | sub("^deploy\\."; "")' "$log" 2>/dev/null | tail -n 1)
final=$(jq -r 'select(.steps? != null) | .status' "$log" 2>/dev/null | tail -n 1)
[[ -n $terminal ]] && status=$terminal
[[ -n $final ]] && status=$final
url=${preview_url:-${INPUT_URL:-}}

{
    echo "deploy-id=$deploy_id"
    echo "status=$status"
    echo "url=$url"
    echo "preview-url=$preview_url"
} >>"${GITHUB_OUTPUT:-/dev/null}"

if [[ -n ${GITHUB_STEP_SUMMARY:-} && -n $deploy_id ]]; then
    {
        echo "### slip: ${INPUT_APP}@${INPUT_TAG} ${status}"
        echo
        echo "Deploy \`$deploy_id\`${preview_url:+ (preview: $preview_url)}${url:+ · $url}"
        echo
        echo "| step | at | detail |"
        echo "|---|---|---|"
        # Steps from the event stream, or from the final deploy object's timeline.
        jq -r 'if .type? == "deploy.status" or (.type? // "" | test("^deploy\\.(queued|completed|failed|rolled_back|superseded)$"))
               then "| \(.status // "") | \(.at // "") | \((.message // "") | gsub("\\|"; "\\\\|") | gsub("\n"; " ")) |"
               elif .steps? != null then (.steps[] | "| \(.status) | \(.at) | \(if .duration_ms then "\(.duration_ms) ms" else "" end) |")
               else empty end' "$log" 2>/dev/null
        if [[ $code -ne 0 ]]; then
            error=$(jq -r 'select(.type? == "deploy.failed" or .type? == "deploy.rolled_back") | .message // empty' "$log" 2>/dev/null | tail -n 1)
            echo
            echo "**${status:-error}**${error:+: $error} (slip exited $code)"
        fi
    } >>"$GITHUB_STEP_SUMMARY"
fi
exit "$code"
