// Ground truth for the stacks the allocation hook captures (Report::sites[i].frames):
//  - frames[0] is exactly the return address of the call to operator new inside leak_here()
//    (checked by decoding the call instruction before it), and frames[1..] are exactly the
//    callers' return addresses that _Unwind_Backtrace sees from inside leak_here(), including
//    the return address into the chain function;
//  - two call chains to the same leak give two sites; one chain run 1000 times gives ONE site
//    of 1000 blocks (stacks are interned); 20 chains that differ only in depth, round-robin ten
//    times (more than the 16 walks a thread remembers), give 20 exact sites of 10 blocks;
//  - stack_depth bounds the frames; stacks=off gives empty frames; stacks=demand captures only
//    for a scope name's runs after its first leaking run (a name that never leaked, never);
//  - unwinder=libgcc gives the same exact frames; unwinder=fp too where this file's code has
//    frame pointers (g++: the pragma below; clang++ -O0), otherwise only no crash, bounded.
// configure() is reset to the defaults at the end. Exit status 0 = pass.
#if defined(__GNUC__) && !defined(__clang__)
// Frame pointers in all of this translation unit, leakscope's hook and unwinder included.
#pragma GCC optimize("no-omit-frame-pointer")
#define FP_EXACT 1
#elif !defined(__OPTIMIZE__)
#define FP_EXACT 1   // clang++ -O0 keeps frame pointers
#else
#define FP_EXACT 0   // clang++ has no per-file switch; -fno-omit-frame-pointer may or may not be on
#endif

#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include "unwind_frames.hpp"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <memory>
#include <new>
#include <vector>

namespace {
using uptr = std::uintptr_t;
constexpr std::size_t kMax = 64;
int failures = 0;

void escape(const void* p) { asm volatile("" : : "g"(p) : "memory"); }
void opaque(int& v) { asm volatile("" : "+r"(v)); }   // the compiler no longer knows v

using unwind_frames::describe;

// What leak_here() saw: its return address and libgcc's stack from inside it.
struct Truth {
    uptr leak_return = 0;      // leak_here's return address (inside the chain function)
    uptr ref[kMax];            // libgcc from inside leak_here: ref[1..] are leak_here's callers
    std::size_t n_ref = 0;
};

__attribute__((noinline)) int* leak_here(Truth* t) {
    int* p = new int(7);
    escape(p);
    if (t) {
        t->leak_return = reinterpret_cast<uptr>(__builtin_return_address(0));
        t->n_ref = leakscope::current_stack(t->ref, kMax, leakscope::Unwinder::libgcc);
    }
    asm volatile("" : : : "memory");
    return p;
}

__attribute__((noinline)) int* chain_a(Truth* t) {
    int* p = leak_here(t);
    asm volatile("" : : : "memory");   // not a tail call
    return p;
}
__attribute__((noinline)) int* chain_b(Truth* t) {
    int* p = leak_here(t);
    asm volatile("" : : : "memory");
    return p;
}

// Chains that differ only in their depth: leak_here under `depth` levels of the same function.
__attribute__((noinline)) int* recurse(int depth, Truth* t) {
    int* p = depth > 0 ? recurse(depth - 1, t) : leak_here(t);
    asm volatile("" : : : "memory");   // not a tail call
    return p;
}

using unwind_frames::after_call_to_operator_new;

// frames[0] in leak_here right after the call to operator new; frames[1..] == truth.ref[1..].
// prefix: a frame-pointer walk stops where code without frame pointers begins (glibc's
// __libc_start_call_main, main's caller): then frames[1..] must be a prefix of truth.ref[1..]
// that still reaches main's return address (leak_here, chain, one_leak/main: 4 frames at least).
bool exact(const char* what, const std::vector<leakscope::Frame>& f, const Truth& t, std::size_t depth = 32,
           bool prefix = false) {
    const uptr lo = reinterpret_cast<uptr>(&leak_here);
    bool ok = !f.empty() && f[0].address > lo && f[0].address < lo + 4096 &&
              after_call_to_operator_new(f[0].address);
    const std::size_t want = t.n_ref < depth ? t.n_ref : depth;
    const bool size_ok = prefix ? f.size() <= want && f.size() >= (want < 4 ? want : 4) : f.size() == want;
    ok = ok && t.n_ref >= 3 && size_ok && t.ref[1] == t.leak_return;
    for (std::size_t i = 1; ok && i < f.size(); ++i) ok = f[i].address == t.ref[i];
    if (!ok) {
        ++failures;
        std::fprintf(stderr, "FAILED: %s: the hook's stack is not the allocating stack\n", what);
        std::fprintf(stderr, "  hook (%zu frames; frames[0] should follow a call to operator new in leak_here "
                             "at %#lx):\n", f.size(), static_cast<unsigned long>(lo));
        for (const leakscope::Frame& fr : f) describe(fr.address);
        std::fprintf(stderr, "  libgcc from inside leak_here (frames [1..] expected):\n");
        for (std::size_t i = 0; i < t.n_ref; ++i) describe(t.ref[i]);
    }
    return ok;
}

// Whether a site's frames[1..] are those libgcc saw in truth t.
bool frames_are(const std::vector<leakscope::Frame>& f, const Truth& t) {
    if (f.size() < 2 || f.size() > t.n_ref) return false;
    for (std::size_t i = 1; i < f.size(); ++i)
        if (f[i].address != t.ref[i]) return false;
    return true;
}

// One leak via chain_a in a scope; checks the site's stack.
void one_leak(const char* what, bool require_exact, std::size_t depth = 32, bool prefix = false) {
    Truth t;
    leakscope::LeakScope scope(what);
    int* p = chain_a(&t);
    leakscope::Report r = scope.leftovers();
    if (r.blocks != 1 || r.sites.size() != 1) {
        ++failures;
        std::fprintf(stderr, "FAILED: %s: %zu blocks in %zu sites\n", what, r.blocks, r.sites.size());
    } else if (require_exact) {
        exact(what, r.sites[0].frames, t, depth, prefix);
    } else if (r.sites[0].frames.size() > depth) {
        ++failures;
        std::fprintf(stderr, "FAILED: %s: %zu frames\n", what, r.sites[0].frames.size());
    }
    delete p;
    scope.dismiss();
}

// ---- stacks=demand: reports as the writers get them --------------------------------------------
struct Collect : leakscope::Writer {
    std::vector<leakscope::Report> reports;
    void write(const leakscope::Report& r) override { reports.push_back(r); }
};

std::vector<int*> parked;   // leaked by the demand runs on purpose; freed at the end

__attribute__((noinline)) void run_scope(const char* name, bool leak) {
    leakscope::LeakScope scope(name);
    int* p = chain_b(nullptr);
    if (leak) {
        leakscope::Ignore quiet;   // the vector's own buffer is not the leak under test
        parked.push_back(p);
    } else {
        delete p;
    }
}

bool frames_of(const Collect& c, std::size_t i, bool want_frames, const char* what) {
    if (c.reports.size() <= i) {
        ++failures;
        std::fprintf(stderr, "FAILED: %s: no report\n", what);
        return false;
    }
    const leakscope::Report& r = c.reports[i];
    bool any = false, ok = r.blocks == 1 && !r.sites.empty();
    for (const leakscope::Site& s : r.sites) any |= !s.frames.empty();
    ok = ok && any == want_frames;
    if (!ok) {
        ++failures;
        std::fprintf(stderr, "FAILED: %s: scope \"%s\": %zu blocks, frames %s, expected %s\n", what,
                     r.scope.c_str(), r.blocks, any ? "captured" : "none", want_frames ? "captured" : "none");
    }
    return ok;
}

void demand() {
    auto collect = std::make_shared<Collect>();
    leakscope::set_writers({collect});
    leakscope::configure("stacks=demand");
    run_scope("X", true);    // first leak of X: nothing captured yet
    run_scope("X", true);    // X has leaked before: captured
    run_scope("X", false);   // clean: no report
    run_scope("X", true);
    for (int i = 0; i < 3; ++i) run_scope("Y", false);   // Y never leaked
    run_scope("Y", true);    // so its first leak has no stack
    run_scope("Y", true);
    leakscope::configure("stacks=on");
    leakscope::set_writers({});
    if (collect->reports.size() != 5) {
        ++failures;
        std::fprintf(stderr, "FAILED: stacks=demand: %zu reports, expected 5\n", collect->reports.size());
    }
    frames_of(*collect, 0, false, "stacks=demand, 1st run of X");
    frames_of(*collect, 1, true, "stacks=demand, 2nd run of X");
    frames_of(*collect, 2, true, "stacks=demand, 4th run of X");
    frames_of(*collect, 3, false, "stacks=demand, first leaking run of Y");
    frames_of(*collect, 4, true, "stacks=demand, next run of Y");
    collect->reports.clear();
    for (int* p : parked) delete p;
    parked.clear();
    parked.shrink_to_fit();
}
}  // namespace

int main() {
    // The default configuration: fast unwinder, exact.
    one_leak("default", true);

    // Two chains, two sites, each exact.
    {
        Truth ta, tb;
        leakscope::LeakScope scope("two chains");
        int* a = chain_a(&ta);
        int* b = chain_b(&tb);
        leakscope::Report r = scope.leftovers();
        if (r.blocks != 2 || r.sites.size() != 2) {
            ++failures;
            std::fprintf(stderr, "FAILED: two chains: %zu blocks in %zu sites, expected 2 in 2\n", r.blocks,
                         r.sites.size());
        } else {
            // Sites are ordered by bytes (equal here): find each by its callers. Not by frames[1]
            // alone: g++'s identical-code folding (-O2) may make chain_a and chain_b one function,
            // and then only main's return addresses tell the two stacks apart.
            const bool a_first = frames_are(r.sites[0].frames, ta);
            exact("two chains, via chain_a", r.sites[a_first ? 0 : 1].frames, ta);
            exact("two chains, via chain_b", r.sites[a_first ? 1 : 0].frames, tb);
        }
        delete a;
        delete b;
        scope.dismiss();
    }

    // One chain, 1000 times: one site.
    {
        static int* blocks[1000];
        leakscope::LeakScope scope("interning");
        for (int i = 0; i < 1000; ++i) {
            opaque(i);   // not unrolled: an unrolled loop calls from a different place each time
            blocks[i] = chain_a(nullptr);
        }
        leakscope::Report r = scope.leftovers();
        if (r.blocks != 1000 || r.sites.size() != 1 || r.sites[0].blocks != 1000 || r.sites[0].frames.empty()) {
            ++failures;
            std::fprintf(stderr, "FAILED: interning: %zu blocks in %zu sites (first: %zu blocks)\n", r.blocks,
                         r.sites.size(), r.sites.empty() ? std::size_t(0) : r.sites[0].blocks);
        }
        for (int* p : blocks) delete p;
        scope.dismiss();
    }

    // More distinct chains than a thread remembers walks (16), round-robin, ten times each: every
    // site keeps its own exact stack and its own ten blocks (no stale reuse of a remembered walk).
    {
        constexpr int kChains = 20, kRounds = 10;
        static Truth truths[kChains];
        static int* blocks[kChains][kRounds];
        leakscope::LeakScope scope("round-robin");
        for (int round = 0; round < kRounds; ++round) {
            for (int d = 0; d < kChains; ++d) {
                opaque(round);   // not unrolled (see above)
                opaque(d);
                blocks[d][round] = recurse(d, round == 0 ? &truths[d] : nullptr);
            }
        }
        leakscope::Report r = scope.leftovers();
        bool ok = r.blocks == std::size_t(kChains * kRounds) && r.sites.size() == std::size_t(kChains);
        for (const leakscope::Site& site : r.sites) {
            ok = ok && site.blocks == std::size_t(kRounds) && site.frames.size() >= 3;
            if (!ok) break;
            // Which chain: the number of recurse() frames, i.e. the site's frame count.
            int d = -1;
            for (int k = 0; k < kChains; ++k)
                if (truths[k].n_ref == site.frames.size() && truths[k].ref[1] == site.frames[1].address &&
                    (k == 0 || truths[k].n_ref != truths[k - 1].n_ref))
                    d = k;
            if (d < 0) {
                ok = false;
                std::fprintf(stderr, "FAILED: round-robin: a site of %zu frames matches no chain\n",
                             site.frames.size());
                for (const leakscope::Frame& fr : site.frames) describe(fr.address);
                break;
            }
            ok = exact("round-robin chain", site.frames, truths[d]);
        }
        if (!ok) {
            ++failures;
            std::fprintf(stderr, "FAILED: round-robin: %zu blocks in %zu sites, expected %d in %d\n", r.blocks,
                         r.sites.size(), kChains * kRounds, kChains);
        }
        for (auto& row : blocks)
            for (int* p : row) delete p;
        scope.dismiss();
    }

    // stack_depth bounds the frames (and keeps the innermost ones).
    leakscope::configure("stack_depth=3");
    one_leak("stack_depth=3", true, 3);
    leakscope::configure("stack_depth=1");
    one_leak("stack_depth=1", true, 1);
    leakscope::configure("stack_depth=32");

    // stacks=off: empty frames.
    leakscope::configure("stacks=off");
    {
        leakscope::LeakScope scope("stacks=off");
        int* a = chain_a(nullptr);
        int* b = chain_b(nullptr);
        leakscope::Report r = scope.leftovers();
        bool ok = r.blocks == 2 && !r.sites.empty();
        for (const leakscope::Site& s : r.sites) ok &= s.frames.empty();
        if (!ok) {
            ++failures;
            std::fprintf(stderr, "FAILED: stacks=off: %zu blocks, %zu sites, frames captured anyway?\n", r.blocks,
                         r.sites.size());
        }
        delete a;
        delete b;
        scope.dismiss();
    }
    leakscope::configure("stacks=on");

    demand();

    // The other unwinders.
    leakscope::configure("unwinder=libgcc");
    one_leak("unwinder=libgcc", true);
    leakscope::configure("unwinder=fp");
    one_leak("unwinder=fp", FP_EXACT, 32, true);
    leakscope::configure("unwinder=fast");
    one_leak("unwinder=fast again", true);

    leakscope::configure("stacks=on unwinder=fast stack_depth=32");   // the defaults
    if (failures == 0) std::printf("unwind_hook_stacks: all checks passed\n");
    return failures == 0 ? 0 : 1;
}
