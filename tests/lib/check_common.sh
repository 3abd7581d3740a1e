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
