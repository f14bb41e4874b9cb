// The fast unwinder inside signal handlers: through the kernel's signal frame (glibc's
// __restore_rt) into the interrupted code.
//  (a) raise(SIGUSR1) from a known call chain;
//  (b) pthread_kill(SIGUSR2) from another thread interrupting a busy loop in noinline functions
//      at arbitrary instructions (prologues, epilogues, between calls), many times;
//  (c) a handler running on a sigaltstack.
// (a)/(b): Unwinder::fast == Unwinder::libgcc for frames [1..] and count (and so does the CFI walk
// alone: detail::unwind_fast from the handler's registers), and the frames past the
// signal frame are there: the interrupted pc (the ucontext's rip), the chain's return addresses
// and main's. (c): bounded and no crash (see the comment there for what it returns).
// Then: threads allocating inside LeakScopes (stacks captured by the hook) and threads calling
// current_stack in a loop, while signals whose handlers capture stacks hit them: nothing
// deadlocks (a watchdog fails the test after 120 s instead of letting it hang).
// Last, (e): a thread's very first capture happens in a handler that interrupted malloc/free:
// current_stack never allocates, so it must not deadlock there either.
// Exit status 0 = pass.
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include "unwind_frames.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <pthread.h>
#include <sys/mman.h>
#include <thread>
#include <ucontext.h>
#include <unistd.h>
#include <vector>

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif
// ThreadSanitizer does not run an asynchronous signal's handler in the signal frame: it queues
// the signal and calls the handler later from its own runtime, on the ordinary stack. The handler
// then sees no kernel signal frame, and the ucontext's rip is not in its call chain.
#define HANDLER_IN_SIGNAL_FRAME (!UNDER_TSAN)

namespace {
using uptr = std::uintptr_t;
constexpr std::size_t kMax = 128;
int failures = 0;

void escape(const void* p) { asm volatile("" : : "g"(p) : "memory"); }

using unwind_frames::describe;
void dump(const char* label, const uptr* s, std::size_t n) {
    std::fprintf(stderr, "  %s (%zu frames):\n", label, n);
    for (std::size_t i = 0; i < n; ++i) describe(s[i]);
}

// Filled by a handler (no allocation, no stdio there); checked afterwards.
struct Capture {
    uptr fast[kMax], gcc[kMax], cfi[kMax + 1];
    std::size_t nf = 0, ng = 0, nc = 0;
    uptr rip = 0;   // the interrupted pc, from the ucontext
};
uptr main_stack_hi = 0;   // for the CFI walk alone, in handlers running on main's stack

// The CFI walk alone: detail::unwind_fast from this function's own registers, bounded by
// [sp, stack_hi), without current_stack's libgcc fallback. out[0] = a pc inside cfi_only,
// out[1] = its return address in the caller, out[2..] = the caller's callers.
__attribute__((noinline)) std::size_t cfi_only(uptr* out, std::size_t max, uptr stack_hi) {
    uptr pc, sp, fp;
    asm volatile("leaq 0(%%rip), %0\n\tmovq %%rsp, %1\n\tmovq %%rbp, %2" : "=r"(pc), "=r"(sp), "=r"(fp));
    return leakscope::detail::unwind_fast(pc, sp, fp, sp, stack_hi, out, max);
}

// The top of this thread's stack (pthread_getattr_np may allocate: never call it in a handler).
uptr this_stack_hi() {
    pthread_attr_t attr;
    void* addr = nullptr;
    std::size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return 0;
    pthread_attr_getstack(&attr, &addr, &size);
    pthread_attr_destroy(&attr);
    return reinterpret_cast<uptr>(addr) + size;
}

__attribute__((noinline)) void capture_both(Capture& c, void* uc) {
    c.nf = leakscope::current_stack(c.fast, kMax, leakscope::Unwinder::fast);
    c.ng = leakscope::current_stack(c.gcc, kMax, leakscope::Unwinder::libgcc);
    c.nc = main_stack_hi ? cfi_only(c.cfi, kMax + 1, main_stack_hi) : 0;
    c.rip = uc ? static_cast<uptr>(static_cast<ucontext_t*>(uc)->uc_mcontext.gregs[REG_RIP]) : 0;
    asm volatile("" : : : "memory");
}

bool contains(const uptr* s, std::size_t n, uptr v) {
    for (std::size_t i = 0; i < n; ++i)
        if (s[i] == v) return true;
    return false;
}

// fast == libgcc for [1..] and count, and `must` (return addresses past the signal frame) present.
bool compare(const char* what, const Capture& c, const uptr* must, std::size_t n_must, bool quiet = false) {
    bool ok = c.nf == c.ng && c.nf >= 2 && c.nf < kMax;
    for (std::size_t i = 1; ok && i < c.nf; ++i) ok = c.fast[i] == c.gcc[i];
    bool found = true;
    for (std::size_t i = 0; i < n_must; ++i) found &= contains(c.fast, c.nf, must[i]);
    // The CFI walk by itself (no libgcc fallback) goes through the signal frame just the same.
    bool cfi_ok = !main_stack_hi || c.nc == c.ng + 1;
    for (std::size_t i = 1; main_stack_hi && cfi_ok && i < c.ng; ++i) cfi_ok = c.cfi[i + 1] == c.gcc[i];
    if (ok && found && cfi_ok) return true;
    ++failures;
    if (!quiet) {
        std::fprintf(stderr, "FAILED: %s:%s%s%s\n", what, ok ? "" : " fast != libgcc",
                     found ? "" : " expected frames missing from fast",
                     cfi_ok ? "" : " the CFI walk alone (detail::unwind_fast) != libgcc");
        dump("fast", c.fast, c.nf);
        dump("libgcc", c.gcc, c.ng);
        dump("CFI walk alone ([2..] should be libgcc's [1..])", c.cfi, c.nc);
        std::fprintf(stderr, "  expected among them:\n");
        for (std::size_t i = 0; i < n_must; ++i) describe(must[i]);
    }
    return false;
}

// ---- (a) raise from a known chain ----------------------------------------------------------------
Capture cap_a;
uptr chain_a_returns[3];   // return addresses of chain_1 (in main), chain_2, chain_3

extern "C" void on_usr1(int, siginfo_t*, void* uc) {
    const int saved = errno;   // a handler must leave errno as it found it
    capture_both(cap_a, uc);
    errno = saved;
}

__attribute__((noinline)) void chain_3() {
    chain_a_returns[2] = reinterpret_cast<uptr>(__builtin_return_address(0));
    raise(SIGUSR1);
    asm volatile("" : : : "memory");
}
__attribute__((noinline)) void chain_2() {
    chain_a_returns[1] = reinterpret_cast<uptr>(__builtin_return_address(0));
    chain_3();
    asm volatile("" : : : "memory");
}
__attribute__((noinline)) void chain_1() {
    chain_a_returns[0] = reinterpret_cast<uptr>(__builtin_return_address(0));
    chain_2();
    asm volatile("" : : : "memory");
}

void part_a() {
    struct sigaction sa {};
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, nullptr);
    for (int round = 0; round < 3; ++round) {   // the second time, from cached rules
        cap_a = Capture{};
        chain_1();
        compare("(a) raise(SIGUSR1) from chain_1 > chain_2 > chain_3", cap_a, chain_a_returns, 3);
    }
    signal(SIGUSR1, SIG_DFL);
}

// ---- (b) interrupting a busy loop ----------------------------------------------------------------
Capture cap_b;
std::atomic<int> requested{0};   // the sender's release before each signal ...
std::atomic<int> handled{0};     // ... and the handler's when it is done with cap_b
std::atomic<bool> spinning{false};
std::atomic<bool> stop_spin{false};
uptr spin_returns[2];   // return addresses of spin_outer (in main's chain) and spin_inner

extern "C" void on_usr2(int, siginfo_t*, void* uc) {
    const int saved = errno;
    if (requested.load() != handled.load()) capture_both(cap_b, uc);   // only when asked
    handled.store(requested.load());
    errno = saved;
}

// Tiny functions called in a tight loop, so the signal lands anywhere: on the call, in the
// callee's prologue or epilogue, in the loop. Two shapes: with and without a frame pointer.
__attribute__((noinline)) unsigned long tiny_leaf(unsigned long x) {
    asm volatile("" : "+r"(x));
    return x * 3 + 1;
}
__attribute__((noinline)) unsigned long tiny_framed(unsigned long x) {
    escape(__builtin_frame_address(0));   // forces a frame pointer here
    return tiny_leaf(x) ^ 5;
}
__attribute__((noinline)) unsigned long spin_inner() {
    spin_returns[1] = reinterpret_cast<uptr>(__builtin_return_address(0));
    unsigned long acc = 0;
    spinning.store(true);
    while (!stop_spin.load(std::memory_order_relaxed)) {
        acc += tiny_framed(acc) + tiny_leaf(acc);
#if UNDER_TSAN
        usleep(0);   // TSan delivers queued asynchronous signals at blocking calls
#endif
    }
    return acc;
}
__attribute__((noinline)) unsigned long spin_outer() {
    spin_returns[0] = reinterpret_cast<uptr>(__builtin_return_address(0));
    unsigned long r = spin_inner();
    asm volatile("" : : : "memory");
    return r;
}

// The interrupted pc lies in one of the spinning functions; spin_outer's return address (in
// part_b) and spin_inner's (in spin_outer) are further out unless the pc is in spin_outer
// itself. We know every pc range only approximately, so require: rip present in fast (when the
// handler ran in the signal frame), spin_outer's return address present.
constexpr int kInterrupts = 300;

void part_b() {
    struct sigaction sa {};
    sa.sa_sigaction = on_usr2;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, nullptr);
    const pthread_t target = pthread_self();
    int reported = 0;
    std::thread sender([&] {
        while (!spinning.load()) std::this_thread::yield();
        for (int i = 0; i < kInterrupts; ++i) {
            requested.store(i + 1);
            pthread_kill(target, SIGUSR2);
            while (handled.load() != i + 1) std::this_thread::yield();
            // Compare here, on the sender, while the spinner spins on (cap_b is quiescent now).
            uptr must[2] = {spin_returns[0], cap_b.rip};
            const bool quiet = reported >= 5;
            if (!compare("(b) pthread_kill interrupting spin_inner", cap_b, must,
                         HANDLER_IN_SIGNAL_FRAME ? 2 : 1, quiet))
                ++reported;
        }
        stop_spin.store(true);
    });
    unsigned long r = spin_outer();
    escape(&r);
    sender.join();
    signal(SIGUSR2, SIG_DFL);
}

// ---- (c) on a sigaltstack --------------------------------------------------------------------------
// What it returns: the handler's frames live on the alternate stack, the interrupted ones on the
// thread's stack; libgcc follows the signal frame from one to the other. leakscope's fast
// unwinder bounds its reads by the thread's stack, so it may stop at the handler's last frame or
// at the signal frame; either is fine here. Required: no crash, count <= max, frames[0] is inside
// capture_both (both captures), and when fast reaches past the signal frame, it agrees with libgcc.
Capture cap_c;
uptr chain_c_return = 0;
extern "C" void on_alt(int, siginfo_t*, void* uc) {
    const int saved = errno;
    capture_both(cap_c, uc);
    errno = saved;
}

__attribute__((noinline)) void raise_alt() {
    chain_c_return = reinterpret_cast<uptr>(__builtin_return_address(0));
    raise(SIGUSR1);
    asm volatile("" : : : "memory");
}

void part_c() {
    // The handler's sp is on the alternate stack, outside [sp, main_stack_hi): no CFI-alone walk.
    const uptr saved_hi = main_stack_hi;
    main_stack_hi = 0;
    const std::size_t size = 256 * 1024;
    void* alt = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (alt == MAP_FAILED) {
        std::perror("mmap");
        ++failures;
        return;
    }
    stack_t ss{}, old{};
    ss.ss_sp = alt;
    ss.ss_size = size;
    if (sigaltstack(&ss, &old) != 0) {
        std::perror("sigaltstack");
        ++failures;
        munmap(alt, size);
        return;
    }
    struct sigaction sa {};
    sa.sa_sigaction = on_alt;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, nullptr);
    for (int round = 0; round < 2; ++round) {
        cap_c = Capture{};
        raise_alt();
        bool ok = cap_c.nf >= 1 && cap_c.nf < kMax && cap_c.fast[0] != 0;
        if (ok && contains(cap_c.fast, cap_c.nf, chain_c_return)) {
            // It went through: then all of it must be right.
            ok = cap_c.nf == cap_c.ng;
            for (std::size_t i = 1; ok && i < cap_c.nf; ++i) ok = cap_c.fast[i] == cap_c.gcc[i];
        } else if (ok) {
            // A prefix of what libgcc saw.
            ok = cap_c.nf <= cap_c.ng;
            for (std::size_t i = 1; ok && i < cap_c.nf; ++i) ok = cap_c.fast[i] == cap_c.gcc[i];
        }
        if (round == 0)
            std::printf("(c) sigaltstack: fast %zu frames (%s), libgcc %zu frames\n", cap_c.nf,
                        contains(cap_c.fast, cap_c.nf, chain_c_return) ? "through the signal frame"
                                                                      : "stops before the signal frame",
                        cap_c.ng);
        if (!ok) {
            ++failures;
            std::fprintf(stderr, "FAILED: (c) sigaltstack handler\n");
            dump("fast", cap_c.fast, cap_c.nf);
            dump("libgcc", cap_c.gcc, cap_c.ng);
        }
    }
    signal(SIGUSR1, SIG_DFL);
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, nullptr);
    munmap(alt, size);
    main_stack_hi = saved_hi;
}

// ---- no deadlock: hook captures and handler captures, concurrently -----------------------------
// Every capture here is also checked against libgcc: a walk interrupted by a handler that walks
// too (the per-thread memory of the last walk, the rule cache) must not come out wrong either.
std::atomic<long> handler_captures{0};
std::atomic<long> mismatches{0};
std::atomic<int> mismatch_recorded{0};
Capture first_mismatch;   // written once, by whoever mismatched first; printed at the end

__attribute__((noinline)) void capture_and_compare() {
    uptr f[64], g[64];
    const std::size_t nf = leakscope::current_stack(f, 64, leakscope::Unwinder::fast);
    const std::size_t ng = leakscope::current_stack(g, 64, leakscope::Unwinder::libgcc);
    bool same = nf == ng && nf >= 2;
    for (std::size_t i = 1; same && i < nf; ++i) same = f[i] == g[i];
    if (!same) {
        mismatches.fetch_add(1);
        if (mismatch_recorded.exchange(1) == 0) {
            std::memcpy(first_mismatch.fast, f, sizeof f);
            std::memcpy(first_mismatch.gcc, g, sizeof g);
            first_mismatch.nf = nf;
            first_mismatch.ng = ng;
            mismatch_recorded.store(2);
        }
    }
    asm volatile("" : : : "memory");
}

extern "C" void on_capture(int) {
    const int saved = errno;
    capture_and_compare();
    handler_captures.fetch_add(1, std::memory_order_relaxed);
    errno = saved;
}

__attribute__((noinline)) int* make_block(int i) {
    int* p = new int(i);
    escape(p);
    return p;
}

void part_d() {
    struct sigaction sa {};
    sa.sa_handler = on_capture;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, nullptr);

    std::atomic<bool> stop{false};
    std::atomic<int> ready{0};
    std::atomic<long> allocator_rounds{0};
    int allocator_failures = 0;
    // Never signalled: allocates inside scopes, so the hook captures stacks all the time.
    std::thread allocator([&] {
        sigset_t block;
        sigemptyset(&block);
        sigaddset(&block, SIGUSR1);
        pthread_sigmask(SIG_BLOCK, &block, nullptr);
        ready.fetch_add(1);
        while (!stop.load()) {
            leakscope::LeakScope scope("handler-free");
            std::vector<int*> blocks;
            blocks.reserve(16);
            for (int i = 0; i < 16; ++i) blocks.push_back(make_block(i));
            leakscope::Report r = scope.leftovers();
            if (r.blocks != 17 || r.sites.empty() || r.sites[0].frames.empty()) ++allocator_failures;
            for (int* p : blocks) delete p;
            scope.dismiss();
            allocator_rounds.fetch_add(1);
        }
    });
    // Signalled: captures in a loop itself (a signal may land inside its own capture), and
    // allocates inside scopes too.
    std::thread target([&] {
        capture_and_compare();   // this thread's first capture, before any signal
        ready.fetch_add(1);
        while (!stop.load()) {
            capture_and_compare();
            leakscope::LeakScope scope("signalled");
            int* p = make_block(1);
            delete p;
            scope.dismiss();
        }
    });
    while (ready.load() != 2) std::this_thread::yield();
    const pthread_t t = target.native_handle();
    long sent = 0;
    // Until enough of both happened (counts, not time).
    while (handler_captures.load() < 3000 || allocator_rounds.load() < 1000) {
        pthread_kill(t, SIGUSR1);
        ++sent;
        std::this_thread::yield();
    }
    stop.store(true);
    allocator.join();
    target.join();
    signal(SIGUSR1, SIG_IGN);
    if (mismatches.load()) {
        ++failures;
        std::fprintf(stderr, "FAILED: (d) %ld captures (handler or interrupted loop) differ from libgcc\n",
                     mismatches.load());
        if (mismatch_recorded.load() == 2) {
            dump("fast (first mismatch)", first_mismatch.fast, first_mismatch.nf);
            dump("libgcc", first_mismatch.gcc, first_mismatch.ng);
        }
    }
    if (allocator_failures) {
        ++failures;
        std::fprintf(stderr, "FAILED: (d) %d allocator rounds had wrong leftovers or no stack\n",
                     allocator_failures);
    }
    std::printf("(d) %ld signals sent, %ld handler captures, %ld allocator rounds, no deadlock\n", sent,
                handler_captures.load(), allocator_rounds.load());
}

// ---- (e) the first capture of a fresh thread, in a handler that interrupted malloc ------------
// A thread that never captured a stack calls malloc/free in a loop (sizes past glibc's tcache, so
// they take the arena lock); one signal; its handler is the thread's first current_stack().
// current_stack promises never to allocate, so it must not need malloc's lock here. If the
// handler has not finished after 10 s, it is deadlocked: the test fails (the stuck thread cannot
// be joined, so it exits at once).
std::atomic<int> first_capture_done{0};
extern "C" void on_first_capture(int) {
    const int saved = errno;
    uptr s[32];
    leakscope::current_stack(s, 32, leakscope::Unwinder::fast);
    first_capture_done.store(1);
    errno = saved;
}

void part_e() {
    struct sigaction sa {};
    sa.sa_handler = on_first_capture;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, nullptr);
    for (int round = 0; round < 20; ++round) {
        first_capture_done.store(0);
        std::atomic<bool> started{false};
        std::thread t([&] {
            started.store(true);
            for (unsigned k = 0; !first_capture_done.load(std::memory_order_relaxed); ++k) {
                void* p = std::malloc(2000 + (k * 97) % 4000);
                escape(p);
                std::free(p);
            }
        });
        while (!started.load()) std::this_thread::yield();
        for (int spin = 0; spin < 1000; ++spin) std::this_thread::yield();   // let it reach malloc
        pthread_kill(t.native_handle(), SIGUSR1);
        for (int waited_ms = 0; !first_capture_done.load(); ++waited_ms) {
            if (waited_ms == 10000) {
                std::fprintf(stderr,
                             "FAILED: (e) round %d: a thread's first current_stack(), in a signal handler that "
                             "interrupted malloc/free, has not returned after 10 s: deadlocked (it needs "
                             "malloc's lock)\n", round);
                std::fflush(stdout);
                std::fflush(stderr);
                _exit(1);
            }
            usleep(1000);
        }
        t.join();
    }
    signal(SIGUSR1, SIG_DFL);
    std::printf("(e) 20 first captures in handlers that interrupted malloc/free: no deadlock\n");
}

void* watchdog(void*) {
    sleep(120);
    static const char msg[] = "FAILED: unwind_signal still running after 120 s: deadlock or hang\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(3);
}
}  // namespace

int main() {
    pthread_t dog;
    pthread_create(&dog, nullptr, watchdog, nullptr);
    pthread_detach(dog);
    main_stack_hi = this_stack_hi();
    // A first capture outside any handler: a thread's first one is (e)'s subject, not (a)-(d)'s.
    uptr warm[8];
    leakscope::current_stack(warm, 8);
    part_a();
    part_b();
    part_c();
    part_d();
    part_e();
    if (failures == 0) std::printf("unwind_signal: all checks passed\n");
    return failures == 0 ? 0 : 1;
}
