// tests/breach/dlclose_test.cpp - issue 12 item 3: a process-wide budget that
// breaches in one thread while another thread dlopens and dlcloses a plugin
// whose constructor allocates and destructor frees. The breach path must not
// call out (stack walk, symbolizer, dladdr, callback) while holding the
// process-scope lock: the loader holds its lock while the plugin's code
// allocates and frees, which takes the process-scope lock. A deadlock is
// caught by a watchdog (SIGALRM) and fails the test; so do wrong counts.
//
// Exit: 0 passed, 1 failed (deadlock or counts), 77 the hook is not active here.
#define MEMDIAG_REPLACE_GLOBAL_NEW
#define MEMDIAG_REPLACE_MALLOC
#include <memdiag/global_new.hpp>

#include <memdiag/budget.hpp>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <thread>

#include <dlfcn.h>
#include <unistd.h>

#ifndef MEMDIAG_BREACH_PLUGIN
#error "MEMDIAG_BREACH_PLUGIN must name the plugin's path"
#endif

namespace {
std::atomic<long> g_callbacks{0};
std::atomic<bool> g_callback_saw_stack{false};

void on_breach(const memdiag::breach_info& info, void*) {
    if (info.stack_depth > 0) g_callback_saw_stack = true;
    ++g_callbacks;
}

void on_alarm(int) {
    const char msg[] = "FAIL: breach_dlclose_test hangs: the breach path and dlclose deadlocked\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(1);
}

// Keeps the allocation: the compiler may not elide new/delete pairs.
void keep(void* p) { __asm__ volatile("" : : "g"(p) : "memory"); }
}  // namespace

int main() {
    if (!memdiag::global_hook_installed()) {
        std::puts("SKIP: the global hook is not installed in this build (sanitizer runtime?)");
        return 77;
    }
    std::signal(SIGALRM, on_alarm);
    alarm(60);  // a hang detector, not a timing: a passing run takes well under a second

    constexpr int cycles = 200;  // dlopen + dlclose of the plugin
    long breaching_allocations = 0;
    int loaded = 0;
    std::uint64_t breaches = 0;
    {
        memdiag::scoped_budget budget{memdiag::limits{}.max_peak_bytes(1 << 20).on_breach(&on_breach),
                                      memdiag::breach_policy::callback, memdiag::scope_kind::process,
                                      "process budget", MEMDIAG_HERE};
        std::atomic<bool> loader_done{false};
        std::thread loader([&] {
            for (int i = 0; i < cycles; ++i) {
                void* h = dlopen(MEMDIAG_BREACH_PLUGIN, RTLD_NOW | RTLD_LOCAL);
                if (h == nullptr) break;
                auto answer = reinterpret_cast<int (*)()>(dlsym(h, "memdiag_breach_plugin_answer"));
                if (answer != nullptr && answer() == 42) ++loaded;
                dlclose(h);
            }
            loader_done = true;
        });
        // Each 2 MiB block crosses the 1 MiB peak limit; freeing it ends the crossing.
        while (!loader_done.load() || breaching_allocations < 50) {
            char* p = new char[2 << 20];
            keep(p);
            delete[] p;
            ++breaching_allocations;
        }
        loader.join();
        breaches = budget.breaches();
    }
    alarm(0);

    int failures = 0;
    auto check = [&](bool ok, const char* what) {
        std::printf("%s: %s\n", ok ? "ok" : "FAIL", what);
        if (!ok) ++failures;
    };
    check(loaded == cycles, "the plugin loaded and unloaded every cycle");
    check(breaches >= static_cast<std::uint64_t>(breaching_allocations),
          "every 2 MiB block was a crossing of its own (counted in breaches())");
    check(static_cast<std::uint64_t>(g_callbacks.load()) == breaches, "one callback per crossing");
    check(g_callback_saw_stack.load(), "the callback received the allocation's stack");
    std::printf("%ld breaching allocations, %llu breaches, %d dlopen/dlclose cycles\n", breaching_allocations,
                static_cast<unsigned long long>(breaches), loaded);
    return failures == 0 ? 0 : 1;
}
