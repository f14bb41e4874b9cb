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

#include "tools/floor_model.hpp"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

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
void BM_floor_model(benchmark::State& state) {
    floor_model::state.tracking = state.range(0) != 0;
    for (auto _ : state) {
        void* const p = floor_model::allocate(kBlock);
        benchmark::DoNotOptimize(p);
        floor_model::deallocate(p);
    }
    floor_model::state.tracking = false;
}

// Keeps each row's minimum CPU time over repetitions (a noisy neighbour only ever adds time).
class MinimumReporter : public benchmark::ConsoleReporter {
   public:
    void ReportRuns(const std::vector<Run>& runs) override {
        for (const Run& run : runs) {
            if (run.error_occurred || run.run_type == Run::RT_Aggregate) continue;
            double ns = run.GetAdjustedCPUTime() * 1e9 / benchmark::GetTimeUnitMultiplier(run.time_unit);
            std::string name = run.run_name.str();
            auto it = minimum_.find(name);
            if (it == minimum_.end() || ns < it->second) minimum_[name] = ns;
        }
        ConsoleReporter::ReportRuns(runs);
    }
    double find(const std::string& name) const {
        auto it = minimum_.find(name);
        return it == minimum_.end() ? 0 : it->second;
    }

   private:
    std::map<std::string, double> minimum_;
};

}  // namespace

int main(int argc, char** argv) {
    benchmark::RegisterBenchmark("BM_plain_malloc_free", BM_plain_malloc_free);
    benchmark::RegisterBenchmark("BM_runtime_new_delete", BM_runtime_new_delete);
    benchmark::RegisterBenchmark("BM_floor_model", BM_floor_model)->Arg(0)->Arg(1);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    MinimumReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    benchmark::Shutdown();
    double plain = reporter.find("BM_plain_malloc_free");
    if (plain <= 0) return 0;   // filtered out, or --benchmark_list_tests
    std::printf("\n| pair (32 B, 1 thread, no leakscope) | ns | ratio to plain malloc/free |\n|---|---:|---:|\n");
    const struct { const char* label; const char* name; } rows[] = {
        {"plain malloc/free", "BM_plain_malloc_free"},
        {"the C++ runtime's own new/delete", "BM_runtime_new_delete"},
        {"floor model, nothing tracked", "BM_floor_model/0"},
        {"floor model, every block tracked exactly, no stacks", "BM_floor_model/1"},
    };
    for (const auto& row : rows) {
        double ns = reporter.find(row.name);
        if (ns > 0) std::printf("| %s | %.1f | %.2fx |\n", row.label, ns, ns / plain);
        else std::printf("| %s | n/a | n/a |\n", row.label);
    }
    return 0;
}
