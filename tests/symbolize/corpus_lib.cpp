// The shared library of the symbolizer oracle (see scripts/test-symbolize.sh). The corpus
// executable dlopen()s it by absolute path. It includes leakscope.hpp WITHOUT the implementation:
// the executable hands it current_stack and its store function as pointers (oracle::Api).
//
// Built twice: LIB_VARIANT=0 (libsym_a.so, namespace liba) and LIB_VARIANT=1 (libsym_b.so,
// namespace libb, every line number shifted by the #line below). The code is the same, byte for
// byte, so when the executable unloads a and loads b at the same base address (the kernel usually
// picks it: same size) every return address means the same instruction with another function
// name and another line: a symbolizer that kept a's answers (a stale cache) is caught.
//
// No static storage with a destructor, no STB_GNU_UNIQUE symbol: the library must really unload.
#include "inline_chain.hpp"
#include "oracle.hpp"

#include <algorithm>
#include <cstdint>

#ifndef LIB_VARIANT
#error "build with -DLIB_VARIANT=0 or 1"
#endif

#if LIB_VARIANT
#define LIB_NS libb
#line 5000
#else
#define LIB_NS liba
#endif

namespace {
oracle::Api g_api{nullptr, nullptr};  // from the executable (oracle_lib_run)
volatile int g_one = 1;               // a value the optimizer cannot see through
}  // namespace

namespace LIB_NS {

// ---- exported functions (also in .dynsym: named even in the fully stripped variant) ---------
__attribute__((visibility("default"))) ORACLE_NOINLINE int lib_plain_c(int x) {
    ORACLE_CAPTURE(g_api, "lib_plain", "lib_plain_c( lib_plain_b( oracle_lib_run main");
    return x + g_one;
}
__attribute__((visibility("default"))) ORACLE_NOINLINE int lib_plain_b(int x) {
    int r = lib_plain_c(x * 3);
    ORACLE_BARRIER();
    return r - 1;
}

// ---- a static function ------------------------------------------------------------------------
static ORACLE_NOINLINE int lib_static_c(int x) {
    ORACLE_CAPTURE(g_api, "lib_static", "lib_static_c( lib_static_b( oracle_lib_run main");
    return x ^ g_one;
}
static ORACLE_NOINLINE int lib_static_b(int x) {
    int r = lib_static_c(x + 5);
    ORACLE_BARRIER();
    return r | 2;
}

// ---- a function template and a lambda -------------------------------------------------------
template <class T, int N>
ORACLE_NOINLINE T lib_tmpl(T x) {
    ORACLE_CAPTURE(g_api, "lib_template", "lib_tmpl<long, lib_template_caller( oracle_lib_run main");
    return x + N * g_one;
}
ORACLE_NOINLINE long lib_template_caller(long x) {
    long r = lib_tmpl<long, 9>(x);
    ORACLE_BARRIER();
    return r;
}

template <class F>
ORACLE_NOINLINE int lib_call_it(F& f, int x) {
    int r = f(x + g_one);
    ORACLE_BARRIER();
    return r;
}
ORACLE_NOINLINE int lib_lambda_site(int x) {
    int base = x * g_one;
    auto lam = [&](int y) {
        ORACLE_CAPTURE(g_api, "lib_lambda",
                       "~lib_lambda_site(int):: lib_call_it< lib_lambda_site( "
                       "oracle_lib_run main");
        return y + base;
    };
    int r = lib_call_it(lam, x);
    ORACLE_BARRIER();
    return r;
}

// ---- a class method ---------------------------------------------------------------------------
struct LibThing {
    int v;
    ORACLE_NOINLINE int method(int x) const {
        ORACLE_CAPTURE(g_api, "lib_method", "LibThing::method(int) lib_method_site( oracle_lib_run main");
        return v + x;
    }
};
ORACLE_NOINLINE int lib_method_site(int x) {
    LibThing t{x * g_one};
    int r = t.method(2);
    ORACLE_BARRIER();
    return r;
}

// ---- the always_inline chain (inline_chain.hpp) -------------------------------------------------
ORACLE_NOINLINE int lib_inline_outer(int x) {
    int r = oracle_inline::ai_top(g_api, "lib_inline",
                                  "~oracle_inline::ai_leaf( ~oracle_inline::ai_mid( "
                                  "~oracle_inline::ai_top( lib_inline_outer( oracle_lib_run main",
                                  x);
    ORACLE_BARRIER();
    return r;
}

// ---- a std::sort comparator (libstdc++'s sort, instantiated in the library) --------------------
ORACLE_NOINLINE int lib_sort_site(int x) {
    int v[24];
    for (int i = 0; i < 24; ++i) v[i] = (i * 7 + x * g_one) % 24;
    bool armed = true;
    std::sort(v, v + 24, [&](int a, int b) {
        if (armed) {
            armed = false;
            ORACLE_CAPTURE(g_api, "lib_sort", "~lib_sort_site(int):: lib_sort_site( "
                                              "oracle_lib_run main");
        }
        return a < b;
    });
    ORACLE_BARRIER();
    return v[0];
}

// ---- a callback into the executable: exe -> lib -> exe frames ----------------------------------
ORACLE_NOINLINE int lib_cb_helper(int (*cb)(int), int x) {
    int r = cb(x + g_one);
    ORACLE_BARRIER();
    return r;
}

}  // namespace LIB_NS

namespace {
ORACLE_NOINLINE int lib_anon_c(int x) {
    ORACLE_CAPTURE(g_api, "lib_anon",
                   "(anonymous@namespace)::lib_anon_c( (anonymous@namespace)::lib_anon_b( "
                   "oracle_lib_run main");
    return x - g_one;
}
ORACLE_NOINLINE int lib_anon_b(int x) {
    int r = lib_anon_c(x + 2);
    ORACLE_BARRIER();
    return r;
}
}  // namespace

extern "C" {

// exe main -> oracle_lib_run -> every chain above. `cb`: a function of the executable that
// captures (the callback chain).
__attribute__((visibility("default"))) ORACLE_NOINLINE int oracle_lib_run(const oracle::Api* api,
                                                                          int (*cb)(int), int x) {
    g_api = *api;
    int r = 0;
    r += LIB_NS::lib_plain_b(x);
    ORACLE_BARRIER();
    r += LIB_NS::lib_static_b(x);
    ORACLE_BARRIER();
    r += static_cast<int>(LIB_NS::lib_template_caller(x));
    ORACLE_BARRIER();
    r += LIB_NS::lib_lambda_site(x);
    ORACLE_BARRIER();
    r += LIB_NS::lib_method_site(x);
    ORACLE_BARRIER();
    r += LIB_NS::lib_inline_outer(x);
    ORACLE_BARRIER();
    r += LIB_NS::lib_sort_site(x);
    ORACLE_BARRIER();
    r += lib_anon_b(x);
    ORACLE_BARRIER();
    r += LIB_NS::lib_cb_helper(cb, x);
    ORACLE_BARRIER();
    return r;
}

// Which variant this is (0: libsym_a.so, 1: libsym_b.so).
__attribute__((visibility("default"))) int oracle_lib_variant() { return LIB_VARIANT; }
}
