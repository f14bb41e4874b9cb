// What every bench/*.cpp prints after Google Benchmark's own output: each row's minimum over the
// repetitions (a noisy neighbour only ever adds time), found by name for the Markdown tables.
//   with_min(RegisterBenchmark(...))   adds the "min" statistic the reporter keeps
//   RecordingReporter                  the console output, plus each row's numbers by name
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace bench {

inline benchmark::internal::Benchmark* with_min(benchmark::internal::Benchmark* b) {
    return b->ComputeStatistics("min", [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); });
}

struct Measured {
    double cpu_ns = 0, real_ns = 0;   // per iteration (real: manual time where used)
    std::map<std::string, double> counters;
    bool is_min = false;
};

class RecordingReporter : public benchmark::ConsoleReporter {
   public:
    void ReportRuns(const std::vector<Run>& runs) override {
        for (const Run& run : runs) {
            if (run.error_occurred) continue;
            const bool min = run.run_type == Run::RT_Aggregate;
            if (min && run.aggregate_name != "min") continue;
            Measured& m = results_[key_of(run.run_name.str())];
            if (m.is_min && !min) continue;   // with repetitions: keep the minimum
            const double to_ns = 1e9 / benchmark::GetTimeUnitMultiplier(run.time_unit);
            m.cpu_ns = run.GetAdjustedCPUTime() * to_ns;
            m.real_ns = run.GetAdjustedRealTime() * to_ns;
            m.counters.clear();
            for (const auto& c : run.counters) m.counters[c.first] = c.second.value;
            m.is_min = min;
        }
        ConsoleReporter::ReportRuns(runs);
    }
    const Measured* find(const std::string& name) const {
        auto it = results_.find(name);
        return it == results_.end() ? nullptr : &it->second;
    }
    bool empty() const { return results_.empty(); }

   private:
    // Without the "/min_time:0.100" part a MinTime() adds to the name.
    static std::string key_of(std::string name) {
        auto at = name.find("/min_time:");
        if (at != std::string::npos) {
            auto end = name.find('/', at + 1);
            name.erase(at, end == std::string::npos ? std::string::npos : end - at);
        }
        return name;
    }
    std::map<std::string, Measured> results_;
};

inline std::string fmt(const char* format, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, format, v);
    return buf;
}

}  // namespace bench
