// memdiag/testing/listener.hpp - the listeners' shared core: the per-test
// scope (default budget, overrides, setup left out), the run's bookkeeping
// (test_session: failures, baselines, snapshot files) and the scopes users
// write in tests. catch2.hpp, gtest.hpp and doctest.hpp drive it.
//
// Writing a failing test's snapshot (<filesystem>, the flame graph writer) is in
// detail/testing_impl.hpp: included at the end of this header, or, with
// MEMDIAG_SEPARATE_IMPLEMENTATION (config.hpp), by memdiag/implementation.hpp only.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../budget.hpp"
#include "../config.hpp"
#include "../detail/os/atomic_file.hpp"
#include "../hook_status.hpp"
#include "../result.hpp"
#include "../stats.hpp"
#include "assertions.hpp"
#include "baseline.hpp"
#include "options.hpp"

namespace memdiag {
namespace testing {

// ---- the per-test scope and the run's bookkeeping --------------------------------

namespace detail {

/// A pausable this-thread scope: the per-test measurement and default budget.
/// Built on the budget layer's scope links so that setup_scope can take it off
/// the thread's chain and put it back with the setup's allocations left out.
class test_scope {
public:
    test_scope() = default;
    test_scope(const test_scope&) = delete;
    test_scope& operator=(const test_scope&) = delete;
    ~test_scope() { close(); }

    void open(const limits* budget, source_place where = {}) {
        close();
        breached_ = false;
        has_budget_ = budget != nullptr;
        link_.emplace();  // links hold atomics: built afresh, never assigned
        if (budget != nullptr) link_->lim = *budget;
        link_->lim.on_breach(&test_scope::record, this);
        link_->policy = breach_policy::callback;
        link_->name = "default test budget";
        link_->where = where;  // the test's own place, from the framework
        link_->process_wide = false;
#if MEMDIAG_ENABLED
        memdiag::detail::install_budget_handlers();
        state_ = memdiag::detail::push_scope(*link_);
#endif
        open_ = true;
        paused_ = 0;
    }
    /// Replaces the limits (a per-test override); counting goes on.
    void set_budget(const limits* budget) {
        if (!link_) return;
        has_budget_ = budget != nullptr;
        link_->lim = budget != nullptr ? *budget : limits{};
        link_->lim.on_breach(&test_scope::record, this);
    }
    bool is_open() const noexcept { return open_; }
    bool has_budget() const noexcept { return has_budget_; }
    limits budget() const noexcept { return link_ ? link_->lim : limits{}; }

    allocation_stats used() const noexcept {
#if MEMDIAG_ENABLED
        if (!open_) return {};
        if (paused_ > 0) return saved_;
        return memdiag::detail::scope_figures(*link_, state_);
#else
        return {};
#endif
    }
    void pause() noexcept {
        if (!open_ || paused_++ > 0) return;
#if MEMDIAG_ENABLED
        saved_ = memdiag::detail::scope_figures(*link_, state_);
        memdiag::detail::pop_scope(state_, *link_);
#endif
    }
    void resume() noexcept {
        if (!open_ || paused_ == 0 || --paused_ > 0) return;
#if MEMDIAG_ENABLED
        state_ = memdiag::detail::push_scope(*link_);
        // Counting restarts from the figures held before the pause.
        link_->start_allocations -= saved_.allocations;
        link_->start_deallocations -= saved_.deallocations;
        link_->start_bytes -= saved_.bytes_allocated;
        link_->start_freed -= saved_.bytes_freed;
#endif
    }
    /// Ends the scope: returns the figures and, when the budget was crossed
    /// (max_live_bytes included), the breach.
    allocation_stats close() noexcept {
        if (!open_) return {};
        const allocation_stats u = used();
#if MEMDIAG_ENABLED
        if (paused_ == 0) memdiag::detail::pop_scope(state_, *link_);
#endif
        open_ = false;
        paused_ = 0;
        if (has_budget_ && u.live_bytes > 0 && static_cast<std::uint64_t>(u.live_bytes) > link_->lim.live_bytes() &&
            !breached_) {
            breached_ = true;
            first_ = breach_info{};
            first_.which = limit_kind::live_bytes;
            first_.limit = link_->lim.live_bytes();
            first_.attempted = static_cast<std::uint64_t>(u.live_bytes);
            first_.at_scope_end = true;
            first_.live_allocations = u.live_allocations > 0 ? static_cast<std::uint64_t>(u.live_allocations) : 0;
            first_.budget_name = link_->name;
        }
        return u;
    }
    bool breached() const noexcept { return breached_; }
    const breach_info& breach() const noexcept { return first_; }

private:
    static void record(const breach_info& info, void* self) {
        auto* s = static_cast<test_scope*>(self);
        if (s->breached_ || !s->has_budget_) return;
        s->breached_ = true;
        s->first_ = info;
    }

    std::optional<memdiag::detail::scope_link> link_;
    [[maybe_unused]] memdiag::detail::thread_state* state_ = nullptr;  // unused under MEMDIAG_DISABLE
    allocation_stats saved_;
    bool open_ = false, has_budget_ = false, breached_ = false;
    int paused_ = 0;
    breach_info first_;
};

}  // namespace detail

/// Where a snapshot of a failing test went.
struct snapshot_files {
    std::string profile;  ///< the pprof file (.pb.gz); empty when not written
    std::string report;   ///< the text report (.txt); empty when not written
    std::string flamegraph;  ///< the flame graph page (.html); empty when not written
    std::string error;    ///< why something was not written; empty when all went well
};

/// A file name made of name: letters, digits, '.', '-' and '_' kept, runs of
/// anything else one '_', at most 120 characters, never empty nor hidden.
inline std::string sanitize_file_name(std::string_view name) {
    std::string out;
    for (char c : name) {
        const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                          c == '_' || c == '.';
        if (keep) out += c;
        else if (out.empty() || out.back() != '_') out += '_';
    }
    while (!out.empty() && (out.front() == '.' || out.front() == '_')) out.erase(out.begin());
    while (!out.empty() && (out.back() == '.' || out.back() == '_')) out.pop_back();
    if (out.size() > 120) out.resize(120);
    if (out.empty()) out = "test";
    return out;
}

/// The run's memory bookkeeping, shared by the adapters: the per-test scope,
/// baselines and snapshots. One per process (session()).
class test_session {
public:
    /// A test (one run of its body) starts: opens the per-test scope. `where`
    /// is the test's place (file and line of its definition, a string the
    /// framework keeps for the whole run), named in reports.
    void test_started(const std::string& name, source_place where = {}) {
        std::lock_guard<std::mutex> lock(mutex_);
        current_ = name;
        const settings& s = config();
        scope_.open(s.has_default_budget ? &s.default_budget : nullptr, where);
        snapshot_written_ = false;
    }

    /// The test's body has ended and it may still fail: closes the scope and
    /// returns the failures found (default budget crossed, regression against
    /// the baseline, configuration errors), one message each.
    std::vector<std::string> test_finishing() {
        std::vector<std::string> failures;
        if (!scope_.is_open()) return failures;
        const bool budgeted = scope_.has_budget();
        const limits lim = scope_.budget();
        const allocation_stats u = scope_.close();
        if (!config().errors.empty()) {
            for (const std::string& e : config().errors) failures.push_back("memdiag: configuration error: " + e);
            config().errors.clear();  // said once
        }
        if (budgeted && scope_.breached()) {
            char head[2048];  // room for the allocation's stack
            breach_info b = scope_.breach();
            b.budget_name = "test budget";
            format_breach(b, head, sizeof head);
            std::string m = head;
            m += "  test:      " + current_ + "\n";
            m += "  limits:    " + describe(lim) + "\n";
            m += "  measured:  " + u.to_string() + "\n";
            failures.push_back(m + detail::report_tail());
        }
        const std::string regression = baseline_figures(current_, baseline_entry{u.allocations, u.peak_live_bytes});
        if (!regression.empty()) failures.push_back(regression);
        return failures;
    }

    /// The run starts: loads the baseline file in check mode now, so no test
    /// pays for it (adapters call this from their run-start event).
    void run_started() {
        std::lock_guard<std::mutex> lock(baseline_mutex_);
        load_baseline();
    }

    /// Records or checks a named figure set against the baseline (per-test and
    /// per-scope). Returns a failure message, or "".
    std::string baseline_figures(const std::string& name, const baseline_entry& measured) {
        const settings& s = config();
        if (s.baseline == baseline_mode::off) return {};
        baseline_entry total, want;
        bool found = false;
        {
            std::lock_guard<std::mutex> lock(baseline_mutex_);
            // The bookkeeping lives until the end of the run: kept out of the
            // figures of the test that happens to run it, in record and check
            // mode alike, so both modes measure the same thing.
            memdiag::detail::internal_section quiet;
            if (s.baseline == baseline_mode::check) {
                load_baseline();
                if (!load_error_.empty()) {
                    if (load_error_reported_) return {};
                    load_error_reported_ = true;  // the first test that checks fails; so does the run
                }
            }
            baseline& into = s.baseline == baseline_mode::record ? recorded_ : seen_;
            auto [it, fresh] = into.entries.emplace(name, measured);
            if (!fresh) {  // a test body run again (sections): total allocations, highest peak
                it->second.allocations += measured.allocations;
                it->second.peak_bytes = std::max(it->second.peak_bytes, measured.peak_bytes);
            }
            total = it->second;
            if (s.baseline == baseline_mode::check && load_error_.empty()) {
                const auto w = expected_.entries.find(name);
                found = w != expected_.entries.end();
                if (found) want = w->second;
                else ++unrecorded_;
            }
        }
        if (!load_error_.empty()) return "memdiag: cannot check against the baseline: " + load_error_ + "\n";
        if (s.baseline == baseline_mode::record || !found) return {};
        return compare_to_baseline(name, want, total, s.tolerance_percent);
    }

    /// The test has ended (failed: by any assertion, ours included): writes
    /// its snapshot when it failed and snapshots are on, unless already written.
    void test_ended(bool failed) {
        if (failed) snapshot_now();
    }

    /// Writes the heap snapshot and text report of the current test now (the
    /// first failure of a test calls it, while its memory is still live).
    /// At most once per test. Prints where the files went; returns whether
    /// both were written.
    bool snapshot_now() {
        const settings& s = config();
        if (s.snapshot_dir.empty() || snapshot_written_) return false;
        snapshot_written_ = true;
        // The snapshot is not the test's memory: everything it allocates is
        // freed inside this section, so no count is left unbalanced.
        memdiag::detail::internal_section quiet;
        const snapshot_files files = write_snapshot(s.snapshot_dir, current_.empty() ? "test" : current_);
        if (!files.profile.empty())
            std::fprintf(stderr, "memdiag: heap snapshot of failing test '%s': %s\n", current_.c_str(),
                         files.profile.c_str());
        if (!files.report.empty())
            std::fprintf(stderr, "memdiag: text report of failing test '%s': %s\n", current_.c_str(),
                         files.report.c_str());
        if (!files.flamegraph.empty())
            std::fprintf(stderr, "memdiag: flame graph of failing test '%s': %s\n", current_.c_str(),
                         files.flamegraph.c_str());
        if (!files.error.empty())
            std::fprintf(stderr, "memdiag: snapshot of failing test '%s': %s\n", current_.c_str(), files.error.c_str());
        std::fflush(stderr);
        return files.error.empty();
    }

    /// Writes <dir>/<sanitized name>.pb.gz, .html (flame graph) and .txt (the
    /// directory is created). Defined in detail/testing_impl.hpp.
    static snapshot_files write_snapshot(const std::string& dir, const std::string& test_name);

    /// The run has ended: writes the baseline in record mode, prints notes.
    /// Returns an error message when the baseline could not be written.
    std::string run_ended() {
        const settings& s = config();
        std::string error;
        if (s.baseline == baseline_mode::record) {
            baseline merged;
            (void)merged.load(s.baseline_path);  // keep entries of tests that did not run; a missing file is fine
            for (const auto& [name, e] : recorded_.entries) merged.entries[name] = e;
            const result r = merged.save(s.baseline_path);
            if (r)
                std::fprintf(stderr, "memdiag: baseline of %zu entries recorded to %s\n", recorded_.entries.size(),
                             s.baseline_path.c_str());
            else
                error = std::string("memdiag: baseline not recorded: ") + r.message();
        } else if (s.baseline == baseline_mode::check && unrecorded_ > 0) {
            std::fprintf(stderr, "memdiag: %zu test(s)/scope(s) have no baseline entry in %s (record with MEMDIAG_BASELINE=record:PATH)\n",
                         unrecorded_, s.baseline_path.c_str());
        }
        if (!error.empty()) std::fprintf(stderr, "%s\n", error.c_str());
        return error;
    }

    /// Names the running test without opening its scope (adapters that cannot
    /// fail a test after its body: per-scope baselines still know the test).
    void set_current_test(const std::string& name) {
        std::lock_guard<std::mutex> lock(mutex_);
        current_ = name;
        snapshot_written_ = false;
    }

    /// The name of the running test ("" outside tests).
    const std::string& current_test() const noexcept { return current_; }
    /// The per-test scope (for setup_scope and test_budget).
    detail::test_scope& scope() noexcept { return scope_; }

    /// Loads the baseline file once (check mode). Lock held.
    void load_baseline() {
        if (loaded_ || config().baseline != baseline_mode::check) return;
        loaded_ = true;
        memdiag::detail::internal_section quiet;  // kept for the whole run
        const result r = expected_.load(config().baseline_path);
        if (!r) load_error_ = r.message();
    }

    /// "max_allocations=10 max_bytes=4096" for the limits that are set.
    static std::string describe(const limits& lim) {
        std::string out;
        auto add = [&](const char* name, std::uint64_t v) {
            if (v == limits::unlimited) return;
            out += (out.empty() ? "" : " ") + std::string(name) + "=" + std::to_string(v);
        };
        add("max_allocations", lim.allocations());
        add("max_bytes", lim.bytes());
        add("max_peak_bytes", lim.peak_bytes());
        add("max_live_bytes", lim.live_bytes());
        return out.empty() ? "none" : out;
    }

private:
    std::mutex mutex_, baseline_mutex_;
    std::string current_;
    detail::test_scope scope_;
    bool snapshot_written_ = false;
    baseline recorded_, expected_, seen_;
    bool loaded_ = false, load_error_reported_ = false;
    std::string load_error_;
    std::size_t unrecorded_ = 0;
};

/// The process's test session.
inline test_session& session() {
    static test_session s;
    return s;
}

/// Marks setup code: while it lives, the running test's own scope (its
/// default budget and its baseline figures) does not count this thread's
/// allocations. Explicit measurements and budget sections still count them.
class setup_scope {
public:
    setup_scope() noexcept { session().scope().pause(); }
    ~setup_scope() { session().scope().resume(); }
    setup_scope(const setup_scope&) = delete;
    setup_scope& operator=(const setup_scope&) = delete;
};

/// Sets the default budget of every test from now on (replaces MEMDIAG_TEST_BUDGET).
inline void set_default_test_budget(const limits& lim) {
    config().default_budget = lim;
    config().has_default_budget = true;
}
/// Removes the default budget.
inline void clear_default_test_budget() { config().has_default_budget = false; }
/// Overrides the running test's budget (counted since the test started).
inline void test_budget(const limits& lim) { session().scope().set_budget(&lim); }
/// Lifts the running test's budget (its figures are still measured).
inline void no_test_budget() { session().scope().set_budget(nullptr); }

/// Checks (or records) the allocations and peak bytes of a block against the
/// baseline entry "<test name>/<name>", when a baseline is in use. A
/// regression becomes a test failure through sink when the scope ends. Use
/// the adapters' MEMDIAG_BASELINE_SCOPE(name) macro.
class baseline_scope {
public:
    /// Starts measuring this thread's allocations.
    baseline_scope(std::string name, failure_sink sink, source_place where)
        : name_(std::move(name)), sink_(sink), where_(where), budget_(limits{}, "baseline scope", where) {}
    ~baseline_scope() {
        const allocation_stats u = budget_.used();
        budget_.finish();
        const std::string& test = session().current_test();
        const std::string key = test.empty() ? name_ : test + "/" + name_;
        const std::string m = session().baseline_figures(key, baseline_entry{u.allocations, u.peak_live_bytes});
        if (!m.empty() && sink_ != nullptr) sink_(m + "  measured: " + u.to_string() + "\n", where_);
    }
    baseline_scope(const baseline_scope&) = delete;
    baseline_scope& operator=(const baseline_scope&) = delete;
    /// What the scope has counted so far.
    allocation_stats used() const noexcept { return budget_.used(); }

private:
    std::string name_;
    failure_sink sink_;
    source_place where_;
    scoped_budget budget_;
};

/// Prints a one-time warning when nothing counts std containers' memory.
inline void warn_if_unhooked() {
    static bool warned = false;
    if (warned || global_hook_installed()) return;
    warned = true;
    std::fprintf(stderr,
                 "memdiag: warning: the global operator new is not replaced in this test binary, so only\n"
                 "  tracking_allocator/tracking_resource memory is counted; define MEMDIAG_REPLACE_GLOBAL_NEW\n"
                 "  before including <memdiag/global_new.hpp> in one source file.\n");
}

}  // namespace testing
}  // namespace memdiag

#if MEMDIAG_HEADER_ONLY
#include "../detail/testing_impl.hpp"
#endif
