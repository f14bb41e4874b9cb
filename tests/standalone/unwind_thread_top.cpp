// The fast unwinder at the top of threads: captured at several call depths on the main thread,
// on std::threads and on a pthread whose small stack is an mmap'd block between two PROT_NONE
// guard pages (pthread_attr_setstack) and pre-filled with plausible garbage (pointers into itself,
// code addresses), the stack ends cleanly where the thread starts: never a crash, never a read past
// the stack's top, never a truncated or over-long result, and the same frames [1..] and count as
// _Unwind_Backtrace (Unwinder::libgcc) — also for the CFI walk alone (detail::unwind_fast from a
// real register state, which has no libgcc fallback). The allocation hook's stacks there are
// bounded too.
// Exit status 0 = pass.
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include "unwind_frames.hpp"

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <pthread.h>
#include <sys/mman.h>
#include <thread>
#include <unistd.h>

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
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

namespace {
using uptr = std::uintptr_t;
constexpr std::size_t kMax = 1024;   // far more than any stack here: a full result means runaway
constexpr std::size_t kCfiCap = 256; // detail::unwind_fast keeps at most this many (its documented cap)
int failures = 0;

void escape(const void* p) { asm volatile("" : : "g"(p) : "memory"); }

using unwind_frames::describe;

// Prints a stack; long ones as their first and last 12 frames.
void dump(const char* label, const uptr* s, std::size_t n) {
    std::fprintf(stderr, "  %s (%zu frames):\n", label, n);
    for (std::size_t i = 0; i < n; ++i) {
        if (n > 30 && i == 12) {
            std::fprintf(stderr, "    ... %zu more ...\n", n - 24);
            i = n - 12;
        }
        describe(s[i]);
    }
}

struct Capture {
    uptr fast[kMax], gcc[kMax], cfi[kMax + 1];
    std::size_t nf = 0, ng = 0, nc = 0;
};
thread_local uptr stack_hi = 0;

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

// Both captures from the same function: frames [1..] (the callers) must be identical.
__attribute__((noinline)) void capture_both(Capture& c) {
    c.nf = leakscope::current_stack(c.fast, kMax, leakscope::Unwinder::fast);
    c.ng = leakscope::current_stack(c.gcc, kMax, leakscope::Unwinder::libgcc);
    c.nc = stack_hi ? cfi_only(c.cfi, kMax + 1, stack_hi) : 0;
    asm volatile("" : : : "memory");
}

__attribute__((noinline)) void descend(int depth, Capture& c) {
    if (depth <= 0)
        capture_both(c);
    else
        descend(depth - 1, c);
    asm volatile("" : : : "memory");   // not a tail call: every level keeps its frame
}

void check(const char* where, int depth, const Capture& c) {
    bool ok = c.nf == c.ng && c.nf >= 2 && c.nf < kMax;
    for (std::size_t i = 1; ok && i < c.nf; ++i) ok = c.fast[i] == c.gcc[i];
    // frames[0] of each lies inside capture_both (both calls are there).
    if (ok) ok = c.fast[0] != 0 && c.gcc[0] != 0;
    // The CFI walk by itself (no libgcc fallback) sees the same callers, one frame deeper.
    const std::size_t cfi_want = c.ng + 1 < kCfiCap ? c.ng + 1 : kCfiCap;
    bool cfi_ok = c.nc == cfi_want;
    for (std::size_t i = 1; cfi_ok && i + 1 < c.nc; ++i) cfi_ok = c.cfi[i + 1] == c.gcc[i];
    if (ok && cfi_ok) return;
    ++failures;
    std::fprintf(stderr, "FAILED: %s depth %d: fast %zu frames%s, libgcc %zu frames, CFI walk alone %zu frames%s\n",
                 where, depth, c.nf, ok ? "" : " (differs)", c.ng, c.nc, cfi_ok ? "" : " (differs)");
    dump("fast", c.fast, c.nf);
    dump("CFI walk alone (detail::unwind_fast; [2..] should be libgcc's [1..])", c.cfi, c.nc);
    dump("libgcc", c.gcc, c.ng);
}

// 400: deeper than the 256-frame cap of every unwinder: all of them stop at 256, identically.
const int kDepths[] = {0, 1, 3, 17, 40, 400};

void run_depths(const char* where) {
    stack_hi = this_stack_hi();
    static Capture pool[8];          // not on the (small) stack, nor in its TLS block
    static std::atomic<int> next{0};
    Capture& c = pool[next.fetch_add(1) % 8];
    for (int d : kDepths) {
        c.nf = c.ng = c.nc = 0;   // (no Capture temporary: 24 KiB on a 64 KiB stack)
        descend(d, c);
        check(where, d, c);
    }
    // The very top: the thread's own start routine calls capture_both directly.
    c.nf = c.ng = c.nc = 0;
    capture_both(c);
    check(where, -1, c);
}

// The allocation hook at the top of a thread: a bounded, non-empty stack.
__attribute__((noinline)) int* leak_one() {
    int* p = new int(7);
    escape(p);
    return p;
}

void hook_stack(const char* where) {
    leakscope::LeakScope scope("thread top");
    int* p = leak_one();
    leakscope::Report r = scope.leftovers();
    if (r.blocks != 1 || r.sites.size() != 1 || r.sites[0].frames.empty() ||
        r.sites[0].frames.size() > 32) {
        ++failures;
        std::fprintf(stderr, "FAILED: %s: hook stack: %zu blocks, %zu sites, %zu frames\n", where, r.blocks,
                     r.sites.size(), r.sites.empty() ? std::size_t(0) : r.sites[0].frames.size());
    }
    delete p;
    scope.dismiss();
}

void* pthread_body(void* arg) {
    const char* where = static_cast<const char*>(arg);
    run_depths(where);
    hook_stack(where);
    return nullptr;
}

// A custom stack between guard pages, filled with words an unwinder that runs past the thread's
// start might believe: pointers into the stack itself and return-address-like code addresses.
void run_on_custom_stack(std::size_t stack_bytes) {
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    const std::size_t total = stack_bytes + 2 * page;
    void* map = mmap(nullptr, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) {
        std::perror("mmap");
        ++failures;
        return;
    }
    char* stack = static_cast<char*>(map) + page;
    if (mprotect(stack, stack_bytes, PROT_READ | PROT_WRITE) != 0) {
        std::perror("mprotect");
        ++failures;
        munmap(map, total);
        return;
    }
    Capture sample;
    capture_both(sample);   // real return addresses to scatter around
    uptr* words = reinterpret_cast<uptr*>(stack);
    const std::size_t n = stack_bytes / sizeof(uptr);
    for (std::size_t i = 0; i < n; ++i) {
        switch (i % 4) {
            case 0: words[i] = reinterpret_cast<uptr>(&words[(i * 7 + 3) % n]); break;
            case 1: words[i] = sample.gcc[i % sample.ng]; break;
            case 2: words[i] = reinterpret_cast<uptr>(&words[i]); break;   // points at itself
            default: words[i] = reinterpret_cast<uptr>(&capture_both) + (i % 64); break;
        }
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    int rc = pthread_attr_setstack(&attr, stack, stack_bytes);
    pthread_t t;
    if (rc == 0) rc = pthread_create(&t, &attr, pthread_body, const_cast<char*>("pthread, custom stack"));
    if (rc == 0) {
        pthread_join(t, nullptr);
    } else {
        std::fprintf(stderr, "FAILED: pthread with custom stack: %s\n", std::strerror(rc));
        ++failures;
    }
    pthread_attr_destroy(&attr);
    munmap(map, total);
}
}  // namespace

// The main thread's stack as leakscope knows it, learnt without glibc's pthread_getattr_np
// (which reads /proc/self/maps there): the same top as glibc's, a bottom no higher than glibc's.
void main_stack_bounds() {
    leakscope::detail::ThreadState& t = leakscope::detail::tls;
    leakscope::detail::ensure_registered(t);
    std::uintptr_t lo = 0, hi = 0;
    pthread_attr_t attr;
    void* addr = nullptr;
    std::size_t size = 0;
    if (!leakscope::detail::thread_stack(t, lo, hi) || pthread_getattr_np(pthread_self(), &attr) != 0 ||
        pthread_attr_getstack(&attr, &addr, &size) != 0) {
        std::printf("FAIL main thread's stack: no bounds\n");
        ++failures;
        return;
    }
    pthread_attr_destroy(&attr);
    auto glibc_lo = reinterpret_cast<std::uintptr_t>(addr), glibc_hi = glibc_lo + size;
    if (hi != glibc_hi || lo > glibc_lo || lo == 0) {
        std::printf("FAIL main thread's stack: [%#lx, %#lx), glibc says [%#lx, %#lx)\n", (unsigned long)lo,
                    (unsigned long)hi, (unsigned long)glibc_lo, (unsigned long)glibc_hi);
        ++failures;
    }
}

int main() {
    main_stack_bounds();
    run_depths("main thread");
    hook_stack("main thread");

    std::thread([] {
        run_depths("std::thread");
        hook_stack("std::thread");
    }).join();
    // Two at once, so the unwinder's per-thread/shared state is used concurrently.
    std::thread a([] { run_depths("std::thread A"); });
    std::thread b([] { run_depths("std::thread B"); });
    a.join();
    b.join();

    pthread_t t;
    if (pthread_create(&t, nullptr, pthread_body, const_cast<char*>("pthread, default stack")) == 0)
        pthread_join(t, nullptr);
    else
        ++failures;

    // A small stack: 64 KiB; the sanitizers need room for their own frames and TSan for its
    // per-thread state (it refuses less than ~1 MiB).
    run_on_custom_stack(UNDER_TSAN ? 2048 * 1024 : UNDER_ASAN ? 512 * 1024 : 64 * 1024);

    if (failures == 0) std::printf("unwind_thread_top: all checks passed\n");
    return failures == 0 ? 0 : 1;
}
