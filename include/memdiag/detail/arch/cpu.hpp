// memdiag/detail/arch/cpu.hpp - what the CPU says about address widths.
//
// x86 CPUs report their physical and linear address widths in CPUID leaf
// 0x80000008. Elsewhere the kernel may print them in /proc/cpuinfo ("address
// sizes"); aarch64 kernels do not, and there the fact stays unknown.
#pragma once

#include <cstdint>
#include <string>

#include "../../config.hpp"
#include "../env_parse.hpp"
#include "../os.hpp"

#if (MEMDIAG_ARCH_X86_64 || MEMDIAG_ARCH_X86_32) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define MEMDIAG_HAS_CPUID 1
#elif (defined(_M_X64) || defined(_M_IX86)) && defined(_MSC_VER)
#include <intrin.h>
#define MEMDIAG_HAS_CPUID 1
#else
#define MEMDIAG_HAS_CPUID 0
#endif  // x86 cpuid

namespace memdiag {
namespace detail {
namespace arch {

using env::address_sizes;
using env::fact;

/// Returns the address widths from CPUID leaf 0x80000008 (EAX bits 7:0
/// physical, 15:8 linear); unknown off x86 or when the leaf is missing.
inline fact<address_sizes> cpuid_address_sizes() {
    const char* source = "cpuid(0x80000008)";
#if MEMDIAG_HAS_CPUID
    unsigned eax = 0;
#if defined(_MSC_VER) && !defined(__clang__)
    int regs[4];
    __cpuid(regs, int(0x80000000u));
    if (unsigned(regs[0]) < 0x80000008u)
        return fact<address_sizes>::unknown("CPUID leaf 0x80000008 not supported", source);
    __cpuid(regs, int(0x80000008u));
    eax = unsigned(regs[0]);
#else
    unsigned ebx = 0, ecx = 0, edx = 0;
    if (unsigned(__get_cpuid_max(0x80000000u, nullptr)) < 0x80000008u)
        return fact<address_sizes>::unknown("CPUID leaf 0x80000008 not supported", source);
    if (!__get_cpuid(0x80000008u, &eax, &ebx, &ecx, &edx))
        return fact<address_sizes>::unknown("CPUID leaf 0x80000008 not supported", source);
#endif
    address_sizes a{eax & 0xffu, (eax >> 8) & 0xffu};
    if (a.physical_bits == 0 || a.virtual_bits == 0)
        return fact<address_sizes>::unknown("CPUID reported zero address bits", source);
    return fact<address_sizes>::of(a, source);
#else
    return fact<address_sizes>::unknown("no CPUID on this architecture", source);
#endif  // MEMDIAG_HAS_CPUID
}

/// Returns the CPU's address widths: CPUID where there is one, else the
/// "address sizes" line of /proc/cpuinfo, else unknown with both reasons.
inline fact<address_sizes> cpu_address_sizes() {
    fact<address_sizes> c = cpuid_address_sizes();
    if (c) return c;
    if (!os::has_procfs) return c;
    const std::string file = "/proc/cpuinfo";
    fact<std::string> text = os::read_file(file);
    if (!text) return fact<address_sizes>::unknown(c.reason + "; " + file + ": " + text.reason, file);
    fact<address_sizes> p = env_parse::parse_cpuinfo_address_sizes(text.value);
    p.source = file + " \"address sizes\"";
    if (!p) p.reason = c.reason + "; " + p.reason;
    return p;
}

/// Returns log2 of the user address space a 64-bit process gets by default
/// for a CPU with virtual_bits of linear address. x86_64 and riscv give user
/// space the lower half; x86_64 with 57-bit paging still maps above 47 bits
/// only on request (an mmap hint), so 47 is what allocators see. aarch64
/// gives user space a whole translation table (TTBR0), the full width.
inline unsigned user_address_bits(unsigned virtual_bits) noexcept {
    if (virtual_bits == 0) return 0;
#if MEMDIAG_ARCH_AARCH64
    return virtual_bits;
#elif MEMDIAG_ARCH_X86_64
    return virtual_bits > 48 ? 47 : virtual_bits - 1;
#else
    return virtual_bits - 1;
#endif  // arch
}

}  // namespace arch
}  // namespace detail
}  // namespace memdiag
