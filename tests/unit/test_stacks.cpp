// Allocating call stacks in reports, and the options that steer them (configure(), the
// LEAKSCOPE_OPTIONS syntax). The unwinders themselves are checked frame by frame against libgcc
// by tests/unwind (scripts/test-unwind.sh); here: what a user sees.
#include "support.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <new>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using leakscope::Report;
using leakscope::Unwinder;

namespace {

// Captured return addresses of a site (symbolization expands one address into its inlined calls).
std::size_t addresses_in(const leakscope::Site& site) {
    std::size_t n = 0;
    for (const leakscope::Frame& f : site.frames) n += !f.inlined;
    return n;
}

// The k-th captured return address of a site.
std::uintptr_t nth_address(const leakscope::Site& site, std::size_t k) {
    for (std::size_t i = 0, n = 0; i < site.frames.size(); ++i) {
        if (site.frames[i].inlined) continue;
        if (n++ == k) return site.frames[i].address;
    }
    return 0;
}

std::size_t lines_in(const std::string& s) {
    std::size_t n = 0;
    for (char c : s) n += c == '\n';
    return n;
}

// Restores the default options however a test ends.
struct DefaultOptionsAfter {
    ~DefaultOptionsAfter() { leakscope::configure("stacks=on unwinder=fast stack_depth=32"); }
};

// The return address of the call to this function: an address inside the caller, right after
// the call instruction; for comparing with a captured frame of the same caller.
__attribute__((noinline)) std::uintptr_t here() {
    std::uintptr_t ra = reinterpret_cast<std::uintptr_t>(__builtin_return_address(0));
    test::escape(&ra);
    return ra;
}

// Allocates one int; its call stack starts inside this function.
constexpr unsigned kAllocateLine = __LINE__ + 2;   // the line of `new` below
__attribute__((noinline)) int* allocate_one() {
    int* p = test::kept(new int(7));
    asm volatile("" ::: "memory");   // not a tail call
    return p;
}
__attribute__((noinline)) int* via_first_path() {
    int* p = allocate_one();
    asm volatile("" ::: "memory");
    return p;
}
volatile int second_path_calls;   // makes the two paths differ, so no compiler folds them into one
__attribute__((noinline)) int* via_second_path() {
    int* p = allocate_one();
    second_path_calls = second_path_calls + 1;
    return p;
}

// The address range of a function, from the next function's address: good enough to say "inside".
bool inside(std::uintptr_t address, const void* function, std::size_t max_size = 512) {
    auto start = reinterpret_cast<std::uintptr_t>(function);
    return address > start && address < start + max_size;
}

}  // namespace

TEST_CASE("a site's first frame is the line that allocated, the next its caller", "[stacks]") {
    DefaultOptionsAfter restore;
    int* p = nullptr;
    std::uintptr_t after_call = 0;
    Report r = test::leftovers_of([&] {
        p = via_first_path();
        after_call = here();
    });
    REQUIRE(r.sites.size() == 1);
    const leakscope::Site& site = r.sites[0];
    REQUIRE(addresses_in(site) >= 3);
    CHECK(inside(nth_address(site, 0), reinterpret_cast<const void*>(&allocate_one)));
    CHECK(inside(nth_address(site, 1), reinterpret_cast<const void*>(&via_first_path)));
    // The third is inside the lambda, just before the call to here().
    CHECK(nth_address(site, 2) < after_call);
    CHECK(after_call - nth_address(site, 2) < 64);
    // Symbolized in-process: the allocating function, this file, the line of its `new`.
    CHECK(site.frames[0].function.find("allocate_one") != std::string::npos);
    CHECK(site.frames[0].file.find("test_stacks.cpp") != std::string::npos);
    CHECK(site.frames[0].line == kAllocateLine);
    CHECK(site.frames[0].module.find("leakscope_tests") != std::string::npos);
    delete p;
}

TEST_CASE("each distinct stack is one site; repeats of a stack share it", "[stacks]") {
    DefaultOptionsAfter restore;
    std::vector<int*> blocks;
    Report r = test::leftovers_of([&] {
        // Opaque bounds: an unrolled loop would be many call sites, each its own stack.
        int thousand = 1000, ten = 10;
        for (int i = 0; i < *test::opaque(&thousand); ++i) blocks.push_back(via_first_path());
        for (int i = 0; i < *test::opaque(&ten); ++i) blocks.push_back(via_second_path());
        blocks.shrink_to_fit();   // the vector's own buffer: a third site
    });
    // Three sites: the 1000 from one path, the 10 from the other, the vector's buffer.
    REQUIRE(r.sites.size() == 3);
    const leakscope::Site* many = nullptr;
    const leakscope::Site* few = nullptr;
    for (const auto& site : r.sites) {
        if (site.blocks == 1000) many = &site;
        if (site.blocks == 10) few = &site;
    }
    REQUIRE(many != nullptr);
    REQUIRE(few != nullptr);
    REQUIRE(many->frames.size() >= 2);
    REQUIRE(few->frames.size() >= 2);
    CHECK(many->bytes == 1000 * sizeof(int));
    CHECK(many->frames[0].address == few->frames[0].address);   // the same allocating line...
    CHECK(nth_address(*many, 1) != nth_address(*few, 1));   // ...reached from two callers
    CHECK(inside(nth_address(*many, 1), reinterpret_cast<const void*>(&via_first_path)));
    for (int* p : blocks) delete p;
}

TEST_CASE("all three unwinders name the allocating function first", "[stacks]") {
    DefaultOptionsAfter restore;
    for (const char* option : {"unwinder=fast", "unwinder=libgcc", "unwinder=fp"}) {
        leakscope::configure(option);
        int* p = nullptr;
        Report r = test::leftovers_of([&] { p = via_first_path(); });
        INFO(option);
        REQUIRE(r.sites.size() == 1);
        REQUIRE_FALSE(r.sites[0].frames.empty());
        CHECK(inside(r.sites[0].frames[0].address, reinterpret_cast<const void*>(&allocate_one)));
        delete p;
    }
}

TEST_CASE("stacks=off records no frames; stack_depth bounds them", "[stacks][options]") {
    DefaultOptionsAfter restore;
    int* p = nullptr;
    leakscope::configure("stacks=off");
    Report off = test::leftovers_of([&] { p = via_first_path(); });
    delete p;
    leakscope::configure("stacks=on stack_depth=2");
    Report two = test::leftovers_of([&] { p = via_first_path(); });
    delete p;
    REQUIRE(off.sites.size() == 1);
    CHECK(off.sites[0].frames.empty());
    CHECK(off.blocks == 1);
    REQUIRE(two.sites.size() == 1);
    CHECK(addresses_in(two.sites[0]) == 2);
}

TEST_CASE("stacks=demand: a scope name captures stacks only after it first leaked", "[stacks][options]") {
    DefaultOptionsAfter restore;
    leakscope::configure("stacks=demand");
    std::vector<Report> runs;
    for (int run = 0; run < 3; ++run) {
        test::Capture capture;
        int* p = nullptr;
        {
            leakscope::LeakScope scope("demand: leaks");
            p = via_first_path();
        }   // leaks, so the name is marked
        REQUIRE(capture.reports().size() == 1);
        runs.push_back(capture.reports()[0]);
        delete p;
    }
    // A name that never leaked (it frees before it ends) never pays for stacks.
    Report clean;
    for (int run = 0; run < 2; ++run) {
        leakscope::LeakScope scope("demand: clean");
        int* p = via_first_path();
        clean = scope.leftovers();
        delete p;
    }
    REQUIRE(runs.size() == 3);
    CHECK(runs[0].sites.at(0).frames.empty());        // first run of the name: no stacks yet
    CHECK_FALSE(runs[1].sites.at(0).frames.empty());  // it leaked: the next runs capture
    CHECK_FALSE(runs[2].sites.at(0).frames.empty());
    REQUIRE(clean.sites.size() == 1);
    CHECK(clean.sites[0].frames.empty());
}

TEST_CASE("malformed options: one line each, the others still apply", "[options]") {
    DefaultOptionsAfter restore;
    std::string err = stderr_of([] {
        leakscope::configure("bogus stacks=off:stack_depth=0  unwinder=libgcc\tcolour=blue stacks=maybe");
    });
    CHECK(lines_in(err) == 4);
    CHECK(err.find("'bogus'") != std::string::npos);
    CHECK(err.find("'stack_depth=0'") != std::string::npos);
    CHECK(err.find("'colour=blue'") != std::string::npos);
    CHECK(err.find("'stacks=maybe'") != std::string::npos);
    int* p = nullptr;
    Report r = test::leftovers_of([&] { p = via_first_path(); });
    delete p;
    REQUIRE(r.sites.size() == 1);
    CHECK(r.sites[0].frames.empty());   // stacks=off applied despite its neighbours
}

TEST_CASE("test_stacks= (the test adapters' choice) and scopes opened without stacks", "[options]") {
    DefaultOptionsAfter restore;
    using leakscope::detail::TestStacks;
    CHECK(leakscope::detail::test_stacks() == TestStacks::automatic);   // the default
    leakscope::configure("test_stacks=rerun");
    CHECK(leakscope::detail::test_stacks() == TestStacks::rerun);
    std::string err = stderr_of([] { leakscope::configure("test_stacks=sometimes"); });
    CHECK(lines_in(err) == 1);
    CHECK(err.find("'test_stacks=sometimes'") != std::string::npos);
    CHECK(leakscope::detail::test_stacks() == TestStacks::rerun);   // unchanged
    leakscope::configure("stacks=off");
    CHECK(leakscope::detail::test_stacks() == TestStacks::inline_);   // no stacks to get at all
    leakscope::configure("stacks=on test_stacks=inline");
    CHECK(leakscope::detail::test_stacks() == TestStacks::inline_);

    // A scope opened while a ScopesWithoutStacks lives captures none; one opened inside it later
    // (a test's own scope) and one opened after it do, as stacks=on says.
    int* p = nullptr;
    int* q = nullptr;
    Report outer, inner;
    {
        std::optional<leakscope::LeakScope> stackless;
        {
            leakscope::detail::ScopesWithoutStacks off;
            stackless.emplace("stackless");
        }
        {
            leakscope::LeakScope own("own");
            q = via_first_path();
            inner = own.leftovers();
            own.dismiss();
        }
        p = via_first_path();
        outer = stackless->leftovers();
        stackless->dismiss();
    }
    delete p;
    delete q;
    REQUIRE(inner.sites.size() == 1);
    CHECK_FALSE(inner.sites[0].frames.empty());
    // Its own block without a stack; the inner scope's leftover keeps the one captured there.
    REQUIRE(outer.blocks == 2);
    REQUIRE(outer.sites.size() == 2);
    CHECK(outer.sites[0].frames.empty() != outer.sites[1].frames.empty());
    Report after = test::leftovers_of([&] { p = via_first_path(); });
    delete p;
    REQUIRE(after.sites.size() == 1);
    CHECK_FALSE(after.sites[0].frames.empty());
    leakscope::configure("test_stacks=auto");
}

TEST_CASE("track= and exit_report= take only their values, each error in one line", "[options]") {
    std::string err = stderr_of([] { leakscope::configure("track=sideways exit_report=2"); });
    CHECK(lines_in(err) == 2);
    CHECK(err.find("track must be scopes, all or sample in 'track=sideways'") != std::string::npos);
    CHECK(err.find("exit_report must be 0 or 1 in 'exit_report=2'") != std::string::npos);
    // exit_report=1 needs every block tracked: it turns track=all on and keeps it on.
    err = stderr_of([] { leakscope::configure("exit_report=1 track=scopes"); });
    CHECK(lines_in(err) == 1);
    CHECK(err.find("exit_report=1 needs track=all") != std::string::npos);
    int* outside = test::kept(new int(5));   // no scope open: tracked all the same
    leakscope::Snapshot with = leakscope::Snapshot::take();
    delete outside;
    leakscope::Snapshot without = leakscope::Snapshot::take();
    CHECK(with.blocks() == without.blocks() + 1);
    err = stderr_of([] { leakscope::configure("exit_report=0 track=scopes"); });
    CHECK(err.empty());
    outside = test::kept(new int(6));
    CHECK(leakscope::Snapshot::take().blocks() == without.blocks());   // not tracked any more
    delete outside;
}

TEST_CASE("a diagnostic is one line of printable text, whatever the entry held", "[options]") {
    // A quoted value may hold a newline or a terminal escape; found by tests/fuzz.
    std::string err = stderr_of([] { leakscope::configure("stacks='bad\nvalue' unwinder=\x1b[2J\x1b]0;t\x07"); });
    CHECK(lines_in(err) == 2);
    for (char c : err) CHECK((static_cast<unsigned char>(c) >= 0x20 || c == '\n'));
    CHECK(err.find("'stacks='bad?value''") != std::string::npos);
    leakscope::configure("stacks=on unwinder=fast");
}

TEST_CASE("suppressions= reads only a regular file, and never blocks", "[options]") {
    char dir[] = "/tmp/leakscope-supp-XXXXXX";
    REQUIRE(mkdtemp(dir) != nullptr);
    std::string fifo = std::string(dir) + "/fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    for (std::string path : {std::string("/dev/zero"), fifo, std::string(dir)}) {
        INFO(path);
        std::string err = stderr_of([&] { leakscope::configure("suppressions=" + path); });
        CHECK(lines_in(err) == 1);
        CHECK(err.find("not a regular file: '" + path + "'") != std::string::npos);
    }
    std::string err = stderr_of([&] { leakscope::configure(std::string("suppressions=") + dir + "/missing"); });
    CHECK(err.find("cannot read") != std::string::npos);
    leakscope::configure("suppressions=''");
    ::unlink(fifo.c_str());
    ::rmdir(dir);
}

TEST_CASE("quoted values, and an unterminated quote", "[options]") {
    DefaultOptionsAfter restore;
    std::string err = stderr_of([] { leakscope::configure("stack_depth='3' unwinder=\"libgcc\""); });
    CHECK(err.empty());
    int* p = nullptr;
    Report r = test::leftovers_of([&] { p = via_first_path(); });
    delete p;
    REQUIRE(r.sites.size() == 1);
    CHECK(addresses_in(r.sites[0]) == 3);
    err = stderr_of([] { leakscope::configure("stacks=off stack_depth='4"); });
    CHECK(lines_in(err) == 1);
    CHECK(err.find("unterminated") != std::string::npos);
    // monitor= takes 0, 1 or warmup_s,interval_s: anything else is one line naming the entry.
    err = stderr_of([] { leakscope::configure("monitor=60,x"); });
    CHECK(lines_in(err) == 1);
    CHECK(err.find("monitor must be 0, 1 or warmup_s,interval_s (seconds) in 'monitor=60,x'") != std::string::npos);
}

TEST_CASE("current_stack: the caller's frames, capped at 256", "[stacks]") {
    std::uintptr_t fast[300], gcc[300];
    std::size_t n_fast = leakscope::current_stack(fast, 300, Unwinder::fast);
    std::size_t n_gcc = leakscope::current_stack(gcc, 300, Unwinder::libgcc);
    REQUIRE(n_fast == n_gcc);
    REQUIRE(n_fast >= 3);
    for (std::size_t i = 1; i < n_fast; ++i) CHECK(fast[i] == gcc[i]);
    CHECK(leakscope::current_stack(fast, 0) == 0);
    CHECK(leakscope::current_stack(fast, 1) == 1);
}

// A remembered walk checked only below the scope's anchor (the LeakScope object: frames outside
// it cannot change while it is the thread's scope) must still tell apart stacks that differ
// below it, and never use an anchor that no longer holds: after a nested scope closed, under an
// Adopt (another thread's scope), and on a thread with its own scope under that Adopt. The same
// allocation site at the same depth (the same start frame) is reached from two outer functions
// whose frames lie below every anchor in force; each block's stack must name its own.
namespace {
volatile int anchor_calls_a, anchor_calls_b;
__attribute__((noinline)) int* anchor_leaf() {
    int* p = test::kept(new int(3));
    asm volatile("" ::: "memory");   // not a tail call
    return p;
}
// Opens a nested scope in its own frame when asked: its anchor then lies below this frame's
// return address, the slot that tells the two outer functions apart. The scope is dismissed
// before returning, and the next call comes from the other outer function.
__attribute__((noinline)) int* anchor_middle(bool nest) {
    alignas(leakscope::LeakScope) unsigned char storage[sizeof(leakscope::LeakScope)];
    leakscope::LeakScope* nested = nest ? new (storage) leakscope::LeakScope("anchor-nested") : nullptr;
    int* p = anchor_leaf();
    if (nested) {
        nested->dismiss();   // its leftover goes to the enclosing scope
        nested->~LeakScope();
    }
    asm volatile("" ::: "memory");
    return p;
}
__attribute__((noinline)) int* anchor_outer_a(bool nest) {
    int* p = anchor_middle(nest);
    anchor_calls_a = anchor_calls_a + 1;
    return p;
}
__attribute__((noinline)) int* anchor_outer_b(bool nest) {
    int* p = anchor_middle(nest);
    anchor_calls_b = anchor_calls_b + 2;
    return p;
}
// Alternates the two outer functions from one frame, `rounds` times each; the first call via A
// opens the nested scope when asked.
__attribute__((noinline)) void anchor_alternate(int** out, int rounds, bool nest_first) {
    for (int i = 0; i < rounds; ++i) {
        out[2 * i] = anchor_outer_a(nest_first && i == 0);
        out[2 * i + 1] = anchor_outer_b(false);
    }
}
// The report's two sites of anchor_leaf, `rounds` blocks each, whose address `level` lies in
// caller A and in caller B (adjacent functions: the one starting last at or before the address),
// and the address above it in `driver` for both. Sites of anchor_leaf from elsewhere fail.
void check_two_caller_sites(const Report& r, int rounds, std::size_t level, const void* caller_a,
                            const void* caller_b, const void* driver) {
    const leakscope::Site* a = nullptr;
    const leakscope::Site* b = nullptr;
    auto start_a = reinterpret_cast<std::uintptr_t>(caller_a);
    auto start_b = reinterpret_cast<std::uintptr_t>(caller_b);
    for (const auto& site : r.sites) {
        if (addresses_in(site) <= level || !inside(nth_address(site, 0), reinterpret_cast<const void*>(&anchor_leaf)))
            continue;
        std::uintptr_t at = nth_address(site, level);
        bool in_a = inside(at, caller_a) && !(start_b > start_a && at > start_b);
        bool in_b = inside(at, caller_b) && !(start_a > start_b && at > start_a);
        if (in_a) a = &site;
        else if (in_b) b = &site;
        else FAIL("a site of anchor_leaf reached from neither caller");
    }
    REQUIRE(a != nullptr);
    REQUIRE(b != nullptr);
    CHECK(a->blocks == std::size_t(rounds));
    CHECK(b->blocks == std::size_t(rounds));
    CHECK(inside(nth_address(*a, level + 1), driver));
    CHECK(inside(nth_address(*b, level + 1), driver));
}
// The anchor test's sites: anchor_leaf, then anchor_middle, then outer A / B, then the driver.
void check_anchor_sites(const Report& r, int rounds) {
    for (const auto& site : r.sites)
        if (addresses_in(site) >= 2 && inside(nth_address(site, 0), reinterpret_cast<const void*>(&anchor_leaf)))
            CHECK(inside(nth_address(site, 1), reinterpret_cast<const void*>(&anchor_middle)));
    check_two_caller_sites(r, rounds, 2, reinterpret_cast<const void*>(&anchor_outer_a),
                           reinterpret_cast<const void*>(&anchor_outer_b), reinterpret_cast<const void*>(&anchor_alternate));
}
}  // namespace

// The same allocating function called from two functions of one shape, alternately, from one
// frame: every capture starts from the same frame (the same sp, the same return address into
// anchor_leaf), and the stacks differ first in the slot just above it, among a remembered
// walk's innermost checks.
namespace {
__attribute__((noinline)) int* direct_caller_a() {
    int* p = anchor_leaf();
    anchor_calls_a = anchor_calls_a + 1;
    return p;
}
__attribute__((noinline)) int* direct_caller_b() {
    int* p = anchor_leaf();
    anchor_calls_b = anchor_calls_b + 2;
    return p;
}
__attribute__((noinline)) void direct_alternate(int** out, int rounds) {
    for (int i = 0; i < rounds; ++i) {
        out[2 * i] = direct_caller_a();
        out[2 * i + 1] = direct_caller_b();
    }
}
}  // namespace

TEST_CASE("remembered walks: one allocating frame reached from two callers in turn gives two sites", "[stacks]") {
    DefaultOptionsAfter restore;
    leakscope::configure("stacks=on unwinder=fast stack_depth=32");
    constexpr int kRounds = 20;
    int* blocks[2 * kRounds] = {};
    int rounds = kRounds;
    rounds = *test::opaque(&rounds);   // not unrolled: one call site each
    Report r = test::leftovers_of([&] { direct_alternate(blocks, rounds); });
    check_two_caller_sites(r, kRounds, 1, reinterpret_cast<const void*>(&direct_caller_a),
                           reinterpret_cast<const void*>(&direct_caller_b), reinterpret_cast<const void*>(&direct_alternate));
    for (int*& p : blocks) delete p;
}

TEST_CASE("remembered walks under a scope's anchor: stacks that differ below it stay apart", "[stacks]") {
    DefaultOptionsAfter restore;
    leakscope::configure("stacks=on unwinder=fast stack_depth=32");
    constexpr int kRounds = 20;
    int* blocks[2 * kRounds] = {};
    auto free_all = [&] {
        for (int*& p : blocks) {
            delete p;
            p = nullptr;
        }
    };
    SECTION("inside one scope, after a nested scope closed") {
        int rounds = kRounds;
        rounds = *test::opaque(&rounds);   // not unrolled: one call site each
        Report r = test::leftovers_of([&] { anchor_alternate(blocks, rounds, true); });
        check_anchor_sites(r, kRounds);
        free_all();
    }
    SECTION("under an Adopt on a second thread, with and without its own scope") {
        for (bool own_scope : {false, true}) {
            Report r;
            {
                leakscope::LeakScope scope("anchor-adopted");
                leakscope::Token token = scope.token();
                std::thread([&] {
                    alignas(leakscope::LeakScope) unsigned char storage[sizeof(leakscope::LeakScope)];
                    leakscope::LeakScope* mine = own_scope ? new (storage) leakscope::LeakScope("anchor-own") : nullptr;
                    int* before[2] = {};
                    if (mine) anchor_alternate(before, 1, false);   // remembered under its anchor
                    {
                        leakscope::Adopt adopt(token);
                        anchor_alternate(blocks, kRounds, false);
                    }
                    if (mine) {
                        mine->dismiss();
                        mine->~LeakScope();
                    }
                    delete before[0];
                    delete before[1];
                }).join();
                r = scope.leftovers();
                scope.dismiss();
            }
            INFO("own scope: " << own_scope);
            check_anchor_sites(r, kRounds);
            free_all();
        }
    }
}
