// tests/fuzz/fuzz_options.cpp - libFuzzer target for option text from outside the
// program: MEMDIAG_SAMPLE_INTERVAL (sampler.hpp), the test integration's
// settings, budget specs and baseline files (testing/common.hpp), and sizes.
// Parts that are not in the tree yet are skipped (__has_include).
//
// Build and run with scripts/fuzz.sh; seed corpus in tests/fuzz/corpus/options.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <memdiag/env.hpp>

#if __has_include(<memdiag/sampler.hpp>)
#include <memdiag/sampler.hpp>
#define FUZZ_SAMPLER 1
#endif
#if __has_include(<memdiag/testing/common.hpp>)
#include <memdiag/testing/common.hpp>
#define FUZZ_TESTING 1
#endif

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const std::string terminated(text);  // environment values are C strings

    (void)memdiag::env::parse_size(text);

#ifdef FUZZ_SAMPLER
    const memdiag::sample_interval_parse r = memdiag::parse_sample_interval(terminated.c_str());
    if (r.ok && (r.value < 1 || r.value > memdiag::max_sample_interval)) __builtin_trap();
    if (!r.ok && (r.error == nullptr || r.error[0] == '\0')) __builtin_trap();
#endif

#ifdef FUZZ_TESTING
    namespace t = memdiag::testing;
    memdiag::limits lim;
    (void)t::parse_budget_spec(text, lim);

    // "name=value" as the command line and the environment give settings.
    const std::size_t eq = text.find('=');
    t::settings s;
    (void)t::detail::apply_setting(s, text.substr(0, eq), eq == std::string_view::npos ? std::string_view{} : text.substr(eq + 1),
                           "fuzz");
    (void)t::parse_option(terminated.c_str());

    // A baseline file: what parses must survive a write and a re-read unchanged.
    t::baseline b;
    if (b.parse(text, "fuzz").ok()) {
        t::baseline again;
        if (!again.parse(b.to_text(), "again").ok()) __builtin_trap();
        if (again.entries.size() != b.entries.size()) __builtin_trap();
        for (const auto& [name, e] : b.entries) {
            auto it = again.entries.find(name);
            if (it == again.entries.end() || it->second.allocations != e.allocations ||
                it->second.peak_bytes != e.peak_bytes)
                __builtin_trap();
        }
    }
#endif
    return 0;
}
