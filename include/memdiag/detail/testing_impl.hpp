// memdiag/detail/testing_impl.hpp - the definitions behind testing/listener.hpp
// that need <filesystem> and the snapshot writers: a failing test's heap
// profile, flame graph and text report. Header-only, testing/listener.hpp
// includes this at its end; with MEMDIAG_SEPARATE_IMPLEMENTATION only
// memdiag/implementation.hpp does.
#pragma once

#include <string>

#if __has_include(<filesystem>)
#include <filesystem>
#include <system_error>
#endif

#include "../config.hpp"
#include "../result.hpp"
#include "../testing/listener.hpp"
#include "os/atomic_file.hpp"
#if MEMDIAG_TESTING_HEAP_PROFILE
#include "../heap_flamegraph.hpp"
#include "../heap_profile.hpp"
#endif

namespace memdiag {
namespace testing {

MEMDIAG_IMPL snapshot_files test_session::write_snapshot(const std::string& dir, const std::string& test_name) {
    snapshot_files files;
#if defined(__cpp_lib_filesystem) || __has_include(<filesystem>)
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
        files.error = "cannot create directory " + dir + ": " + ec.message();
        return files;
    }
#endif
    const std::string base = dir + "/" + sanitize_file_name(test_name);
    std::string text = "memdiag report of failing test: " + test_name + "\n" + environment_facts() + "\n";
    text += "process: " + process_stats().to_string() + "\n";
#if MEMDIAG_TESTING_HEAP_PROFILE && MEMDIAG_ENABLED
    const result r = write_heap_profile((base + ".pb.gz").c_str());
    if (r) files.profile = base + ".pb.gz";
    else files.error = std::string("heap profile not written: ") + r.message();
    if (r) {  // the same heap as a page to open in a browser
        const result f = write_heap_flamegraph((base + ".html").c_str());
        if (f) files.flamegraph = base + ".html";
        else files.error = std::string("flame graph not written: ") + f.message();
    }
    text += "\n" + detail::to_std_string(heap_report(config().top_sites > 0 ? config().top_sites : 10));
#else
    files.error = "heap profile not written: no heap profiler in this memdiag";
#endif
    const result t = memdiag::detail::write_file_atomically((base + ".txt").c_str(), text.data(), text.size());
    if (t) files.report = base + ".txt";
    else files.error += (files.error.empty() ? "" : "; ") + std::string("text report not written: ") + t.message();
    return files;
}

}  // namespace testing
}  // namespace memdiag
