// examples/budget_guard.cpp - guard a block of code with a memory budget.
//
// A "parser" that should allocate little is run under a budget; a regression
// makes it allocate per token, the budget catches it and says what happened,
// with the allocation's stack. With MEMDIAG_DUMP_DIR set, the breach also
// writes a heap snapshot there. Also shows measure(), allocs_per_run() and a
// leak check.
#define MEMDIAG_REPLACE_GLOBAL_NEW  // this file is the program's one definition of the hook
#include <memdiag/global_new.hpp>
#include <memdiag/heap_profile.hpp>
#include <memdiag/memdiag.hpp>

#include <cstdio>
#include <string>
#include <vector>

namespace {

// Splits on spaces. `copy_tokens` is the regression: one string per token.
std::size_t parse(const std::string& input, bool copy_tokens) {
    std::vector<std::string> tokens;
    std::size_t count = 0, start = 0;
    for (std::size_t i = 0; i <= input.size(); ++i) {
        if (i == input.size() || input[i] == ' ') {
            if (copy_tokens) tokens.emplace_back(input.substr(start, i - start) + " (copied for no reason)");
            ++count;
            start = i + 1;
        }
    }
    return count;
}

}  // namespace

int main() {
    std::string input;
    for (int i = 0; i < 64; ++i) input += "token ";

    const memdiag::allocation_stats good = memdiag::measure([&] { parse(input, false); });
    std::printf("parse without copies: %llu allocations, %llu bytes\n",
                static_cast<unsigned long long>(good.allocations),
                static_cast<unsigned long long>(good.bytes_allocated));
    std::printf("allocations per run: %.1f (regressed version: %.1f)\n",
                memdiag::allocs_per_run(20, [&] { parse(input, false); }),
                memdiag::allocs_per_run(20, [&] { parse(input, true); }));

    // Record every allocation, so a breach can leave a complete heap snapshot.
    memdiag::heap_profiler::start(memdiag::profile_options{}.sample_interval(1));

    std::printf("\nparsing under a budget of 8 allocations and 4 KiB:\n");
    std::fflush(stdout);
    try {
        memdiag::scoped_budget guard{
            memdiag::limits{}.max_allocations(8).max_bytes(4096).dump_on_breach(), "parse", MEMDIAG_HERE};
        parse(input, true);
        std::printf("within budget\n");
    } catch (const memdiag::budget_exceeded& breach) {
        std::printf("%s", breach.what());
    }

    std::printf("\na leak check around code that forgets to free:\n");
    std::fflush(stdout);
    std::string* forgotten = nullptr;
    {
        memdiag::leak_check check{memdiag::breach_policy::report, "request", MEMDIAG_HERE};
        forgotten = new std::string(200, 'x');
    }  // prints the leak report to stderr
    delete forgotten;
    return 0;
}
