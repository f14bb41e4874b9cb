// Core costs of leakscope: the hooked operator new/delete (idle and inside a scope), opening and
// closing scopes, the close of a leaking scope (per block, with and without a big tracked heap
// elsewhere), and the tracker's memory per tracked block.
//
// After the Google Benchmark output it prints a Markdown table of the same run's numbers, each
// throughput row divided by plain malloc/free with the same thread count. Rows whose benchmark
// was filtered out print n/a.
//
//   bench_core                               full run (about 20 s on 2 cores)
//   bench_core --benchmark_min_time=0.01     smoke test (a few seconds)
//
// Every pointer goes through DoNotOptimize so no new/delete pair is elided. The pointers are const
// on purpose: that picks the input-only overload; GCC 12 with -fsanitize=address,undefined
// miscompiles the read-write ("+m,r") one of Google Benchmark 1.7 (the value written back is not
// the one read afterwards, so delete got a garbage pointer).
//
// Registration order matters: the hook's idle path is cheaper until the process has tracked its
// first block, so BM_hook_idle_new_delete runs before anything opens a scope, and
// BM_hook_idle_after_tracking runs last, with ~1000 tracked blocks live.
//
// The scope-closing benchmarks time only the close (manual time); per_block_ns is that time per
// leaked block.

#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include <benchmark/benchmark.h>

#include "tools/reporting.hpp"

#include "tools/floor_bench.hpp"

#include <algorithm>
#include <utility>

#include <fcntl.h>
#include <malloc.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <vector>

extern char** environ;

namespace {

using bench::Measured;
using bench::RecordingReporter;
using bench::fmt;
using bench::with_min;

constexpr std::size_t kBlock = 32;

// ---- helpers ----------------------------------------------------------------------------------

class NullWriter : public leakscope::Writer {
   public:
    void write(const leakscope::Report&) override {}
};

void install_null_writer() { leakscope::set_writers({std::make_shared<NullWriter>()}); }
void restore_writers() { leakscope::set_writers({}); }

// Tracked blocks allocated inside a dismissed scope: live, in the registry, reported by no one.
std::vector<char*> leak_tracked(std::size_t n) {
    std::vector<char*> blocks;
    blocks.reserve(n);   // outside the scope: the vector's own buffer is not tracked
    leakscope::LeakScope scope("bench setup");
    for (std::size_t i = 0; i < n; ++i) blocks.push_back(new char[kBlock]);
    scope.dismiss();
    return blocks;
}
void free_all(std::vector<char*>& blocks) {
    for (char* p : blocks) delete[] p;
    blocks.clear();
    blocks.shrink_to_fit();
}

std::vector<char*> g_registry_filler;   // ~1000 blocks for BM_hook_idle_after_tracking
std::vector<char*> g_big_heap;          // 200,000 blocks for BM_scope_close_leaking_big_heap
constexpr std::size_t kFillerBlocks = 1000;
constexpr std::size_t kBigHeapBlocks = 200000;

// ---- 1. plain malloc/free (not hooked) --------------------------------------------------------
void BM_plain_malloc_free(benchmark::State& state) {
    for (auto _ : state) {
        void* const p = std::malloc(kBlock);
        benchmark::DoNotOptimize(p);
        std::free(p);
    }
}

// The floor any operator new/delete pair stands on: malloc/free each behind a call that checks
// for failure, as a replaced (or libstdc++'s own) operator new must. Not hooked.
__attribute__((noinline)) void* wrapped_malloc(std::size_t n) {
    void* p = std::malloc(n ? n : 1);
    if (!p) throw std::bad_alloc();
    return p;
}
__attribute__((noinline)) void wrapped_free(void* p) noexcept { std::free(p); }
void BM_wrapped_malloc_free(benchmark::State& state) {
    for (auto _ : state) {
        void* const p = wrapped_malloc(kBlock);
        benchmark::DoNotOptimize(p);
        wrapped_free(p);
    }
}

// ---- 2. the hook with no scope open anywhere --------------------------------------------------
void BM_hook_idle_new_delete(benchmark::State& state) {
    for (auto _ : state) {
        char* const p = new char[kBlock];
        benchmark::DoNotOptimize(p);
        delete[] p;
    }
}

// Same body, once the registry holds tracked blocks (every delete then looks its pointer up).
void BM_hook_idle_after_tracking(benchmark::State& state) {
    for (auto _ : state) {
        char* const p = new char[kBlock];
        benchmark::DoNotOptimize(p);
        delete[] p;
    }
}
void setup_after_tracking(const benchmark::State&) {
    // The big heap (if its benchmark ran) is gone by now; what stays is a small live registry.
    free_all(g_big_heap);
    if (g_registry_filler.empty()) g_registry_filler = leak_tracked(kFillerBlocks);
}

// ---- 3. new/delete inside an open scope (each thread its own) ---------------------------------
void BM_new_delete_in_scope(benchmark::State& state) {
    leakscope::LeakScope scope("bench");
    for (auto _ : state) {
        char* const p = new char[kBlock];
        benchmark::DoNotOptimize(p);
        delete[] p;
    }
    scope.dismiss();
}

// ---- 3b. a realistic allocation churn ---------------------------------------------------------
// Strings, vectors, a map and make_shared with a little work in between: what a request handler
// does. The same body without a scope (the hook idle) and inside one, per thread.
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
void BM_churn_no_scope(benchmark::State& state) {
    int i = 0;
    for (auto _ : state) benchmark::DoNotOptimize(churn_once(i++));
}
void BM_churn_in_scope(benchmark::State& state) {
    leakscope::LeakScope scope("churn");
    int i = 0;
    for (auto _ : state) benchmark::DoNotOptimize(churn_once(i++));
    scope.dismiss();
}
void BM_churn_scope_per_iteration(benchmark::State& state) {
    int i = 0;
    for (auto _ : state) {
        leakscope::LeakScope scope("request");
        benchmark::DoNotOptimize(churn_once(i++));
    }
}

// ---- 4. a clean scope -------------------------------------------------------------------------
void BM_scope_open_close_clean(benchmark::State& state) {
    for (auto _ : state) {
        leakscope::LeakScope s("x");
        benchmark::DoNotOptimize(&s);
    }
}

// ---- 5./6. closing a scope that leaks k blocks: only the close is timed -----------------------
void close_leaking(benchmark::State& state) {
    const auto k = static_cast<std::size_t>(state.range(0));
    std::vector<char*> blocks;
    blocks.reserve(k);   // before the scope: push_back below never allocates
    install_null_writer();
    double closing = 0;
    for (auto _ : state) {
        std::optional<leakscope::LeakScope> scope;
        scope.emplace("leaking");
        for (std::size_t i = 0; i < k; ++i) {
            char* const p = new char[kBlock];
            benchmark::DoNotOptimize(p);
            blocks.push_back(p);
        }
        auto t0 = std::chrono::steady_clock::now();
        scope.reset();
        auto t1 = std::chrono::steady_clock::now();
        double seconds = std::chrono::duration<double>(t1 - t0).count();
        state.SetIterationTime(seconds);
        closing += seconds;
        for (char* p : blocks) delete[] p;
        blocks.clear();
    }
    restore_writers();
    if (state.iterations() > 0)
        state.counters["per_block_ns"] = closing * 1e9 / (double(state.iterations()) * double(k));
}
void BM_scope_close_leaking(benchmark::State& state) { close_leaking(state); }
void BM_scope_close_leaking_big_heap(benchmark::State& state) { close_leaking(state); }
void setup_big_heap(const benchmark::State&) {
    if (g_big_heap.empty()) g_big_heap = leak_tracked(kBigHeapBlocks);
}

// Registered from main, in run order (see the top of the file). Only the close of the leaking
// scopes is timed, but each iteration also opens the scope, allocates and frees its blocks, which
// takes 3-13x the timed part; so unless --benchmark_min_time is given, those benchmarks aim at
// kCloseMinTime seconds of timed closes instead of the library's default 0.5 s.
constexpr double kCloseMinTime = 0.1;

// With --benchmark_repetitions=N the table uses each benchmark's minimum over the repetitions:
// on a shared machine noise only ever adds time.
void register_benchmarks(bool default_min_time) {
    using benchmark::RegisterBenchmark;
    with_min(RegisterBenchmark("BM_hook_idle_new_delete", BM_hook_idle_new_delete)->Threads(1)->Threads(2));
    with_min(RegisterBenchmark("BM_plain_malloc_free", BM_plain_malloc_free)->Threads(1)->Threads(2));
    with_min(RegisterBenchmark("BM_wrapped_malloc_free", BM_wrapped_malloc_free)->Threads(1));
    // The floor of exact tracking (bench/tools/floor_model.hpp), in this run: idle and tracked.
    with_min(RegisterBenchmark("BM_floor_model", bench::BM_floor_model)->Arg(0)->Threads(1));
    with_min(RegisterBenchmark("BM_floor_model", bench::BM_floor_model)->Arg(1)->Threads(1)->Threads(2));
    with_min(RegisterBenchmark("BM_new_delete_in_scope", BM_new_delete_in_scope)->Threads(1)->Threads(2));
    with_min(RegisterBenchmark("BM_churn_no_scope", BM_churn_no_scope)->Threads(1)->Threads(2));
    with_min(RegisterBenchmark("BM_churn_in_scope", BM_churn_in_scope)->Threads(1)->Threads(2));
    with_min(RegisterBenchmark("BM_churn_scope_per_iteration", BM_churn_scope_per_iteration)->Threads(1)->Threads(2));
    with_min(RegisterBenchmark("BM_scope_open_close_clean", BM_scope_open_close_clean));
    auto* leaking = with_min(RegisterBenchmark("BM_scope_close_leaking", BM_scope_close_leaking)
                                 ->Arg(1)->Arg(10)->Arg(100)->Arg(1000)->Arg(10000)->UseManualTime());
    auto* big = with_min(RegisterBenchmark("BM_scope_close_leaking_big_heap", BM_scope_close_leaking_big_heap)
                             ->Arg(10)->Arg(1000)->UseManualTime()->Setup(setup_big_heap));
    if (default_min_time) {
        leaking->MinTime(kCloseMinTime);
        big->MinTime(kCloseMinTime);
    }
    with_min(RegisterBenchmark("BM_hook_idle_after_tracking", BM_hook_idle_after_tracking)
                 ->Threads(1)->Threads(2)->Setup(setup_after_tracking));
}

bool min_time_given(int argc, char** argv) {
    if (std::getenv("BENCHMARK_MIN_TIME")) return true;
    for (int i = 1; i < argc; ++i)
        if (std::strncmp(argv[i], "--benchmark_min_time", 20) == 0) return true;
    return false;
}

// ---- 8. tracker memory per tracked block --------------------------------------------------------
// Measured in a fresh copy of this program (re-executed with kProbeFlag): in this process the
// benchmarks have already grown the registry's tables and filled the tracker's recycled-chunk
// lists, so a delta taken here comes out about a third too low.
constexpr const char* kProbeFlag = "--leakscope_memory_probe";
constexpr std::size_t kProbeBlocks = 1000000;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define BENCH_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define BENCH_SANITIZED 1
#endif
#endif
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33)) && !defined(BENCH_SANITIZED)
#define BENCH_HAVE_MEMORY_PROBE 1
#endif

struct MemoryResult {
    bool ok = false;
    double bytes_per_block = 0;
    long long rss_delta = 0, malloc_delta = 0;
    long long header_delta = 0;   // what tracked blocks hold in the heap beyond the same blocks untracked
    std::size_t blocks = 0;
    std::string note;   // why there is no result, or how it was measured
};

#if defined(BENCH_HAVE_MEMORY_PROBE)
long long resident_bytes() {
    // read(2), not stdio: no malloc in between the samples.
    int fd = ::open("/proc/self/statm", O_RDONLY);
    if (fd < 0) return -1;
    char buf[128];
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    long long size = 0, resident = 0;
    if (std::sscanf(buf, "%lld %lld", &size, &resident) != 2) return -1;
    return resident * static_cast<long long>(::sysconf(_SC_PAGESIZE));
}

MemoryResult measure_memory_here(std::size_t n) {
    MemoryResult r;
    std::vector<char*> blocks(n);   // zero-filled now: its pages are resident before the baseline
    long long rss0 = resident_bytes();
    long long heap0 = static_cast<long long>(mallinfo2().uordblks);
    {
        leakscope::LeakScope scope("memory probe");
        for (std::size_t i = 0; i < n; ++i) {
            char* const p = new char[kBlock];
            benchmark::DoNotOptimize(p);
            blocks[i] = p;
        }
        long long rss1 = resident_bytes();
        long long heap1 = static_cast<long long>(mallinfo2().uordblks);
        scope.dismiss();
        // The same blocks untracked, for what the heap holds without leakscope: a tracked block's
        // header makes its malloc chunk larger, and that is the tracker's memory too.
        std::vector<char*> plain(n);
        long long heap2 = static_cast<long long>(mallinfo2().uordblks);
        for (std::size_t i = 0; i < n; ++i) {
            char* const p = new char[kBlock];
            benchmark::DoNotOptimize(p);
            plain[i] = p;
        }
        long long heap3 = static_cast<long long>(mallinfo2().uordblks);
        for (char* p : plain) delete[] p;
        if (rss0 >= 0 && rss1 >= 0) {
            r.ok = true;
            r.blocks = n;
            r.rss_delta = rss1 - rss0;
            r.malloc_delta = heap1 - heap0;
            r.header_delta = (heap1 - heap0) - (heap3 - heap2);
            r.bytes_per_block = double(r.rss_delta - r.malloc_delta + r.header_delta) / double(n);
        }
    }
    for (char* p : blocks) delete[] p;
    return r;
}

int run_memory_probe() {
    MemoryResult r = measure_memory_here(kProbeBlocks);
    if (!r.ok) return 1;
    std::printf("%.3f %lld %lld %lld %zu\n", r.bytes_per_block, r.rss_delta, r.malloc_delta, r.header_delta, r.blocks);
    return 0;
}

MemoryResult measure_memory_fresh(const char* argv0) {
    MemoryResult r;
    int fds[2];
    if (::pipe(fds) != 0) return r;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    posix_spawn_file_actions_addclose(&actions, fds[1]);
    char* child_argv[] = {const_cast<char*>(argv0), const_cast<char*>(kProbeFlag), nullptr};
    pid_t pid = -1;
    int rc = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, child_argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    std::string out;
    if (rc == 0) {
        char buf[256];
        for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, std::size_t(n));
    }
    ::close(fds[0]);
    if (rc != 0) return r;
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return r;
    if (std::sscanf(out.c_str(), "%lf %lld %lld %lld %zu", &r.bytes_per_block, &r.rss_delta, &r.malloc_delta,
                    &r.header_delta, &r.blocks) == 5)
        r.ok = true;
    return r;
}
#endif

MemoryResult measure_tracker_memory(const char* argv0) {
#if defined(BENCH_HAVE_MEMORY_PROBE)
    MemoryResult r = measure_memory_fresh(argv0);
    if (r.ok) {
        r.note = "fresh process";
        return r;
    }
    r = measure_memory_here(kProbeBlocks);
    r.note = "in this process, after the benchmarks: tables and chunk lists already grown, an underestimate";
    return r;
#else
    (void)argv0;
    MemoryResult r;
    r.note = "needs glibc >= 2.33 (mallinfo2) and no sanitizer";
    return r;
#endif
}

// ---- the run's numbers --------------------------------------------------------------------------
void print_table(const RecordingReporter& rep, const MemoryResult& mem) {
    std::printf("\n| measure | ns | ratio to plain malloc/free |\n|---|---:|---:|\n");
    auto cpu = [&](const std::string& name) -> const Measured* { return rep.find(name); };
    auto row = [](const std::string& label, const Measured* m, double ns, const Measured* base, double base_ns) {
        std::string ns_text = m ? fmt("%.1f", ns) : "n/a";
        std::string ratio = (m && base && base_ns > 0) ? fmt("%.2fx", ns / base_ns) : "n/a";
        std::printf("| %s | %s | %s |\n", label.c_str(), ns_text.c_str(), ratio.c_str());
    };
    const Measured* plain1 = cpu("BM_plain_malloc_free/threads:1");
    const Measured* plain2 = cpu("BM_plain_malloc_free/threads:2");
    double p1 = plain1 ? plain1->cpu_ns : 0, p2 = plain2 ? plain2->cpu_ns : 0;

    auto pair_row = [&](const std::string& label, const std::string& name, int threads) {
        const Measured* m = cpu(name);
        row(label, m, m ? m->cpu_ns : 0, threads == 1 ? plain1 : plain2, threads == 1 ? p1 : p2);
    };
    pair_row("plain malloc/free, 1 thread", "BM_plain_malloc_free/threads:1", 1);
    pair_row("plain malloc/free, 2 threads", "BM_plain_malloc_free/threads:2", 2);
    pair_row("malloc/free each behind a call (the floor of any operator new/delete), 1 thread",
             "BM_wrapped_malloc_free/threads:1", 1);
    pair_row("hooked new/delete idle, 1 thread", "BM_hook_idle_new_delete/threads:1", 1);
    pair_row("hooked new/delete idle, 2 threads", "BM_hook_idle_new_delete/threads:2", 2);
    pair_row("idle after tracking (1000 live tracked), 1 thread", "BM_hook_idle_after_tracking/threads:1", 1);
    pair_row("idle after tracking (1000 live tracked), 2 threads", "BM_hook_idle_after_tracking/threads:2", 2);
    pair_row("new/delete in scope, 1 thread", "BM_new_delete_in_scope/threads:1", 1);
    pair_row("new/delete in scope, 2 threads", "BM_new_delete_in_scope/threads:2", 2);
    pair_row("floor model, nothing tracked (bench/tools/floor_model.hpp), 1 thread", "BM_floor_model/0/threads:1", 1);
    pair_row("floor model, every block tracked exactly, no stacks, 1 thread", "BM_floor_model/1/threads:1", 1);
    pair_row("floor model, every block tracked exactly, no stacks, 2 threads", "BM_floor_model/1/threads:2", 2);

    // The churn rows compare with the same churn without a scope (the hook idle), same threads.
    for (int threads : {1, 2}) {
        std::string suffix = "/threads:" + std::to_string(threads);
        const Measured* base = cpu("BM_churn_no_scope" + suffix);
        double base_ns = base ? base->cpu_ns : 0;
        std::string t = std::to_string(threads) + (threads == 1 ? " thread" : " threads");
        std::printf("| churn (strings, vector, map, make_shared), no scope, %s | %s | (base) |\n", t.c_str(),
                    base ? fmt("%.1f", base_ns).c_str() : "n/a");
        for (auto [label, name] : {std::pair<const char*, const char*>{"churn inside one scope", "BM_churn_in_scope"},
                                   {"churn with a scope per iteration", "BM_churn_scope_per_iteration"}}) {
            const Measured* m = cpu(name + suffix);
            std::string ns_text = m ? fmt("%.1f", m->cpu_ns) : "n/a";
            std::string ratio = (m && base_ns > 0) ? fmt("%.2fx the churn without a scope", m->cpu_ns / base_ns) : "n/a";
            std::printf("| %s, %s | %s | %s |\n", label, t.c_str(), ns_text.c_str(), ratio.c_str());
        }
    }

    const Measured* clean = cpu("BM_scope_open_close_clean");
    row("clean scope open+close", clean, clean ? clean->cpu_ns : 0, plain1, p1);

    auto close_row = [&](const std::string& label, const std::string& name) {
        const Measured* m = cpu(name);
        double ns = 0;
        if (m) {
            auto it = m->counters.find("per_block_ns");
            if (it == m->counters.end()) m = nullptr; else ns = it->second;
        }
        row(label, m, ns, plain1, p1);
    };
    for (int k : {1, 10, 100, 1000, 10000})
        close_row("leaking close per block, k=" + std::to_string(k),
                  "BM_scope_close_leaking/" + std::to_string(k) + "/manual_time");
    for (int k : {10, 1000})
        close_row("leaking close per block, k=" + std::to_string(k) + ", 200k tracked elsewhere",
                  "BM_scope_close_leaking_big_heap/" + std::to_string(k) + "/manual_time");

    std::printf("| tracker bytes per tracked block | %s | — |\n", mem.ok ? fmt("%.1f", mem.bytes_per_block).c_str() : "n/a");
    std::printf("\nns: CPU time per new/delete pair (2 threads: both threads' CPU time / all pairs), "
                "per open+close, or per leaked block of the timed close (wall time); ratios are to "
                "plain malloc/free with the same thread count (1 thread for the scope rows).\n");
}

}  // namespace

int main(int argc, char** argv) {
    // The foundation's own costs: no call stacks here (bench/stacks.cpp measures what they add).
    leakscope::configure("stacks=off");
#if defined(BENCH_HAVE_MEMORY_PROBE)
    if (argc == 2 && std::strcmp(argv[1], kProbeFlag) == 0) return run_memory_probe();
#endif
    register_benchmarks(!min_time_given(argc, argv));
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    RecordingReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    benchmark::Shutdown();
    free_all(g_big_heap);
    free_all(g_registry_filler);
    if (reporter.empty()) return 0;   // --benchmark_list_tests, or a filter that matched nothing

    MemoryResult mem = measure_tracker_memory(argv[0]);
    if (mem.ok)
        std::printf("\ntracker memory: %.1f bytes per tracked block (RSS +%.1f MiB, malloc'd +%.1f MiB of which "
                    "+%.1f MiB are block headers, %zu blocks of %zu bytes; %s)\n",
                    mem.bytes_per_block, double(mem.rss_delta) / 1048576.0, double(mem.malloc_delta) / 1048576.0,
                    double(mem.header_delta) / 1048576.0, mem.blocks, kBlock, mem.note.c_str());
    else
        std::printf("\ntracker memory: n/a (%s)\n", mem.note.empty() ? "probe failed" : mem.note.c_str());
    print_table(reporter, mem);
    return 0;
}
