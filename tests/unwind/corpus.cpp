// The unwinder oracle's corpus (see scripts/test-unwind.sh): many call chains, each ending in a
// check site that takes the stack with Unwinder::fast and with Unwinder::libgcc and requires the
// two to agree (oracle.hpp, verify()). Then a dlopen/dlclose stress: two libraries with the same
// code but different frames, loaded and unloaded in turn at (usually) the same address, unloaded
// by the executable and by a third library; and two threads each loading, calling through and
// unloading its own library 300 times, comparing every time.
//
// Chains (the name each prints): main; plain, static (extern and static functions); inline
// (always_inline + ordinary inline); lambda, lambda_generic; recursion_40, recursion_200_trunc
// (128 of 200 frames), recursion_400_max512 (max above 256); qsort, bsearch (callbacks from
// libc); std::function; virtual; big_frame_64k, alloca, alignas64, alignas64_stack_args,
// alignas128_alloca (GCC: DRAP, CFA as a DWARF expression); stack_args; asm_cfa_expression,
// asm_cfa_in_r12 (hand-written CFI); tail_call; cold_section (GCC's .cold part); noreturn (return
// address past the function's end); catch_block, eh_cleanup (a destructor in a landing pad);
// signal_handler, sigill_at_entry, sigill_mid_frame (exact pcs below a signal frame),
// sigaltstack; ucontext, ucontext_on_stack (coroutine stacks); std::thread; small_max; call_once;
// thread_local_dtor; fork_child; static_init, atexit, static_destruction (before and after
// main); dlopen_callback, dlopen_in_lib, dlopen_constructor, dlclose_destructor (the shared
// library, the dynamic loader's frames).
//
// Usage: corpus /abs/path/libunwind_a.so /abs/path/libunwind_b.so /abs/path/libunwind_host.so
//        (the host library is a copy of libunwind_a.so: a third module, which unloads the others)
//        (ORACLE_VERBOSE=1 in the environment: print every stack, symbolized)
// Exit status 0: every check agreed. 1: at least one did not (each failure prints both stacks).
//
// leakscope's implementation is in corpus_impl.cpp (linked after this file, so this file's
// static initializer runs before leakscope's: the static_init chain unwinds before leakscope's
// own dynamic initialization, as an operator new there would).
#include "oracle.hpp"

#include <leakscope.hpp>

#include <alloca.h>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <sys/wait.h>
#include <thread>
#include <ucontext.h>

using leakscope::Unwinder;

namespace {
std::atomic<int> g_failures{0};
std::atomic<int> g_checks{0};
thread_local bool t_print = true;  // one "ok" line per check (off in loops)
thread_local bool t_names = true;  // symbol checks (off in most loop iterations)
volatile int g_one = 1;            // a value the optimizer cannot see through
}  // namespace

// ---- the check site ---------------------------------------------------------------------------

ORACLE_NOINLINE int check(const char* chain, const char* expect) {
    std::uintptr_t a[oracle::kMax], b[oracle::kMax], c[oracle::kMax];
    std::size_t na = leakscope::current_stack(a, oracle::kMax, Unwinder::fast);
    ORACLE_BARRIER();
    std::size_t nb = leakscope::current_stack(b, oracle::kMax, Unwinder::libgcc);
    ORACLE_BARRIER();
    // The frame-pointer walk may garble frames in code without frame pointers, so it is not
    // compared; it must only stay in bounds and not crash.
    std::size_t nc = leakscope::current_stack(c, oracle::kMax, Unwinder::fp);
    ORACLE_BARRIER();
    bool ok = oracle::verify(chain, "check(", expect, a, na, b, nb, oracle::kMax, t_names, t_print);
    if (nc > oracle::kMax) {
        std::printf("FAIL %-20s Unwinder::fp returned %zu frames, max %zu\n", chain, nc,
                    oracle::kMax);
        ok = false;
    }
    ++g_checks;
    if (!ok) ++g_failures;
    return ok ? 0 : 1;
}

// ---- plain extern functions -------------------------------------------------------------------
ORACLE_NOINLINE int plain_c(int x) {
    int r = check("plain", "plain_c( plain_b( plain_a( main");
    ORACLE_BARRIER();
    return r + x;
}
ORACLE_NOINLINE int plain_b(int x) {
    int r = plain_c(x + 1);
    ORACLE_BARRIER();
    return r + 2;
}
ORACLE_NOINLINE int plain_a(int x) {
    int r = plain_b(x * 3);
    ORACLE_BARRIER();
    return r - 1;
}

// ---- static functions -------------------------------------------------------------------------
static ORACLE_NOINLINE int static_c(int x) {
    int r = check("static", "static_c( static_b( static_a( main");
    ORACLE_BARRIER();
    return r ^ x;
}
static ORACLE_NOINLINE int static_b(int x) {
    int r = static_c(x - 7);
    ORACLE_BARRIER();
    return r | 4;
}
static ORACLE_NOINLINE int static_a(int x) {
    int r = static_b(x + 11);
    ORACLE_BARRIER();
    return r & 0x7f;
}

// ---- inlined functions: always_inline and an ordinary small inline ----------------------------
// At -O2 both disappear into inline_outer; at -O0 the ordinary inline one is a frame of its own.
static inline __attribute__((always_inline)) int inline_always(int x) {
    int r = check("inline", "inline_outer( main");
    ORACLE_BARRIER();
    return r + x;
}
inline int inline_small(int x) { return inline_always(x + 1) * 2; }
ORACLE_NOINLINE int inline_outer(int x) {
    int r = inline_small(x);
    ORACLE_BARRIER();
    return r + 3;
}

// ---- lambdas ----------------------------------------------------------------------------------
// The lambdas' own frames are "lambda_chain(int)::{lambda(int)#1}::operator()" (GCC) or
// "lambda_chain(int)::$_2::operator()" (clang); the enclosing function's is "lambda_chain(int)+".
ORACLE_NOINLINE int lambda_generic_chain(int x) {
    auto generic = [x](auto v) __attribute__((noinline)) {
        int r = check("lambda_generic",
                      "lambda_generic_chain(int):: lambda_generic_chain(int)+ main");
        ORACLE_BARRIER();
        return r + static_cast<int>(v) + x;
    };
    auto plain = [&](int y) {  // ordinary lambda, usually inlined
        int r = generic(y);
        ORACLE_BARRIER();
        return r * 2;
    };
    int r = plain(x);
    ORACLE_BARRIER();
    return r;
}

ORACLE_NOINLINE int lambda_chain(int x) {
    int k = x * 5;
    auto outlined = [&k](int y) __attribute__((noinline)) {
        int r = check("lambda", "lambda_chain(int):: lambda_chain(int)+ main");
        ORACLE_BARRIER();
        return r + y + k;
    };
    int r = outlined(x + 2);
    ORACLE_BARRIER();
    return r;
}

// ---- recursion: stacks longer than 32 frames, and longer than the 128 asked for --------------
ORACLE_NOINLINE int rec40(int n) {
    if (n == 0) {
        int r = check("recursion_40", "rec40(*41 main");
        ORACLE_BARRIER();
        return r;
    }
    int r = rec40(n - 1);
    ORACLE_BARRIER();
    return r + 1;
}

// 200 deep with 128 asked for: both must stop at exactly 128.
ORACLE_NOINLINE int deep_rec(int n) {
    if (n == 0) {
        int r = check("recursion_200_trunc", "deep_rec(*127");
        ORACLE_BARRIER();
        return r;
    }
    int r = deep_rec(n - 1);
    ORACLE_BARRIER();
    return r + 1;
}

// 400 deep with 512 asked for: every unwinder stops at the documented cap of 256, alike.
ORACLE_NOINLINE int check_max512(const char* chain, const char* expect) {
    constexpr std::size_t kBig = 512;
    std::uintptr_t a[kBig], b[kBig];
    std::size_t na = leakscope::current_stack(a, kBig, Unwinder::fast);
    ORACLE_BARRIER();
    std::size_t nb = leakscope::current_stack(b, kBig, Unwinder::libgcc);
    ORACLE_BARRIER();
    bool ok = oracle::verify(chain, "check_max512(", expect, a, na, b, nb, kBig, t_names, t_print);
    ++g_checks;
    if (!ok) ++g_failures;
    return ok ? 0 : 1;
}
ORACLE_NOINLINE int rec400(int n) {
    if (n == 0) {
        int r = check_max512("recursion_400_max512", "rec400(*255");
        ORACLE_BARRIER();
        return r;
    }
    int r = rec400(n - 1);
    ORACLE_BARRIER();
    return r + 1;
}

// ---- callbacks through libc: qsort comparator, bsearch ----------------------------------------
namespace {
int g_cmp_calls = 0;
int g_bsearch_calls = 0;
}
ORACLE_NOINLINE int cmp_ints(const void* l, const void* r) {
    // Every comparator call is checked: glibc's merge sort recurses, so the depth varies.
    bool quiet = t_print;
    t_print = false;
    bool names = t_names;
    t_names = g_cmp_calls < 8;
    check("qsort", "cmp_ints( qsort_chain( main");
    ORACLE_BARRIER();
    t_print = quiet;
    t_names = names;
    ++g_cmp_calls;
    int a = *static_cast<const int*>(l), b = *static_cast<const int*>(r);
    return (a > b) - (a < b);
}
ORACLE_NOINLINE int qsort_chain(int n) {
    int v[64];
    for (int i = 0; i < 64; ++i) v[i] = (i * 37 + n) % 64;
    std::qsort(v, 64, sizeof v[0], cmp_ints);
    ORACLE_BARRIER();
    for (int i = 1; i < 64; ++i)
        if (v[i - 1] > v[i]) return 1;
    return 0;
}

ORACLE_NOINLINE int cmp_key(const void* key, const void* elem) {
    bool print = t_print;
    t_print = false;
    check("bsearch", "cmp_key( bsearch_chain( main");
    ORACLE_BARRIER();
    t_print = print;
    ++g_bsearch_calls;
    int a = *static_cast<const int*>(key), b = *static_cast<const int*>(elem);
    return (a > b) - (a < b);
}
ORACLE_NOINLINE int bsearch_chain(int key) {
    static const int sorted[] = {1, 3, 5, 7, 9, 11, 13};
    const void* hit = std::bsearch(&key, sorted, 7, sizeof sorted[0], cmp_key);
    ORACLE_BARRIER();
    return hit ? 0 : 1;
}

// ---- std::function ----------------------------------------------------------------------------
ORACLE_NOINLINE int function_chain(int x) {
    std::function<int(int)> f = [x](int y) {
        int r = check("std::function", "function_chain( main");
        ORACLE_BARRIER();
        return r + x + y;
    };
    int r = f(x + 1);
    ORACLE_BARRIER();
    return r;
}

// ---- a virtual call ---------------------------------------------------------------------------
struct Shape {
    virtual ~Shape() = default;
    virtual int area(int) = 0;
};
struct Square : Shape {
    int area(int x) override;
};
struct Circle : Shape {
    int area(int x) override;
};
ORACLE_NOINLINE int Square::area(int x) {
    int r = check("virtual", "Square::area( virtual_chain( main");
    ORACLE_BARRIER();
    return r + x * x;
}
ORACLE_NOINLINE int Circle::area(int x) {
    int r = check("virtual_circle", "Circle::area( virtual_chain( main");
    ORACLE_BARRIER();
    return r + 3 * x * x;
}
ORACLE_NOINLINE int virtual_chain(Shape& s, int x) {
    int r = s.area(x);
    ORACLE_BARRIER();
    return r;
}

// ---- frames of unusual size -------------------------------------------------------------------
ORACLE_NOINLINE int big_frame(int x) {
    volatile char buf[64 * 1024];
    buf[x & 0xffff] = 1;
    buf[0] = 2;
    int r = check("big_frame_64k", "big_frame( main");
    ORACLE_BARRIER();
    return r + buf[x & 0xffff];
}

ORACLE_NOINLINE int alloca_frame(int n) {
    char* p = static_cast<char*>(alloca(static_cast<std::size_t>(n)));
    std::memset(p, n & 0x7f, static_cast<std::size_t>(n));
    asm volatile("" : : "r"(p) : "memory");
    int r = check("alloca", "alloca_frame( main");
    ORACLE_BARRIER();
    return r + p[n - 1];
}

// An over-aligned local: GCC realigns the stack and, when it needs a dynamic realignment
// argument pointer (DRAP; here because of the stack-passed arguments and the alloca), describes
// the CFA with a DWARF expression (DW_CFA_def_cfa_expression). The fast unwinder must fall back
// to libgcc there and still be right.
ORACLE_NOINLINE int aligned_frame(int x) {
    alignas(64) char buf[64];
    buf[0] = static_cast<char>(x);
    asm volatile("" : : "r"(buf) : "memory");
    int r = check("alignas64", "aligned_frame( main");
    ORACLE_BARRIER();
    return r + buf[0];
}
ORACLE_NOINLINE int aligned_args_frame(int a1, int a2, int a3, int a4, int a5, int a6, int a7,
                                       int a8) {
    alignas(64) char buf[64];
    buf[0] = static_cast<char>(a1 + a7);
    asm volatile("" : : "r"(buf) : "memory");
    int r = check("alignas64_stack_args", "aligned_args_frame( main");
    ORACLE_BARRIER();
    return r + buf[0] + a2 + a3 + a4 + a5 + a6 + a8;
}
ORACLE_NOINLINE int aligned_alloca_frame(int n) {
    alignas(128) char buf[128];
    char* p = static_cast<char*>(alloca(static_cast<std::size_t>(n)));
    buf[0] = static_cast<char>(n);
    p[0] = 1;
    asm volatile("" : : "r"(buf), "r"(p) : "memory");
    int r = check("alignas128_alloca", "aligned_alloca_frame( main");
    ORACLE_BARRIER();
    return r + buf[0] + p[0];
}

// ---- hand-written frames with unwind rules compilers rarely emit (as in libc/OpenSSL assembly) --
// oracle_drap_call(fn, x): GCC's DRAP realignment written out, for every compiler (clang never
// emits a CFA expression): CFA = *(rbp - 8) (DW_CFA_def_cfa_expression), rbp saved at rbp + 0
// (DW_CFA_expression). A fast unwinder that cannot evaluate expressions must fall back here.
// oracle_r12_call(fn, x): the CFA is r12 + 16, r12 a callee-saved register that the callee
// (r12_leaf) saves and reuses: right only if r12 is recovered from the callee's save slot.
extern "C" int oracle_drap_call(int (*fn)(int), int x);
extern "C" int oracle_r12_call(int (*fn)(int), int x);
asm(R"(
    .text
    .p2align 4
    .globl oracle_drap_call
    .hidden oracle_drap_call
    .type oracle_drap_call, @function
oracle_drap_call:
    .cfi_startproc
    leaq 8(%rsp), %r10
    .cfi_def_cfa %r10, 0
    andq $-64, %rsp
    pushq -8(%r10)
    pushq %rbp
    movq %rsp, %rbp
    pushq %r10
    .cfi_escape 0x0f, 0x03, 0x76, 0x78, 0x06
    .cfi_escape 0x10, 0x06, 0x02, 0x76, 0x00
    movq %rdi, %rax
    movl %esi, %edi
    subq $8, %rsp
    call *%rax
    addq $8, %rsp
    popq %r10
    .cfi_def_cfa %r10, 0
    popq %rbp
    .cfi_restore %rbp
    leaq -8(%r10), %rsp
    .cfi_def_cfa %rsp, 8
    ret
    .cfi_endproc
    .size oracle_drap_call, .-oracle_drap_call

    .p2align 4
    .globl oracle_r12_call
    .hidden oracle_r12_call
    .type oracle_r12_call, @function
oracle_r12_call:
    .cfi_startproc
    pushq %r12
    .cfi_adjust_cfa_offset 8
    .cfi_offset %r12, -16
    movq %rsp, %r12
    .cfi_def_cfa_register %r12
    andq $-32, %rsp
    movq %rdi, %rax
    movl %esi, %edi
    call *%rax
    movq %r12, %rsp
    .cfi_def_cfa_register %rsp
    popq %r12
    .cfi_adjust_cfa_offset -8
    .cfi_restore %r12
    ret
    .cfi_endproc
    .size oracle_r12_call, .-oracle_r12_call
)");
ORACLE_NOINLINE int drap_leaf(int x) {
    asm volatile("xorl %%ebx, %%ebx" : : : "rbx");  // make it save (and restore) rbx
    int r = check("asm_cfa_expression", "drap_leaf( oracle_drap_call drap_chain( main");
    ORACLE_BARRIER();
    return r + x;
}
ORACLE_NOINLINE int drap_chain(int x) {
    int r = oracle_drap_call(drap_leaf, x);
    ORACLE_BARRIER();
    return r;
}
ORACLE_NOINLINE int r12_leaf(int x) {
    asm volatile("xorl %%r12d, %%r12d" : : : "r12");  // saves r12, then clobbers it
    int r = check("asm_cfa_in_r12", "r12_leaf( oracle_r12_call r12_chain( main");
    ORACLE_BARRIER();
    return r + x;
}
ORACLE_NOINLINE int r12_chain(int x) {
    int r = oracle_r12_call(r12_leaf, x);
    ORACLE_BARRIER();
    return r;
}

// Arguments passed on the stack: during the call the caller's CFA offset includes them.
ORACLE_NOINLINE int many_args(int a1, int a2, int a3, int a4, int a5, int a6, int a7, int a8,
                              int a9, int a10) {
    int r = check("stack_args", "many_args( stack_args_chain( main");
    ORACLE_BARRIER();
    return r + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10;
}
ORACLE_NOINLINE int stack_args_chain(int x) {
    int r = many_args(x, x + 1, x + 2, x + 3, x + 4, x + 5, x + 6, x + 7, x + 8, x + 9);
    ORACLE_BARRIER();
    return r;
}

// ---- tail call: tail_mid's frame is gone at -O2 (for both unwinders alike) --------------------
ORACLE_NOINLINE int tail_inner(int x) {
    int r = check("tail_call", "tail_inner( tail_outer( main");
    ORACLE_BARRIER();
    return r + x;
}
ORACLE_NOINLINE int tail_mid(int x) { return tail_inner(x + 5); }
ORACLE_NOINLINE int tail_outer(int x) {
    int r = tail_mid(x);
    ORACLE_BARRIER();
    return r + 1;
}

// ---- a call from a function's cold part (GCC: cold_caller.cold) -------------------------------
__attribute__((cold)) ORACLE_NOINLINE int cold_leaf(int x) {
    int r = check("cold_section", "cold_leaf( cold_caller( main");
    ORACLE_BARRIER();
    return r + x;
}
ORACLE_NOINLINE int cold_caller(int x) {
    int r = x * 3;
    if (x == g_one) {  // always true at run time; the call to a cold function makes it "cold"
        r += cold_leaf(x);
        ORACLE_BARRIER();
    }
    ORACLE_BARRIER();
    return r;
}

// ---- a call that is its function's last instruction (noreturn callee) -------------------------
// The return address into noreturn_mid lies at (or past) the end of its code: an unwinder must
// look the FDE up with return address - 1.
[[noreturn]] ORACLE_NOINLINE void noreturn_leaf(int x) {
    check("noreturn", "noreturn_leaf( noreturn_mid( noreturn_chain( main");
    ORACLE_BARRIER();
    throw x;
}
ORACLE_NOINLINE void noreturn_mid(int x) { noreturn_leaf(x + 1); }
ORACLE_NOINLINE int noreturn_chain(int x) {
    try {
        noreturn_mid(x);
    } catch (int v) {
        return v - x - 1;
    }
    return 1;
}

// ---- exceptions: inside a catch block, and in a destructor run by the unwinding ---------------
ORACLE_NOINLINE int catch_leaf(int x) {
    int r = check("catch_block", "catch_leaf( catch_chain( main");
    ORACLE_BARRIER();
    return r + x;
}
ORACLE_NOINLINE int catch_chain(int x) {
    try {
        if (g_one) throw x;
    } catch (int v) {
        int r = catch_leaf(v);
        ORACLE_BARRIER();
        return r;
    }
    return 0;
}

struct Guard {
    int armed;
    ~Guard();
};
ORACLE_NOINLINE Guard::~Guard() {
    if (armed) {
        check("eh_cleanup", "Guard::~Guard( cleanup_thrower( cleanup_chain( main");
        ORACLE_BARRIER();
    }
}
ORACLE_NOINLINE void throw_now(int x) {
    if (g_one) throw x;
}
ORACLE_NOINLINE void cleanup_thrower(int x) {
    Guard g{1};  // its destructor runs in cleanup_thrower's landing pad
    throw_now(x);
    ORACLE_BARRIER();
    g.armed = 0;
}
ORACLE_NOINLINE int cleanup_chain(int x) {
    try {
        cleanup_thrower(x);
    } catch (int) {
        return 0;
    }
    return 1;
}

// ---- a signal handler (the stack passes through the kernel's signal frame) ---------------------
ORACLE_NOINLINE void signal_leaf() {
    check("signal_handler", "signal_leaf( on_signal( signal_chain( main");
    ORACLE_BARRIER();
}
static ORACLE_NOINLINE void on_signal(int) {
    signal_leaf();
    ORACLE_BARRIER();
}
ORACLE_NOINLINE int signal_chain() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    struct sigaction old {};
    if (sigaction(SIGUSR1, &sa, &old) != 0) return 1;
    raise(SIGUSR1);  // delivered before raise returns
    ORACLE_BARRIER();
    sigaction(SIGUSR1, &old, nullptr);
    return 0;
}

// ---- a fault at a function's first instruction: an exact pc, not a return address -------------
// oracle_trap_at_entry starts right where oracle_before_trap ends, and oracle_before_trap's last
// byte has a very different frame (CFA = rsp + 4104): looking up pc - 1 for the interrupted frame,
// as for a return address, would pick that rule. The SIGILL handler checks, then steps over ud2.
// oracle_trap_after_push faults in the middle of a frame (after a push and a sub).
extern "C" void oracle_trap_at_entry();
extern "C" void oracle_trap_after_push();
asm(R"(
    .text
    .p2align 4
    .type oracle_before_trap, @function
oracle_before_trap:
    .cfi_startproc
    subq $4096, %rsp
    .cfi_adjust_cfa_offset 4096
    addq $4096, %rsp
    .cfi_adjust_cfa_offset -4096
    subq $4096, %rsp
    .cfi_adjust_cfa_offset 4096
    nop
    .cfi_endproc
    .size oracle_before_trap, .-oracle_before_trap
    .globl oracle_trap_at_entry
    .hidden oracle_trap_at_entry
    .type oracle_trap_at_entry, @function
oracle_trap_at_entry:
    .cfi_startproc
    ud2
    ret
    .cfi_endproc
    .size oracle_trap_at_entry, .-oracle_trap_at_entry

    .p2align 4
    .globl oracle_trap_after_push
    .hidden oracle_trap_after_push
    .type oracle_trap_after_push, @function
oracle_trap_after_push:
    .cfi_startproc
    pushq %rbx
    .cfi_adjust_cfa_offset 8
    .cfi_offset %rbx, -16
    subq $48, %rsp
    .cfi_adjust_cfa_offset 48
    ud2
    addq $48, %rsp
    .cfi_adjust_cfa_offset -48
    popq %rbx
    .cfi_adjust_cfa_offset -8
    .cfi_restore %rbx
    ret
    .cfi_endproc
    .size oracle_trap_after_push, .-oracle_trap_after_push
)");
namespace {
const char* volatile g_trap_chain = "";
const char* volatile g_trap_expect = "";
}  // namespace
ORACLE_NOINLINE void trap_leaf() {
    check(g_trap_chain, g_trap_expect);
    ORACLE_BARRIER();
}
static ORACLE_NOINLINE void on_sigill(int, siginfo_t*, void* context) {
    trap_leaf();
    ORACLE_BARRIER();
    static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_RIP] += 2;  // over the ud2
}
ORACLE_NOINLINE int trap_chain() {
    struct sigaction sa {};
    sa.sa_sigaction = on_sigill;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    struct sigaction old {};
    if (sigaction(SIGILL, &sa, &old) != 0) return 1;
    // (the interrupted frame is symbolized from pc - 1, so it is not among the expected names)
    g_trap_chain = "sigill_at_entry";
    g_trap_expect = "trap_leaf( on_sigill( trap_chain( main";
    oracle_trap_at_entry();
    ORACLE_BARRIER();
    g_trap_chain = "sigill_mid_frame";
    g_trap_expect = "trap_leaf( on_sigill( oracle_trap_after_push trap_chain( main";
    oracle_trap_after_push();
    ORACLE_BARRIER();
    sigaction(SIGILL, &old, nullptr);
    return 0;
}

// ---- a signal handler on an alternate signal stack (sigaltstack) ------------------------------
ORACLE_NOINLINE void altstack_leaf() {
    check("sigaltstack", "altstack_leaf( on_altstack_signal( altstack_chain( main");
    ORACLE_BARRIER();
}
static ORACLE_NOINLINE void on_altstack_signal(int) {
    altstack_leaf();
    ORACLE_BARRIER();
}
ORACLE_NOINLINE int altstack_chain() {
    constexpr std::size_t kSize = 256 * 1024;
    void* mem = std::malloc(kSize);
    if (!mem) return 1;
    stack_t ss {}, old_ss {};
    ss.ss_sp = mem;
    ss.ss_size = kSize;
    if (sigaltstack(&ss, &old_ss) != 0) return 1;
    struct sigaction sa {};
    sa.sa_handler = on_altstack_signal;
    sa.sa_flags = SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    struct sigaction old {};
    if (sigaction(SIGUSR2, &sa, &old) != 0) return 1;
    raise(SIGUSR2);
    ORACLE_BARRIER();
    sigaction(SIGUSR2, &old, nullptr);
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, nullptr);
    std::free(mem);
    return 0;
}

// ---- a makecontext stack (coroutines): not the thread's stack, ends at __start_context --------
namespace {
ucontext_t g_uc_main, g_uc_co;
}
ORACLE_NOINLINE void ucontext_leaf() {
    check("ucontext", "ucontext_leaf( ucontext_entry(");
    ORACLE_BARRIER();
}
ORACLE_NOINLINE void ucontext_entry() {
    ucontext_leaf();
    ORACLE_BARRIER();
}
ORACLE_NOINLINE int ucontext_chain() {
    constexpr std::size_t kSize = 256 * 1024;
    void* stack = std::malloc(kSize);
    if (!stack || getcontext(&g_uc_co) != 0) return 1;
    g_uc_co.uc_stack.ss_sp = stack;
    g_uc_co.uc_stack.ss_size = kSize;
    g_uc_co.uc_link = &g_uc_main;
    makecontext(&g_uc_co, ucontext_entry, 0);
    if (swapcontext(&g_uc_main, &g_uc_co) != 0) return 1;
    std::free(stack);
    return 0;
}

// The same with the coroutine's stack inside the thread's own stack (a local array of a caller).
namespace {
ucontext_t g_uc_main2, g_uc_co2;
}
ORACLE_NOINLINE void ucontext_local_leaf() {
    check("ucontext_on_stack", "ucontext_local_leaf( ucontext_local_entry(");
    ORACLE_BARRIER();
}
ORACLE_NOINLINE void ucontext_local_entry() {
    ucontext_local_leaf();
    ORACLE_BARRIER();
}
ORACLE_NOINLINE int ucontext_local_chain() {
    alignas(64) char stack[128 * 1024];
    asm volatile("" : : "r"(stack) : "memory");
    if (getcontext(&g_uc_co2) != 0) return 1;
    g_uc_co2.uc_stack.ss_sp = stack;
    g_uc_co2.uc_stack.ss_size = sizeof stack;
    g_uc_co2.uc_link = &g_uc_main2;
    makecontext(&g_uc_co2, ucontext_local_entry, 0);
    if (swapcontext(&g_uc_main2, &g_uc_co2) != 0) return 1;
    ORACLE_BARRIER();
    return 0;
}

// ---- a std::thread: the stack ends at the thread's start --------------------------------------
ORACLE_NOINLINE int thread_leaf(int x) {
    int r = check("std::thread", "thread_leaf( thread_chain(");
    ORACLE_BARRIER();
    return r + x;
}
ORACLE_NOINLINE int thread_chain(int x) {
    int r = thread_leaf(x * 2);
    ORACLE_BARRIER();
    return r;
}

// ---- std::call_once: libstdc++'s __once_proxy called back by libc's pthread_once ---------------
ORACLE_NOINLINE int once_leaf(int x) {
    int r = check("call_once", "once_leaf( once_chain( main");
    ORACLE_BARRIER();
    return r + x;
}
ORACLE_NOINLINE int once_chain(int x) {
    std::once_flag flag;
    int r = 0;
    std::call_once(flag, [&] { r = once_leaf(x); });
    ORACLE_BARRIER();
    return r;
}

// ---- a thread_local's destructor, run by libc at thread exit ----------------------------------
ORACLE_NOINLINE int tls_dtor_leaf(int x) {
    int r = check("thread_local_dtor", "tls_dtor_leaf( TlsObject::~TlsObject(");
    ORACLE_BARRIER();
    return r + x;
}
struct TlsObject {
    int armed = 0;
    ~TlsObject();
};
ORACLE_NOINLINE TlsObject::~TlsObject() {
    if (armed) tls_dtor_leaf(armed);
    ORACLE_BARRIER();
}
ORACLE_NOINLINE void tls_thread_body() {
    thread_local TlsObject obj;
    obj.armed = 1;
    ORACLE_BARRIER();
}

// ---- in a forked child (the unwinder's state is the parent's copy) ----------------------------
ORACLE_NOINLINE int fork_leaf() {
    int r = check("fork_child", "fork_leaf( fork_chain( main");
    ORACLE_BARRIER();
    return r;
}
ORACLE_NOINLINE int fork_chain() {
    std::fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        int r = fork_leaf();
        std::fflush(stdout);
        _exit(r);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return 1;
    ORACLE_BARRIER();
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

// ---- small `max`: truncation, and nothing written past max ------------------------------------
ORACLE_NOINLINE int check_small_max() {
    int bad = 0;
    for (std::size_t m : {std::size_t(0), std::size_t(1), std::size_t(2), std::size_t(3),
                          std::size_t(5)}) {
        std::uintptr_t a[8], b[8];
        for (int i = 0; i < 8; ++i) a[i] = b[i] = 0xdeadbeef;
        std::size_t na = leakscope::current_stack(a, m, Unwinder::fast);
        ORACLE_BARRIER();
        std::size_t nb = leakscope::current_stack(b, m, Unwinder::libgcc);
        ORACLE_BARRIER();
        bool ok = na == m && nb == m;  // the stack here is deeper than 5
        for (std::size_t i = 1; ok && i < m; ++i) ok = a[i] == b[i];
        for (std::size_t i = m; ok && i < 8; ++i) ok = a[i] == 0xdeadbeef && b[i] == 0xdeadbeef;
        if (!ok) {
            std::printf("FAIL %-20s max=%zu: fast returned %zu, libgcc %zu (or wrote past max "
                        "or differs)\n",
                        "small_max", m, na, nb);
            oracle::print_stacks(a, na < 8 ? na : 8, b, nb < 8 ? nb : 8);
            bad = 1;
        }
    }
    ++g_checks;
    if (bad) {
        ++g_failures;
    } else {
        std::printf("ok   %-20s max = 0, 1, 2, 3, 5: exactly max frames, same as libgcc, nothing "
                    "written past max\n",
                    "small_max");
    }
    std::fflush(stdout);
    return bad;
}
ORACLE_NOINLINE int small_max_chain() {
    int r = check_small_max();
    ORACLE_BARRIER();
    return r;
}

// ---- before main (static initialization) and after main (atexit, static destruction) ----------
ORACLE_NOINLINE int static_init_leaf(int x) {
    int r = check("static_init", "static_init_leaf(");
    ORACLE_BARRIER();
    return r + x;
}
ORACLE_NOINLINE int atexit_leaf(int x) {
    int r = check("atexit", "atexit_leaf(");
    ORACLE_BARRIER();
    return r + x;
}
ORACLE_NOINLINE int static_fini_leaf(int x) {
    int r = check("static_destruction", "static_fini_leaf(");
    ORACLE_BARRIER();
    return r + x;
}
namespace {
struct BeforeAndAfterMain {
    BeforeAndAfterMain() { static_init_leaf(0); }
    // Runs after leakscope's own static objects (if any) are destroyed: corpus_impl.o is
    // linked after this file, so its objects are constructed later and destroyed earlier.
    ~BeforeAndAfterMain() {
        if (static_fini_leaf(0) != 0 || g_failures.load() != 0) {
            std::fflush(stdout);
            _exit(1);
        }
    }
} g_before_and_after_main;
void on_exit_handler() {
    if (atexit_leaf(0) != 0) {
        std::fflush(stdout);
        _exit(1);
    }
}
}  // namespace

// ---- the shared library -----------------------------------------------------------------------
namespace {
struct Lib {
    void* handle = nullptr;
    int variant = -1;
    int (*call_back)(int (*)(int), int) = nullptr;
    int (*internal)(const char*, const char*, int, int) = nullptr;
    std::uintptr_t base = 0;
};

bool load(Lib& lib, const char* path) {
    lib.handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib.handle) {
        std::printf("FAIL dlopen(%s): %s\n", path, dlerror());
        return false;
    }
    auto init = reinterpret_cast<int (*)(oracle::StackFn)>(dlsym(lib.handle, "oracle_lib_init"));
    lib.call_back =
        reinterpret_cast<int (*)(int (*)(int), int)>(dlsym(lib.handle, "oracle_lib_call_back"));
    lib.internal = reinterpret_cast<int (*)(const char*, const char*, int, int)>(
        dlsym(lib.handle, "oracle_lib_internal"));
    if (!init || !lib.call_back || !lib.internal) {
        std::printf("FAIL %s: missing oracle_lib_* symbols\n", path);
        return false;
    }
    lib.variant = init(&leakscope::current_stack);
    Dl_info di;
    lib.base = dladdr(reinterpret_cast<void*>(init), &di)
                   ? reinterpret_cast<std::uintptr_t>(di.dli_fbase)
                   : 0;
    return true;
}

// dlclose (by the executable, or by `host_dlclose`), and require that the library really left
// (no STB_GNU_UNIQUE, no NODELETE).
bool unload(Lib& lib, const char* path, int (*host_dlclose)(void*) = nullptr) {
    if ((host_dlclose ? host_dlclose(lib.handle) : dlclose(lib.handle)) != 0) {
        std::printf("FAIL dlclose(%s): %s\n", path, dlerror());
        return false;
    }
    lib.handle = nullptr;
    if (void* still = dlopen(path, RTLD_NOW | RTLD_NOLOAD)) {
        dlclose(still);
        std::printf("FAIL %s is still loaded after dlclose: the unload test would test nothing\n",
                    path);
        return false;
    }
    return true;
}

// The callback the library calls: context comes in thread-locals.
thread_local const char* t_cb_chain = "";
thread_local const char* t_cb_expect = "";
}  // namespace

ORACLE_NOINLINE int exe_callback(int x) {
    int r = check(t_cb_chain, t_cb_expect);
    ORACLE_BARRIER();
    return r + x * 0;
}

// Called by the library's constructor and destructor (through ORACLE_LIB_HOOK), i.e. from
// inside dlopen and dlclose, below the dynamic loader's frames.
ORACLE_NOINLINE int exe_lib_hook(const char* what) {
    int r = what[0] == 'c'
                ? check("dlopen_constructor", "exe_lib_hook( lib_constructor( dlopen ctor_dtor_chain( main")
                : check("dlclose_destructor", "exe_lib_hook( lib_destructor( dlclose ctor_dtor_chain( main");
    ORACLE_BARRIER();
    return r;
}
ORACLE_NOINLINE int ctor_dtor_chain(const char* path) {
    char hook[32];
    std::snprintf(hook, sizeof hook, "%lx",
                  static_cast<unsigned long>(reinterpret_cast<std::uintptr_t>(&exe_lib_hook)));
    setenv("ORACLE_LIB_HOOK", hook, 1);
    int before = g_checks.load();
    Lib lib;
    int bad = 0;
    if (!load(lib, path)) bad = 1;
    ORACLE_BARRIER();
    if (!bad && !unload(lib, path)) bad = 1;
    ORACLE_BARRIER();
    unsetenv("ORACLE_LIB_HOOK");
    if (g_checks.load() != before + 2) {
        std::printf("FAIL %-20s the library's constructor/destructor did not call back\n",
                    "dlopen_constructor");
        bad = 1;
    }
    if (bad) ++g_failures;
    return bad;
}

// Both library chains, called from `caller` (named in expect strings).
ORACLE_NOINLINE int lib_chains(Lib& lib, const char* tag, const char* caller) {
    char chain_cb[64], chain_in[64], expect_cb[256];
    std::snprintf(chain_cb, sizeof chain_cb, "%s_callback", tag);
    std::snprintf(chain_in, sizeof chain_in, "%s_in_lib", tag);
    std::snprintf(expect_cb, sizeof expect_cb,
                  "exe_callback( lib_cb_helper( oracle_lib_call_back lib_chains( %s", caller);
    t_cb_chain = chain_cb;
    t_cb_expect = expect_cb;
    int bad = lib.call_back(exe_callback, 1) != 0;
    ORACLE_BARRIER();
    char expect_in[256];
    std::snprintf(expect_in, sizeof expect_in, "lib_chains( %s", caller);
    int bad_in = lib.internal(chain_in, expect_in, t_names ? 1 : 0, t_print ? 1 : 0);
    ORACLE_BARRIER();
    ++g_checks;  // the library's check site counts here (exe_callback's counts in check())
    if (bad_in) ++g_failures;
    return bad + bad_in;
}

// Libraries A and B (same code, different frames) loaded in turn: each unload frees the address
// range the next load will most likely reuse. Deterministic: one thread. With a host library,
// the host's code calls dlclose (a plugin host in a library), not the executable's.
ORACLE_NOINLINE int reload_alternating(const char* name, const char* const paths[2],
                                       int (*host_dlclose)(void*)) {
    constexpr int kRounds = 40;
    int reused = 0, bad = 0;
    std::uintptr_t last_base = 0;
    int last_variant = -1;
    t_print = false;
    for (int i = 0; i < kRounds && !bad; ++i) {
        Lib lib;
        const char* path = paths[i % 2];
        if (!load(lib, path)) {
            ++g_failures;
            bad = 1;
            break;
        }
        if (lib.base == last_base && lib.variant != last_variant) ++reused;
        t_names = i < 4;
        bad |= lib_chains(lib, name, "reload_alternating(");
        ORACLE_BARRIER();
        last_base = lib.base;
        last_variant = lib.variant;
        if (!unload(lib, path, host_dlclose)) {
            ++g_failures;
            bad = 1;
        }
    }
    t_print = true;
    t_names = true;
    if (bad) {
        std::printf("FAIL %-20s (see above)\n", name);
    } else {
        std::printf("ok   %-20s %d loads of A/B in turn, unloaded by the %s; the other "
                    "library's address reused %d times\n",
                    name, kRounds, host_dlclose ? "host library" : "executable", reused);
    }
    std::fflush(stdout);
    return bad;
}

// Each of two threads loads its own library, calls through it into check sites in the library
// and in the executable, and unloads it; 300 times, concurrently with the other thread.
namespace {
constexpr int kThreadRounds = 300;
struct WorkerResult {
    int bad = 0;
    int done = 0;
};
}  // namespace
ORACLE_NOINLINE void dl_worker(const char* path, WorkerResult* res) {
    t_print = false;
    for (int i = 0; i < kThreadRounds; ++i) {
        Lib lib;
        if (!load(lib, path)) {
            ++g_failures;
            res->bad = 1;
            return;
        }
        t_names = i % 100 == 0;
        int bad = lib_chains(lib, "threads", "dl_worker(");
        ORACLE_BARRIER();
        if (!unload(lib, path)) {
            ++g_failures;
            bad = 1;
        }
        ++res->done;
        if (bad) {
            res->bad = 1;
            return;  // one dump is enough
        }
    }
}
ORACLE_NOINLINE int concurrent_dlopen(const char* const paths[2]) {
    WorkerResult r0, r1;
    std::thread t0(dl_worker, paths[0], &r0);
    std::thread t1(dl_worker, paths[1], &r1);
    t0.join();
    t1.join();
    int bad = r0.bad | r1.bad;
    if (bad) {
        std::printf("FAIL %-20s thread 0: %d rounds, thread 1: %d rounds (see above)\n",
                    "concurrent_dlopen", r0.done, r1.done);
    } else {
        std::printf("ok   %-20s 2 threads x %d rounds of dlopen, 2 checks, dlclose\n",
                    "concurrent_dlopen", kThreadRounds);
    }
    std::fflush(stdout);
    return bad;
}

// -----------------------------------------------------------------------------------------------
int main(int argc, char** argv) {
    if (argc != 4 || argv[1][0] != '/' || argv[2][0] != '/' || argv[3][0] != '/') {
        std::fprintf(stderr,
                     "usage: %s /abs/path/libunwind_a.so /abs/path/libunwind_b.so "
                     "/abs/path/libunwind_host.so\n",
                     argv[0]);
        return 2;
    }
    const char* const libs[2] = {argv[1], argv[2]};
    const char* const host_path = argv[3];
    std::atexit(on_exit_handler);

    check("main", "main");
    plain_a(1);
    static_a(2);
    inline_outer(3);
    lambda_chain(4);
    lambda_generic_chain(5);
    rec40(40);
    deep_rec(200);
    rec400(400);
    if (qsort_chain(6) != 0) {
        std::printf("FAIL qsort did not sort\n");
        ++g_failures;
    }
    std::printf("ok   %-20s %d comparator calls checked\n", "qsort", g_cmp_calls);
    if (bsearch_chain(7) != 0) {
        std::printf("FAIL bsearch did not find\n");
        ++g_failures;
    }
    std::printf("ok   %-20s %d comparator calls checked\n", "bsearch", g_bsearch_calls);
    function_chain(8);
    {
        Square sq;
        Circle ci;
        Shape& s = g_one ? static_cast<Shape&>(sq) : static_cast<Shape&>(ci);
        virtual_chain(s, 9);
    }
    big_frame(10);
    alloca_frame(1000 + 7 * g_one);
    aligned_frame(11);
    aligned_args_frame(1, 2, 3, 4, 5, 6, 7, 8);
    aligned_alloca_frame(300 + g_one);
    stack_args_chain(12);
    drap_chain(18);
    r12_chain(19);
    tail_outer(13);
    cold_caller(1);
    if (noreturn_chain(14) != 0) {
        std::printf("FAIL noreturn chain: exception lost\n");
        ++g_failures;
    }
    catch_chain(15);
    if (cleanup_chain(16) != 0) {
        std::printf("FAIL eh_cleanup chain: exception lost\n");
        ++g_failures;
    }
    signal_chain();
    trap_chain();
    if (altstack_chain() != 0) {
        std::printf("FAIL sigaltstack chain could not run\n");
        ++g_failures;
    }
    if (ucontext_chain() != 0) {
        std::printf("FAIL ucontext chain could not run\n");
        ++g_failures;
    }
    if (ucontext_local_chain() != 0) {
        std::printf("FAIL ucontext_on_stack chain could not run\n");
        ++g_failures;
    }
    {
        std::thread t([] { thread_chain(17); });
        t.join();
    }
    small_max_chain();
    once_chain(20);
    {
        std::thread t(tls_thread_body);
        t.join();
    }
    ++g_checks;  // the child's check is counted here, its failure through the exit status
    if (fork_chain() != 0) {
        std::printf("FAIL %-20s the child failed (see above) or died\n", "fork_child");
        ++g_failures;
    }

    {
        Lib lib;
        if (load(lib, libs[0])) {
            lib_chains(lib, "dlopen", "main");
            if (!unload(lib, libs[0])) ++g_failures;
        } else {
            ++g_failures;
        }
    }
    ctor_dtor_chain(libs[1]);
    reload_alternating("reload_alternating", libs, nullptr);
    {
        void* host = dlopen(host_path, RTLD_NOW | RTLD_LOCAL);
        auto host_dlclose =
            host ? reinterpret_cast<int (*)(void*)>(dlsym(host, "oracle_lib_dlclose")) : nullptr;
        if (!host_dlclose) {
            std::printf("FAIL host library %s: %s\n", host_path, dlerror());
            ++g_failures;
        } else {
            reload_alternating("reload_by_library", libs, host_dlclose);
        }
        if (host) dlclose(host);
    }
    concurrent_dlopen(libs);

    int failures = g_failures.load();
    std::printf("%s: %d checks, %d failed (before: static_init; still to come: atexit, "
                "static_destruction)\n",
                failures ? "FAILED" : "PASSED", g_checks.load(), failures);
    std::fflush(stdout);
    return failures ? 1 : 0;
}
