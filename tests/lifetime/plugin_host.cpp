// Loads the plugin given as argv[1] with dlopen and prints what its measure()
// saw. The host replaces operator new; the plugin counts through it only if
// both share one memdiag state (host linked with -rdynamic), and otherwise
// memdiag must say on stderr that there are two copies.
#define MEMDIAG_REPLACE_GLOBAL_NEW
#include <memdiag/budget.hpp>
#include <memdiag/global_new.hpp>

#include <dlfcn.h>

#include <cstdio>
#include <memory>

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    auto warm = std::make_unique<int>(1);  // the host's memdiag state exists first
    void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
        std::fprintf(stderr, "dlopen: %s\n", dlerror());
        return 3;
    }
    auto fn = reinterpret_cast<unsigned long long (*)()>(dlsym(lib, "plugin_measure"));
    if (fn == nullptr) return 4;
    std::printf("plugin measured %llu allocation(s)\n", fn());
    std::fflush(stdout);
    dlclose(lib);
    return 0;
}
