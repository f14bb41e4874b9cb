// Symbolization and report building at report time.
//
//   BM_symbolize_cold     every pass starts from nothing: map the module's file, index its ELF
//                         symbols, DWARF units, functions and inlined calls, line tables, then
//                         answer each address (the first report of a process)
//   BM_symbolize_warm     indexes built, answers not cached: the work per new address
//   BM_symbolize_cached   every answer cached (a report of stacks seen before)
//   BM_report_100k_warm   scope.leftovers() over 100,000 leftovers: enumerate, group by stack,
//                         symbolize (cached), trim, infer types
//   BM_report_100k_cold   the same, the symbolizer emptied before each (first report)
//
// The addresses: by default, 64 functions of this executable (small DWARF). For the target figure
// (a binary with 50 MB of DWARF), generate the library once and name it:
//   python3 bench/tools/gen_dwarf_lib.py /tmp/bigdwarf            # about a minute on 2 cores
//   LEAKSCOPE_BENCH_DWARF_LIB=/tmp/bigdwarf/libbigdwarf.so bench_symbolize
// Its 184 functions give 8 addresses each (1472). items_per_second = addresses per second. The
// 100k reports then take their leftovers from the library's functions too (real -O2 stacks
// through inlined std::map/vector/string code: about 740 sites).
// Targets: the 100k report of a 50 MB-DWARF binary in <= 2 s cold, <= 200 ms warm.
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include <benchmark/benchmark.h>
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

template <int N>
__attribute__((noinline)) void* leaker(std::size_t n) {
    void* p = ::operator new(n + N % 3);
    asm volatile("" : : "r"(p) : "memory");
    return p;
}
template <int... N>
struct Sites {
    static void* (*const table[sizeof...(N)])(std::size_t);
};
template <int... N>
void* (*const Sites<N...>::table[sizeof...(N)])(std::size_t) = {&leaker<N>...};
using Leakers = Sites<0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,
                      27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51,
                      52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63>;
constexpr int kSites = 64;

// The addresses to symbolize: inside the generated library's functions, or inside ours.
const std::vector<std::uintptr_t>& addresses() {
    static std::vector<std::uintptr_t> list = [] {
        std::vector<std::uintptr_t> out;
        static const int offsets[] = {8, 40, 100, 200, 300, 400, 600, 800};
        if (const char* path = std::getenv("LEAKSCOPE_BENCH_DWARF_LIB")) {
            void* lib = ::dlopen(path, RTLD_NOW | RTLD_LOCAL);
            if (!lib) {
                std::fprintf(stderr, "bench_symbolize: %s\n", ::dlerror());
                std::exit(1);
            }
            auto count = reinterpret_cast<std::size_t (*)()>(::dlsym(lib, "bench_function_count"));
            auto function = reinterpret_cast<const void* (*)(std::size_t)>(::dlsym(lib, "bench_function"));
            if (!count || !function) std::exit(1);
            for (std::size_t i = 0; i < count(); ++i)
                for (int off : offsets) out.push_back(reinterpret_cast<std::uintptr_t>(function(i)) + std::uintptr_t(off));
            std::fprintf(stderr, "bench_symbolize: %zu addresses in %s\n", out.size(), path);
        } else {
            for (int i = 0; i < kSites; ++i)
                for (int off : {4, 12}) out.push_back(reinterpret_cast<std::uintptr_t>(Leakers::table[i]) + std::uintptr_t(off));
        }
        return out;
    }();
    return list;
}

void symbolize_all(benchmark::State& state) {
    std::size_t frames = 0;
    for (std::uintptr_t a : addresses()) frames += leakscope::symbolize(a).size();
    benchmark::DoNotOptimize(frames);
    (void)state;
}

void BM_symbolize_cold(benchmark::State& state) {
    for (auto _ : state) {
        state.PauseTiming();
        leakscope::detail::symbolizer_reset(false);
        state.ResumeTiming();
        symbolize_all(state);
    }
    state.SetItemsProcessed(std::int64_t(state.iterations()) * std::int64_t(addresses().size()));
}
BENCHMARK(BM_symbolize_cold)->Unit(benchmark::kMillisecond);

void BM_symbolize_warm(benchmark::State& state) {
    symbolize_all(state);   // indexes built
    for (auto _ : state) {
        state.PauseTiming();
        leakscope::detail::symbolizer_reset(true);
        state.ResumeTiming();
        symbolize_all(state);
    }
    state.SetItemsProcessed(std::int64_t(state.iterations()) * std::int64_t(addresses().size()));
}
BENCHMARK(BM_symbolize_warm)->Unit(benchmark::kMillisecond);

void BM_symbolize_cached(benchmark::State& state) {
    symbolize_all(state);
    for (auto _ : state) symbolize_all(state);
    state.SetItemsProcessed(std::int64_t(state.iterations()) * std::int64_t(addresses().size()));
}
BENCHMARK(BM_symbolize_cached)->Unit(benchmark::kMicrosecond);

// The generated library's functions (null without LEAKSCOPE_BENCH_DWARF_LIB): each call of
// f(1) leaves 4 blocks behind (a vector, its buffer, a string's and a vector<int>'s), allocated
// from deep inlined std::map/vector/string code of a 50 MB-DWARF object.
std::vector<void* (*)(int)> library_leakers() {
    std::vector<void* (*)(int)> out;
    if (const char* path = std::getenv("LEAKSCOPE_BENCH_DWARF_LIB")) {
        void* lib = ::dlopen(path, RTLD_NOW | RTLD_LOCAL);
        auto count = lib ? reinterpret_cast<std::size_t (*)()>(::dlsym(lib, "bench_function_count")) : nullptr;
        auto function = lib ? reinterpret_cast<const void* (*)(std::size_t)>(::dlsym(lib, "bench_function")) : nullptr;
        if (!count || !function) std::exit(1);
        for (std::size_t i = 0; i < count(); ++i) out.push_back(reinterpret_cast<void* (*)(int)>(const_cast<void*>(function(i))));
    }
    return out;
}

// 100,000 leftovers in one open scope; the report is built repeatedly. From 64 stacks of this
// executable, or (LEAKSCOPE_BENCH_DWARF_LIB) from the generated library's functions: 25,000
// calls, 4 leftovers each, about 740 stacks — the target case. The library's blocks stay
// allocated (the benchmark's process ends soon after).
void report_100k(benchmark::State& state, bool cold) {
    constexpr std::size_t kBlocks = 100000;
    static const std::vector<void* (*)(int)> from_library = library_leakers();
    std::vector<void*> blocks;
    blocks.reserve(kBlocks);
    std::size_t sites = 0, total = 0;
    {
        leakscope::LeakScope scope("bench 100k");
        if (from_library.empty()) {
            for (std::size_t i = 0; i < kBlocks; ++i) blocks.push_back(Leakers::table[i % kSites](16));
        } else {
            for (std::size_t i = 0; i < kBlocks / 4; ++i) benchmark::DoNotOptimize(from_library[i % from_library.size()](1));
        }
        for (auto _ : state) {
            if (cold) {
                state.PauseTiming();
                leakscope::detail::symbolizer_reset(false);
                state.ResumeTiming();
            }
            leakscope::Report r = scope.leftovers();
            sites = r.sites.size();
            total = r.blocks;
            benchmark::DoNotOptimize(r.sites.data());
        }
        for (void* p : blocks) ::operator delete(p);
        scope.dismiss();
    }
    state.counters["sites"] = double(sites);
    state.counters["leftovers"] = double(total);
    state.SetItemsProcessed(std::int64_t(state.iterations()) * std::int64_t(kBlocks));
}
void BM_report_100k_warm(benchmark::State& state) { report_100k(state, false); }
void BM_report_100k_cold(benchmark::State& state) { report_100k(state, true); }
BENCHMARK(BM_report_100k_warm)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_report_100k_cold)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
