// memdiag/heap_flamegraph.hpp - the live heap profiler's snapshot as a flame
// graph page (snapshot/flamegraph.hpp draws it).
//
//     memdiag::heap_profiler::start();
//     ...
//     memdiag::write_heap_flamegraph("heap.html");   // open in a browser; nothing is fetched
#pragma once

#include <new>

#include "config.hpp"
#include "detail/internal_alloc.hpp"
#include "detail/internal_section.hpp"
#include "detail/os/atomic_file.hpp"
#include "detail/heap_snapshot.hpp"
#include "heap_profile.hpp"
#include "result.hpp"
#include "snapshot/flamegraph.hpp"

namespace memdiag {

/// Writes the recorded heap as a self-contained flame-graph page (in-use and
/// allocated views, zoom, search, tooltips), created 0600 via a temporary file
/// and rename, never through a symlink. Works while running or after stop();
/// fails (as a value) before any start() or on IO errors. Never allocates
/// through the observed heap.
inline result write_heap_flamegraph(const char* path) noexcept {
#if MEMDIAG_ENABLED
    if (path == nullptr || path[0] == '\0') return result::failure("cannot write flame graph: empty path");
    detail::internal_section quiet;
#if MEMDIAG_HAS_EXCEPTIONS
    try {
#endif
        detail::heapprof::snapshot_data snap;
        if (!detail::heapprof::take_snapshot(snap))
            return result::failuref("cannot write '%s': the heap profiler was never started", path);
        detail::internal_string html;
        snapshot::flamegraph_html_with(snap.view(), html, &snap.names, "memdiag heap");
        return detail::write_file_atomically(path, html.data(), html.size());
#if MEMDIAG_HAS_EXCEPTIONS
    } catch (const std::bad_alloc&) {
        return result::failuref("cannot write '%s': out of memory while drawing the flame graph", path);
    }
#endif
#else
    (void)path;
    return result::failure("heap profiling is disabled (MEMDIAG_DISABLE)");
#endif
}

}  // namespace memdiag
