// tests/fuzz/fuzz_http_request.cpp - libFuzzer target for the bytes a client
// sends the pprof endpoint: the headers' end, header lookup, Content-Length
// and the words of a symbol request (detail/http_parse.hpp). Checks what the
// server relies on: offsets stay inside the input, lengths never pass the cap,
// and every address handed on is one the word's own text spells.
//
// Build and run with scripts/fuzz.sh; seed corpus in tests/fuzz/corpus/http.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include <memdiag/detail/http_parse.hpp>

namespace h = memdiag::detail::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const char* p = reinterpret_cast<const char*>(data);
    const char* end = p + size;

    const std::size_t he = h::header_end(p, size);
    if (he > size) std::abort();
    const char* headers_end = he != 0 ? p + he : end;
    static const char* const names[] = {"content-length:", "authorization:", "expect:", "transfer-encoding:"};
    for (const char* name : names) {
        const char* v = nullptr;
        std::size_t n = 0;
        if (!h::find_header(p, headers_end, name, v, n)) continue;
        if (v < p || v + n > headers_end) std::abort();
        std::size_t length = 0;
        if (h::parse_content_length(v, n, std::size_t{1} << 20, length) == h::content_length::ok &&
            length > (std::size_t{1} << 20))
            std::abort();
    }

    const char* body = he != 0 ? p + he : p;
    h::for_each_symbol_address(body, static_cast<std::size_t>(end - body), [&](std::uint64_t address) {
        if (address == 0) std::abort();  // zero words are skipped, never passed on
    });
    return 0;
}
