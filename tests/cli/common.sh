# common.sh - helpers shared by the CLI integration tests (sourced, not run).
#
#   source "$(dirname "$0")/common.sh"
#   expect_rc "help exits 0" 0 read-images --help    # runs $DLP_BIN
#   check "output has a row" grep -q cats "$WORK/out"
#   finish                                           # "N passed, N failed"
#
# Each run of dlp leaves its stdout in $WORK/out, stderr in $WORK/err and its
# exit status in $rc. $WORK is a fresh folder removed on exit.
set -euo pipefail

: "${DLP_BIN:?DLP_BIN must name the dlp binary}"
DLP_PYTHON=${DLP_PYTHON:-/usr/bin/python3}
CLI_TESTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dlp-cli-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
passed=0
failed=0
rc=0

pass() { echo "ok   - $1"; passed=$((passed + 1)); }

# fail NAME [DETAILS]: DETAILS (e.g. dlp's stderr) is shown indented.
fail() {
  echo "FAIL - $1"
  if [ -n "${2:-}" ]; then printf '%s\n' "$2" | head -n 20 | sed 's/^/       /'; fi
  failed=$((failed + 1))
}

# run ARGS...: runs dlp, never stopping the script on its failure.
run() {
  set +e
  "$DLP_BIN" "$@" >"$WORK/out" 2>"$WORK/err"
  rc=$?
  set -e
}

# expect_rc NAME STATUS ARGS...: runs dlp and checks its exit status.
expect_rc() {
  local name=$1 want=$2
  shift 2
  run "$@"
  if [ "$rc" -eq "$want" ]; then
    pass "$name"
  else
    fail "$name (exit $rc, expected $want)" "$(cat "$WORK/err" "$WORK/out")"
  fi
}

# check NAME COMMAND...: passes when COMMAND succeeds.
check() {
  local name=$1
  shift
  local out
  if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$out"; fi
}

# contains FILE TEXT: FILE contains TEXT (fixed string).
contains() { grep -qF -- "$2" "$1"; }

finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
