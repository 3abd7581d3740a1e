#include <memdiag/memdiag.hpp>

#include <iostream>
#include <string>

void run_workload();  // your code

int main() {
    memdiag::heap_profiler::start(memdiag::profile_options{}.sample_interval(512 * 1024));
    run_workload();
    memdiag::result r = memdiag::write_heap_profile("heap.pb.gz");  // pprof, gzip
    if (!r) std::cerr << r.message() << '\n';
    std::string top = memdiag::heap_report(10);             // text, top 10 sites
    std::string folded = memdiag::collapsed_heap_stacks();  // flame-graph input
    std::cout << top << folded;
}
