#include <memdiag/memdiag.hpp>

#include <string>

void parse(const std::string& input);  // your code

void parse_checked(const std::string& input) {
    memdiag::scoped_budget guard{memdiag::limits{}.max_allocations(8).max_bytes(4096), "parse", MEMDIAG_HERE};
    parse(input);
}
