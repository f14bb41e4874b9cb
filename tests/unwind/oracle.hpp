// The unwinder oracle's shared checking code, used by the corpus executable (corpus.cpp) and
// by the dlopen'd library (corpus_lib.cpp); see scripts/test-unwind.sh.
//
// A check site takes two stacks at the same spot, one with Unwinder::fast and one with
// Unwinder::libgcc (_Unwind_Backtrace, the reference), and verify() requires:
//   * the same number of frames;
//   * the same return address in every frame but the first (out[0] is the return address of
//     each current_stack() call: two different call sites inside the check function);
//   * a plausible stack: out[0] of both lies in the check function, and the functions the chain
//     is known to pass through appear, in order, among the reference stack's frames (so both
//     stacks are at least that deep and the corpus really is the chain it claims to be).
// On failure both stacks are printed, symbolized from the modules' ELF symbol tables (which
// name static functions too; dladdr as the fallback), no addr2line needed.
//
// Nothing here has static storage: the library that includes this must really unload on
// dlclose (a function-local static in an inline function would be an STB_GNU_UNIQUE symbol,
// which makes glibc keep the library loaded forever).
#pragma once

#include <leakscope.hpp>

#include "../support/elf_symbol.hpp"

#include <cxxabi.h>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__clang__)
#define ORACLE_NOINLINE __attribute__((noinline))
#else
// noclone/no_icf: keep every chain function one real function under its own name at -O2.
#define ORACLE_NOINLINE __attribute__((noinline, noclone, no_icf))
#endif
// After a call: the call is not the function's last act, so it cannot become a tail call.
#define ORACLE_BARRIER() asm volatile("" ::: "memory")

namespace oracle {

constexpr std::size_t kMax = 128;  // frames asked for at every check site

// The type of leakscope::current_stack: what the executable hands the library.
using StackFn = std::size_t (*)(std::uintptr_t*, std::size_t, leakscope::Unwinder) noexcept;

// ---- symbolization --------------------------------------------------------------------------

struct ModuleHit {
    std::uintptr_t pc;
    std::uintptr_t base;
    char path[512];
    bool found;
};

inline int find_module(dl_phdr_info* info, std::size_t, void* data) {
    auto* m = static_cast<ModuleHit*>(data);
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr)& ph = info->dlpi_phdr[i];
        if (ph.p_type != PT_LOAD) continue;
        std::uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
        if (m->pc >= lo && m->pc < lo + ph.p_memsz) {
            m->base = info->dlpi_addr;
            const char* name = info->dlpi_name;
            std::snprintf(m->path, sizeof m->path, "%s",
                          (name && name[0]) ? name : "/proc/self/exe");
            m->found = true;
            return 1;
        }
    }
    return 0;
}

// The function symbol containing file offset-relative address `want` in the ELF file `path`
// (.symtab, else .dynsym). Writes "name+0xoff" into out.
inline bool elf_lookup(const char* path, std::uintptr_t want, char* out, std::size_t n) {
    char raw[1024];
    std::uintptr_t start = 0;
    if (!test_support::elf_function_symbol(path, want, raw, sizeof raw, &start)) return false;
    int status = -1;
    char* dem = abi::__cxa_demangle(raw, nullptr, nullptr, &status);
    int written = std::snprintf(out, n, "%s+0x%lx", (status == 0 && dem) ? dem : raw,
                                static_cast<unsigned long>(want - start));   // (may truncate: fine)
    std::free(dem);
    return written > 0;
}

// "function+0xoff (module)" for the function containing return address `ra`.
inline void symbolize(std::uintptr_t ra, char* out, std::size_t n) {
    if (ra == 0) {
        std::snprintf(out, n, "(null)");
        return;
    }
    ModuleHit m{};
    m.pc = ra - 1;  // a return address may lie just past its function's end
    dl_iterate_phdr(find_module, &m);
    if (!m.found) {
        std::snprintf(out, n, "?? (in no loaded module)");
        return;
    }
    const char* slash = std::strrchr(m.path, '/');
    const char* mod = slash ? slash + 1 : m.path;
    char fn[400];
    if (!elf_lookup(m.path, m.pc - m.base, fn, sizeof fn)) {
        Dl_info di;
        if (dladdr(reinterpret_cast<void*>(m.pc), &di) && di.dli_sname) {
            int status = -1;
            char* dem = abi::__cxa_demangle(di.dli_sname, nullptr, nullptr, &status);
            std::snprintf(fn, sizeof fn, "%s+0x%lx", (status == 0 && dem) ? dem : di.dli_sname,
                          static_cast<unsigned long>(m.pc -
                                                     reinterpret_cast<std::uintptr_t>(di.dli_saddr)));
            std::free(dem);
        } else {
            std::snprintf(fn, sizeof fn, "??+0x%lx", static_cast<unsigned long>(m.pc - m.base));
        }
    }
    std::snprintf(out, n, "%s (%s)", fn, mod);
}

// ---- the comparison -------------------------------------------------------------------------

// `expect`: the functions the chain passes through from the check function's caller outwards,
// separated by spaces, each a substring of the demangled name ("plain_b(", "Square::area(");
// "name*N" means N consecutive-or-not occurrences. They must appear in this order among frames
// 1.. of the reference stack (other frames may come between: inlined-or-not helpers, libc).
inline std::size_t expected_frames(const char* expect) {
    std::size_t total = 0;
    const char* p = expect;
    while (*p) {
        while (*p == ' ') ++p;
        if (!*p) break;
        const char* e = p;
        while (*e && *e != ' ') ++e;
        std::size_t rep = 1;
        for (const char* q = e; q > p; --q) {
            if (q[-1] == '*') {
                rep = std::strtoul(q, nullptr, 10);
                break;
            }
        }
        total += rep;
        p = e;
    }
    return total;
}

inline void print_stacks(const std::uintptr_t* a, std::size_t na, const std::uintptr_t* b,
                         std::size_t nb) {
    std::size_t n = na > nb ? na : nb;
    std::printf("     #   fast                libgcc              (function of address - 1: for a "
                "frame a signal interrupted, the exact pc, it may name the function before)\n");
    std::size_t repeats = 0;  // rows identical to the previous one, not printed
    for (std::size_t i = 0; i < n; ++i) {
        std::uintptr_t xa = i < na ? a[i] : 0, xb = i < nb ? b[i] : 0;
        bool has_a = i < na, has_b = i < nb;
        if (i > 1 && has_a == (i - 1 < na) && has_b == (i - 1 < nb) &&
            xa == (i - 1 < na ? a[i - 1] : 0) && xb == (i - 1 < nb ? b[i - 1] : 0)) {
            ++repeats;  // deep recursion: one row stands for the run
            if (i + 1 < n) continue;
        }
        if (repeats) {
            std::printf("   ...  %zu more row%s like the one above\n", repeats, repeats == 1 ? "" : "s");
            repeats = 0;
            if (i + 1 == n && xa == (i - 1 < na ? a[i - 1] : 0) && xb == (i - 1 < nb ? b[i - 1] : 0))
                break;
        }
        char sa[512] = "", sb[512] = "";
        if (has_a) symbolize(xa, sa, sizeof sa);
        if (has_b) symbolize(xb, sb, sizeof sb);
        bool same = has_a && has_b && xa == xb;
        const char* mark = i == 0 ? "  " : (same ? "  " : "!=");
        char ha[24] = "-", hb[24] = "-";
        if (has_a) std::snprintf(ha, sizeof ha, "0x%lx", static_cast<unsigned long>(xa));
        if (has_b) std::snprintf(hb, sizeof hb, "0x%lx", static_cast<unsigned long>(xb));
        if (same) {
            std::printf("   %s%3zu  %-18s  (same)              %s\n", mark, i, ha, sb);
        } else {
            std::printf("   %s%3zu  %-18s  %-18s  fast: %s\n", mark, i, ha, hb, has_a ? sa : "-");
            std::printf("   %s     %-18s  %-18s  libgcc: %s\n", "  ", "", "", has_b ? sb : "-");
        }
    }
}

// Compares the stacks a (fast) and b (libgcc) taken in the function named `leaf` (a substring
// of its demangled name). names=false skips the symbol checks (they read ELF files: the
// concurrency loop runs them only now and then). print: one "ok" line on success.
inline bool verify(const char* chain, const char* leaf, const char* expect, const std::uintptr_t* a,
                   std::size_t na, const std::uintptr_t* b, std::size_t nb, std::size_t max,
                   bool names, bool print) {
    char why[2048] = "";
    std::size_t want = 1 + expected_frames(expect);
    max = std::min<std::size_t>(max, 256);   // current_stack's documented cap, for every unwinder
    if (want > max) want = max;
    if (na > max || nb > max) {
        std::snprintf(why, sizeof why, "more frames than asked for (fast %zu, libgcc %zu, max %zu)",
                      na, nb, max);
    } else if (na != nb) {
        std::snprintf(why, sizeof why, "frame count differs: fast %zu, libgcc %zu", na, nb);
    } else {
        for (std::size_t i = 1; i < na; ++i) {
            if (a[i] != b[i]) {
                std::snprintf(why, sizeof why, "frame %zu differs: fast 0x%lx, libgcc 0x%lx", i,
                              static_cast<unsigned long>(a[i]), static_cast<unsigned long>(b[i]));
                break;
            }
        }
    }
    if (!why[0] && nb < want) {
        std::snprintf(why, sizeof why,
                      "implausibly short: %zu frames, the chain alone is %zu deep (%s)", nb, want,
                      expect);
    }
    if (!why[0] && names) {
        char s[512];
        symbolize(a[0], s, sizeof s);
        char s2[512];
        symbolize(b[0], s2, sizeof s2);
        if (!std::strstr(s, leaf) || !std::strstr(s2, leaf)) {
            std::snprintf(why, sizeof why,
                          "frame 0 is not in %s: fast %s, libgcc %s (harness or out[0] wrong)",
                          leaf, s, s2);
        }
        // Ordered subsequence match of the expected names against frames 1..nb-1.
        std::size_t frame = 1;
        const char* p = expect;
        while (!why[0] && *p) {
            while (*p == ' ') ++p;
            if (!*p) break;
            const char* e = p;
            while (*e && *e != ' ') ++e;
            char tok[160];
            std::size_t len = static_cast<std::size_t>(e - p);
            if (len >= sizeof tok) len = sizeof tok - 1;
            std::memcpy(tok, p, len);
            tok[len] = 0;
            std::size_t rep = 1;
            char* star = std::strrchr(tok, '*');
            if (star) {
                rep = std::strtoul(star + 1, nullptr, 10);
                *star = 0;
            }
            for (std::size_t r = 0; r < rep && !why[0]; ++r) {
                bool hit = false;
                while (frame < nb) {
                    symbolize(b[frame++], s, sizeof s);
                    if (std::strstr(s, tok)) {
                        hit = true;
                        break;
                    }
                }
                if (!hit) {
                    std::snprintf(why, sizeof why,
                                  "expected frame '%s' (occurrence %zu of %zu) not found in order "
                                  "(expected: %s)",
                                  tok, r + 1, rep, expect);
                }
            }
            p = e;
        }
    }
    if (why[0]) {
        flockfile(stdout);
        std::printf("FAIL %-20s %s\n", chain, why);
        print_stacks(a, na, b, nb);
        std::fflush(stdout);
        funlockfile(stdout);
        return false;
    }
    if (print) {
        std::printf("ok   %-20s %3zu frames, fast == libgcc; passes through: %s\n", chain, nb,
                    expect);
        if (std::getenv("ORACLE_VERBOSE")) print_stacks(a, na, b, nb);  // every stack, symbolized
        std::fflush(stdout);
    }
    return true;
}

}  // namespace oracle
