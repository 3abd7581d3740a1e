// Catch2 (v2 or v3), in one file of the test program:
#define MEMDIAG_REPLACE_GLOBAL_NEW
#include <memdiag/global_new.hpp>
#define MEMDIAG_CATCH2_LISTENER
#include <memdiag/testing/catch2.hpp>

#include <map>
#include <string>

int parse(const std::string& input);            // your code
void run_request(const std::string& request);  //
void handle(const std::string& request);       //

TEST_CASE("parse is lean") {
    const std::map<std::string, int> table{{"key", 1}};
    const std::string input = "1,2,3", key = "key", req = "GET /", big_request(4096, 'x');
    MEMDIAG_REQUIRE_ALLOCS_AT_MOST(3, parse(input));
    MEMDIAG_CHECK_NO_ALLOC(table.find(key));
    MEMDIAG_REQUIRE_NO_LEAK(run_request(req));
    MEMDIAG_BUDGET_SECTION(memdiag::limits{}.max_peak_bytes(1 << 20));
    handle(big_request);
}
