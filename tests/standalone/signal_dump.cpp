// leakscope-test-env: LEAKSCOPE_OPTIONS=signal=USR2
// signal=USR2 from the environment: the handler is installed before main (no configure() call),
// the whole heap is tracked (signal= implies track=all), and a SIGUSR2 — raised on this thread,
// sent to the process from another one, or a burst of them — makes a heap report reach the
// writer, with the exact blocks at the allocating line, followed by the peak report. Exit 0 = pass.
#include <leakscope.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {
int failures = 0;
void expect(bool ok, const char* what, long long got = 0, long long want = 0) {
    if (ok) return;
    std::fprintf(stderr, "FAIL: %s: got %lld, expected %lld\n", what, got, want);
    ++failures;
}

int node_line = 0;
struct Node {
    Node* next;
    long payload[5];
};
__attribute__((noinline)) Node* make_node(Node* next) {
    node_line = __LINE__ + 1;
    Node* n = new Node{next, {}};
    asm volatile("" : : "g"(n) : "memory");
    return n;
}
bool from_here(const leakscope::Frame& f) {
    const char* tail = "signal_dump.cpp";
    return f.file.size() >= std::strlen(tail) && f.file.compare(f.file.size() - std::strlen(tail), std::string::npos, tail) == 0;
}
long long blocks_at(const leakscope::Report& r, int line) {
    long long blocks = 0;
    for (const leakscope::Site& s : r.sites)
        if (!s.frames.empty() && from_here(s.frames[0]) && int(s.frames[0].line) == line) blocks += (long long)s.blocks;
    return blocks;
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
    leakscope::Report at(std::size_t i) {
        std::lock_guard<std::mutex> lock(mutex);
        return reports.at(i);
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

// One dump: a heap report then a peak report, both after `from`. Returns the heap report.
leakscope::Report next_dump(Recorder& rec, std::size_t from, const char* what) {
    bool came = wait_for([&] { return rec.size() >= from + 2; });
    expect(came, what);
    if (!came) return {};
    leakscope::Report heap = rec.at(from), peak = rec.at(from + 1);
    expect(heap.kind == "heap", "the dump's first report is the heap");
    expect(peak.kind == "peak", "the dump's second report is the peak");
    expect(heap.rss_bytes > 0, "the heap report has the resident set");
    return heap;
}
}  // namespace

int main() {
    struct sigaction now;
    sigaction(SIGUSR2, nullptr, &now);
    expect((now.sa_flags & SA_SIGINFO) && now.sa_sigaction != nullptr, "the handler is installed before main");
    expect((now.sa_flags & SA_RESTART) != 0, "the handler restarts interrupted calls");

    auto rec = std::make_shared<Recorder>();
    leakscope::set_writers({rec});
    Node* list = nullptr;
    for (int i = 0; i < 25; ++i) list = make_node(list);   // no scope: tracked by signal='s track=all

    errno = 1234;
    raise(SIGUSR2);
    expect(errno == 1234, "the handler keeps errno", errno, 1234);
    leakscope::Report heap = next_dump(*rec, 0, "a heap report after raise(SIGUSR2)");
    expect(blocks_at(heap, node_line) == 25, "the heap report's blocks at make_node's line", blocks_at(heap, node_line), 25);

    // Sent to the process from another thread: some thread of the program takes it.
    for (int i = 0; i < 10; ++i) {
        Node* n = list;
        list = list->next;
        delete n;
    }
    std::size_t before = rec->size();
    std::thread([] { kill(getpid(), SIGUSR2); }).join();
    heap = next_dump(*rec, before, "a heap report after kill(getpid(), SIGUSR2)");
    expect(blocks_at(heap, node_line) == 15, "blocks at make_node's line after 10 were freed", blocks_at(heap, node_line), 15);

    // A burst: at least one dump, each a heap and a peak report, and the program lives on.
    before = rec->size();
    for (int i = 0; i < 50; ++i) raise(SIGUSR2);
    next_dump(*rec, before, "a dump after a burst of signals");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    std::size_t after = rec->size();
    expect((after - before) % 2 == 0 && after - before >= 2 && after - before <= 100, "whole dumps, at most one per signal",
           (long long)(after - before), 2);
    for (std::size_t i = before; i < after; ++i)
        expect(rec->at(i).kind == ((i - before) % 2 == 0 ? "heap" : "peak"), "heap, then peak, in each dump");

    while (list) {
        Node* n = list;
        list = list->next;
        delete n;
    }
    if (failures == 0) std::puts("signal_dump: all checks passed");
    return failures == 0 ? 0 : 1;
}
