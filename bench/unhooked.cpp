// The floor under the hook, in a program without leakscope: a 32-byte pair through plain
// malloc/free, through the C++ runtime's own operator new/delete (this binary replaces neither),
// and through the floor model of exact tracking (bench/tools/floor_model.hpp) with nothing and
// with every block tracked. Each ratio is to the same run's plain malloc/free.
//
// What it answers: the cost of any operator new/delete at all, before leakscope adds anything
// (bench_core's idle hook is compared with it), and the least that exact tracking adds.
//
//   bench_unhooked                              full run (a few seconds)
//   bench_unhooked --benchmark_min_time=0.01    smoke test (what ctest runs)
//
// Pointers go through the const overload of DoNotOptimize (see bench/core.cpp).

#include <benchmark/benchmark.h>

#include "tools/floor_bench.hpp"
#include "tools/reporting.hpp"

#include <cstdio>
#include <cstdlib>

namespace {

constexpr std::size_t kBlock = 32;

void BM_plain_malloc_free(benchmark::State& state) {
    for (auto _ : state) {
        void* const p = std::malloc(kBlock);
        benchmark::DoNotOptimize(p);
        std::free(p);
    }
}
void BM_runtime_new_delete(benchmark::State& state) {
    for (auto _ : state) {
        char* const p = new char[kBlock];
        benchmark::DoNotOptimize(p);
        delete[] p;
    }
}

}  // namespace

int main(int argc, char** argv) {
    bench::with_min(benchmark::RegisterBenchmark("BM_plain_malloc_free", BM_plain_malloc_free));
    bench::with_min(benchmark::RegisterBenchmark("BM_runtime_new_delete", BM_runtime_new_delete));
    bench::with_min(benchmark::RegisterBenchmark("BM_floor_model", bench::BM_floor_model)->Arg(0)->Arg(1));
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    bench::RecordingReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    benchmark::Shutdown();
    const bench::Measured* plain = reporter.find("BM_plain_malloc_free");
    if (!plain || plain->cpu_ns <= 0) return 0;   // filtered out, or --benchmark_list_tests
    std::printf("\n| pair (32 B, 1 thread, no leakscope) | ns | ratio to plain malloc/free |\n|---|---:|---:|\n");
    const struct { const char* label; const char* name; } rows[] = {
        {"plain malloc/free", "BM_plain_malloc_free"},
        {"the C++ runtime's own new/delete", "BM_runtime_new_delete"},
        {"floor model, nothing tracked", "BM_floor_model/0"},
        {"floor model, every block tracked exactly, no stacks", "BM_floor_model/1"},
    };
    for (const auto& row : rows) {
        const bench::Measured* m = reporter.find(row.name);
        if (m) std::printf("| %s | %.1f | %.2fx |\n", row.label, m->cpu_ns, m->cpu_ns / plain->cpu_ns);
        else std::printf("| %s | n/a | n/a |\n", row.label);
    }
    return 0;
}
