#!/usr/bin/env bash
# tests/http/flamegraph_check.sh - the flame graph page rendered by a real
# browser (Debian's chromium, headless, --dump-dom):
#   - the file written by write_heap_flamegraph and the page served at
#     /debug/memdiag/flame both render; frames of alloc_a/b/c and
#     tagged_site<int&> are as wide as their share of the bytes (within 1%),
#     in the in-use view and (#alloc) the allocated view, where churn() shows;
#   - '<', '>' and '&' in names render as text, never as markup;
#   - a click zooms, the search highlights and sums, the tooltip shows bytes,
#     objects and share (events dispatched by a test script added to a copy);
#   - nothing is loaded from the network: Chromium runs with every request sent
#     to a logging proxy, which must see nothing (and does see a control page's image).
#
#   tests/http/flamegraph_check.sh [HTTP_FIXTURE_BINARY]
#
# Exit status: 0 passed, 1 a check failed, 77 (skip) only when chromium, curl
# or python3 are missing and cannot be installed (scripts/setup-deps.sh).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/memdiag-flame-check.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
. "$root/tests/lib/check_common.sh"

for pkg in chromium curl python3; do
    command -v "$pkg" >/dev/null 2>&1 || bash "$root/scripts/setup-deps.sh" "$pkg" >&2 ||
        { echo "SKIP: $pkg is not installed and could not be installed (scripts/setup-deps.sh $pkg)" >&2; exit 77; }
done

fixture=${1:-}
if [ -z "$fixture" ]; then
    fixture="$work/http_fixture"
    ${CXX:-c++} -std=c++17 -O2 -g -fno-omit-frame-pointer ${CXXFLAGS:-} -I"$root/include" \
        "$here/http_fixture.cpp" -o "$fixture" -ldl -lpthread ||
        { echo "FAIL: cannot build the fixture" >&2; exit 1; }
fi

# ---- the logging proxy: every request Chromium makes goes here ----------------
cat >"$work/proxy.py" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(16)
open(sys.argv[1] + ".port", "w").write(str(s.getsockname()[1]))
while True:
    c, _ = s.accept()
    c.settimeout(2)
    try:
        line = c.recv(4096).split(b"\r\n", 1)[0]
    except OSError:
        line = b"(no request line)"
    with open(sys.argv[1], "ab") as log:
        log.write(line + b"\n")
    c.close()
EOF
: >"$work/proxy.log"
python3 "$work/proxy.py" "$work/proxy.log" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/proxy.log.port" ] && break; sleep 0.1; done
proxy_port=$(cat "$work/proxy.log.port" 2>/dev/null)
[ -n "$proxy_port" ] || { echo "FAIL: the logging proxy did not start" >&2; exit 1; }

# render URL OUT: Chromium headless, fresh profile, all traffic through the proxy.
render() {
    local profile
    profile=$(mktemp -d "$work/profile.XXXXXX")
    timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --disable-features=NetworkTimeServiceQuerying,OptimizationHints,Translate,MediaRouter,AutofillServerCommunication \
        --disable-domain-reliability --disable-client-side-phishing-detection --no-pings --disable-default-apps \
        --disable-extensions --no-default-browser-check --disable-breakpad --password-store=basic \
        --user-data-dir="$profile" --proxy-server="http://127.0.0.1:$proxy_port" --proxy-bypass-list="<-loopback>" \
        --virtual-time-budget=5000 --dump-dom "$1" >"$2" 2>"$2.err"
}

# ---- control: the proxy does see a page that fetches something ------------------
printf '<!DOCTYPE html><html><body><img src="http://memdiag-control.invalid/x.png"></body></html>\n' >"$work/control.html"
render "file://$work/control.html" "$work/control.dom"
sleep 0.5
grep -q "memdiag-control.invalid" "$work/proxy.log" && pass "control: the proxy logs a page's network request" ||
    fail "control: the proxy saw nothing from a page with a remote image (the no-network check would be blind)"
: >"$work/proxy.log"

# ---- the pages ----------------------------------------------------------------------
mkfifo "$work/fx.in"
"$fixture" <"$work/fx.in" >"$work/fx.out" 2>"$work/fx.err" &
pids+=($!)
exec 3>"$work/fx.in"
port=
for _ in $(seq 100); do
    port=$(awk '/^port /{print $2}' "$work/fx.out")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { cat "$work/fx.err" >&2; echo "FAIL: the fixture did not start" >&2; exit 1; }
echo "flame $work/heap.html" >&3
for _ in $(seq 100); do grep -q "^flame" "$work/fx.out" && break; sleep 0.1; done
grep -q "^flame ok" "$work/fx.out" && pass "write_heap_flamegraph wrote heap.html ($(wc -c <"$work/heap.html") bytes)" ||
    { fail "write_heap_flamegraph: $(grep '^flame' "$work/fx.out")"; exit 1; }
curl -s -o "$work/served.html" "http://127.0.0.1:$port/debug/memdiag/flame" && [ -s "$work/served.html" ] &&
    pass "/debug/memdiag/flame served $(wc -c <"$work/served.html") bytes" || fail "/debug/memdiag/flame failed"
echo quit >&3

# No reference to anything outside the file (the SVG namespace is a name, never fetched).
if grep -Eo '(src|href)=|url\(|@import|https?://[^"]*' "$work/heap.html" | grep -v '^http://www.w3.org/2000/svg$' | grep -q .; then
    fail "heap.html references something outside itself: $(grep -Eo '(src|href)=|url\(|@import|https?://[^"]*' "$work/heap.html" | sort -u | tr '\n' ' ')"
else
    pass "heap.html references nothing outside itself"
fi

# A copy with a test script: click alloc_c(), search "alloc_", hover alloc_c().
python3 - "$work/heap.html" "$work/zoom.html" <<'EOF'
import sys
page = open(sys.argv[1], encoding="utf-8").read()
test = """<script>
(function () {
  function g(n) { return document.querySelector('g.frame[data-name="' + n + '"]'); }
  g("alloc_c()").dispatchEvent(new MouseEvent("click", {bubbles: true}));
  var s = document.getElementById("search");
  s.value = "alloc_";
  s.dispatchEvent(new Event("input"));
  g("alloc_c()").querySelector("rect").dispatchEvent(new MouseEvent("mousemove", {bubbles: true, clientX: 5, clientY: 5}));
})();
</script>
"""
assert page.count("</body>") == 1
open(sys.argv[2], "w", encoding="utf-8").write(page.replace("</body>", test + "</body>"))
EOF

for run in "inuse file://$work/heap.html" "alloc file://$work/heap.html#alloc" "inuse file://$work/served.html" \
    "zoom file://$work/zoom.html"; do
    mode=${run%% *} url=${run#* }
    out="$work/dom.$mode.$(basename "${url%%#*}")"
    if render "$url" "$out" && [ -s "$out" ]; then
        pass "chromium rendered $(basename "$url")"
        python3 "$here/flame_dom.py" "$mode" "$out" || fail "$mode view of $(basename "$url") (see above)"
    else
        tail -5 "$out.err" >&2
        fail "chromium could not render $url"
    fi
done

sleep 0.5
# Chromium's own services still call home despite the flags (the component
# updater and the account service, whatever the page): those exact endpoints
# are listed and set aside; anything else is the page's doing.
browser_own='^(CONNECT update\.googleapis\.com:443|POST http://update\.googleapis\.com/service/update2/|CONNECT accounts\.google\.com:443|GET http://clients2\.google\.com/time/)'
own=$(grep -cE "$browser_own" "$work/proxy.log")
[ "$own" -eq 0 ] || echo "note: set aside $own request(s) of Chromium's own services (component updater, accounts)"
if grep -vE "$browser_own" "$work/proxy.log" | grep -q .; then
    fail "the pages made network requests: $(grep -vE "$browser_own" "$work/proxy.log" | tr '\n' ' ')"
else
    pass "the pages loaded nothing from the network (the proxy saw no request of theirs)"
fi

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "all flame graph checks passed"
