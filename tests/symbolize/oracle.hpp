// The symbolizer oracle's shared declarations, used by the corpus executable (corpus.cpp) and by
// the dlopen'd library (corpus_lib.cpp); see scripts/test-symbolize.sh.
//
// A capture site takes its stack with leakscope::current_stack (Unwinder::libgcc: the exact
// reference unwinder, so that an unwinder fault cannot pass for a symbolizer fault) and hands the
// return addresses to the executable's store function, which notes each one's module and offset
// at once (the library may be unloaded later). The comparison with addr2line runs after the
// captures, in corpus.cpp.
//
// The library includes leakscope.hpp WITHOUT the implementation: the executable hands it
// current_stack and its store function as pointers (oracle::Api). Nothing here has static
// storage: the library must really unload on dlclose (no STB_GNU_UNIQUE symbols).
#pragma once

#include <leakscope.hpp>

#include <cstddef>
#include <cstdint>

#if defined(__clang__)
#define ORACLE_NOINLINE __attribute__((noinline))
#else
// noclone/no_icf: keep every chain function one real function under its own name at -O2.
#define ORACLE_NOINLINE __attribute__((noinline, noclone, no_icf))
#endif
#define ORACLE_ALWAYS_INLINE inline __attribute__((always_inline))
// After a call: the call is not the function's last act, so it cannot become a tail call.
#define ORACLE_BARRIER() asm volatile("" ::: "memory")

namespace oracle {

constexpr std::size_t kMax = 64;  // frames taken at every capture site

// The type of leakscope::current_stack.
using StackFn = std::size_t (*)(std::uintptr_t*, std::size_t, leakscope::Unwinder) noexcept;
// The executable's store: `site` names the capture, `expect` is what its frames must pass
// through (see corpus.cpp, "Expectations").
using StoreFn = void (*)(const char* site, const char* expect, const std::uintptr_t* ra,
                         std::size_t n);

struct Api {
    StackFn stack;
    StoreFn store;
};

}  // namespace oracle

// One capture: out[0] is the return address of the stack call, inside the function (or the
// chain of inlined functions) that expands this macro.
#define ORACLE_CAPTURE(api, site, expect)                                                   \
    do {                                                                                    \
        std::uintptr_t oracle_ra_[oracle::kMax];                                            \
        std::size_t oracle_n_ = (api).stack(oracle_ra_, oracle::kMax,                       \
                                            leakscope::Unwinder::libgcc);                   \
        ORACLE_BARRIER();                                                                   \
        (api).store(site, expect, oracle_ra_, oracle_n_);                                   \
        ORACLE_BARRIER();                                                                   \
    } while (0)
