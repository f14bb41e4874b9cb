// leakscope/benchmark.hpp — Google Benchmark's memory measurements from leakscope.
//
//     // exactly one translation unit of the benchmark program:
//     #define LEAKSCOPE_IMPLEMENTATION
//     #include <leakscope/benchmark.hpp>
//
// Including this header registers a benchmark::MemoryManager (once per program). Google Benchmark
// then runs every benchmark once more, for min(16, iterations) iterations, between Start() and
// Stop(), and its JSON/console reporters show, per benchmark:
//   allocs_per_iter    allocations through operator new per iteration (every thread)
//   net_heap_growth    bytes allocated in the run and still live at its end, minus bytes of
//                      older blocks freed in it (leakscope's leftovers minus released)
//   max_bytes_used     the run's peak of live bytes above those live at its start (the run starts
//                      a new high-water mark with leakscope::reset_peak(), so the process-wide
//                      peak of stats() is the run's afterwards); exact to within
//                      LEAKSCOPE_PEAK_GRANULARITY bytes per thread (define it to 1 in the
//                      implementation unit for exact peaks)
//   total_allocated_bytes  bytes allocated in the run (every birth the run's scope counted)
// benchmark::RegisterMemoryManager(nullptr) in a main() of one's own turns it off again;
// leakscope::test::benchmark_memory_manager() is the instance.
//
// Like leakscope.hpp, this header never defines LEAKSCOPE_IMPLEMENTATION itself.
#ifndef LEAKSCOPE_BENCHMARK_HPP_INCLUDED
#define LEAKSCOPE_BENCHMARK_HPP_INCLUDED

#include <leakscope.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <optional>

namespace leakscope {
namespace test {

class BenchmarkMemoryManager : public ::benchmark::MemoryManager {
   public:
    // No `override` on these: Stop(Result*) is gone after Google Benchmark 1.7, and clang warns
    // when only some overriders say `override`.
    void Start() {
        reset_peak();
        before_ = stats();
        scope_.emplace("benchmark memory run", Threads::all, __FILE__, unsigned(__LINE__));
    }

    // Google Benchmark 1.7 calls this form; later versions only have it.
    void Stop(Result& result) {
        Stats after = stats();
        if (!scope_) return;
        Report report;
        {
            Ignore quiet;
            report = scope_->leftovers();
        }
        scope_->dismiss();
        scope_.reset();
        result.num_allocs = std::int64_t(after.total_allocations - before_.total_allocations);
        result.total_allocated_bytes = std::int64_t(after.tracked_bytes_total - before_.tracked_bytes_total);
        result.net_heap_growth = std::int64_t(report.bytes) - std::int64_t(report.released_bytes);
        std::int64_t base = std::int64_t(before_.live_bytes);
        result.max_bytes_used = std::max<std::int64_t>(std::int64_t(after.peak_bytes) - base, 0);
    }
    // The deprecated pointer form (pure virtual in 1.7): forwards.
    void Stop(Result* result) { Stop(*result); }

   private:
    Stats before_;
    std::optional<LeakScope> scope_;
};

inline BenchmarkMemoryManager& benchmark_memory_manager() {
    static BenchmarkMemoryManager manager;
    return manager;
}

namespace benchmark_detail {
inline const bool registered = (::benchmark::RegisterMemoryManager(&benchmark_memory_manager()), true);
}

}  // namespace test
}  // namespace leakscope

#endif  // LEAKSCOPE_BENCHMARK_HPP_INCLUDED
