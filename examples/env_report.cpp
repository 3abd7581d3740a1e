// examples/env_report.cpp - print this process's memory world and check it.
//
// Usage: env_report [--json] [--check] [--strict]
//                   [--require-64bit] [--require-memory=SIZE] [--require-address-space=SIZE]
//
//   (no option)                  the report as text: key=value  # detail; source
//   --json                       the report as JSON (checks included when run)
//   --check                      also run the default checks (32-bit build, rlimits,
//                                container limit, overcommit) and print their results
//   --require-64bit              check that this is a 64-bit build
//   --require-memory=SIZE        check that SIZE bytes of memory may be used
//   --require-address-space=SIZE check that SIZE bytes of address space may be mapped
//   --strict                     count warnings as failures
// SIZE is bytes with an optional binary unit: 4096, 512M, 8G, 1.5GiB.
// The --require-* options imply --check.
//
// Exit status: 0 when every check passed (or none ran), 1 when a check
// failed (or warned, with --strict), 2 on a usage error.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <memdiag/env.hpp>

namespace {

int usage(const char* why) {
    std::fprintf(stderr,
                 "env_report: %s\nusage: env_report [--json] [--check] [--strict] [--require-64bit]\n"
                 "                  [--require-memory=SIZE] [--require-address-space=SIZE]\n",
                 why);
    return 2;
}

// Returns the size after "--option=" or unknown.
memdiag::env::fact<std::uint64_t> size_option(const char* arg, const char* option) {
    return memdiag::env::parse_size(arg + std::strlen(option));
}

}  // namespace

int main(int argc, char** argv) {
    bool json = false, run_checks = false, strict = false, want_64bit = false;
    std::vector<std::uint64_t> memory, address_space;
    for (int i = 1; i < argc; ++i) {
        const char* a = argv[i];
        if (std::strcmp(a, "--json") == 0) {
            json = true;
        } else if (std::strcmp(a, "--check") == 0) {
            run_checks = true;
        } else if (std::strcmp(a, "--strict") == 0) {
            strict = true;
        } else if (std::strcmp(a, "--require-64bit") == 0) {
            want_64bit = run_checks = true;
        } else if (std::strncmp(a, "--require-memory=", 17) == 0) {
            auto n = size_option(a, "--require-memory=");
            if (!n) return usage(("--require-memory: " + n.reason).c_str());
            memory.push_back(n.value);
            run_checks = true;
        } else if (std::strncmp(a, "--require-address-space=", 24) == 0) {
            auto n = size_option(a, "--require-address-space=");
            if (!n) return usage(("--require-address-space: " + n.reason).c_str());
            address_space.push_back(n.value);
            run_checks = true;
        } else if (std::strcmp(a, "--help") == 0 || std::strcmp(a, "-h") == 0) {
            usage("print the memory environment");
            return 0;
        } else {
            return usage((std::string("unknown option ") + a).c_str());
        }
    }

    memdiag::env::report report = memdiag::env::collect();
    std::vector<memdiag::env::check> checks;
    if (run_checks) {
        checks = memdiag::env::run_default_checks(report);
        if (want_64bit) checks.push_back(memdiag::env::require_64bit(report));
        for (std::uint64_t n : memory) checks.push_back(memdiag::env::require_memory(n, report));
        for (std::uint64_t n : address_space) checks.push_back(memdiag::env::require_address_space(n, report));
    }

    if (json) {
        std::fputs(report.to_json(checks).c_str(), stdout);
    } else {
        std::fputs(report.to_text().c_str(), stdout);
        if (!checks.empty()) std::fputs("\n", stdout);
        for (const memdiag::env::check& c : checks) std::fputs(c.to_text().c_str(), stdout);
    }
    memdiag::env::severity worst = memdiag::env::worst(checks);
    bool failed = worst == memdiag::env::severity::failure || (strict && worst == memdiag::env::severity::warning);
    return failed ? 1 : 0;
}
