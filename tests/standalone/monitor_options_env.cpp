// leakscope-test-env: LEAKSCOPE_OPTIONS=monitor=1:monitor_warmup_ms=0:monitor_interval_ms=30:monitor_growth=2:monitor_threshold=1
// monitor=1 from the environment: the monitor's thread runs before main calls anything of
// leakscope's (started by the implementation's constructor function, not inside the hook), with
// the monitor_* values: every written report is of kind monitor, has growth_intervals 2 and at
// least the threshold's byte; a site growing in every interval is marked, with exact counts;
// configure() with a new interval restarts it (a new baseline, intervals from 1); monitor=0
// stops it (joined: no report after configure() returns, no thread left). Exit 0 = pass.
#include <leakscope.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {
int failures = 0;
void expect(bool ok, const char* what, long long got = 0, long long want = 0) {
    if (ok) return;
    std::fprintf(stderr, "FAIL: %s: got %lld, expected %lld\n", what, got, want);
    ++failures;
}

int grow_line = 0;
__attribute__((noinline)) int* grow() {
    grow_line = __LINE__ + 1;
    int* p = new int[6];
    asm volatile("" : : "g"(p) : "memory");
    return p;
}
bool from_here(const leakscope::Frame& f) {
    const char* tail = "monitor_options_env.cpp";
    return f.file.size() >= std::strlen(tail) && f.file.compare(f.file.size() - std::strlen(tail), std::string::npos, tail) == 0;
}
const leakscope::Site* site_at(const leakscope::Report& r, int line) {
    for (const leakscope::Site& s : r.sites)
        if (!s.frames.empty() && from_here(s.frames[0]) && int(s.frames[0].line) == line) return &s;
    return nullptr;
}

struct Recorder : leakscope::Writer {
    std::mutex mutex;
    std::vector<leakscope::Report> reports;
    void write(const leakscope::Report& r) override {
        std::lock_guard<std::mutex> lock(mutex);
        reports.push_back(r);
    }
    std::size_t size() {
        std::lock_guard<std::mutex> lock(mutex);
        return reports.size();
    }
    leakscope::Report last() {
        std::lock_guard<std::mutex> lock(mutex);
        return reports.back();
    }
    std::vector<leakscope::Report> copy() {
        leakscope::Ignore bookkeeping;
        std::lock_guard<std::mutex> lock(mutex);
        return reports;
    }
};
template <class Done>
bool wait_for(Done done) {
    for (int i = 0; i < 60000; ++i) {
        if (done()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return done();
}
// Threads of this process named `name` (/proc/self/task/*/comm).
int threads_named(const char* name) {
    int n = 0;
    if (DIR* d = opendir("/proc/self/task")) {
        while (dirent* e = readdir(d)) {
            if (e->d_name[0] == '.') continue;
            std::ifstream comm(std::string("/proc/self/task/") + e->d_name + "/comm");
            std::string line;
            std::getline(comm, line);
            n += line == name;
        }
        closedir(d);
    }
    return n;
}
}  // namespace

int main() {
    expect(threads_named("leakscope-mon") == 1, "the options' monitor runs before main calls leakscope", threads_named("leakscope-mon"), 1);
    auto rec = std::make_shared<Recorder>();
    leakscope::set_writers({rec});
    std::vector<int*> grown;
    grown.reserve(1000);

    // Its baseline (warm-up 0) may come after main's first blocks: make blocks until a report
    // (threshold 1) says that some came after it.
    expect(wait_for([&] {
               grown.push_back(grow());
               return rec->size() > 0;
           }),
           "a first report");
    // Grow in every interval (each written report tells that an interval passed: from now on
    // every interval has grown by at least the threshold's byte).
    bool marked = false;
    for (int round = 0; round < 60 && !marked; ++round) {
        std::size_t seen = rec->size();
        grown.push_back(grow());
        expect(wait_for([&] { return rec->size() > seen; }), "the next report comes");
        leakscope::Report latest = rec->last();
        const leakscope::Site* s = site_at(latest, grow_line);
        marked = s && s->growing;
    }
    expect(marked, "a site growing in every interval is marked (monitor_growth=2)");
    // Exact counts: some of those blocks may predate the baseline; seven new ones do not.
    for (int* p : grown) delete[] p;
    grown.clear();
    for (int i = 0; i < 7; ++i) grown.push_back(grow());
    std::size_t seen = rec->size();
    expect(wait_for([&] { return rec->size() >= seen + 2; }), "two quiet intervals");
    leakscope::Report last = rec->last();
    const leakscope::Site* s = site_at(last, grow_line);
    expect(s && s->blocks == 7 && s->bytes == 7 * 6 * sizeof(int), "exact blocks and bytes at grow()'s line",
           s ? (long long)s->blocks : -1, 7);
    expect(s && !s->growing, "not growing once it stopped");
    for (const leakscope::Report& r : rec->copy()) {
        expect(r.kind == "monitor", "only monitor reports");
        expect(r.growth_intervals == 2, "growth_intervals from monitor_growth=2", r.growth_intervals, 2);
        expect(r.bytes >= 1, "written reports reach monitor_threshold=1", (long long)r.bytes, 1);
    }

    // A new value restarts the options' monitor: a new baseline, intervals from 1 again. (Blocks
    // keep coming meanwhile, so that its first interval grows by at least the threshold.)
    std::size_t old_count = grown.size();
    std::size_t before_restart = rec->size();
    leakscope::configure("monitor_interval_ms=20");
    // The old monitor (at interval > 2 by now) may have written once more before it was joined.
    leakscope::Report first;
    bool restarted = wait_for([&] {
        if (rec->size() > before_restart) {
            std::vector<leakscope::Report> all = rec->copy();
            for (std::size_t i = before_restart; i < all.size(); ++i)
                if (all[i].interval <= 2) {
                    first = all[i];
                    return true;
                }
        }
        if (grown.size() < grown.capacity()) grown.push_back(grow());
        return false;
    });
    expect(restarted, "a report after the restart");
    expect(first.interval == 1, "the restarted monitor's first interval is 1", first.interval, 1);
    const leakscope::Site* f = site_at(first, grow_line);
    expect(f && f->blocks > 0 && f->blocks <= grown.size() - old_count, "the new baseline holds the blocks made before it",
           f ? (long long)f->blocks : 0, (long long)(grown.size() - old_count));

    // monitor=0: stopped and joined when configure() returns.
    leakscope::configure("monitor=0");
    std::size_t stopped_at = rec->size();
    expect(threads_named("leakscope-mon") == 0, "no monitor thread after monitor=0", threads_named("leakscope-mon"), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    expect(rec->size() == stopped_at, "no report after monitor=0", (long long)rec->size(), (long long)stopped_at);

    for (int* p : grown) delete[] p;
    if (failures == 0) std::puts("monitor_options_env: all checks passed");
    return failures == 0 ? 0 : 1;
}
