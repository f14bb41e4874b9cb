// The floor model's 32-byte pair as a Google Benchmark, for bench_core (beside the hook, same run)
// and bench_unhooked (beside the C++ runtime's own new/delete). Argument 0: nothing tracked,
// 1: every block tracked. Not hooked: the model calls malloc itself.
#pragma once

#include <benchmark/benchmark.h>

#include "floor_model.hpp"

namespace bench {

inline void BM_floor_model(benchmark::State& state) {
    floor_model::state.tracking = state.range(0) != 0;
    for (auto _ : state) {
        void* const p = floor_model::allocate(32);
        benchmark::DoNotOptimize(p);
        floor_model::deallocate(p);
    }
    floor_model::state.tracking = false;
}

}  // namespace bench
