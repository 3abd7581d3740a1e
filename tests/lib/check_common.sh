# tests/lib/check_common.sh - shared by the shell checks in tests/ (sourced).
#
# Provides fail/pass counters and require_go, which installs golang-go when it
# is missing and possible (root + apt-get) and otherwise skips (exit 77).

# shellcheck source=tests/lib/target.sh
. "$(dirname "${BASH_SOURCE[0]}")/target.sh"

failures=0 passes=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok:   $*"; passes=$((passes + 1)); }

require_go() {
    if ! command -v go >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "go not found; trying apt-get install -y golang-go" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y golang-go >/dev/null 2>&1 ||
            { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y golang-go >/dev/null 2>&1; }
    fi
    if ! command -v go >/dev/null 2>&1; then
        echo "SKIP: 'go' (for go tool pprof) is not installed and could not be installed; install golang-go" >&2
        exit 77
    fi
}

# pprof_share LABEL SNAPSHOT FUNCTION [MIN_PERCENT]: go tool pprof reads SNAPSHOT
# (a pass or a fail), and FUNCTION holds at least MIN_PERCENT (default 80) of its
# in-use bytes (another; the top of the profile on stderr when it does not).
# SNAPSHOT may be empty (no file found): one fail. Needs require_go first.
pprof_share() {
    local label=$1 snap=$2 fn=$3 min=${4:-80} top share
    if [ -z "$snap" ] || [ ! -s "$snap" ]; then
        fail "$label: no snapshot${snap:+ at $snap}"
        return
    fi
    top=$(go tool pprof -top -sample_index=inuse_space "$snap" 2>&1) ||
        { fail "$label: go tool pprof cannot read ${snap##*/}: $(printf '%s\n' "$top" | head -3)"; return; }
    pass "$label: go tool pprof reads ${snap##*/}"
    share=$(printf '%s\n' "$top" | awk -v f="$fn" '$0 ~ f { gsub("%", "", $2); print $2; exit }')
    if [ -n "$share" ] && awk -v s="$share" -v m="$min" 'BEGIN { exit !(s >= m) }'; then
        pass "$label: $fn holds $share% of in-use bytes"
    else
        fail "$label: $fn holds '${share:-none}'% of in-use bytes (want >= $min)"
        printf '%s\n' "$top" | head -15 >&2
    fi
}

# expect_status LABEL WANT RC: a pass when RC is WANT, else a fail naming both.
expect_status() {
    if [ "$3" -eq "$2" ]; then pass "$1 (status $3)"; else fail "$1: status $3, want $2"; fi
}
