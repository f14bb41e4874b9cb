// The fast unwinder through JIT-like code: a frame in an anonymous executable mapping (RWX, and
// RW then RX) that has no unwind information. _Unwind_Backtrace reports the JIT frame's return
// address and stops there (no FDE, not a signal trampoline: end of stack). Unwinder::fast must
// do exactly the same: never a crash, never a guess past the JIT frame that disagrees with libgcc,
// the callback's caller frame (the return address inside the JIT code) present. Unwinder::fp and
// the allocation hook's stack there are bounded and do not crash; in the report the JIT frame has
// no module and no name (??+address). Exit status 0 = pass.
#include <leakscope.hpp>

#include "unwind_frames.hpp"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

namespace {
using uptr = std::uintptr_t;
constexpr std::size_t kMax = 64;
int failures = 0;

void escape(const void* p) { asm volatile("" : : "g"(p) : "memory"); }

void describe(uptr a) { unwind_frames::describe(a, "? (anonymous mapping: JIT code?)"); }
void dump(const char* label, const uptr* s, std::size_t n) {
    std::fprintf(stderr, "  %s (%zu frames):\n", label, n);
    for (std::size_t i = 0; i < n; ++i) describe(s[i]);
}

// x86-64 trampolines that call the function pointer in %rdi; the return address of that call is
// at offset kCallEnd in both.
//   plain:  sub $8,%rsp ; call *%rdi ; add $8,%rsp ; ret
//   framed: push %rbp ; mov %rsp,%rbp ; call *%rdi ; pop %rbp ; ret   (a frame-pointer frame)
const unsigned char kPlain[] = {0x48, 0x83, 0xec, 0x08, 0xff, 0xd7, 0x48, 0x83, 0xc4, 0x08, 0xc3};
const unsigned char kFramed[] = {0x55, 0x48, 0x89, 0xe5, 0xff, 0xd7, 0x5d, 0xc3};
constexpr uptr kCallEnd = 6;
using Trampoline = void (*)(void (*)());

struct Capture {
    uptr fast[kMax], gcc[kMax], fp[kMax];
    std::size_t nf = 0, ng = 0, np = 0;
    uptr my_return = 0;   // the callback's own return address: inside the JIT code
};
Capture cap;

__attribute__((noinline)) void callback() {
    cap.my_return = reinterpret_cast<uptr>(__builtin_return_address(0));
    cap.nf = leakscope::current_stack(cap.fast, kMax, leakscope::Unwinder::fast);
    cap.ng = leakscope::current_stack(cap.gcc, kMax, leakscope::Unwinder::libgcc);
    cap.np = leakscope::current_stack(cap.fp, kMax, leakscope::Unwinder::fp);
    asm volatile("" : : : "memory");
}

// The hook's stack from inside JIT-called code.
int* hook_block = nullptr;
__attribute__((noinline)) void leaking_callback() {
    hook_block = new int(3);
    escape(hook_block);
    asm volatile("" : : : "memory");
}

// A caller of the JIT code with a frame of its own (so there is something beyond the JIT frame).
__attribute__((noinline)) void run(Trampoline t, void (*cb)()) {
    t(cb);
    asm volatile("" : : : "memory");
}

void check(const char* what, uptr code) {
    cap = Capture{};
    run(reinterpret_cast<Trampoline>(code), callback);
    const uptr jit_return = code + kCallEnd;
    bool ok = cap.my_return == jit_return;   // sanity of the test itself
    // libgcc: [inside callback, return address in the JIT code], then end of stack.
    bool gcc_as_expected = ok && cap.ng == 2 && cap.gcc[1] == jit_return;
    // fast must agree with libgcc.
    bool fast_ok = cap.nf == cap.ng && cap.nf >= 2;
    for (std::size_t i = 1; fast_ok && i < cap.nf; ++i) fast_ok = cap.fast[i] == cap.gcc[i];
    bool fp_ok = cap.np <= kMax;   // bounded, no crash: frame pointers are not promised here
    if (!gcc_as_expected) {
        // Not a leakscope failure if libgcc changed its mind; say so, still compare with fast.
        std::fprintf(stderr, "note: %s: libgcc did not stop at the JIT frame as expected\n", what);
        dump("libgcc", cap.gcc, cap.ng);
    }
    if (!fast_ok || !fp_ok) {
        ++failures;
        std::fprintf(stderr, "FAILED: %s (JIT code at %#lx, its return address %#lx)\n", what,
                     static_cast<unsigned long>(code), static_cast<unsigned long>(jit_return));
        dump("fast", cap.fast, cap.nf);
        dump("libgcc", cap.gcc, cap.ng);
    }

    // The allocation hook through the same JIT frame: bounded, frames[1] is the JIT return.
    leakscope::LeakScope scope("jit");
    run(reinterpret_cast<Trampoline>(code), leaking_callback);
    leakscope::Report r = scope.leftovers();
    const std::vector<leakscope::Frame>* frames = r.sites.size() == 1 ? &r.sites[0].frames : nullptr;
    // Symbolized in the report: no module, no name (a JIT mapping has neither), and the text
    // writer shows it as ??+address.
    char shown[32];
    std::snprintf(shown, sizeof shown, "??+0x%lx", static_cast<unsigned long>(jit_return));
    if (r.blocks != 1 || !frames || frames->size() < 2 || frames->size() > 32 ||
        (*frames)[1].address != jit_return || !(*frames)[1].module.empty() || !(*frames)[1].function.empty() ||
        leakscope::TextWriter(stderr).render(r).find(shown) == std::string::npos) {
        ++failures;
        std::fprintf(stderr, "FAILED: %s: hook stack through the JIT frame: %zu blocks, %zu sites\n", what,
                     r.blocks, r.sites.size());
        if (frames)
            for (const leakscope::Frame& f : *frames) describe(f.address);
    }
    delete hook_block;
    hook_block = nullptr;
    scope.dismiss();
}

void with_code(const unsigned char* bytes, std::size_t size, bool rwx, const char* what) {
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    int prot = rwx ? PROT_READ | PROT_WRITE | PROT_EXEC : PROT_READ | PROT_WRITE;
    void* p = mmap(nullptr, page, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        std::fprintf(stderr, "note: %s: mmap refused (%s), case skipped\n", what, std::strerror(errno));
        return;
    }
    std::memset(p, 0xcc, page);   // int3 everywhere else
    // Not at the page start: code at +0x40, so "pc - 1" and neighbours stay inside the page.
    std::memcpy(static_cast<char*>(p) + 0x40, bytes, size);
    if (!rwx && mprotect(p, page, PROT_READ | PROT_EXEC) != 0) {
        std::fprintf(stderr, "note: %s: mprotect refused, case skipped\n", what);
        munmap(p, page);
        return;
    }
    check(what, reinterpret_cast<uptr>(p) + 0x40);
    munmap(p, page);
}
}  // namespace

int main() {
    for (int round = 0; round < 3; ++round) {   // again: cached rules must give the same answer
        with_code(kPlain, sizeof kPlain, true, "plain, RWX page");
        with_code(kPlain, sizeof kPlain, false, "plain, RW then RX page");
        with_code(kFramed, sizeof kFramed, true, "framed, RWX page");
        with_code(kFramed, sizeof kFramed, false, "framed, RW then RX page");
    }
    if (failures == 0) std::printf("unwind_jit: all checks passed\n");
    return failures == 0 ? 0 : 1;
}
