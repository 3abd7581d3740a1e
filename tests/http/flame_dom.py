#!/usr/bin/env python3
"""tests/http/flame_dom.py - checks a flame graph page as Chromium rendered it
(the output of `chromium --headless --dump-dom`). Used by flamegraph_check.sh.

    flame_dom.py inuse DOM.html    # default view: in-use bytes
    flame_dom.py alloc DOM.html    # opened with #alloc: allocated bytes
    flame_dom.py zoom  DOM.html    # after a click on alloc_c() and a search for "alloc_"

Known sites (http_fixture): alloc_a 1 MiB, alloc_b 2 MiB, alloc_c 4 MiB,
void tagged_site<int&>() 256 KiB, all in use; churn() 1 MiB allocated, freed.
"""
import html.parser
import sys

KIB, MIB = 1024, 1024 * 1024
SITES = {"alloc_a()": MIB, "alloc_b()": 2 * MIB, "alloc_c()": 4 * MIB, "void tagged_site<int&>()": 256 * KIB}
W = 1200.0
failures = 0


def ok(msg):
    print("ok:   " + msg)


def fail(msg):
    global failures
    failures += 1
    print("FAIL: " + msg, file=sys.stderr)


class Dom(html.parser.HTMLParser):
    """Collects the frames (g.frame with their rect), element ids' text and body attributes."""

    def __init__(self):
        super().__init__()
        self.frames = []  # dicts: name, bytes, objects, width, x, classes
        self.current = None
        self.text_of = {}
        self.capture = None
        self.body = {}
        self.tags = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "body":
            self.body = a
        if tag == "g" and "frame" in a.get("class", "").split():
            self.current = {"name": a.get("data-name"), "bytes": int(a.get("data-bytes", "0")),
                            "objects": int(a.get("data-objects", "0")), "classes": a.get("class", "").split()}
            self.frames.append(self.current)
        elif tag == "rect" and self.current is not None:
            self.current["width"] = float(a["width"])
            self.current["x"] = float(a["x"])
        if a.get("id") in ("matched", "tip"):
            self.capture = a["id"]
            self.text_of[self.capture] = ""

    def handle_endtag(self, tag):
        if tag == "g":
            self.current = None
        if tag in ("span", "div"):
            self.capture = None

    def handle_data(self, data):
        if self.capture:
            self.text_of[self.capture] += data


def frame(dom, name):
    found = [f for f in dom.frames if f["name"] == name]
    return found[0] if len(found) == 1 else None


def check_widths(dom, sites, total):
    for name, want in sites.items():
        f = frame(dom, name)
        if f is None:
            fail("no single frame named %r" % name)
            continue
        if f["bytes"] != want:
            fail("%s: data-bytes %d, expected %d" % (name, f["bytes"], want))
        expect = W * want / total
        err = abs(f["width"] - expect) / expect
        if err <= 0.01:
            ok("%s: width %.3f of %d px for %d of %d bytes (off by %.4f%%)" % (name, f["width"], W, want, total, 100 * err))
        else:
            fail("%s: width %.3f, expected %.3f (%d of %d bytes): off by %.2f%%" % (name, f["width"], expect, want, total, 100 * err))


def main():
    mode, path = sys.argv[1], sys.argv[2]
    raw = open(path, encoding="utf-8").read()
    dom = Dom()
    dom.feed(raw)
    if not dom.frames:
        fail("no frames rendered (did the script run?)")
        sys.exit(1)
    root = frame(dom, "all")
    if root is None or abs(root["width"] - W) > 1e-6:
        fail("the root frame 'all' does not span %d px: %r" % (W, root))
        sys.exit(1)
    total = root["bytes"]

    # Escaping: the name reaches the DOM as text, never as markup.
    if mode == "zoom":
        pass  # zoomed into alloc_c(): tagged_site is not drawn
    elif "tagged_site&lt;int&amp;&gt;()" in raw:
        ok("'void tagged_site<int&>()' is text in the DOM (serialized &lt;int&amp;&gt;)")
    else:
        fail("tagged_site<int&> is not escaped text in the rendered DOM")
    if "int" in dom.tags or "int&" in dom.tags:
        fail("a name was parsed as an <int> element")

    if mode == "inuse":
        if dom.body.get("data-view") != "inuse":
            fail("view is %r, expected inuse" % dom.body.get("data-view"))
        check_widths(dom, SITES, total)
        if frame(dom, "churn()") is not None:
            fail("churn() (all freed) has an in-use frame")
        else:
            ok("churn() (all freed) has no in-use frame")
        if total < sum(SITES.values()) or total > sum(SITES.values()) + 64 * KIB:
            fail("in-use total %d, expected the sites' %d plus a little stdio" % (total, sum(SITES.values())))
    elif mode == "alloc":
        if dom.body.get("data-view") != "alloc":
            fail("view is %r, expected alloc (#alloc)" % dom.body.get("data-view"))
        sites = dict(SITES)
        sites["churn()"] = MIB
        check_widths(dom, sites, total)
    elif mode == "zoom":
        c = frame(dom, "alloc_c()")
        if c and abs(c["width"] - W) < 1e-6 and frame(dom, "alloc_a()") is None:
            ok("after a click on alloc_c(), it spans the full width and its siblings are gone")
        else:
            fail("zoom: alloc_c() %r, alloc_a() %r" % (c, frame(dom, "alloc_a()")))
        if c and "match" in c["classes"]:
            ok("search 'alloc_' highlights alloc_c()")
        else:
            fail("search: alloc_c() not highlighted")
        matched = dom.text_of.get("matched", "")
        if matched.startswith("matched: 7.00 MiB ("):
            ok("search share: %r" % matched)
        else:
            fail("search share: %r, expected 'matched: 7.00 MiB (...)'" % matched)
        tip = dom.text_of.get("tip", "")
        if "alloc_c()" in tip and "4194304 B" in tip and "64 objects" in tip and "% of in-use bytes" in tip:
            ok("tooltip: %r" % tip.replace("\n", " | "))
        else:
            fail("tooltip: %r" % tip)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
