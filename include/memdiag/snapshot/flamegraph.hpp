// memdiag/snapshot/flamegraph.hpp - a heap snapshot as a flame graph you can
// open in a browser: one self-contained HTML file.
//
//     memdiag::snapshot::write_flamegraph(view, "heap.html");   // from any heap_view
//     memdiag::write_heap_flamegraph("heap.html");              // the live profiler (heap_flamegraph.hpp)
//
// The file holds the call tree as JSON data (names escaped for HTML and JSON:
// C++ names are full of '<', '>' and '&') and a small inline script that draws
// it as inline SVG: root at the bottom, each frame as wide as its share of the
// bytes. Two views, in use (live bytes, the default) and allocated (every byte
// allocated since the profiler started); `#alloc` at the end of the URL opens
// the second. Click a frame to zoom into it, click the bottom bar to zoom out;
// the search box highlights matching frames and prints their share; hovering
// shows bytes, objects and share. Nothing is fetched: no external script,
// style, font or image, so the file opens offline and from a mail attachment.
//
// Frames are merged by function name under the same parent (two call sites in
// one function are one frame), as flamegraph.pl does. Values are the scaled
// estimates pprof shows (scale_heap_sample). Names come from the in-process
// symbolizer; unknown frames show as hex addresses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <new>

#include "../config.hpp"
#include "../detail/internal_alloc.hpp"
#include "../detail/internal_vector.hpp"
#include "../detail/internal_section.hpp"
#include "../detail/os/atomic_file.hpp"
#include "../detail/symbols.hpp"
#include "../result.hpp"
#include "pprof.hpp"

namespace memdiag {
namespace snapshot {
namespace flame_impl {

/// Appends text as the inside of a JSON string that is also safe inside an
/// HTML <script> element: '<', '>' and '&' become \u escapes, so no name can
/// close the element or start markup; other bytes outside printable ASCII too.
inline void append_json_text(detail::internal_string& out, const char* p, std::size_t n) {
    static const char hex[] = "0123456789abcdef";
    for (std::size_t i = 0; i < n; ++i) {
        const auto c = static_cast<unsigned char>(p[i]);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c >= 0x7f || c == '<' || c == '>' || c == '&' || c == '\'') {
            // Bytes >= 0x80 are shown as Latin-1: symbol names are ASCII in practice.
            out += "\\u00";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
}

/// Appends text escaped for HTML element content and attribute values.
inline void append_html_text(detail::internal_string& out, const char* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        switch (p[i]) {
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '&': out += "&amp;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&#39;"; break;
            default: out += p[i];
        }
    }
}

inline void append_int(detail::internal_string& out, std::int64_t v) {
    char buf[32];
    const int n = std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
    out.append(buf, static_cast<std::size_t>(n > 0 ? n : 0));
}

/// One frame of the merged call tree.
struct node {
    std::uint32_t parent;  ///< index of the parent; the root (index 0) points at itself
    std::uint32_t name;    ///< index into the name list
    std::int64_t inuse_bytes, inuse_objects, alloc_bytes, alloc_objects;
};

/// (parent, name) -> child index, open addressing; 0 marks a free slot (the
/// root is never anybody's child).
class child_index {
public:
    std::uint32_t find_or_add(std::uint32_t parent, std::uint32_t name, detail::internal_vector<node>& nodes) {
        if (2 * (count_ + 1) > slots_.size()) grow(nodes);
        const std::size_t mask = slots_.size() - 1;
        for (std::size_t i = hash(parent, name) & mask;; i = (i + 1) & mask) {
            const std::uint32_t at = slots_[i];
            if (at == 0) {
                nodes.push_back(node{parent, name, 0, 0, 0, 0});
                slots_[i] = static_cast<std::uint32_t>(nodes.size() - 1);
                ++count_;
                return slots_[i];
            }
            if (nodes[at].parent == parent && nodes[at].name == name) return at;
        }
    }

private:
    static std::uint64_t hash(std::uint32_t parent, std::uint32_t name) noexcept {
        return pprof_impl::hash_word((static_cast<std::uint64_t>(parent) << 32) | name);
    }
    void grow(const detail::internal_vector<node>& nodes) {
        const std::size_t cap = slots_.empty() ? 1024 : 2 * slots_.size();
        slots_.assign(cap, 0);
        for (std::size_t k = 1; k < nodes.size(); ++k) {
            std::size_t i = hash(nodes[k].parent, nodes[k].name) & (cap - 1);
            while (slots_[i] != 0) i = (i + 1) & (cap - 1);
            slots_[i] = static_cast<std::uint32_t>(k);
        }
    }
    detail::internal_vector<std::uint32_t> slots_;
    std::size_t count_ = 0;
};

// The page's script: builds the SVG from the JSON data. Kept small and
// dependency-free; every name reaches the DOM through textContent or
// setAttribute, never through HTML parsing.
inline const char page_script[] = R"JS(
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("memdiag-data").textContent);
  var N = D.nodes.length, kids = [], i;
  for (i = 0; i < N; i++) kids.push([]);
  for (i = 1; i < N; i++) kids[D.nodes[i][0]].push(i);
  var NS = "http://www.w3.org/2000/svg", W = 1200, H = 17;
  var svg = document.getElementById("flame"), tip = document.getElementById("tip");
  var view = location.hash === "#alloc" ? "alloc" : "inuse", zoom = 0, term = "";
  function bytes(n) { return D.nodes[n][view === "inuse" ? 2 : 4]; }
  function objects(n) { return D.nodes[n][view === "inuse" ? 3 : 5]; }
  function name(n) { return D.names[D.nodes[n][1]]; }
  function human(b) {
    var u = ["B", "KiB", "MiB", "GiB", "TiB"], k = 0, v = b;
    while (Math.abs(v) >= 1024 && k < 4) { v /= 1024; k++; }
    return (k ? v.toFixed(2) : String(v)) + " " + u[k];
  }
  function depthOf(n) { var d = 0; while (n !== 0) { n = D.nodes[n][0]; d++; } return d; }
  function el(tag, attrs) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  function color(n) {
    var s = name(n), h = 0;
    for (var j = 0; j < s.length; j++) h = (h * 31 + s.charCodeAt(j)) >>> 0;
    return "hsl(" + (20 + h % 30) + "," + (70 + h % 20) + "%," + (55 + (h >> 8) % 15) + "%)";
  }
  function render() {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var total = bytes(zoom), base = depthOf(zoom), frames = [], maxd = base;
    // Ancestors of the zoomed frame span the whole width (click one to zoom out).
    for (var a = zoom; ; a = D.nodes[a][0]) { frames.push([a, 0, W, depthOf(a)]); if (a === 0) break; }
    var stack = [[zoom, 0, base]];
    while (stack.length) {
      var top = stack.pop(), n = top[0], x = top[1], d = top[2];
      var ks = kids[n].slice().sort(function (p, q) { return name(p) < name(q) ? -1 : name(p) > name(q) ? 1 : 0; });
      for (var c = 0; c < ks.length; c++) {
        var b = bytes(ks[c]);
        if (b <= 0 || total <= 0) continue;
        var w = b / total * W;
        if (w >= 0.05) { frames.push([ks[c], x, w, d + 1]); stack.push([ks[c], x, d + 1]); }
        if (d + 1 > maxd) maxd = d + 1;
        x += w;
      }
    }
    var height = (maxd + 1) * H + 4;
    svg.setAttribute("viewBox", "0 0 " + W + " " + height);
    svg.setAttribute("height", height);
    var rootBytes = bytes(0), matched = 0;
    for (var f = 0; f < frames.length; f++) {
      var n2 = frames[f][0], x2 = frames[f][1], w2 = frames[f][2], y = height - (frames[f][3] + 1) * H;
      var nm = name(n2), hit = term !== "" && nm.indexOf(term) >= 0;
      var g = el("g", {"class": "frame" + (hit ? " match" : ""), "data-node": n2, "data-name": nm,
                       "data-bytes": bytes(n2), "data-objects": objects(n2)});
      var t = document.createElementNS(NS, "title");
      t.textContent = nm;
      g.appendChild(t);
      g.appendChild(el("rect", {x: x2.toFixed(4), y: y, width: w2.toFixed(4), height: H - 1, rx: 2,
                                fill: hit ? "#e040e0" : (n2 === 0 ? "#c8c8c8" : color(n2))}));
      if (w2 > 30) {
        var label = el("text", {x: (x2 + 3).toFixed(2), y: y + H - 5});
        var fit = Math.floor((w2 - 6) / 7);
        label.textContent = nm.length > fit ? nm.slice(0, Math.max(fit - 2, 0)) + ".." : nm;
        g.appendChild(label);
      }
      svg.appendChild(g);
    }
    if (term !== "") {
      // Share of matching frames, each byte counted once (outermost matches only).
      var seen = function (n) { for (var p = D.nodes[n][0]; p !== 0; p = D.nodes[p][0]) if (name(p).indexOf(term) >= 0) return true; return false; };
      for (i = 1; i < N; i++) if (name(i).indexOf(term) >= 0 && !seen(i)) matched += bytes(i);
      document.getElementById("matched").textContent =
        "matched: " + human(matched) + " (" + (rootBytes ? (100 * matched / rootBytes).toFixed(2) : "0") + "%)";
    } else {
      document.getElementById("matched").textContent = "";
    }
    document.getElementById("inuse").disabled = view === "inuse";
    document.getElementById("alloc").disabled = view === "alloc";
    document.body.setAttribute("data-view", view);
    document.body.setAttribute("data-rendered", frames.length);
  }
  function frameOf(e) {
    for (var t = e.target; t && t !== svg; t = t.parentNode) if (t.getAttribute && t.getAttribute("data-node") !== null) return t;
    return null;
  }
  svg.addEventListener("click", function (e) {
    var g = frameOf(e);
    if (g) { zoom = +g.getAttribute("data-node"); render(); }
  });
  svg.addEventListener("mousemove", function (e) {
    var g = frameOf(e);
    if (!g) { tip.style.display = "none"; return; }
    var n = +g.getAttribute("data-node"), root = bytes(0);
    tip.textContent = name(n) + "\n" + human(bytes(n)) + " (" + bytes(n) + " B), " + objects(n) +
      " objects, " + (root ? (100 * bytes(n) / root).toFixed(2) : "0") + "% of " +
      (view === "inuse" ? "in-use" : "allocated") + " bytes";
    tip.style.display = "block";
    tip.style.left = (e.pageX + 12) + "px";
    tip.style.top = (e.pageY + 12) + "px";
  });
  svg.addEventListener("mouseleave", function () { tip.style.display = "none"; });
  document.getElementById("inuse").addEventListener("click", function () { view = "inuse"; zoom = 0; render(); });
  document.getElementById("alloc").addEventListener("click", function () { view = "alloc"; zoom = 0; render(); });
  document.getElementById("search").addEventListener("input", function (e) { term = e.target.value; render(); });
  document.getElementById("reset").addEventListener("click", function () { zoom = 0; render(); });
  render();
})();
)JS";

}  // namespace flame_impl

/// Appends the flame-graph page of `view` to out. `names` (nullptr: hex
/// addresses only) has `function_name(address)` returning a string-like value,
/// empty when unknown, as in encode_profile_proto. `title` is shown escaped.
template <class Names>
void flamegraph_html_with(const heap_view& view, detail::internal_string& out, Names* names,
                          const char* title = "memdiag heap") {
    using namespace flame_impl;
    detail::internal_vector<node> nodes;
    nodes.push_back(node{0, 0, 0, 0, 0, 0});
    detail::internal_string name_chars;             // all names, back to back
    detail::internal_vector<std::size_t> name_at;   // name index -> offset; a final end offset
    pprof_impl::address_map name_of_address;        // frame address -> name index + 1
    pprof_impl::string_table distinct;              // name text -> index (index 0 is "")
    detail::internal_vector<std::uint32_t> name_of_string;  // distinct index -> name index + 1
    auto add_name = [&](const char* p, std::size_t n) -> std::uint32_t {
        const std::uint32_t s = distinct.intern(p, n);
        if (name_of_string.size() <= s) name_of_string.resize(s + 1, 0);
        if (name_of_string[s] == 0) {
            name_at.push_back(name_chars.size());
            name_chars.append(p, n);
            name_of_string[s] = static_cast<std::uint32_t>(name_at.size());
        }
        return name_of_string[s] - 1;
    };
    add_name("all", 3);  // the root's name

    child_index children;
    for (std::size_t si = 0; si < view.count; ++si) {
        const heap_sample& s = view.samples[si];
        std::int64_t v[4];
        scaled_values(s, view.sample_interval, v);
        std::uint32_t at = 0;
        auto add_values = [&](node& nd) {
            nd.alloc_objects += v[0], nd.alloc_bytes += v[1], nd.inuse_objects += v[2], nd.inuse_bytes += v[3];
        };
        add_values(nodes[0]);
        for (std::size_t f = s.depth; f-- > 0;) {  // root first
            const std::uintptr_t address = s.stack[f] - 1;  // the call site
            std::uint32_t nm = name_of_address.find(address);
            if (nm == 0) {
                bool named = false;
                if (names != nullptr) {
                    detail::internal_section guard;  // symbolizers call into libc and the demangler
                    const auto& text = names->function_name(address);
                    if (text.size() != 0) {
                        nm = add_name(text.data(), text.size()) + 1;
                        named = true;
                    }
                }
                if (!named) {
                    char hex[2 + 2 * sizeof(std::uintptr_t) + 1];
                    const int k = std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>(address));
                    nm = add_name(hex, static_cast<std::size_t>(k > 0 ? k : 0)) + 1;
                }
                name_of_address.insert(address, nm);
            }
            at = children.find_or_add(at, nm - 1, nodes);
            add_values(nodes[at]);
        }
    }
    name_at.push_back(name_chars.size());

    out += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
           "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
           "script-src 'unsafe-inline'; style-src 'unsafe-inline'\">\n<title>";
    const char* t = title != nullptr ? title : "";
    append_html_text(out, t, std::char_traits<char>::length(t));
    out += "</title>\n<style>\n"
           "body{font:12px sans-serif;margin:8px}svg{width:100%;display:block}"
           "text{font:11px monospace;pointer-events:none}.frame:hover rect{stroke:#000;stroke-width:.5}"
           "#tip{position:absolute;display:none;white-space:pre;background:#ffe;border:1px solid #888;"
           "padding:4px;font:12px monospace;pointer-events:none}\n</style></head>\n<body>\n<h1 style=\"font-size:16px\">";
    append_html_text(out, t, std::char_traits<char>::length(t));
    out += "</h1>\n<p><button id=\"inuse\">in use</button> <button id=\"alloc\">allocated</button> "
           "<button id=\"reset\">reset zoom</button> <input id=\"search\" placeholder=\"search\"> "
           "<span id=\"matched\"></span></p>\n"
           "<p>Sampling interval: ";
    append_int(out, static_cast<std::int64_t>(view.sample_interval));
    out += " bytes (1: every allocation; values are scaled estimates). In use: ";
    append_int(out, nodes[0].inuse_bytes);
    out += " bytes in ";
    append_int(out, nodes[0].inuse_objects);
    out += " objects; allocated: ";
    append_int(out, nodes[0].alloc_bytes);
    out += " bytes in ";
    append_int(out, nodes[0].alloc_objects);
    out += " objects. Click a frame to zoom.</p>\n"
           "<noscript><p>This flame graph is drawn by an inline script: enable JavaScript.</p></noscript>\n"
           "<svg id=\"flame\" xmlns=\"http://www.w3.org/2000/svg\" width=\"1200\" height=\"20\"></svg>\n"
           "<div id=\"tip\"></div>\n"
           "<script id=\"memdiag-data\" type=\"application/json\">{\"names\":[";
    for (std::size_t k = 0; k + 1 < name_at.size(); ++k) {
        if (k != 0) out += ',';
        out += '"';
        append_json_text(out, name_chars.data() + name_at[k], name_at[k + 1] - name_at[k]);
        out += '"';
    }
    out += "],\"nodes\":[";
    for (std::size_t k = 0; k < nodes.size(); ++k) {
        const node& nd = nodes[k];
        if (k != 0) out += ',';
        out += '[';
        append_int(out, nd.parent);
        out += ',';
        append_int(out, nd.name);
        out += ',';
        append_int(out, nd.inuse_bytes);
        out += ',';
        append_int(out, nd.inuse_objects);
        out += ',';
        append_int(out, nd.alloc_bytes);
        out += ',';
        append_int(out, nd.alloc_objects);
        out += ']';
    }
    out += "]}</script>\n<script>";
    out += page_script;
    out += "</script>\n</body></html>\n";
}

/// Appends the flame-graph page of `view` to out, names from the in-process
/// symbolizer. May throw std::bad_alloc (internal memory exhausted).
inline void flamegraph_html(const heap_view& view, detail::internal_string& out, const char* title = "memdiag heap") {
    detail::internal_section guard;  // ELF reading and demangling allocate
    detail::symbolizer names;
    flamegraph_html_with(view, out, &names, title);
}

/// Writes the flame graph of `view` as one self-contained HTML file at path
/// (0600, never through a symlink, temporary file + rename). Open it in any
/// browser: nothing is fetched from the network.
inline result write_flamegraph(const heap_view& view, const char* path) noexcept {
    if (path == nullptr || path[0] == '\0') return result::failure("cannot write flame graph: empty path");
    detail::internal_section guard;
#if MEMDIAG_HAS_EXCEPTIONS
    try {
#endif
        detail::internal_string html;
        flamegraph_html(view, html);
        return detail::write_file_atomically(path, html.data(), html.size());
#if MEMDIAG_HAS_EXCEPTIONS
    } catch (const std::bad_alloc&) {
        return result::failuref("cannot write '%s': out of memory while drawing the flame graph", path);
    }
#endif
}

}  // namespace snapshot
}  // namespace memdiag
