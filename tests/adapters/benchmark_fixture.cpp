// A Google Benchmark program measured by leakscope's MemoryManager; check.sh reads its JSON.
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope/benchmark.hpp>

#include <cstdint>

#include "kept.hpp"

// Two allocations per iteration, both freed: net growth 0.
static void churn(benchmark::State& state) {
    for (auto _ : state) {
        auto* block = new int[8];
        benchmark::DoNotOptimize(block);
        delete[] block;
        auto* one = new long(1);
        benchmark::DoNotOptimize(one);
        delete one;
    }
}
BENCHMARK(churn)->Iterations(10);

// One 8-byte block per iteration that stays live: net growth 8 bytes per iteration.
static void grows(benchmark::State& state) {
    for (auto _ : state) benchmark::DoNotOptimize(fixture::keep(new std::int64_t(1)));
}
BENCHMARK(grows)->Iterations(10);

// 64 KiB held at once, then freed: the peak is seen, net growth 0.
static void peak(benchmark::State& state) {
    for (auto _ : state) {
        auto* big = new char[1 << 20];
        benchmark::DoNotOptimize(big);
        delete[] big;
    }
}
BENCHMARK(peak)->Iterations(4);

BENCHMARK_MAIN();
