// Cost of leakscope's whole-heap views (issue 7): tracking every block (track=all) and sampling
// (sample_bytes=), per 32-byte new/delete pair and per realistic churn iteration; a heap snapshot
// of 1,000,000 live blocks; one monitor interval on that heap.
//
//  1. Per pair (1 thread), each ratio to the same run's baselines:
//       plain malloc/free                      (not hooked)
//       new/delete, nothing tracked            (the hook idle: the closest to a program without
//                                               leakscope this binary has; runs before anything is
//                                               ever tracked, as in bench/core.cpp)
//       track=all stacks=off                   every block carries a header, no stack
//       track=all stacks=on                    and its allocating stack (unwinder=fast)
//       track=all sample_bytes=524288          one block per 512 KiB on average carries a header
//                                               and a stack (stacks=on)
//     Targets: track=all without stacks <= 1.5x, sampled <= 1.05x, both against plain new/delete.
//  2. The same for a churn iteration (strings, vector, map, make_shared: 16 allocations, as
//     churn_once in bench/core.cpp), each ratio to the churn with nothing tracked.
//  3. Snapshot::take() of a heap of 1,000,000 live 32-byte blocks (track=all, stacks=on, all from
//     one line): time per snapshot and per block.
//  4. A monitor interval on that heap: what Monitor's thread does each interval — one
//     Snapshot::take() and its diff against a baseline of the 1,000,000 blocks (operator-: the
//     sites of the blocks born since and still live, the minus side by site). Between intervals
//     (not timed) 1,000 blocks die and 1,000 are born, so each diff has 1,000 on each side.
//
// Every family's Setup applies its options explicitly and its Teardown restores
// sample_bytes=0 track=scopes stacks=on, so no row inherits another's configuration. When
// sample_bytes= does not sample (heap() says its counts are not estimates), the sampled rows are
// skipped with an error saying so: they would only measure track=all again.
//
// After the Google Benchmark output a Markdown table gives each row's minimum over the
// repetitions (a noisy neighbour only ever adds time) and its ratios.
//
//   bench_heap                                full run (about a minute on 2 cores)
//   bench_heap --benchmark_min_time=0.01      smoke test (what ctest runs)
//
// Pointers go through the const overload of DoNotOptimize (see bench/core.cpp).

#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include <benchmark/benchmark.h>

#include "tools/reporting.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

using bench::Measured;
using bench::RecordingReporter;
using bench::fmt;
using bench::with_min;

constexpr std::size_t kBlock = 32;
constexpr std::size_t kHeapBlocks = 1000000;
constexpr std::size_t kTurnover = 1000;   // blocks born and dead between two monitor intervals
constexpr const char* kDefaults = "sample_bytes=0 track=scopes stacks=on";
constexpr const char* kSampled = "track=all stacks=on sample_bytes=524288";

// ---- configurations -------------------------------------------------------------------------------
bool g_sampling = false;   // sample_bytes= took effect (checked in the sampled rows' Setup)

// With sampling on, 4 MiB of fresh 32-byte blocks hold about 8 samples, and a report of the live
// heap says it was sampled (its counts are estimates); with every block tracked it does not.
bool sampling_works() {
    std::vector<char*> blocks;
    blocks.reserve(131072);
    for (int i = 0; i < 131072; ++i) blocks.push_back(new char[kBlock]);
    const bool sampled = leakscope::heap().sample_bytes == 524288;
    for (char* p : blocks) delete[] p;
    return sampled;
}

void setup_stacks_off(const benchmark::State&) { leakscope::configure("track=all stacks=off"); }
void setup_stacks_on(const benchmark::State&) { leakscope::configure("track=all stacks=on"); }
void setup_sampled(const benchmark::State&) {
    leakscope::configure(kSampled);
    g_sampling = sampling_works();
}
void restore_defaults(const benchmark::State&) { leakscope::configure(kDefaults); }
bool skip_unless_sampling(benchmark::State& state) {
    if (g_sampling) return false;
    state.SkipWithError("sample_bytes= is not available (or did not sample): nothing to measure");
    return true;
}

// ---- 1. one 32-byte pair --------------------------------------------------------------------------
void BM_plain_malloc_free(benchmark::State& state) {
    for (auto _ : state) {
        void* const p = std::malloc(kBlock);
        benchmark::DoNotOptimize(p);
        std::free(p);
    }
}
void new_delete_pairs(benchmark::State& state) {
    for (auto _ : state) {
        char* const p = new char[kBlock];
        benchmark::DoNotOptimize(p);
        delete[] p;
    }
}
void BM_new_delete_untracked(benchmark::State& state) { new_delete_pairs(state); }
void BM_new_delete_track_all_stacks_off(benchmark::State& state) { new_delete_pairs(state); }
void BM_new_delete_track_all_stacks_on(benchmark::State& state) { new_delete_pairs(state); }
void BM_new_delete_sampled(benchmark::State& state) {
    if (!skip_unless_sampling(state)) new_delete_pairs(state);
}

// ---- 2. churn --------------------------------------------------------------------------------------
struct Vehicle {
    double lat = 0, lon = 0;
    std::string id;
};
std::size_t churn_once(int i) {
    std::string name = "vehicle-" + std::to_string(i) + "-with-a-name-longer-than-sso";
    std::vector<int> v;
    for (int k = 0; k < 16; ++k) v.push_back(k * i);
    std::map<int, std::string> m;
    for (int k = 0; k < 4; ++k) m.emplace(k, name);
    auto shared = std::make_shared<Vehicle>();
    shared->id = name;
    std::size_t sum = name.size() + m.size() + shared->id.size();
    for (int x : v) sum += std::size_t(x);
    return sum;
}
void churn(benchmark::State& state) {
    int i = 0;
    for (auto _ : state) benchmark::DoNotOptimize(churn_once(i++));
}
void BM_churn_untracked(benchmark::State& state) { churn(state); }
void BM_churn_track_all_stacks_off(benchmark::State& state) { churn(state); }
void BM_churn_track_all_stacks_on(benchmark::State& state) { churn(state); }
void BM_churn_sampled(benchmark::State& state) {
    if (!skip_unless_sampling(state)) churn(state);
}

// ---- 3./4. a heap of 1,000,000 blocks ---------------------------------------------------------------
std::vector<char*> g_heap;   // the live blocks
void setup_big_heap(const benchmark::State&) {
    leakscope::configure("track=all stacks=on");
    if (!g_heap.empty()) return;
    g_heap.reserve(kHeapBlocks);
    for (std::size_t i = 0; i < kHeapBlocks; ++i) {
        char* const p = new char[kBlock];
        benchmark::DoNotOptimize(p);
        g_heap.push_back(p);
    }
}
void free_big_heap() {
    for (char* p : g_heap) delete[] p;
    g_heap.clear();
    g_heap.shrink_to_fit();
}

void BM_snapshot_1M(benchmark::State& state) {
    std::size_t blocks = 0;
    for (auto _ : state) {
        leakscope::Snapshot s = leakscope::Snapshot::take();
        blocks = s.blocks();
        benchmark::DoNotOptimize(blocks);
    }
    state.counters["blocks"] = double(blocks);
}

// One interval: the snapshot and the diff are timed; the turnover between intervals is not. The
// first 1,000 blocks of the baseline die once, before the first interval; then each interval's
// 1,000 new blocks replace the previous interval's. So every diff has 1,000 on each side.
void BM_monitor_interval_1M(benchmark::State& state) {
    std::vector<char*> recent(kTurnover, nullptr);
    const leakscope::Snapshot baseline = leakscope::Snapshot::take();
    for (std::size_t k = 0; k < kTurnover; ++k) delete[] g_heap[k];
    std::size_t born = 0, gone = 0;
    for (auto _ : state) {
        for (char*& p : recent) {
            delete[] p;
            p = new char[kBlock];
            benchmark::DoNotOptimize(p);
        }
        const auto t0 = std::chrono::steady_clock::now();
        const leakscope::Report diff = leakscope::Snapshot::take() - baseline;
        const auto t1 = std::chrono::steady_clock::now();
        state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
        born = diff.blocks;
        gone = diff.released_blocks;
        benchmark::DoNotOptimize(born);
    }
    for (char* p : recent) delete[] p;
    for (std::size_t k = 0; k < kTurnover; ++k) g_heap[k] = new char[kBlock];   // the heap is whole again
    state.counters["baseline_blocks"] = double(baseline.blocks());
    state.counters["born"] = double(born);
    state.counters["gone"] = double(gone);
}

// ---- registration -----------------------------------------------------------------------------------
// In run order: nothing is tracked before the untracked rows have run.
void register_benchmarks() {
    using benchmark::RegisterBenchmark;
    with_min(RegisterBenchmark("BM_plain_malloc_free", BM_plain_malloc_free));
    with_min(RegisterBenchmark("BM_new_delete_untracked", BM_new_delete_untracked));
    with_min(RegisterBenchmark("BM_churn_untracked", BM_churn_untracked));
    with_min(RegisterBenchmark("BM_new_delete_track_all_stacks_off", BM_new_delete_track_all_stacks_off)
                 ->Setup(setup_stacks_off)->Teardown(restore_defaults));
    with_min(RegisterBenchmark("BM_new_delete_track_all_stacks_on", BM_new_delete_track_all_stacks_on)
                 ->Setup(setup_stacks_on)->Teardown(restore_defaults));
    with_min(RegisterBenchmark("BM_new_delete_sampled", BM_new_delete_sampled)
                 ->Setup(setup_sampled)->Teardown(restore_defaults));
    with_min(RegisterBenchmark("BM_churn_track_all_stacks_off", BM_churn_track_all_stacks_off)
                 ->Setup(setup_stacks_off)->Teardown(restore_defaults));
    with_min(RegisterBenchmark("BM_churn_track_all_stacks_on", BM_churn_track_all_stacks_on)
                 ->Setup(setup_stacks_on)->Teardown(restore_defaults));
    with_min(RegisterBenchmark("BM_churn_sampled", BM_churn_sampled)
                 ->Setup(setup_sampled)->Teardown(restore_defaults));
    with_min(RegisterBenchmark("BM_snapshot_1M", BM_snapshot_1M)
                 ->Unit(benchmark::kMillisecond)->Setup(setup_big_heap)->Teardown(restore_defaults));
    with_min(RegisterBenchmark("BM_monitor_interval_1M", BM_monitor_interval_1M)
                 ->Unit(benchmark::kMillisecond)->UseManualTime()->Setup(setup_big_heap)->Teardown(restore_defaults));
}

// ---- the run's numbers --------------------------------------------------------------------------------
void print_table(const RecordingReporter& rep) {
    const Measured* malloc_free = rep.find("BM_plain_malloc_free");
    const Measured* untracked = rep.find("BM_new_delete_untracked");
    const Measured* churn_base = rep.find("BM_churn_untracked");
    auto ratio = [](const Measured* m, const Measured* base) {
        return m && base && base->cpu_ns > 0 ? fmt("%.2fx", m->cpu_ns / base->cpu_ns) : std::string("n/a");
    };
    auto verdict = [](const Measured* m, const Measured* base, double target) {
        if (!m || !base || base->cpu_ns <= 0) return std::string("n/a");
        return std::string(m->cpu_ns / base->cpu_ns <= target ? "met" : "**missed**") + fmt(" (<= %.2fx)", target);
    };
    auto ns = [](const Measured* m) { return m ? fmt("%.1f", m->cpu_ns) : std::string("n/a"); };

    std::printf("\n| per 32-byte pair, 1 thread | ns | ratio to malloc/free | ratio to new/delete untracked | target |\n"
                "|---|---:|---:|---:|---|\n");
    struct Row {
        const char* label;
        const char* key;
        double target;   // 0: none
    };
    const Row pairs[] = {
        {"plain malloc/free", "BM_plain_malloc_free", 0},
        {"new/delete, nothing tracked (hook idle)", "BM_new_delete_untracked", 0},
        {"track=all, stacks=off", "BM_new_delete_track_all_stacks_off", 1.5},
        {"track=all, stacks=on", "BM_new_delete_track_all_stacks_on", 0},
        {"track=all sample_bytes=524288 (stacks=on)", "BM_new_delete_sampled", 1.05},
    };
    for (const Row& r : pairs) {
        const Measured* m = rep.find(r.key);
        std::printf("| %s | %s | %s | %s | %s |\n", r.label, ns(m).c_str(), ratio(m, malloc_free).c_str(),
                    ratio(m, untracked).c_str(), r.target > 0 ? verdict(m, untracked, r.target).c_str() : "");
    }

    std::printf("\n| churn iteration (16 allocations), 1 thread | ns | ratio to the churn untracked | target |\n"
                "|---|---:|---:|---|\n");
    const Row churns[] = {
        {"churn, nothing tracked", "BM_churn_untracked", 0},
        {"churn, track=all stacks=off", "BM_churn_track_all_stacks_off", 1.5},
        {"churn, track=all stacks=on", "BM_churn_track_all_stacks_on", 0},
        {"churn, track=all sample_bytes=524288 (stacks=on)", "BM_churn_sampled", 1.05},
    };
    for (const Row& r : churns) {
        const Measured* m = rep.find(r.key);
        std::printf("| %s | %s | %s | %s |\n", r.label, ns(m).c_str(), ratio(m, churn_base).c_str(),
                    r.target > 0 ? verdict(m, churn_base, r.target).c_str() : "");
    }

    auto counter = [](const Measured* m, const char* name) {
        if (!m) return 0.0;
        auto it = m->counters.find(name);
        return it == m->counters.end() ? 0.0 : it->second;
    };
    const Measured* snap = rep.find("BM_snapshot_1M");
    const Measured* interval = rep.find("BM_monitor_interval_1M/manual_time");
    std::printf("\n| whole heap of 1,000,000 live blocks | ms | per block |\n|---|---:|---:|\n");
    std::printf("| Snapshot::take() | %s | %s |\n", snap ? fmt("%.1f", snap->cpu_ns / 1e6).c_str() : "n/a",
                snap && counter(snap, "blocks") > 0 ? fmt("%.1f ns", snap->cpu_ns / counter(snap, "blocks")).c_str() : "n/a");
    std::printf("| monitor interval: Snapshot::take() + diff against the 1M baseline (%.0f born, %.0f gone) | %s | %s |\n",
                counter(interval, "born"), counter(interval, "gone"),
                interval ? fmt("%.1f", interval->real_ns / 1e6).c_str() : "n/a",
                interval && counter(interval, "baseline_blocks") > 0
                    ? fmt("%.1f ns", interval->real_ns / counter(interval, "baseline_blocks")).c_str() : "n/a");
    std::printf("\nns: CPU time per pair or churn iteration (the interval: wall time of the timed part); "
                "minimum over the repetitions. Targets (issue 7) are judged against the same run's untracked "
                "new/delete (the churn rows: the untracked churn).\n");
}

}  // namespace

int main(int argc, char** argv) {
    register_benchmarks();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    RecordingReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    benchmark::Shutdown();
    free_big_heap();
    if (!reporter.empty()) print_table(reporter);
    return 0;
}
