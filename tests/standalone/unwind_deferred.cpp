// Deferred captures (see defer_capture in leakscope.hpp): the first allocation from a call site a
// thread has not walked copies the stack instead of walking it, and the copy is walked only for a
// block still alive when its scope closes, when leftovers() is asked, or when the slot's area of
// copies is full. Ground truth here:
//  - a deferred stack is exactly the allocating stack: frames[0] follows the call to operator new
//    in the allocating function, frames[1..] are the callers _Unwind_Backtrace sees from inside it;
//  - the same site's second capture (walked) and third (remembered) give the same interned stack;
//  - exact counts of deferrals and of copies walked: 200 first sightings in one scope fill the area
//    (128 copies) once, which is walked inside a birth; blocks freed before the end are not walked;
//  - deaths on another thread while the owner keeps deferring, a child scope's deferred leftovers
//    seen by its parent, ignore() of a deferred block, a scope closed on another thread: exact
//    leftover counts, no crash (ThreadSanitizer and AddressSanitizer builds run this too);
//  - a snapshot on the owner thread walks the copies first: its blocks have their stacks; one
//    taken on another thread before shows the same births (without stacks), not other ones.
// Exit status 0 = pass. Needs the fast unwinder (x86-64 Linux); elsewhere it passes trivially.
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include "unwind_frames.hpp"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <thread>
#include <utility>
#include <vector>

namespace {
using uptr = std::uintptr_t;
constexpr std::size_t kMax = 64;
constexpr int kSites = 200;   // more than a slot's area holds (kPendingStacks)
int failures = 0;

#define EXPECT(cond, ...)                                                   \
    do {                                                                    \
        if (!(cond)) {                                                      \
            ++failures;                                                     \
            std::fprintf(stderr, "FAILED line %d: %s: ", __LINE__, #cond);  \
            std::fprintf(stderr, __VA_ARGS__);                              \
            std::fputc('\n', stderr);                                       \
        }                                                                   \
    } while (0)

void escape(const void* p) { asm volatile("" : : "g"(p) : "memory"); }

struct Truth {
    uptr leak_return = 0;   // the allocating function's return address
    uptr ref[kMax];         // libgcc from inside it: ref[1..] are its callers
    std::size_t n_ref = 0;
    uptr function = 0;      // the allocating function
};

// Distinct allocation sites: one function per N (their `new` calls are different return addresses).
template <int Family, int N>
__attribute__((noinline)) int* site(Truth* t) {
    int* p = new int(N);
    escape(p);
    if (t) {
        t->leak_return = reinterpret_cast<uptr>(__builtin_return_address(0));
        t->n_ref = leakscope::current_stack(t->ref, kMax, leakscope::Unwinder::libgcc);
        t->function = reinterpret_cast<uptr>(&site<Family, N>);
    }
    asm volatile("" : : : "memory");   // not a tail call
    return p;
}
using SiteFn = int* (*)(Truth*);
template <int Family, int... N>
std::vector<SiteFn> sites_of(std::integer_sequence<int, N...>) {
    return {&site<Family, N>...};
}

// A caller between the test and the site, so that the stacks have a frame of this file to check.
__attribute__((noinline)) int* call_site(SiteFn f, Truth* t) {
    int* p = f(t);
    asm volatile("" : : : "memory");
    return p;
}

using unwind_frames::after_call_to_operator_new;

// The addresses a site captured (symbolization expands one into its inlined calls).
std::vector<uptr> addresses_of(const leakscope::Site& s) {
    std::vector<uptr> out;
    for (const leakscope::Frame& f : s.frames)
        if (!f.inlined) out.push_back(f.address);
    return out;
}

// Is `a` the stack truth `t` describes? frames[0] right after the call to operator new inside the
// allocating function, then exactly libgcc's callers.
bool is_truth_quiet(const std::vector<uptr>& a, const Truth& t);
using unwind_frames::describe;
bool is_truth(const std::vector<uptr>& a, const Truth& t) {
    if (is_truth_quiet(a, t)) return true;
    std::fprintf(stderr, "  captured (%zu frames):\n", a.size());
    for (uptr x : a) describe(x);
    std::fprintf(stderr, "  libgcc from inside the allocating function (frames [1..] expected):\n");
    for (std::size_t i = 0; i < t.n_ref; ++i) describe(t.ref[i]);
    return false;
}
bool is_truth_quiet(const std::vector<uptr>& a, const Truth& t) {
    if (a.empty() || a[0] <= t.function || a[0] >= t.function + 4096 || !after_call_to_operator_new(a[0])) return false;
    if (t.n_ref < 3 || t.ref[1] != t.leak_return || a.size() != (t.n_ref < 32 ? t.n_ref : 32)) return false;
    for (std::size_t i = 1; i < a.size(); ++i)
        if (a[i] != t.ref[i]) return false;
    return true;
}

// The site of a report whose first frame lies in `function`, or null.
const leakscope::Site* site_in(const leakscope::Report& r, uptr function) {
    for (const leakscope::Site& s : r.sites) {
        std::vector<uptr> a = addresses_of(s);
        if (!a.empty() && a[0] > function && a[0] < function + 4096) return &s;
    }
    return nullptr;
}

std::uint64_t deferred() { return leakscope::detail::tls.deferred; }   // this thread's
std::uint64_t settled() { return leakscope::detail::st.settled.load(); }

}  // namespace

// Each part in a function of its own, on a thread of its own (below): a copy reaches from the
// allocation up to the thread's outermost frame, and one over 4 KiB is not deferred (a -O0 or
// sanitizer build's frames are large).
__attribute__((noinline)) void first_sightings() {
    const std::vector<SiteFn> first = sites_of<1>(std::make_integer_sequence<int, kSites>{});
    static Truth truth[kSites];
    std::vector<int*> blocks(kSites);   // before any scope: the test's own memory is no one's leftover
    // 1. 200 first sightings in one scope: each deferred (but for a birth whose block malloc put at
    //    a page start: it takes the slow path, whose deeper stack may pass the copy's limit); the
    //    area fills at 128 copies, all alive, which are walked inside the next deferring birth;
    //    odd blocks die before leftovers() walks the even ones of the copies left.
    {
        constexpr std::size_t kArea = leakscope::detail::kPendingStacks;
        std::vector<int> order;   // the area's records as they are written: site index, -1 the first birth
        order.reserve(2 * kSites);
        leakscope::LeakScope scope("first sightings");
        std::uint64_t d0 = deferred(), s0 = settled();
        delete call_site(&site<1, 1000>, nullptr);   // the scope's first birth decides its lane (see 2.)
        if (deferred() != d0) order.push_back(-1);
        for (int n = 0; n < kSites; ++n) {
            std::uint64_t before = deferred();
            blocks[n] = call_site(first[n], &truth[n]);
            if (deferred() != before) order.push_back(n);
        }
        // What the area's rules give: a full area walks its records whose blocks are alive.
        std::uint64_t expect_in_births = 0, expect_at_end = 0;
        std::size_t in_area = 0;
        for (std::size_t i = 0; i < order.size(); ++i) {
            if (in_area == kArea) {
                for (std::size_t j = i - kArea; j < i; ++j) expect_in_births += order[j] >= 0;
                in_area = 0;
            }
            ++in_area;
        }
        for (std::size_t j = order.size() - in_area; j < order.size(); ++j) expect_at_end += order[j] >= 0 && order[j] % 2 == 0;
        EXPECT(deferred() - d0 == order.size() && order.size() >= kSites - 4, "%zu of %d sites deferred",
               order.size(), kSites);
        EXPECT(order.size() > kArea && expect_in_births >= kArea - 1, "the area never filled");
        EXPECT(settled() - s0 == expect_in_births, "%llu walked when the area filled, %llu expected",
               (unsigned long long)(settled() - s0), (unsigned long long)expect_in_births);
        for (int n = 1; n < kSites; n += 2) delete blocks[n];
        leakscope::Report r = scope.leftovers();
        leakscope::Ignore bookkeeping;   // what the checks allocate is not the scope's
        EXPECT(settled() - s0 == expect_in_births + expect_at_end, "%llu walked, %llu expected",
               (unsigned long long)(settled() - s0), (unsigned long long)(expect_in_births + expect_at_end));
        EXPECT(r.blocks == kSites / 2 && r.sites.size() == kSites / 2, "%zu blocks, %zu sites", r.blocks, r.sites.size());
        for (int n = 0; n < kSites; n += 2) {
            const leakscope::Site* s = site_in(r, truth[n].function);
            EXPECT(s && s->blocks == 1, "site %d: no site of one block", n);
            if (s) EXPECT(is_truth(addresses_of(*s), truth[n]), "site %d: the deferred stack is not the allocating stack", n);
        }
        for (int n = 0; n < kSites; n += 2) delete blocks[n];
    }

}

__attribute__((noinline)) void deferred_walked_remembered() {
    // 2. Eight new sites, three captures each in a row: deferred, walked, then a remembered walk —
    //    one site of three blocks each, so all three ways give the same interned stack.
    {
        const std::vector<SiteFn> fresh = sites_of<2>(std::make_integer_sequence<int, 8>{});
        static Truth truths[8];
        int* three[8][3];
        leakscope::LeakScope scope("deferred, walked, remembered");
        // The scope's first birth decides its lane; the births after it take the lane, whose
        // frames differ: so each site's three captures below start from the same frame.
        delete call_site(&site<2, 100>, nullptr);
        std::uint64_t d0 = deferred();
        int captures = 3;
        asm volatile("" : "+r"(captures));   // one call site below, not three unrolled or peeled ones
        for (int n = 0; n < 8; ++n) {
            int k = 0;
            do {
                three[n][k] = call_site(fresh[std::size_t(n)], &truths[n]);
                asm volatile("" : "+r"(k));
            } while (++k < captures);
        }
        // Each site's first capture; a block malloc puts at a page start takes the slow path, whose
        // capture starts from another frame (a site of its own for deferral, not for the stack).
        EXPECT(deferred() - d0 >= 8 && deferred() - d0 <= 12, "%llu deferred", (unsigned long long)(deferred() - d0));
        leakscope::Report r = scope.leftovers();
        leakscope::Ignore bookkeeping;
        EXPECT(r.blocks == 24 && r.sites.size() == 8, "%zu blocks, %zu sites", r.blocks, r.sites.size());
        for (int n = 0; n < 8; ++n) {
            const leakscope::Site* s = site_in(r, truths[n].function);
            EXPECT(s && s->blocks == 3, "site %d: its three captures differ", n);
            if (s) EXPECT(is_truth(addresses_of(*s), truths[n]), "site %d: not the allocating stack", n);
        }
        for (auto& b : three)
            for (int* p : b) delete p;
    }

}

__attribute__((noinline)) void remote_deaths_and_children() {
    // 3. Deaths on another thread while the owner keeps deferring (the area fills meanwhile); then
    //    a child scope's deferred leftovers, seen by its parent with their stacks; ignore() of a
    //    deferred block.
    {
        const std::vector<SiteFn> second = sites_of<3>(std::make_integer_sequence<int, 64>{});
        const std::vector<SiteFn> third = sites_of<4>(std::make_integer_sequence<int, 128>{});
        std::vector<int*> mine, theirs, more;
        mine.reserve(64);
        more.reserve(200);
        leakscope::LeakScope scope("remote deaths");
        for (int n = 0; n < 64; ++n) mine.push_back(call_site(second[std::size_t(n)], nullptr));
        std::thread freer;
        {
            leakscope::Ignore bookkeeping;
            theirs.assign(mine.begin(), mine.begin() + 32);
            freer = std::thread([&] {
                for (int* p : theirs) delete p;
            });
        }
        for (int n = 0; n < 128; ++n) more.push_back(call_site(third[std::size_t(n)], nullptr));
        freer.join();
        {
            leakscope::LeakScope child("child");
            more.push_back(call_site(&site<5, 0>, nullptr));
            more.push_back(call_site(&site<5, 1>, nullptr));
            int* ignored = call_site(&site<5, 2>, nullptr);
            leakscope::ignore(ignored);
            child.dismiss();
            delete ignored;
        }
        leakscope::Report r = scope.leftovers();
        leakscope::Ignore bookkeeping;
        EXPECT(r.blocks == 32 + 128 + 2, "%zu blocks", r.blocks);
        EXPECT(r.sites.size() == 32 + 128 + 2, "%zu sites", r.sites.size());
        for (const leakscope::Site& s : r.sites) EXPECT(!s.frames.empty(), "a site without a stack");
        EXPECT(site_in(r, reinterpret_cast<uptr>(&site<5, 1>)) != nullptr, "the child's leftover is not under its site");
        for (std::size_t i = 32; i < mine.size(); ++i) delete mine[i];
        for (int* p : more) delete p;
    }

}

__attribute__((noinline)) void closed_elsewhere() {
    // 4. A scope destroyed on another thread: no crash, exact counts (the stacks it deferred are
    //    walked only on its own thread, so its report may lack them).
    {
        std::vector<int*> kept;
        kept.reserve(16);
        auto* scope = new leakscope::LeakScope("closed elsewhere");
        for (int n = 0; n < 16; ++n) kept.push_back(call_site(&site<6, 0>, nullptr));
        std::size_t blocks_seen = 0;
        std::thread closer;
        {
            leakscope::Ignore bookkeeping;
            closer = std::thread([&] {
                blocks_seen = scope->leftovers().blocks;
                scope->dismiss();
                delete scope;
            });
        }
        closer.join();
        EXPECT(blocks_seen == 16, "%zu blocks", blocks_seen);
        for (int* p : kept) delete p;
    }
}

// (The reports in a function of their own: built after the births, their frames would otherwise
// lie above the births' stacks, and a -O0 build's frames are large.)
__attribute__((noinline)) void check_views(const leakscope::Snapshot& before, const leakscope::Snapshot& elsewhere,
                                           const leakscope::Snapshot& after, const leakscope::Snapshot& again) {
    leakscope::Ignore bookkeeping;
    leakscope::Report d = after - before, same = again - after, walked_meanwhile = after - elsewhere;
    EXPECT(d.blocks == 8 && d.sites.size() == 8, "%zu blocks, %zu sites", d.blocks, d.sites.size());
    for (const leakscope::Site& site : d.sites) EXPECT(!site.frames.empty(), "a site without a stack");
    EXPECT(same.blocks == 0 && same.released_blocks == 0, "%zu born, %zu gone between two snapshots",
           same.blocks, same.released_blocks);
    EXPECT(walked_meanwhile.blocks == 0 && walked_meanwhile.released_blocks == 0,
           "%zu born, %zu gone while the stacks were walked", walked_meanwhile.blocks, walked_meanwhile.released_blocks);
}

__attribute__((noinline)) void whole_heap_views() {
    // 5. A snapshot taken on the owner thread while its scope is open walks the copies first: the
    //    blocks born since the last one show their stacks, and stay the same births in a diff.
    const std::vector<SiteFn> fresh = sites_of<7>(std::make_integer_sequence<int, 8>{});
    std::vector<int*> kept;
    kept.reserve(8);
    leakscope::LeakScope scope("whole heap");
    delete call_site(&site<7, 100>, nullptr);   // the lane (see 2.)
    leakscope::Snapshot before = leakscope::Snapshot::take();
    std::uint64_t d0 = deferred(), s0 = settled();
    for (int n = 0; n < 8; ++n) kept.push_back(call_site(fresh[std::size_t(n)], nullptr));
    std::uint64_t deferred_here = deferred() - d0;
    leakscope::Snapshot elsewhere;   // another thread's: the copies are not walked yet
    {
        leakscope::Ignore bookkeeping;
        std::thread([&] { elsewhere = leakscope::Snapshot::take(); }).join();
    }
    leakscope::Snapshot after = leakscope::Snapshot::take();
    EXPECT(deferred_here >= 6 && settled() - s0 == deferred_here, "%llu deferred, %llu walked",
           (unsigned long long)deferred_here, (unsigned long long)(settled() - s0));
    leakscope::Snapshot again = leakscope::Snapshot::take();
    check_views(before, elsewhere, after, again);
    for (int* p : kept) delete p;
    scope.dismiss();
}

int main() {
#if LEAKSCOPE_FAST_UNWINDER
    std::thread([] {
        {   // a first walk on this thread: the walks deferral needs exist from here on
            leakscope::LeakScope warm("warm-up");
            delete call_site(&site<0, 0>, nullptr);
        }
        first_sightings();
        deferred_walked_remembered();
        remote_deaths_and_children();
        closed_elsewhere();
        whole_heap_views();
    }).join();
#endif
    if (failures) std::fprintf(stderr, "unwind_deferred: %d failures\n", failures);
    else std::printf("unwind_deferred: ok\n");
    return failures ? 1 : 0;
}
