// Cost of allocating call stacks in leakscope: one capture with each unwinder, and a realistic
// allocation churn with stacks off and on, against the same churn with no leakscope at all.
//
// 1. Capture: current_stack(out, 16, how) at the bottom of a chain of kChainFrames real frames
//    (noipa/noinline, each does work after its call, so none is inlined or tail-called). Under
//    GCC the chain is built twice, with __attribute__((optimize("omit-frame-pointer"))) and with
//    optimize("no-omit-frame-pointer"), whatever the command line says: `fast` (DWARF CFI) and
//    `libgcc` are measured on the chain WITHOUT frame pointers (the point of `fast` is that it
//    needs none), `fp` on the chain WITH them (its honest cost) and, for its frame count only, on
//    the chain without. Clang has no per-function switch: both chains follow the command line
//    (x86-64 -O2 omits frame pointers; add -fno-omit-frame-pointer to see fp walk them). Counters:
//    `frames` = frames captured, `agree` = leading frames equal to libgcc's (the exact reference).
//    Read a row together with its frames: one with 0 frames times a walk that failed (fp needs
//    frame pointers in leakscope's own frames too, i.e. in this translation unit).
//    Every capture row includes the chain's own 24 calls and returns; BM_chain_alone measures them
//    (current_stack with max=0 returns at once) and the table shows each row net of it as well.
//    The warm rows repeat one capture (the fast unwinder's per-return-address cache is warm);
//    two one-off figures, taken before the benchmarks, show the cold cost: the process's first
//    capture (one-time set-up included) and the first capture through 16 return addresses never
//    seen before (kColdChains distinct chains, each warmed once with max=0 so its code is paged
//    in; the minimum and median are shown).
//
// 2. Churn: strings, a vector, a map and allocate_shared (as churn_once in bench/core.cpp),
//    templated on the allocator so the SAME code runs
//      (a) plain:   MallocAlloc, calls malloc/free directly — leakscope never sees a block;
//      (a') the program without leakscope: LibstdcxxAlloc calls libstdc++'s own operator
//           new/delete (found with dlsym(RTLD_NEXT), past the replaced ones) — what the same
//           code costs in a build that does not include leakscope; the base of the target;
//      (b) hooked:  HookedAlloc calls the replaced operator new/delete as std::allocator does,
//           no scope open;
//      (c) (b) inside one LeakScope per thread, stacks=off;
//      (d) (b) inside one LeakScope per thread, stacks=on unwinder=fast, stack_depth=32 and =16;
//      (e) (b) inside one LeakScope per thread, stacks=on unwinder=fp, stack_depth=32;
//      (f) std::allocator itself, as (d) at depth 32: not the same code, for std::string then runs
//          its out-of-line instantiations in libstdc++.so (PLT calls) instead of inline ones; the
//          program without leakscope runs those too, so (f) has no base here (see
//          bench/scope_compare.sh, which builds that program);
//    at 1 and 2 threads, each ratio to (a) and to (a') with the same thread count. Every family's Setup
//    applies all three options explicitly and its Teardown restores the defaults, so a row never
//    inherits another's configuration. `stack_frames` is the depth of the stack at the benchmark
//    function (an allocation in churn is 2-4 frames deeper): what a stack_depth can actually fill.
//    (b) runs before anything was ever tracked (registration order), as BM_hook_idle_new_delete
//    in bench/core.cpp does.
//
// After the Google Benchmark output a Markdown table gives every row's minimum over the
// repetitions (a noisy neighbour only ever adds time). Without --benchmark_repetitions (or
// BENCHMARK_REPETITIONS) the run uses 5.
//
//   bench_stacks                              full run (about a minute on 2 cores)
//   bench_stacks --benchmark_min_time=0.01    smoke test (a few seconds; what ctest runs)
//
// Results go through the const overload of benchmark::DoNotOptimize on purpose (see
// bench/core.cpp: GCC 12 with -fsanitize=address,undefined miscompiles the read-write one).
// Every block is freed and the scopes are dismissed (Google Benchmark's own allocations inside
// a timed run would otherwise be reported), so the smoke run leaks nothing.

#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include <benchmark/benchmark.h>

#include "tools/reporting.hpp"
#include <dlfcn.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

namespace {

using bench::Measured;
using bench::RecordingReporter;
using bench::fmt;
using bench::with_min;

constexpr std::size_t kBlock = 32;          // the plain malloc/free pair, as in bench/core.cpp
constexpr std::size_t kCaptureDepth = 16;
constexpr int kChainFrames = 24;            // frames between the benchmark and current_stack
constexpr int kColdChains = 16;
constexpr const char* kDefaults = "stacks=on unwinder=fast stack_depth=32";

// ---- the chain of frames --------------------------------------------------------------------------
#if defined(__GNUC__) && !defined(__clang__)
#define BENCH_CHAIN_NOFP __attribute__((noipa, optimize("omit-frame-pointer")))
#define BENCH_CHAIN_FP __attribute__((noipa, optimize("no-omit-frame-pointer")))
constexpr bool kChainFramePointersForced = true;
#else
#define BENCH_CHAIN_NOFP __attribute__((noinline))
#define BENCH_CHAIN_FP __attribute__((noinline))
constexpr bool kChainFramePointersForced = false;
#endif

// Each level: a constant of its own (no two instantiations fold into one), the call, then work
// on the result after the call (no tail call).
#define BENCH_DEFINE_CHAIN(NAME, ATTR)                                                                \
    template <int Tag, int N>                                                                        \
    ATTR std::size_t NAME(std::uintptr_t* out, std::size_t max, leakscope::Unwinder how) {           \
        asm volatile("" : : "i"(Tag * 1000 + N));                                                    \
        std::size_t n;                                                                               \
        if constexpr (N == 0)                                                                        \
            n = leakscope::current_stack(out, max, how);                                             \
        else                                                                                         \
            n = NAME<Tag, N - 1>(out, max, how);                                                     \
        asm volatile("" : "+r"(n));                                                                  \
        return n;                                                                                    \
    }
BENCH_DEFINE_CHAIN(chain_nofp, BENCH_CHAIN_NOFP)
BENCH_DEFINE_CHAIN(chain_fp, BENCH_CHAIN_FP)
#undef BENCH_DEFINE_CHAIN

using ChainFn = std::size_t (*)(std::uintptr_t*, std::size_t, leakscope::Unwinder);
constexpr ChainFn kNoFpChain = &chain_nofp<0, kChainFrames - 1>;
constexpr ChainFn kFpChain = &chain_fp<0, kChainFrames - 1>;
constexpr ChainFn kFirstChain = &chain_nofp<1, kChainFrames - 1>;   // the process's first capture

template <std::size_t... I>
constexpr std::array<ChainFn, sizeof...(I)> cold_chains(std::index_sequence<I...>) {
    return {&chain_nofp<int(I) + 2, kChainFrames - 1>...};
}
constexpr auto kCold = cold_chains(std::make_index_sequence<kColdChains>{});

// ---- 0. one plain malloc/free pair ----------------------------------------------------------------
void BM_plain_malloc_free(benchmark::State& state) {
    for (auto _ : state) {
        void* const p = std::malloc(kBlock);
        benchmark::DoNotOptimize(p);
        std::free(p);
    }
}

// ---- 1. one capture at depth 16 -------------------------------------------------------------------
// The chain's own calls and returns with nothing captured (current_stack returns at max == 0):
// included in every capture row; the table also shows each row net of it.
void BM_chain_alone(benchmark::State& state) {
    std::uintptr_t out[kCaptureDepth] = {};
    for (auto _ : state) {
        const std::size_t n = kNoFpChain(out, 0, leakscope::Unwinder::fast);
        benchmark::DoNotOptimize(n);
        benchmark::ClobberMemory();
    }
}

// ---- 1b. captures that no remembered walk answers: deferred -----------------------------------
// new/delete from 256 call sites in turn inside one scope: more sites than a thread remembers
// walks, so after each site's first two captures none is a remembered walk and every one is a
// deferred capture (a copy of the stack words, see defer_capture in leakscope.hpp), which its
// block's death drops unwalked. Against the same pairs with stacks=off.
template <int N>
__attribute__((noinline)) void site_pair() {
    int* p = new int(N);
    benchmark::DoNotOptimize(p);
    delete p;
}
using SiteFn = void (*)();
template <std::size_t... I>
constexpr std::array<SiteFn, sizeof...(I)> make_sites(std::index_sequence<I...>) {
    return {&site_pair<int(I)>...};
}
constexpr auto kSites = make_sites(std::make_index_sequence<256>{});

void BM_scope_pairs(benchmark::State& state, const char* options) {
    leakscope::configure(options);
    leakscope::LeakScope scope("pairs");
    std::size_t i = 0;
    for (auto _ : state) kSites[i++ % kSites.size()]();
    scope.dismiss();
}

void BM_capture(benchmark::State& state, ChainFn chain, leakscope::Unwinder how) {
    std::uintptr_t out[kCaptureDepth] = {}, ref[kCaptureDepth] = {};
    const std::size_t got = chain(out, kCaptureDepth, how);
    const std::size_t ref_n = chain(ref, kCaptureDepth, leakscope::Unwinder::libgcc);
    // Same chain, same call site: both arrays should be the same addresses.
    std::size_t agree = 0;
    while (agree < std::min(got, ref_n) && out[agree] == ref[agree]) ++agree;
    for (auto _ : state) {
        const std::size_t n = chain(out, kCaptureDepth, how);
        benchmark::DoNotOptimize(n);
        benchmark::ClobberMemory();
    }
    state.counters["frames"] = double(got);
    state.counters["agree"] = double(agree);
}

// ---- 2. the churn, on any allocator ---------------------------------------------------------------
// The churn's allocators: std::allocator's interface around a pair of raw functions (Raw::get,
// Raw::put), so that every row runs the same inline container code.
template <class T, class Raw>
struct RawAlloc {
    using value_type = T;
    RawAlloc() noexcept = default;
    template <class U>
    RawAlloc(const RawAlloc<U, Raw>&) noexcept {}
    T* allocate(std::size_t n) {
        if (n > std::size_t(-1) / sizeof(T)) throw std::bad_array_new_length();
        return static_cast<T*>(Raw::get(n * sizeof(T)));
    }
    void deallocate(T* p, std::size_t n) noexcept { Raw::put(p, n * sizeof(T)); }
    template <class U>
    bool operator==(const RawAlloc<U, Raw>&) const noexcept { return true; }
    template <class U>
    bool operator!=(const RawAlloc<U, Raw>&) const noexcept { return false; }
};

struct MallocRaw {
    static void* get(std::size_t bytes) {
        if (void* p = std::malloc(bytes)) return p;
        throw std::bad_alloc();
    }
    static void put(void* p, std::size_t) noexcept { std::free(p); }
};
template <class T>
using MallocAlloc = RawAlloc<T, MallocRaw>;

// libstdc++'s own operator new(size_t) and operator delete(void*): the next definitions after
// this program's (leakscope's) in symbol search order. Unsized delete: libstdc++'s sized one calls
// the unsized one through the PLT, which would land in leakscope's again.
using LibNew = void* (*)(std::size_t);
using LibDelete = void (*)(void*);
LibNew g_lib_new = nullptr;
LibDelete g_lib_delete = nullptr;
bool resolve_libstdcxx() {
    g_lib_new = reinterpret_cast<LibNew>(::dlsym(RTLD_NEXT, "_Znwm"));
    g_lib_delete = reinterpret_cast<LibDelete>(::dlsym(RTLD_NEXT, "_ZdlPv"));
    return g_lib_new && g_lib_delete;
}
struct LibstdcxxRaw {
    static void* get(std::size_t bytes) { return g_lib_new(bytes); }
    static void put(void* p, std::size_t) noexcept { g_lib_delete(p); }
};
template <class T>
using LibstdcxxAlloc = RawAlloc<T, LibstdcxxRaw>;

// leakscope's replaced operator new and sized delete, called as std::allocator calls them, but
// through a custom allocator: so the churn's strings run the same inline code as with the two
// allocators above. (With std::allocator, std::string runs its out-of-line instantiations in
// libstdc++.so instead: other code, whose cost is not leakscope's; row (f) shows it.)
struct HookedRaw {
    static void* get(std::size_t bytes) { return ::operator new(bytes); }
    static void put(void* p, std::size_t bytes) noexcept { ::operator delete(p, bytes); }
};
template <class T>
using HookedAlloc = RawAlloc<T, HookedRaw>;

// Counts the churn's allocations once, untimed (the per-allocation cost of stacks in the table).
std::size_t g_counted_allocations = 0;
struct CountingRaw {
    static void* get(std::size_t bytes) {
        ++g_counted_allocations;
        return MallocRaw::get(bytes);
    }
    static void put(void* p, std::size_t bytes) noexcept { MallocRaw::put(p, bytes); }
};
template <class T>
using CountingAlloc = RawAlloc<T, CountingRaw>;

template <template <class> class Alloc>
struct Churn {
    using String = std::basic_string<char, std::char_traits<char>, Alloc<char>>;
    struct Vehicle {
        double lat = 0, lon = 0;
        String id;
    };

    // What a request handler does: ~16 allocations of 16-100 bytes, all freed before returning.
    // Not inlined: one frame of its own, the same stack shape for every allocator.
    __attribute__((noinline)) static std::size_t once(int i) {
        char digits[16];
        const auto end = std::to_chars(digits, digits + sizeof digits, i).ptr;
        String name("vehicle-");
        name.append(digits, end);
        name.append("-with-a-name-longer-than-sso");
        std::vector<int, Alloc<int>> v;
        for (int k = 0; k < 16; ++k) v.push_back(k * i);
        std::map<int, String, std::less<int>, Alloc<std::pair<const int, String>>> m;
        for (int k = 0; k < 4; ++k) m.emplace(k, name);
        auto shared = std::allocate_shared<Vehicle>(Alloc<Vehicle>());
        shared->id = name;
        std::size_t sum = name.size() + m.size() + shared->id.size();
        for (int x : v) sum += std::size_t(x);
        return sum;
    }
};
#undef BENCH_CHAIN_NOFP
#undef BENCH_CHAIN_FP

struct Variant {
    const char* key;       // benchmark name
    const char* label;     // table row
    const char* options;   // applied by the family's Setup (all three keys, every time)
    int base;              // 1: MallocAlloc, 2: LibstdcxxAlloc, 0: HookedAlloc, 3: std::allocator
                           // (0 and 3: leakscope's new)
    bool scope;            // one LeakScope per thread around the timed loop
    bool stacks;           // a row the "<= 2.0x plain" target applies to
};
constexpr Variant kVariants[] = {
    {"BM_churn_plain", "(a) plain: MallocAlloc, no leakscope", kDefaults, 1, false, false},
    {"BM_churn_libstdcxx", "(a') without leakscope: libstdc++'s own new/delete", kDefaults, 2, false, false},
    {"BM_churn_hooked", "(b) hooked new, no scope", kDefaults, 0, false, false},
    {"BM_churn_scope_nostacks", "(c) in scope, stacks=off", "stacks=off unwinder=fast stack_depth=32", 0, true, false},
    {"BM_churn_scope_fast32", "(d) in scope, stacks=on fast, depth 32", "stacks=on unwinder=fast stack_depth=32", 0, true, true},
    {"BM_churn_scope_fast16", "(d) in scope, stacks=on fast, depth 16", "stacks=on unwinder=fast stack_depth=16", 0, true, true},
    {"BM_churn_scope_fp32", "(e) in scope, stacks=on fp, depth 32", "stacks=on unwinder=fp stack_depth=32", 0, true, true},
    {"BM_churn_std_scope_fast32", "(f) std::allocator (other string code), in scope, stacks=on fast, depth 32",
     "stacks=on unwinder=fast stack_depth=32", 3, true, false},
};
constexpr int kNumVariants = int(sizeof kVariants / sizeof kVariants[0]);

template <int V>
void setup_variant(const benchmark::State&) { leakscope::configure(kVariants[V].options); }
void restore_defaults(const benchmark::State&) { leakscope::configure(kDefaults); }

template <int V>
void BM_churn(benchmark::State& state) {
    constexpr Variant v = kVariants[V];
    {
        std::uintptr_t frames[256];
        state.counters["stack_frames"] = benchmark::Counter(
            double(leakscope::current_stack(frames, 256, leakscope::Unwinder::libgcc)), benchmark::Counter::kAvgThreads);
    }
    int i = 0;
    if constexpr (v.base == 1) {
        for (auto _ : state) benchmark::DoNotOptimize(Churn<MallocAlloc>::once(i++));
    } else if constexpr (v.base == 2) {
        if (!g_lib_new) {
            state.SkipWithError("libstdc++'s operator new not found with dlsym(RTLD_NEXT)");
            return;
        }
        for (auto _ : state) benchmark::DoNotOptimize(Churn<LibstdcxxAlloc>::once(i++));
    } else if constexpr (!v.scope) {
        for (auto _ : state) benchmark::DoNotOptimize(Churn<HookedAlloc>::once(i++));
    } else if constexpr (v.base == 0) {
        leakscope::LeakScope scope("churn");
        for (auto _ : state) benchmark::DoNotOptimize(Churn<HookedAlloc>::once(i++));
        scope.dismiss();
    } else {
        leakscope::LeakScope scope("churn");
        for (auto _ : state) benchmark::DoNotOptimize(Churn<std::allocator>::once(i++));
        scope.dismiss();
    }
}

// ---- registration ---------------------------------------------------------------------------------
struct CaptureRow {
    const char* key;
    const char* label;
    ChainFn chain;
    leakscope::Unwinder how;
    bool target;   // the "<= 250 ns" target applies
};
#if defined(__GNUC__) && !defined(__clang__)
#define BENCH_NOFP_LABEL "chain without frame pointers"
#define BENCH_FP_LABEL "chain with frame pointers"
#else
#define BENCH_NOFP_LABEL "chain A (frame pointers as the command line says)"
#define BENCH_FP_LABEL "chain B (frame pointers as the command line says)"
#endif
const CaptureRow kCaptureRows[] = {
    {"BM_capture/fast/chain_without_fp", "capture depth 16, fast (warm cache), " BENCH_NOFP_LABEL,
     kNoFpChain, leakscope::Unwinder::fast, true},
    {"BM_capture/fast/chain_with_fp", "capture depth 16, fast (warm cache), " BENCH_FP_LABEL, kFpChain,
     leakscope::Unwinder::fast, false},
    {"BM_capture/fp/chain_with_fp", "capture depth 16, fp, " BENCH_FP_LABEL, kFpChain,
     leakscope::Unwinder::fp, false},
    {"BM_capture/fp/chain_without_fp", "capture depth 16, fp, " BENCH_NOFP_LABEL, kNoFpChain,
     leakscope::Unwinder::fp, false},
    {"BM_capture/libgcc/chain_without_fp", "capture depth 16, libgcc, " BENCH_NOFP_LABEL, kNoFpChain,
     leakscope::Unwinder::libgcc, false},
};

template <std::size_t... I>
void register_churn(std::index_sequence<I...>) {
    (with_min(benchmark::RegisterBenchmark(kVariants[I].key, BM_churn<int(I)>)
                  ->Threads(1)->Threads(2)->Setup(setup_variant<int(I)>)->Teardown(restore_defaults)),
     ...);
}

void register_benchmarks() {
    with_min(benchmark::RegisterBenchmark("BM_plain_malloc_free", BM_plain_malloc_free));
    with_min(benchmark::RegisterBenchmark("BM_chain_alone", BM_chain_alone));
    for (const CaptureRow& r : kCaptureRows)
        with_min(benchmark::RegisterBenchmark(r.key, BM_capture, r.chain, r.how)
                     ->Setup(restore_defaults)->Teardown(restore_defaults));
    with_min(benchmark::RegisterBenchmark("BM_scope_pairs_stacks_off", BM_scope_pairs, "stacks=off")
                 ->Teardown(restore_defaults));
    with_min(benchmark::RegisterBenchmark("BM_scope_pairs_deferred", BM_scope_pairs, kDefaults)->Teardown(restore_defaults));
    register_churn(std::make_index_sequence<kNumVariants>{});
}

// ---- one-off cold captures (before any benchmark) -------------------------------------------------
struct ColdCaptures {
    double first_ns = 0;                 // the process's first fast capture
    std::size_t first_frames = 0;
    double min_ns = 0, median_ns = 0;    // first capture through 16 never-seen return addresses
};

double time_one(ChainFn chain, std::uintptr_t* out, std::size_t* frames) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::size_t n = chain(out, kCaptureDepth, leakscope::Unwinder::fast);
    const auto t1 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(n);
    if (frames) *frames = n;
    return std::chrono::duration<double, std::nano>(t1 - t0).count();
}

ColdCaptures measure_cold() {
    ColdCaptures c;
    std::uintptr_t out[kCaptureDepth];
    kFirstChain(out, 0, leakscope::Unwinder::fast);   // pages the chain's code in, walks nothing
    c.first_ns = time_one(kFirstChain, out, &c.first_frames);
    std::array<double, kColdChains> ns{};
    for (int k = 0; k < kColdChains; ++k) {
        kCold[std::size_t(k)](out, 0, leakscope::Unwinder::fast);
        ns[std::size_t(k)] = time_one(kCold[std::size_t(k)], out, nullptr);
    }
    std::sort(ns.begin(), ns.end());
    c.min_ns = ns.front();
    c.median_ns = (ns[kColdChains / 2 - 1] + ns[kColdChains / 2]) / 2;
    return c;
}

// ---- the run's numbers ----------------------------------------------------------------------------
double counter(const Measured* m, const char* name) {
    if (!m) return 0;
    auto it = m->counters.find(name);
    return it == m->counters.end() ? 0 : it->second;
}

void print_table(const RecordingReporter& rep, const ColdCaptures& cold, std::size_t allocations) {
    const Measured* plain_pair = rep.find("BM_plain_malloc_free");
    const double pair_ns = plain_pair ? plain_pair->cpu_ns : 0;
    auto ratio = [](const Measured* m, double ns, double base) {
        return (m && base > 0) ? fmt("%.2fx", ns / base) : std::string("n/a");
    };
    auto verdict = [](bool have, double value, double limit, const char* what) {
        if (!have) return std::string(what) + ": n/a";
        return std::string(what) + (value <= limit ? ": met" : ": **missed**");
    };

    std::printf("\n| measure | ns | ratio | target |\n|---|---:|---:|---|\n");
    std::printf("| plain malloc/free pair (%zu B), 1 thread | %s | 1.00x | |\n", kBlock,
                plain_pair ? fmt("%.1f", pair_ns).c_str() : "n/a");
    const Measured* alone = rep.find("BM_chain_alone");
    const double alone_ns = alone ? alone->cpu_ns : 0;
    std::printf("| the chain alone: %d calls, current_stack(max=0) (inside every capture row) | %s | %s | |\n",
                kChainFrames, alone ? fmt("%.1f", alone_ns).c_str() : "n/a", ratio(alone, alone_ns, pair_ns).c_str());
    for (const CaptureRow& r : kCaptureRows) {
        const Measured* m = rep.find(r.key);
        const double ns = m ? m->cpu_ns : 0;
        std::string label = std::string(r.label) + " (" + fmt("%.0f", counter(m, "frames")) + " frames, " +
                            fmt("%.0f", counter(m, "agree")) + " as libgcc)";
        std::printf("| %s | %s | %s | %s |\n", label.c_str(), m ? fmt("%.1f", ns).c_str() : "n/a",
                    ratio(m, ns, pair_ns).c_str(), r.target ? verdict(m != nullptr, ns, 250, "<= 250 ns").c_str() : "");
        if (m && alone)
            std::printf("| ... the same net of the chain alone | %.1f | %s | %s |\n", ns - alone_ns,
                        ratio(m, ns - alone_ns, pair_ns).c_str(),
                        r.target ? verdict(true, ns - alone_ns, 250, "<= 250 ns").c_str() : "");
    }
    const Measured* pairs_off = rep.find("BM_scope_pairs_stacks_off");
    const Measured* pairs_deferred = rep.find("BM_scope_pairs_deferred");
    const double off_ns = pairs_off ? pairs_off->cpu_ns : 0, deferred_ns = pairs_deferred ? pairs_deferred->cpu_ns : 0;
    std::printf("| new/delete in a scope, 256 call sites in turn, stacks=off | %s | %s | |\n",
                pairs_off ? fmt("%.1f", off_ns).c_str() : "n/a", ratio(pairs_off, off_ns, pair_ns).c_str());
    std::printf("| ... stacks=on: every capture deferred (a stack copy, dropped at the death) | %s | %s | %s |\n",
                pairs_deferred ? fmt("%.1f", deferred_ns).c_str() : "n/a", ratio(pairs_deferred, deferred_ns, pair_ns).c_str(),
                pairs_off && pairs_deferred ? fmt("+%.1f ns over stacks=off", deferred_ns - off_ns).c_str() : "");
    std::printf("| fast, first capture of the process (one-time set-up included; %zu frames), one-off | %.1f | %s | |\n",
                cold.first_frames, cold.first_ns, pair_ns > 0 ? fmt("%.2fx", cold.first_ns / pair_ns).c_str() : "n/a");
    std::printf("| fast, first capture through 16 new return addresses (cold cache), min of %d chains, one-off | %.1f | %s | |\n",
                kColdChains, cold.min_ns, pair_ns > 0 ? fmt("%.2fx", cold.min_ns / pair_ns).c_str() : "n/a");
    std::printf("| fast, first capture through 16 new return addresses (cold cache), median of %d chains, one-off | %.1f | %s | |\n",
                kColdChains, cold.median_ns, pair_ns > 0 ? fmt("%.2fx", cold.median_ns / pair_ns).c_str() : "n/a");

    for (int threads : {1, 2}) {
        const std::string suffix = "/threads:" + std::to_string(threads);
        const std::string t = std::to_string(threads) + (threads == 1 ? " thread" : " threads");
        const Measured* plain = rep.find(std::string(kVariants[0].key) + suffix);
        const Measured* without = rep.find(std::string(kVariants[1].key) + suffix);
        const double plain_ns = plain ? plain->cpu_ns : 0, base_ns = without ? without->cpu_ns : 0;
        for (const Variant& v : kVariants) {
            const Measured* m = rep.find(v.key + suffix);
            const double ns = m ? m->cpu_ns : 0;
            std::printf("| churn %s, %s | %s | %s / %s | %s |\n", v.label, t.c_str(), m ? fmt("%.1f", ns).c_str() : "n/a",
                        ratio(m, ns, plain_ns).c_str(), ratio(m, ns, base_ns).c_str(),
                        v.stacks ? verdict(m && base_ns > 0, base_ns > 0 ? ns / base_ns : 0, 2.0, "<= 2.0x without leakscope").c_str() : "");
        }
    }

    // Per allocation: what stacks add to the same scope without them.
    for (int threads : {1, 2}) {
        const std::string suffix = "/threads:" + std::to_string(threads);
        const Measured* off = rep.find(std::string(kVariants[3].key) + suffix);
        bool first = true;
        for (int k = 4; k < kNumVariants; ++k) {
            const Measured* on = rep.find(kVariants[k].key + suffix);
            if (!kVariants[k].stacks || !off || !on || allocations == 0) continue;   // (f): other code
            std::printf("%s %s, %d thread%s: +%.1f ns per allocation over stacks=off (%zu allocations per churn iteration)\n",
                        first ? "\nstacks cost:" : "            ", kVariants[k].label + 4, threads, threads == 1 ? "" : "s",
                        (on->cpu_ns - off->cpu_ns) / double(allocations), allocations);
            first = false;
        }
    }

    double depth[2] = {-1, -1};
    for (int threads : {1, 2})
        for (const Variant& v : kVariants)
            if (const Measured* m = rep.find(v.key + ("/threads:" + std::to_string(threads)))) {
                depth[threads - 1] = counter(m, "stack_frames");
                break;
            }
    std::printf("\nns: CPU time per capture, per malloc/free pair, or per churn iteration (2 threads: both "
                "threads' CPU time / all iterations). Capture ratios are to the plain malloc/free pair; churn "
                "ratios to (a) / to (a') with the same thread count (the target: to (a'), the same code in a "
                "program without leakscope). Minimum over the repetitions.\n");
    std::printf("Chain of %d frames; %s. Stack depth at the churn benchmark function: %s frames (1 thread), %s (2 threads); an allocation is 2-4 deeper.\n",
                kChainFrames,
                kChainFramePointersForced ? "frame pointers set per function (GCC optimize attribute)"
                                          : "frame pointers as the command line says (no per-function switch in this compiler)",
                depth[0] < 0 ? "n/a" : fmt("%.0f", depth[0]).c_str(), depth[1] < 0 ? "n/a" : fmt("%.0f", depth[1]).c_str());
}

bool arg_given(int argc, char** argv, const char* prefix, const char* env) {
    if (std::getenv(env)) return true;
    const std::size_t len = std::strlen(prefix);
    for (int i = 1; i < argc; ++i)
        if (std::strncmp(argv[i], prefix, len) == 0) return true;
    return false;
}

}  // namespace

int main(int argc, char** argv) {
    // The default repetitions: argv plus one entry (argv[argc] stays the terminating null).
    std::vector<char*> args(argv, argv + argc);
    char repetitions[] = "--benchmark_repetitions=5";
    if (!arg_given(argc, argv, "--benchmark_repetitions", "BENCHMARK_REPETITIONS")) args.push_back(repetitions);
    int args_n = int(args.size());
    args.push_back(nullptr);

    leakscope::configure(kDefaults);
    if (!resolve_libstdcxx()) std::fprintf(stderr, "bench_stacks: libstdc++'s operator new/delete not found: no (a') row\n");
    const ColdCaptures cold = measure_cold();
    register_benchmarks();
    benchmark::Initialize(&args_n, args.data());
    if (benchmark::ReportUnrecognizedArguments(args_n, args.data())) return 1;
    RecordingReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    benchmark::Shutdown();
    leakscope::configure(kDefaults);
    if (reporter.empty()) return 0;   // --benchmark_list_tests, or a filter that matched nothing
    benchmark::DoNotOptimize(Churn<CountingAlloc>::once(7));
    print_table(reporter, cold, g_counted_allocations);
    return 0;
}
