// leakscope-test-env: LEAKSCOPE_BENCH_SITES=2000
// Cost of writing a 100,000-site report in each format (the target: <= 1 s each).
// (The CTest smoke run uses 2,000 sites, set by the directive above: Debug builds run it too.)
//
//   BM_render/<format>   the writer's render(): the bytes of the report, no I/O
//   BM_write_file/<format>  write() to a path: render + temporary file + rename
//   BM_render_monitor/<format>  render() of the same sites as a sampled monitor interval: one
//                        site in 7 growing (listed first by text and HTML) and as many released
//                        sites (text picks the 5 largest, HTML the 1000 largest; JSON writes all)
//
// The report is tests/writers/checks.hpp's many_sites_report(100000): five frames per site, every
// leaf function distinct (100,000 + 1,000 + 3 functions). Counters: bytes of output. The pprof
// figure includes its gzip (stored blocks, CRC-32); its mappings are looked up among the loaded
// modules (dl_iterate_phdr) on every render, as for a real report.
//
//   cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release && cmake --build build/bench --target bench_writers
//   build/bench/bench/bench_writers --benchmark_repetitions=3
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include "../tests/writers/checks.hpp"

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>

namespace {
const leakscope::Report& report() {
    static const leakscope::Report r = [] {
        const char* sites = std::getenv("LEAKSCOPE_BENCH_SITES");
        return checks::many_sites_report(sites ? std::strtoul(sites, nullptr, 10) : 100000);
    }();
    return r;
}

const leakscope::Report& monitor_report() {
    static const leakscope::Report r = [] {
        leakscope::Report m = report();
        m.kind = "monitor";
        m.interval = 12;
        m.growth_intervals = 3;
        m.rss_bytes = std::size_t(1) << 32;
        m.sample_bytes = 524288;
        m.error = 0.01;
        for (std::size_t i = 0; i < m.sites.size(); ++i) {
            m.sites[i].growing = i % 7 == 3;
            m.sites[i].samples = 1 + i % 5;
        }
        m.released_sites = m.sites;
        m.released_blocks = m.blocks;
        m.released_bytes = m.bytes;
        return m;
    }();
    return r;
}

enum Format { text, json, folded, html, pprof };
const char* const kNames[] = {"text", "json", "folded", "html", "pprof"};

std::unique_ptr<leakscope::OutputWriter> writer(Format f, const std::string& path) {
    switch (f) {
        case text: return std::make_unique<leakscope::TextWriter>(path);
        case json: return std::make_unique<leakscope::JsonWriter>(path);
        case folded: return std::make_unique<leakscope::FoldedWriter>(path);
        case html: return std::make_unique<leakscope::HtmlWriter>(path);
        default: return std::make_unique<leakscope::PprofWriter>(path);
    }
}

void BM_render(benchmark::State& state) {
    auto w = writer(Format(state.range(0)), "unused");
    std::size_t bytes = 0;
    for (auto _ : state) {
        std::string out = w->render(report());
        bytes = out.size();
        benchmark::DoNotOptimize(out.data());
    }
    state.SetLabel(kNames[state.range(0)]);
    state.counters["output_bytes"] = double(bytes);
}

void BM_render_monitor(benchmark::State& state) {
    auto w = writer(Format(state.range(0)), "unused");
    std::size_t bytes = 0;
    for (auto _ : state) {
        std::string out = w->render(monitor_report());
        bytes = out.size();
        benchmark::DoNotOptimize(out.data());
    }
    state.SetLabel(kNames[state.range(0)]);
    state.counters["output_bytes"] = double(bytes);
}

void BM_write_file(benchmark::State& state) {
    std::string path = "bench-writers-" + std::to_string(::getpid()) + "." + kNames[state.range(0)];
    auto w = writer(Format(state.range(0)), path);
    for (auto _ : state) w->write(report());
    ::unlink(path.c_str());
    state.SetLabel(kNames[state.range(0)]);
}
}  // namespace

BENCHMARK(BM_render)->DenseRange(0, 4)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_write_file)->DenseRange(0, 4)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_render_monitor)->DenseRange(0, 4)->Unit(benchmark::kMillisecond)->UseRealTime();

int main(int argc, char** argv) {
    report();   // built once, outside every measurement
    monitor_report();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
