#!/usr/bin/env python3
"""tests/http/bad_clients.py - hostile and broken clients against the pprof
endpoint (tests/http/http_check.sh starts the server).

    bad_clients.py PORT clients      # server started with --read-timeout 2000 --max-conn 16
    bad_clients.py PORT token SECRET # server started with --token SECRET

Each case checks the exact answer, then that the server still answers a
normal request. Prints "ok:   ..." / "FAIL: ..." lines; exit 1 on any failure.
"""
import socket
import struct
import sys
import threading
import time

HOST = "127.0.0.1"
failures = 0
AUTH = ""  # the header still_serving sends (token mode)


def ok(msg):
    print("ok:   " + msg, flush=True)


def fail(msg):
    global failures
    failures += 1
    print("FAIL: " + msg, file=sys.stderr, flush=True)


def connect(port, timeout=10.0, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect((HOST, port))
    return s


def read_all(s):
    chunks = []
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    except (ConnectionResetError, socket.timeout) as e:
        chunks.append(("<%s>" % type(e).__name__).encode())
    return b"".join(chunks)


def status_of(raw):
    line = raw.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    return int(parts[1]) if len(parts) >= 2 and parts[0].startswith("HTTP/1.") and parts[1].isdigit() else None


def request(port, data, timeout=10.0):
    s = connect(port, timeout)
    s.sendall(data)
    raw = read_all(s)
    s.close()
    return raw


def get(port, path, headers=""):
    return request(port, ("GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (path, headers)).encode())


def still_serving(port, after):
    raw = get(port, "/debug/memdiag/stats", AUTH)
    if status_of(raw) == 200 and raw.rstrip().endswith(b"}"):
        ok("still serving after " + after)
    else:
        fail("not serving after %s: %r" % (after, raw[:200]))


def expect(port, what, raw, status, extra=None):
    got = status_of(raw)
    if got == status and (extra is None or extra in raw):
        ok("%s -> %d" % (what, status))
    else:
        fail("%s: expected %d%s, got %r" % (what, status, " with %r" % extra if extra else "", raw[:300]))
    still_serving(port, what)


def clients(port):
    # A 100 KiB request line: 414 after 8 KiB, the rest drained, no reset.
    line = b"GET /" + b"a" * (100 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    expect(port, "100 KiB request line", request(port, line), 414)
    # Headers over 8 KiB after a short request line: 431.
    hdrs = b"GET /debug/memdiag/stats HTTP/1.1\r\n" + b"X-Pad: " + b"b" * 9000 + b"\r\n\r\n"
    expect(port, "9 KiB of headers", request(port, hdrs), 431)

    # One byte per second: cut off with 408 at the read timeout (2 s), while
    # another client is served at once.
    slow = connect(port, timeout=15.0)
    t0 = time.monotonic()
    answer = []

    def dribble():
        try:
            for ch in b"GET /debug/memdiag/stats HTTP/1.1\r\n\r\n":
                slow.send(bytes([ch]))
                time.sleep(1.0)
        except OSError:
            pass  # the server closed the connection: expected

    th = threading.Thread(target=dribble, daemon=True)
    th.start()
    time.sleep(0.3)
    t1 = time.monotonic()
    raw = get(port, "/debug/memdiag/stats")
    fast = time.monotonic() - t1
    if status_of(raw) == 200 and fast < 1.0:
        ok("a normal client is served in %.3f s while the slow one dribbles" % fast)
    else:
        fail("normal client during the slow one: %.3f s, %r" % (fast, raw[:120]))
    answer = read_all(slow)
    took = time.monotonic() - t0
    slow.close()
    if status_of(answer) == 408 and took < 4.5:
        ok("one byte per second -> 408 after %.1f s (read timeout 2 s)" % took)
    else:
        fail("slow client: expected 408 within 4.5 s, got %r after %.1f s" % (answer[:120], took))
    still_serving(port, "one byte per second")

    # 64 simultaneous connections, each with a full request: every one gets
    # 200, or 503 beyond the 16 slots; none is left without an answer.
    socks = []
    for _ in range(64):
        s = connect(port, timeout=20.0)
        socks.append(s)
    for s in socks:
        s.sendall(b"GET /debug/memdiag/stats HTTP/1.1\r\nHost: x\r\n\r\n")
    counts = {}
    for s in socks:
        st = status_of(read_all(s))
        counts[st] = counts.get(st, 0) + 1
        s.close()
    if set(counts) <= {200, 503} and counts.get(200, 0) >= 16:
        ok("64 simultaneous connections: %d x 200, %d x 503" % (counts.get(200, 0), counts.get(503, 0)))
    else:
        fail("64 simultaneous connections: statuses %r" % counts)
    # 64 idle connections holding every slot: newcomers get 503, and once the
    # read timeout frees the slots the server serves again.
    idle = [connect(port, timeout=20.0) for _ in range(64)]
    time.sleep(0.2)
    busy = get(port, "/debug/memdiag/stats")
    if status_of(busy) == 503:
        ok("all slots held by idle clients -> 503 for a newcomer")
    else:
        fail("all slots held: expected 503, got %r" % busy[:120])
    time.sleep(2.5)
    for s in idle:
        s.close()
    still_serving(port, "64 idle connections")

    expect(port, "POST", request(port, b"POST /debug/pprof/heap HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"),
           405, b"Allow: GET")
    expect(port, "HEAD", request(port, b"HEAD /debug/pprof/heap HTTP/1.1\r\nHost: x\r\n\r\n"), 405)
    raw = get(port, "/../../etc/passwd")
    if b"root:" in raw:
        fail("/../../etc/passwd leaked a file")
    expect(port, "GET /../../etc/passwd", raw, 404)
    expect(port, "GET /debug/pprof/../pprof/heap", get(port, "/debug/pprof/../pprof/heap"), 404)
    expect(port, "GET /debug/pprof/", get(port, "/debug/pprof/"), 404)
    expect(port, "a garbage request line", request(port, b"HELLO\r\n\r\n"), 400)
    expect(port, "seconds=abc", get(port, "/debug/pprof/heap?seconds=abc"), 400)
    expect(port, "seconds=0", get(port, "/debug/pprof/heap?seconds=0"), 400)
    expect(port, "seconds=100000", get(port, "/debug/pprof/heap?seconds=100000"), 400)

    # Disconnect mid-response: a tiny receive window, read a little, reset.
    for path in ("/debug/memdiag/flame", "/debug/pprof/heap"):
        s = connect(port, rcvbuf=1024)
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
        first = s.recv(64)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset
        s.close()
        if status_of(first) == 200:
            ok("disconnect mid-response of %s (after %d bytes)" % (path, len(first)))
        else:
            fail("disconnect mid-response of %s: first bytes %r" % (path, first))
        still_serving(port, "a disconnect mid-response of " + path)
    # A client that connects and leaves without a word.
    connect(port).close()
    still_serving(port, "a silent connect/close")


def token(port, secret):
    global AUTH
    AUTH = "Authorization: Bearer %s\r\n" % secret
    path = "/debug/memdiag/stats"
    expect(port, "no token", get(port, path), 401, b"WWW-Authenticate: Bearer")
    expect(port, "wrong token, same length", get(port, path, "Authorization: Bearer %s\r\n" % ("x" * len(secret))), 401)
    expect(port, "wrong token, a prefix", get(port, path, "Authorization: Bearer %s\r\n" % secret[:-1]), 401)
    expect(port, "right token plus a byte", get(port, path, "Authorization: Bearer %sx\r\n" % secret), 401)
    expect(port, "Basic scheme", get(port, path, "Authorization: Basic %s\r\n" % secret), 401)
    expect(port, "no token on POST", request(port, b"POST / HTTP/1.1\r\n\r\n"), 401)
    expect(port, "right token", get(port, path, "Authorization: Bearer %s\r\n" % secret), 200)
    expect(port, "right token, lowercase header", get(port, path, "authorization: bearer %s\r\n" % secret), 200)
    expect(port, "right token, unknown path", get(port, "/x", "Authorization: Bearer %s\r\n" % secret), 404)


def main():
    port = int(sys.argv[1])
    if sys.argv[2] == "clients":
        clients(port)
    elif sys.argv[2] == "token":
        token(port, sys.argv[3])
    else:
        sys.exit("usage: bad_clients.py PORT clients|token SECRET")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
