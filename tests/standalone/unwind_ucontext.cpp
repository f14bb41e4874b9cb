// The fast unwinder inside a makecontext/swapcontext coroutine running on an mmap'd stack
// (between PROT_NONE guard pages, pre-filled with plausible garbage): captures in the coroutine
// and in nested calls inside it never crash and stay bounded; glibc's __start_context ends the
// stack for _Unwind_Backtrace, and Unwinder::fast must give the same frames [1..] and count
// whenever libgcc's answer is sane (ends before max, goes through the coroutine's entry). The
// stack is not the thread's stack: an unwinder that bounds reads by the thread's stack may
// stop early — that is then reported as a mismatch, on purpose. An allocation inside a LeakScope
// from within the coroutine reports a non-empty, bounded stack. Exit status 0 = pass.
#include <leakscope.hpp>

#include "unwind_frames.hpp"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <sys/mman.h>
#include <ucontext.h>
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
#if UNDER_TSAN
// ThreadSanitizer keeps a shadow call stack per thread; a context switch it is not told about
// corrupts it. The fiber API tells it.
extern "C" void* __tsan_get_current_fiber();
extern "C" void* __tsan_create_fiber(unsigned flags);
extern "C" void __tsan_destroy_fiber(void* fiber);
extern "C" void __tsan_switch_to_fiber(void* fiber, unsigned flags);
#endif

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

struct Capture {
    uptr fast[kMax], gcc[kMax], fp[kMax];
    std::size_t nf = 0, ng = 0, np = 0;
};
Capture caps[4];            // depth 0, 1, 5, 20
const int kDepths[4] = {0, 1, 5, 20};
uptr entry_return = 0;      // return address of coroutine_body's first callee, inside it

__attribute__((noinline)) void capture_all(Capture& c) {
    c.nf = leakscope::current_stack(c.fast, kMax, leakscope::Unwinder::fast);
    c.ng = leakscope::current_stack(c.gcc, kMax, leakscope::Unwinder::libgcc);
    c.np = leakscope::current_stack(c.fp, kMax, leakscope::Unwinder::fp);
    asm volatile("" : : : "memory");
}

__attribute__((noinline)) void descend(int depth, Capture& c) {
    if (depth <= 0)
        capture_all(c);
    else
        descend(depth - 1, c);
    asm volatile("" : : : "memory");
}

__attribute__((noinline)) int* leak_in_coroutine() {
    int* p = new int(42);
    escape(p);
    return p;
}

ucontext_t main_ctx, coro_ctx;
std::size_t hook_frames = 0, hook_blocks = 0;
#if UNDER_TSAN
void* main_fiber = nullptr;
void* coro_fiber = nullptr;
#endif

void switch_to_main() {
#if UNDER_TSAN
    __tsan_switch_to_fiber(main_fiber, 0);
#endif
    swapcontext(&coro_ctx, &main_ctx);
}

__attribute__((noinline)) void first_callee() {
    entry_return = reinterpret_cast<uptr>(__builtin_return_address(0));
    asm volatile("" : : : "memory");
}

void coroutine_body() {
    first_callee();
    for (int i = 0; i < 4; ++i) descend(kDepths[i], caps[i]);
    switch_to_main();   // suspend once, resume, capture again (the stack is unchanged)
    for (int i = 0; i < 4; ++i) {
        Capture again;
        descend(kDepths[i], again);
        if (again.nf != caps[i].nf) {
            ++failures;
            std::fprintf(stderr, "FAILED: depth %d after resume: %zu frames, before %zu\n", kDepths[i],
                         again.nf, caps[i].nf);
        }
    }
    {
        leakscope::LeakScope scope("coroutine");
        int* p = leak_in_coroutine();
        leakscope::Report r = scope.leftovers();
        hook_blocks = r.blocks;
        hook_frames = r.sites.size() == 1 ? r.sites[0].frames.size() : 0;
        delete p;
        scope.dismiss();
    }
    // Returning ends the coroutine: uc_link resumes main_ctx.
#if UNDER_TSAN
    __tsan_switch_to_fiber(main_fiber, 0);
#endif
}

void check(int depth, const Capture& c) {
    // libgcc is sane when it ends well before max and went through the coroutine's entry.
    // coroutine_body's return address from its callee descend() is not known exactly, but its
    // first callee's is (entry_return): libgcc must have found a frame in coroutine_body, i.e. an
    // address within a few hundred bytes of it.
    bool in_body = false;
    for (std::size_t i = 1; i < c.ng; ++i)
        in_body |= c.gcc[i] > entry_return - 512 && c.gcc[i] < entry_return + 512;
    const bool gcc_sane = c.ng >= 2 && c.ng < kMax && in_body;
    bool ok = c.nf >= 1 && c.nf < kMax && c.np <= kMax;
    if (ok && gcc_sane) {
        ok = c.nf == c.ng;
        for (std::size_t i = 1; ok && i < c.nf; ++i) ok = c.fast[i] == c.gcc[i];
    }
    std::printf("depth %2d: fast %zu frames, libgcc %zu frames (%s), fp %zu frames\n", depth, c.nf, c.ng,
                gcc_sane ? "sane: compared" : "not sane: not compared", c.np);
    if (!ok) {
        ++failures;
        std::fprintf(stderr, "FAILED: capture in the coroutine at depth %d (libgcc %s)\n", depth,
                     gcc_sane ? "sane" : "not sane");
        dump("fast", c.fast, c.nf);
        dump("libgcc", c.gcc, c.ng);
    }
}
}  // namespace

int main() {
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    const std::size_t stack_bytes = 256 * 1024;
    char* map = static_cast<char*>(
        mmap(nullptr, stack_bytes + 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (map == MAP_FAILED || mprotect(map + page, stack_bytes, PROT_READ | PROT_WRITE) != 0) {
        std::perror("mmap");
        return 1;
    }
    char* stack = map + page;
    // Garbage an unwinder running past __start_context might follow.
    uptr* words = reinterpret_cast<uptr*>(stack);
    for (std::size_t i = 0; i < stack_bytes / sizeof(uptr); ++i)
        words[i] = (i % 2) ? reinterpret_cast<uptr>(&words[i]) : reinterpret_cast<uptr>(&descend) + 9;

    getcontext(&coro_ctx);
    coro_ctx.uc_stack.ss_sp = stack;
    coro_ctx.uc_stack.ss_size = stack_bytes;
    coro_ctx.uc_link = &main_ctx;
    makecontext(&coro_ctx, coroutine_body, 0);
#if UNDER_TSAN
    main_fiber = __tsan_get_current_fiber();
    coro_fiber = __tsan_create_fiber(0);
    __tsan_switch_to_fiber(coro_fiber, 0);
#endif
    swapcontext(&main_ctx, &coro_ctx);   // runs until the coroutine suspends
    for (int i = 0; i < 4; ++i) check(kDepths[i], caps[i]);
#if UNDER_TSAN
    __tsan_switch_to_fiber(coro_fiber, 0);
#endif
    swapcontext(&main_ctx, &coro_ctx);   // resumes it until it returns
#if UNDER_TSAN
    __tsan_destroy_fiber(coro_fiber);
#endif
    if (hook_blocks != 1 || hook_frames == 0 || hook_frames > 32) {
        ++failures;
        std::fprintf(stderr, "FAILED: LeakScope in the coroutine: %zu blocks, %zu frames\n", hook_blocks,
                     hook_frames);
    }
    munmap(map, stack_bytes + 2 * page);
    if (failures == 0) std::printf("unwind_ucontext: all checks passed\n");
    return failures == 0 ? 0 : 1;
}
