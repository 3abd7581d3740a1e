// tests/breach/plugin.cpp - a plugin for breach_dlclose_test: its constructor
// allocates and its destructor frees, so dlopen and dlclose run memdiag's hooks
// while the dynamic loader holds its lock.
#include <cstdlib>
#include <new>

namespace {
void* g_from_malloc = nullptr;
char* g_from_new = nullptr;

__attribute__((constructor)) void plugin_loaded() {
    g_from_malloc = std::malloc(64);
    g_from_new = new char[96];
}
__attribute__((destructor)) void plugin_unloaded() {
    std::free(g_from_malloc);
    delete[] g_from_new;
}
}  // namespace

/// Something to look up, so the test knows the plugin really loaded.
extern "C" __attribute__((visibility("default"))) int memdiag_breach_plugin_answer() { return 42; }
