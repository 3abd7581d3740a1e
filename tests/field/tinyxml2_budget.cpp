// tests/field/tinyxml2_budget.cpp - built by tests/field/tinyxml2.sh against
// tinyxml2: a budget of 5 allocations around XMLDocument::LoadFile (report
// policy) must breach with a report whose stack names LoadFile, and the
// document must be complete and usable afterwards.
//
//   tinyxml2_budget FILE.xml   -> prints "breaches=N error=E root=NAME children=K"
#define MEMDIAG_REPLACE_GLOBAL_NEW
#define MEMDIAG_REPLACE_MALLOC
#include <memdiag/budget.hpp>
#include <memdiag/global_new.hpp>

#include <cstdio>

#include "tinyxml2.h"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fputs("usage: tinyxml2_budget FILE.xml\n", stderr);
        return 2;
    }
    tinyxml2::XMLDocument doc;
    std::uint64_t breaches = 0;
    {
        memdiag::scoped_budget budget{memdiag::limits{}.max_allocations(5), memdiag::breach_policy::report,
                                      memdiag::scope_kind::this_thread, "LoadFile budget", MEMDIAG_HERE};
        doc.LoadFile(argv[1]);
        breaches = budget.breaches();
    }
    int children = 0;
    const tinyxml2::XMLElement* root = doc.RootElement();
    if (root != nullptr)
        for (const tinyxml2::XMLElement* e = root->FirstChildElement(); e != nullptr; e = e->NextSiblingElement())
            ++children;
    std::printf("breaches=%llu error=%d root=%s children=%d\n", static_cast<unsigned long long>(breaches),
                static_cast<int>(doc.ErrorID()), root != nullptr ? root->Name() : "(none)", children);
    return 0;
}
