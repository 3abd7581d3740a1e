// examples/oom_guard.cpp - the compiler pass that eats all memory, caught.
//
// A toy optimizer inlines closures into closures: closure k calls closure k-1
// twice, and inlining copies the callee's (already inlined) body at each call,
// so the program doubles with every level. Nobody notices until a large input
// meets a container's memory limit.
//
//     oom_guard [LEVELS]              # the pass with the heap profiler and watermarks on
//     oom_guard --budget MIB [LEVELS] # the same pass inside a scoped_budget
//
// Without a budget, with MEMDIAG_DUMP_DIR set, the profiler writes
// heap.<pid>.80/90/95.pb.gz there as the live heap crosses 80%, 90% and 95% of
// the memory limit (the cgroup's, RLIMIT_AS, or MEMDIAG_DUMP_LIMIT), and a
// snapshot on std::bad_alloc: `go tool pprof -top -sample_index=inuse_space
// heap.<pid>.80.pb.gz` puts the pass (clone, called by inline_calls) at the top. With --budget the pass
// fails cleanly instead: the budget throws at its limit with a breach report
// naming the pass, and the program carries on.
#define MEMDIAG_REPLACE_GLOBAL_NEW  // this file is the program's one definition of the hook
#include <memdiag/global_new.hpp>
#include <memdiag/heap_profile.hpp>
#include <memdiag/memdiag.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace {

/// An expression: an operation with operands. `callee` >= 0 marks a call.
/// The text is inline, so a node is one allocation.
struct expr {
    char op[64] = {};
    int callee = -1;
    std::vector<std::unique_ptr<expr>> args;
};

struct closure {
    std::string name;
    std::vector<std::unique_ptr<expr>> body;
};

std::unique_ptr<expr> leaf(const char* op) {
    auto e = std::make_unique<expr>();
    std::snprintf(e->op, sizeof e->op, "%s", op);
    return e;
}

std::unique_ptr<expr> call(int callee) {
    auto e = std::make_unique<expr>();
    std::snprintf(e->op, sizeof e->op, "call");
    e->callee = callee;
    return e;
}

/// closure 0 is a few arithmetic nodes; closure k calls k-1 twice.
std::vector<closure> make_program(int levels) {
    std::vector<closure> program(static_cast<std::size_t>(levels));
    for (int k = 0; k < levels; ++k) {
        closure& c = program[static_cast<std::size_t>(k)];
        c.name = "lambda_" + std::to_string(k);
        if (k == 0) {
            for (const char* op : {"load x", "mul 3", "add 1", "store y"}) c.body.push_back(leaf(op));
        } else {
            c.body.push_back(call(k - 1));
            c.body.push_back(leaf("add acc"));
            c.body.push_back(call(k - 1));
        }
    }
    return program;
}

std::unique_ptr<expr> clone(const expr& e) {
    auto c = std::make_unique<expr>();
    std::memcpy(c->op, e.op, sizeof c->op);
    c->callee = e.callee;
    c->args.reserve(e.args.size());
    for (const auto& a : e.args) c->args.push_back(clone(*a));
    return c;
}

std::size_t count_nodes(const std::vector<std::unique_ptr<expr>>& v) {
    std::size_t n = v.size();
    for (const auto& e : v) n += count_nodes(e->args);
    return n;
}

}  // namespace

/// The pass: replaces every call by a copy of the callee's inlined body, in
/// callee-first order, so each body is copied whole at every call site. noinline:
/// the snapshots name it.
__attribute__((noinline)) void inline_calls(std::vector<closure>& program) {
    for (closure& c : program) {
        std::vector<std::unique_ptr<expr>> out;
        for (auto& e : c.body) {
            if (e->callee < 0) {
                out.push_back(std::move(e));
                continue;
            }
            auto block = std::make_unique<expr>();
            std::snprintf(block->op, sizeof block->op, "inlined %s", program[static_cast<std::size_t>(e->callee)].name.c_str());
            for (const auto& callee_expr : program[static_cast<std::size_t>(e->callee)].body)
                block->args.push_back(clone(*callee_expr));
            out.push_back(std::move(block));
        }
        c.body = std::move(out);
    }
}

int main(int argc, char** argv) {
    std::size_t budget_mib = 0;
    int levels = 40;  // 2^40 nodes: no machine has the memory
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--budget") == 0 && i + 1 < argc) budget_mib = std::strtoul(argv[++i], nullptr, 10);
        else levels = std::atoi(argv[i]);
    }
    if (levels < 1 || levels > 60) {
        std::fprintf(stderr, "usage: %s [--budget MIB] [LEVELS 1..60]\n", argv[0]);
        return 2;
    }

    // The profiler at its default interval; watermarks and the bad_alloc dump
    // go to MEMDIAG_DUMP_DIR (without it, the profiler says watermarks are off).
    const char* dir = std::getenv("MEMDIAG_DUMP_DIR");
    std::string bad_alloc_path = dir != nullptr ? std::string(dir) + "/oom_guard.bad_alloc.pb.gz" : std::string();
    memdiag::profile_options options;
    options.dump_at_fractions({0.8, 0.9, 0.95});
    if (dir != nullptr) options.dump_on_bad_alloc(bad_alloc_path.c_str());
    memdiag::heap_profiler::start(options);

    std::vector<closure> program = make_program(levels);
    std::printf("inlining %d closures (the last one expands to about 2^%d nodes)\n", levels, levels);
    std::fflush(stdout);
    try {
        if (budget_mib != 0) {
            memdiag::scoped_budget guard{memdiag::limits{}.max_live_bytes(budget_mib << 20).max_bytes(budget_mib << 20),
                                         "inline_calls", MEMDIAG_HERE};
            inline_calls(program);
        } else {
            inline_calls(program);
        }
        std::printf("done: %zu nodes\n", count_nodes(program.back().body));
        return 0;
    } catch (const memdiag::budget_exceeded& breach) {
        std::printf("the pass went over its budget and was stopped cleanly:\n%s", breach.what());
        return 1;
    } catch (const std::bad_alloc&) {
        std::printf("the pass ran out of memory (std::bad_alloc)\n");
        return 3;
    }
}
