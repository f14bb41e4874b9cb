// The shared library of the unwinder oracle (see scripts/test-unwind.sh). The corpus executable
// dlopen()s it by absolute path. It includes leakscope.hpp WITHOUT the implementation: the
// executable hands it leakscope::current_stack as a function pointer (oracle_lib_init).
//
// Built twice, LIB_VARIANT=0 and 1 (libunwind_a.so, libunwind_b.so): the same code at the same
// addresses, but every chain function's frame has a different size (both sizes need 32-bit
// immediates and displacements, so the instructions keep their lengths and the return addresses
// their offsets). When one is unloaded and the other loaded at the same address, which the
// kernel usually does as the two are the same size, every return address in the library means
// the same instruction with different unwind rules: an unwinder that kept the old module's rules
// (a stale cache) computes wrong CFAs, and the oracle sees it.
//
// No static storage with a destructor, no STB_GNU_UNIQUE symbol: the library must really unload.
#include "oracle.hpp"

#ifndef LIB_VARIANT
#error "build with -DLIB_VARIANT=0 or 1"
#endif

namespace {
oracle::StackFn g_stack = nullptr;  // leakscope::current_stack, from the executable

// Frame padding: > 127 bytes in both variants (no 8-bit immediates), different per variant.
constexpr int kPad = LIB_VARIANT ? 1536 : 256;

// The library's own check site (the library calls current_stack itself, through the pointer).
ORACLE_NOINLINE int lib_check(const char* chain, const char* expect, bool names, bool print) {
    std::uintptr_t a[oracle::kMax], b[oracle::kMax];
    volatile char pad[kPad + 32];
    pad[0] = 1;
    std::size_t na = g_stack(a, oracle::kMax, leakscope::Unwinder::fast);
    ORACLE_BARRIER();
    std::size_t nb = g_stack(b, oracle::kMax, leakscope::Unwinder::libgcc);
    ORACLE_BARRIER();
    bool ok = oracle::verify(chain, "lib_check(", expect, a, na, b, nb, oracle::kMax, names, print);
    return (ok ? 0 : 1) + pad[0] - 1;
}

ORACLE_NOINLINE int lib_inner(const char* chain, const char* expect, bool names, bool print) {
    volatile char pad[kPad];
    pad[0] = 1;
    int r = lib_check(chain, expect, names, print);
    ORACLE_BARRIER();
    return r + pad[0] - 1;
}

// If the executable asked for it (ORACLE_LIB_HOOK: the address of a function of the executable,
// in hex; set only while one thread runs), the constructor and the destructor call back into it:
// stacks through the dynamic loader's dlopen and dlclose.
using LibHook = int (*)(const char* what);
LibHook lib_hook() {
    const char* s = std::getenv("ORACLE_LIB_HOOK");
    if (!s || !*s) return nullptr;
    return reinterpret_cast<LibHook>(static_cast<std::uintptr_t>(std::strtoull(s, nullptr, 16)));
}
__attribute__((constructor)) ORACLE_NOINLINE void lib_constructor() {
    volatile char pad[kPad];
    pad[0] = 1;
    if (LibHook hook = lib_hook()) hook("constructor");
    ORACLE_BARRIER();
    asm volatile("" : : "r"(pad[0]));
}
__attribute__((destructor)) ORACLE_NOINLINE void lib_destructor() {
    volatile char pad[kPad + 16];
    pad[0] = 1;
    if (LibHook hook = lib_hook()) hook("destructor");
    ORACLE_BARRIER();
    asm volatile("" : : "r"(pad[0]));
}

ORACLE_NOINLINE int lib_cb_helper(int (*cb)(int), int x) {
    volatile char pad[kPad + 64];
    pad[0] = static_cast<char>(x);
    int r = cb(pad[0] + 1);
    ORACLE_BARRIER();
    return r;
}
}  // namespace

extern "C" {

// Returns the variant, so the executable knows which library it has.
__attribute__((visibility("default"))) int oracle_lib_init(oracle::StackFn fn) {
    g_stack = fn;
    return LIB_VARIANT;
}

// exe -> oracle_lib_call_back -> lib_cb_helper -> cb (in the exe) -> ... -> check (in the exe)
__attribute__((visibility("default"))) ORACLE_NOINLINE int oracle_lib_call_back(int (*cb)(int),
                                                                                int x) {
    volatile char pad[kPad + 96];
    pad[0] = 1;
    int r = lib_cb_helper(cb, x);
    ORACLE_BARRIER();
    return r + pad[0] - 1;
}

// exe -> oracle_lib_internal -> lib_inner -> lib_check (in the library)
// `caller_expect`: what the executable knows of the frames above (e.g. "main").
__attribute__((visibility("default"))) ORACLE_NOINLINE int oracle_lib_internal(
    const char* chain, const char* caller_expect, int names, int print) {
    char expect[kPad];
    std::snprintf(expect, sizeof expect, "lib_inner( oracle_lib_internal %s", caller_expect);
    int r = lib_inner(chain, expect, names != 0, print != 0);
    ORACLE_BARRIER();
    return r;
}

// dlclose called from a library, not from the executable (as a plugin host library would):
// leakscope's dlclose hook must see it too.
__attribute__((visibility("default"))) ORACLE_NOINLINE int oracle_lib_dlclose(void* handle) {
    int r = dlclose(handle);
    ORACLE_BARRIER();
    return r;
}

}  // extern "C"
