// leakscope::Monitor, checked against ground truth: a site that grows in every interval is marked
// growing once it rose in each of the last k intervals, a one-off allocation after the baseline is
// not; every interval's report has exact block counts at the allocating lines; the marks agree
// with an oracle computed from the reports themselves (so the test does not depend on timing);
// the monitor's own allocations are nobody's; a threshold keeps reports from the writers while
// latest() still has them; stop() returns without waiting for the interval. Exit 0 = pass.
#include <leakscope.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
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
void expect_eq(const char* what, long long got, long long want) { expect(got == want, what, got, want); }

int grow_line = 0, once_line = 0;
struct Record {
    char bytes[48];
};
struct Big {
    char bytes[80];
};
__attribute__((noinline)) Record* grow() {
    grow_line = __LINE__ + 1;
    Record* r = new Record;
    asm volatile("" : : "g"(r) : "memory");
    return r;
}
__attribute__((noinline)) Big* once() {
    once_line = __LINE__ + 1;
    Big* b = new Big;
    asm volatile("" : : "g"(b) : "memory");
    return b;
}
__attribute__((noinline)) char* big_block(std::size_t n) {
    char* p = new char[n];
    asm volatile("" : : "g"(p) : "memory");
    return p;
}

bool from_here(const leakscope::Frame& f) {
    const char* tail = "monitor_basic.cpp";
    return f.file.size() >= std::strlen(tail) && f.file.compare(f.file.size() - std::strlen(tail), std::string::npos, tail) == 0;
}
const leakscope::Site* site_at(const leakscope::Report& r, int line) {
    for (const leakscope::Site& s : r.sites)
        if (!s.frames.empty() && from_here(s.frames[0]) && int(s.frames[0].line) == line) return &s;
    return nullptr;
}
long long blocks_at(const leakscope::Report& r, int line) {
    const leakscope::Site* s = site_at(r, line);
    return s ? (long long)s->blocks : 0;
}
// A site's identity for the oracle: its type and frames (function, file, line; address without one).
std::string identity(const leakscope::Site& s) {
    std::string key = s.type;
    for (const leakscope::Frame& f : s.frames) {
        key += '|';
        if (f.line && !f.file.empty())
            key += f.function + "@" + f.file + ":" + std::to_string(f.line) + (f.inlined ? "i" : "");
        else
            key += f.module + "@" + std::to_string(f.address);
    }
    return key;
}

// Keeps every monitor report it is given.
struct Recorder : leakscope::Writer {
    std::mutex mutex;
    std::vector<leakscope::Report> reports;
    void write(const leakscope::Report& r) override {
        if (r.kind != "monitor") return;
        std::lock_guard<std::mutex> lock(mutex);
        reports.push_back(r);
    }
    std::vector<leakscope::Report> copy() {
        leakscope::Ignore test_bookkeeping;   // not part of what the heap checks below measure
        std::lock_guard<std::mutex> lock(mutex);
        return reports;
    }
    std::size_t size() {
        std::lock_guard<std::mutex> lock(mutex);
        return reports.size();
    }
};

// Waits (1 ms steps, at most a minute) until `done` holds.
template <class Done>
bool wait_for(Done done) {
    for (int i = 0; i < 60000; ++i) {
        if (done()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return done();
}

// The oracle: with every interval's report (threshold 0), a site is growing in report n exactly
// when its bytes rose strictly in each of the last k reports (absent: 0 bytes; report 0, the
// baseline, has nothing).
void check_marks(const std::vector<leakscope::Report>& reports, unsigned k) {
    std::map<std::string, std::vector<std::size_t>> bytes;   // identity -> bytes per interval (index 0: baseline)
    std::size_t n = reports.size();
    for (std::size_t i = 0; i < n; ++i)
        for (const leakscope::Site& s : reports[i].sites) {
            auto& v = bytes[identity(s)];
            v.resize(n + 1, 0);
            v[i + 1] += s.bytes;
        }
    for (std::size_t i = 0; i < n; ++i)
        for (const leakscope::Site& s : reports[i].sites) {
            const auto& v = bytes[identity(s)];
            bool rose = k > 0 && i + 1 >= k;
            for (unsigned j = 0; rose && j < k; ++j) rose = v[i + 1 - j] > v[i - j];
            if (s.growing != rose) {
                std::fprintf(stderr, "FAIL: interval %u, site %s: growing is %d, the bytes say %d\n",
                             reports[i].interval, identity(s).c_str(), int(s.growing), int(rose));
                ++failures;
            }
        }
}
}  // namespace

int main() {
    auto recorder = std::make_shared<Recorder>();
    leakscope::set_writers({recorder});
    std::vector<Record*> grown;
    grown.reserve(1000);
    std::vector<Big*> ones;
    ones.reserve(10);

    const unsigned k = 3;
    leakscope::Monitor::Options options;
    options.warmup_ms = 30;
    options.interval_ms = 40;
    options.growth_intervals = k;
    auto monitor = std::make_unique<leakscope::Monitor>(options);
    leakscope::Snapshot at_start = leakscope::Snapshot::take();

    // The baseline is taken before the first interval: from then on, everything is "since".
    expect(wait_for([&] { return monitor->intervals() >= 1; }), "the first interval comes");
    for (int i = 0; i < 5; ++i) ones.push_back(once());   // one-off growth after the baseline

    // Grow in every interval until the site is marked (normally at interval k+1).
    bool marked = false;
    for (int round = 0; round < 40 && !marked; ++round) {
        unsigned seen = monitor->intervals();
        for (int i = 0; i < 3; ++i) grown.push_back(grow());
        expect(wait_for([&] { return monitor->intervals() > seen; }), "the next interval comes");
        leakscope::Report latest = monitor->latest();
        const leakscope::Site* s = site_at(latest, grow_line);
        marked = s && s->growing;
    }
    expect(marked, "a site that grows in every interval is marked growing");

    // Quiet for two intervals: the last report holds every block, and nothing rose in it.
    unsigned seen = monitor->intervals();
    expect(wait_for([&] { return monitor->intervals() >= seen + 2; }), "two more intervals come");
    leakscope::Report last = monitor->latest();
    expect(last.kind == "monitor", "kind is monitor");
    expect_eq("growth_intervals", last.growth_intervals, k);
    expect(last.rss_bytes > 0, "the report has the resident set");
    expect_eq("blocks at grow()'s line", blocks_at(last, grow_line), (long long)grown.size());
    expect_eq("blocks at once()'s line", blocks_at(last, once_line), 5);
    const leakscope::Site* g = site_at(last, grow_line);
    const leakscope::Site* o = site_at(last, once_line);
    expect(g && g->bytes == grown.size() * sizeof(Record), "bytes at grow()'s line");
    expect(o && o->bytes == 5 * sizeof(Big), "bytes at once()'s line");
    expect(g && !g->growing, "a site that stopped growing is not marked");
    expect(o && !o->growing, "a one-off allocation after the baseline is not marked");
    expect_eq("the report's totals are its sites'", (long long)last.blocks, [&] {
        long long b = 0;
        for (const leakscope::Site& s : last.sites) b += (long long)s.blocks;
        return b;
    }());

    monitor->stop();
    unsigned final_intervals = monitor->intervals();
    std::vector<leakscope::Report> reports = recorder->copy();
    // Threshold 0: every interval was written, numbered 1, 2, ..., the last one is latest().
    expect_eq("every interval written", (long long)reports.size(), final_intervals);
    for (std::size_t i = 0; i < reports.size(); ++i) expect_eq("intervals numbered 1, 2, ...", reports[i].interval, (long long)i + 1);
    expect(!reports.empty() && reports.back().interval == last.interval, "latest() is the last interval");
    check_marks(reports, k);
    long long once_before = 0;
    for (const leakscope::Report& r : reports) {
        // once()'s blocks count from the interval after they were made, and never change after.
        long long once_blocks = blocks_at(r, once_line);
        expect(once_blocks >= once_before && once_blocks <= 5, "once()'s blocks never fall, at most five", once_blocks, 5);
        once_before = once_blocks;
        for (const leakscope::Site& s : r.sites)
            for (const leakscope::Frame& f : s.frames)
                if (f.function.find("leakscope::") != std::string::npos || f.function.find("Recorder") != std::string::npos) {
                    std::fprintf(stderr, "FAIL: the monitor reported its own allocation: %s\n", f.function.c_str());
                    ++failures;
                }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    expect_eq("no interval after stop()", monitor->intervals(), final_intervals);

    // Nothing of the monitor's own is left in the heap: what remains since it started is ours.
    for (Record* r : grown) delete r;
    for (Big* b : ones) delete b;
    leakscope::Report since = leakscope::Snapshot::take() - at_start;
    expect_eq("blocks born since the monitor started and still live", (long long)since.blocks, 0);
    for (const leakscope::Site& s : since.sites) {
        std::fprintf(stderr, "  left: %zu blocks, %zu bytes, type %s\n", s.blocks, s.bytes, s.type.c_str());
        for (const leakscope::Frame& f : s.allocator_frames) std::fprintf(stderr, "    (%s %s:%u)\n", f.function.c_str(), f.file.c_str(), f.line);
        for (const leakscope::Frame& f : s.frames) std::fprintf(stderr, "    %s %s:%u\n", f.function.c_str(), f.file.c_str(), f.line);
    }
    monitor.reset();

    // A threshold keeps quiet intervals from the writers; latest() has them all the same.
    {
        std::size_t written = recorder->size();
        leakscope::Monitor::Options quiet;
        quiet.warmup_ms = 0;
        quiet.interval_ms = 30;
        quiet.threshold_bytes = 1 << 20;
        std::vector<Record*> small;
        small.reserve(10);
        leakscope::Monitor m(quiet);
        expect(wait_for([&] { return m.intervals() >= 1; }), "the first quiet interval comes");
        for (int i = 0; i < 10; ++i) small.push_back(grow());
        expect(wait_for([&] { return m.intervals() >= 3; }), "quiet intervals come");
        expect_eq("below the threshold: nothing written", (long long)recorder->size(), (long long)written);
        expect_eq("latest() has the quiet interval's blocks", blocks_at(m.latest(), grow_line), 10);
        char* big = big_block(2 << 20);   // above it
        unsigned now = m.intervals();
        expect(wait_for([&] { return m.intervals() > now; }), "an interval after the big block comes");
        expect(recorder->size() > written, "above the threshold: written");
        m.stop();
        std::vector<leakscope::Report> after = recorder->copy();
        for (std::size_t i = written; i < after.size(); ++i)
            expect(after[i].bytes >= (1u << 20), "written reports are at least the threshold", (long long)after[i].bytes, 1 << 20);
        delete[] big;
        for (Record* r : small) delete r;
    }

    // A monitor run inside a scope that counts every thread: nothing of its own is a leftover.
    {
        leakscope::Report r;
        {
            leakscope::LeakScope scope("around a monitor", leakscope::Threads::all);
            leakscope::Monitor::Options fast;
            fast.warmup_ms = 0;
            fast.interval_ms = 10;
            std::unique_ptr<leakscope::Monitor> m;
            {
                leakscope::Ignore the_handle;   // the Monitor object is ours; what it holds is not
                m = std::make_unique<leakscope::Monitor>(fast);
            }
            expect(wait_for([&] { return m->intervals() >= 3; }), "intervals inside the scope");
            expect(m->latest().interval >= 3, "latest() inside the scope");
            r = scope.leftovers();   // the monitor is running, its baseline and history are live
            m.reset();
            scope.dismiss();
        }
        expect_eq("a scope around a monitor's life has no leftovers", (long long)r.blocks, 0);
    }

    // stop() wakes the thread: it does not wait for an hour-long interval (or warm-up).
    for (unsigned warmup : {0u, 3600000u}) {
        leakscope::Monitor::Options slow;
        slow.warmup_ms = warmup;
        slow.interval_ms = 3600000;
        auto m = std::make_unique<leakscope::Monitor>(slow);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));   // let it reach its wait
        std::mutex mutex;
        std::condition_variable cv;
        bool stopped = false;
        std::thread stopper([&] {
            m->stop();
            std::lock_guard<std::mutex> lock(mutex);
            stopped = true;
            cv.notify_one();
        });
        {
            std::unique_lock<std::mutex> lock(mutex);
            expect(cv.wait_for(lock, std::chrono::seconds(30), [&] { return stopped; }), "stop() returns without waiting for the interval");
        }
        stopper.join();
        m->stop();   // idempotent
        expect_eq("no interval before stop()", m->intervals(), 0);
        expect(m->latest().kind == "monitor" && m->latest().interval == 0, "latest() before the first interval is empty");
    }

    if (failures == 0) std::puts("monitor_basic: all checks passed");
    return failures == 0 ? 0 : 1;
}
