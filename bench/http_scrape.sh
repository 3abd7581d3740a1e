#!/usr/bin/env bash
# bench/http_scrape.sh - what the pprof endpoint costs a running program.
#
#   bench/http_scrape.sh [REPS] [ROUNDS]     (defaults 5 and 1200)
#
# 1. Requests per second: tests/http/http_fixture with 10,000 distinct stacks
#    (every allocation recorded), one client fetching /debug/pprof/heap back to
#    back for 10 s (python3, keep-alive off as scrapers do); also the profile
#    size and the server's CPU time per request (from /proc, the figure that
#    does not depend on how busy the machine is).
# 2. Workload slowdown: bench/workload.cpp with the sampling profiler (512 KiB),
#    run alone and run while a scraper fetches /debug/pprof/heap once per
#    second; REPS interleaved pairs, median wall time of each. The same with
#    every allocation recorded (interval 1), where a snapshot is largest.
#    Wall time and CPU time (user + system of the whole process, the server
#    thread included) are both reported: on a shared, loaded machine the CPU
#    ratio is the meaningful one.
# Prints a small table. Needs g++ (or $CXX) and python3; Linux (/proc).
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-5}
rounds=${2:-1200}
CXX=${CXX:-g++}
dir=$(mktemp -d "${TMPDIR:-/tmp}/memdiag-http-bench.XXXXXX")
trap 'rm -rf "$dir"' EXIT
flags=(-std=c++17 -O2 -g -fno-omit-frame-pointer -Iinclude -pthread)

echo "building with $CXX"
"$CXX" "${flags[@]}" tests/http/http_fixture.cpp -o "$dir/fixture" -ldl
"$CXX" "${flags[@]}" -DMEMDIAG_WORKLOAD_HOOK -DMEMDIAG_WORKLOAD_INTERVAL=524288 bench/workload.cpp -o "$dir/sample" -ldl
"$CXX" "${flags[@]}" -DMEMDIAG_WORKLOAD_HOOK -DMEMDIAG_WORKLOAD_INTERVAL=1 bench/workload.cpp -o "$dir/exact" -ldl

python3 - "$dir" "$reps" "$rounds" <<'PY'
import http.client, os, statistics, subprocess, sys, threading, time

d, reps, rounds = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def fetch(port, path="/debug/pprof/heap"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    assert r.status == 200, r.status
    return body

# 1. requests per second on a 10k-stack profile
fx = subprocess.Popen([d + "/fixture", "--stacks", "10000"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
port = int(fx.stdout.readline().split()[1])
size = len(fetch(port))
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
n, t0, c0 = 0, time.monotonic(), cpu(fx.pid)
while time.monotonic() - t0 < 10:
    fetch(port)
    n += 1
rps = n / (time.monotonic() - t0)
cpu_ms = 1000 * (cpu(fx.pid) - c0) / n
stats = fetch(port, "/debug/memdiag/stats").decode()
fx.stdin.write("quit\n"); fx.stdin.flush(); fx.wait()
import json
stacks = json.loads(stats)["heap_profiler"]["stacks"]
print(f"10k-stack profile: {stacks} stacks recorded, {size} bytes gzipped; one client back to back: "
      f"{rps:.1f} requests/s wall ({1000 / rps:.1f} ms each), server CPU {cpu_ms:.1f} ms per request "
      f"(= {1000 / cpu_ms:.0f} requests/s per core)")

# 2. workload alone vs scraped once per second
def run(binary, scraped):
    env = dict(os.environ)
    env.pop("MEMDIAG_HTTP", None)
    if scraped:
        env["MEMDIAG_HTTP"] = "127.0.0.1:0"
    p = subprocess.Popen([binary, "--rounds", rounds], stdout=subprocess.PIPE, text=True, env=env)
    scrapes = []
    stop = threading.Event()
    if scraped:
        port = int(p.stdout.readline().split()[1])
        def scraper():
            while not stop.wait(1.0):
                try:
                    t = time.monotonic(); fetch(port); scrapes.append(time.monotonic() - t)
                except Exception:
                    return
        th = threading.Thread(target=scraper, daemon=True); th.start()
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    stop.set()
    secs = float(out.split("checksum", 1)[1].split(",")[1].split()[0])
    return secs, ru.ru_utime + ru.ru_stime, scrapes

for name in ("sample", "exact"):
    alone, scraped, alone_cpu, scraped_cpu, lat = [], [], [], [], []
    for _ in range(reps):
        w, c, _ = run(d + "/" + name, False)
        alone.append(w); alone_cpu.append(c)
        w, c, sc = run(d + "/" + name, True)
        scraped.append(w); scraped_cpu.append(c); lat += sc
    a, s = statistics.median(alone), statistics.median(scraped)
    ac, sc_ = statistics.median(alone_cpu), statistics.median(scraped_cpu)
    print(f"workload {name:6} ({rounds} rounds, median of {reps}): wall alone {a:.2f} s, scraped 1/s {s:.2f} s "
          f"= {s / a:.3f}x; CPU alone {ac:.2f} s, scraped {sc_:.2f} s = {sc_ / ac:.3f}x; "
          f"{len(lat)} scrapes, median {1000 * statistics.median(lat) if lat else 0:.1f} ms each")
PY
