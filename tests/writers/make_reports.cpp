// Writes the reports the writers stage (tests/writers/run.sh) hands to the real readers: pprof,
// headless Chromium, python3's json module. Usage: make_reports OUTDIR
//   golden.*   the fixed report of the golden files (bad names included)
//   empty.*    a report with no sites
//   many.*     100,000 sites
//   real.*     a real leftover of this program (real addresses: mappings with build ids)
//   monitor.*  a monitor's interval: growing sites, released sites, RSS
//   sampled.*  a sampled heap report: estimates, the sample rate, the error
//   huge.*     every count near SIZE_MAX and a NaN error
//   appended.jsonl  two reports appended (JSON Lines)
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include "checks.hpp"

#include <cstdio>
#include <string>

namespace {
__attribute__((noinline)) int* leak_here(int n) {
    int* p = new int[8]{n};
    asm volatile("" : : "g"(p) : "memory");
    return p;
}

void write_all_formats(const leakscope::Report& r, const std::string& stem) {
    leakscope::TextWriter(stem + ".txt").write(r);
    leakscope::JsonWriter(stem + ".json").write(r);
    leakscope::FoldedWriter(stem + ".folded").write(r);
    leakscope::HtmlWriter(stem + ".html").write(r);
    leakscope::PprofWriter(stem + ".pb.gz").write(r);
}
}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    std::string out = argv[1];
    write_all_formats(checks::golden_report(), out + "/golden");
    write_all_formats(leakscope::Report{}, out + "/empty");
    write_all_formats(checks::many_sites_report(100000), out + "/many");
    write_all_formats(checks::monitor_report(), out + "/monitor");
    write_all_formats(checks::sampled_heap_report(), out + "/sampled");
    write_all_formats(checks::huge_report(), out + "/huge");

    leakscope::Report real;
    int* kept;
    {
        leakscope::LeakScope scope("real leak");
        kept = leak_here(7);
        real = scope.leftovers();
        scope.dismiss();
    }
    delete[] kept;
    if (real.sites.size() != 1) {
        std::fprintf(stderr, "make_reports: expected one real site, got %zu\n", real.sites.size());
        return 1;
    }
    write_all_formats(real, out + "/real");

    leakscope::JsonWriter appended(out + "/appended.jsonl", leakscope::OutputWriter::Mode::append);
    appended.write(checks::golden_report());
    appended.write(leakscope::Report{});
    return 0;
}
