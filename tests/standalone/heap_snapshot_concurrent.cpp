// leakscope-test-env: LEAKSCOPE_OPTIONS=track=all
// Snapshots taken while other threads allocate and free, big blocks among them (glibc returns
// those to the kernel at once, so a header read a moment late would fault): no crash, every block
// live throughout a snapshot is in it, and once the threads have freed everything the count is
// exact again. (A snapshot of a moving heap is not one instant: a block born or dead meanwhile may
// or may not be in it.) Exit 0 = pass.
#include <leakscope.hpp>

#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

namespace {
constexpr int kThreads = 2, kLive = 64, kStable = 16;
std::atomic<bool> stop{false};
std::atomic<int> ready{0};

void churn(unsigned seed) {
    std::vector<char*> live(kLive, nullptr);
    std::vector<char*> stable(kStable);
    for (char*& p : stable) p = new char[24];   // live from before the first snapshot to after the last
    ready.fetch_add(1);
    unsigned x = seed;
    leakscope::LeakScope scope("churn");   // half the time in a scope, half in the heap slot
    while (!stop.load(std::memory_order_relaxed)) {
        x = x * 1664525u + 1013904223u;
        std::size_t k = x % kLive;
        delete[] live[k];
        std::size_t size = (x >> 8) % 8 == 0 ? (256u << 10) + (x >> 16) % 4096 : 1 + (x >> 16) % 200;
        live[k] = new char[size];
        asm volatile("" : : "g"(live[k]) : "memory");
    }
    for (char* p : live) delete[] p;
    for (char* p : stable) delete[] p;
    scope.dismiss();
}
}  // namespace

int main() {
    std::vector<std::thread> threads;
    threads.reserve(kThreads);   // before the baseline: its buffer is not the churn's
    std::size_t base = leakscope::Snapshot::take().blocks();
    for (int i = 0; i < kThreads; ++i) threads.emplace_back(churn, 17u + unsigned(i));
    int failures = 0;
    while (ready.load() < kThreads) std::this_thread::yield();
    for (int i = 0; i < 300; ++i) {
        leakscope::Snapshot s = leakscope::Snapshot::take();
        // The stable blocks (and their vectors' buffers) are live throughout: all of them in it.
        std::size_t surely = base + std::size_t(kThreads) * (kStable + 2);
        if (s.blocks() < surely) {
            std::fprintf(stderr, "FAIL: snapshot %d: %zu blocks, at least %zu live throughout\n", i, s.blocks(), surely);
            ++failures;
        }
    }
    stop.store(true);
    for (std::thread& t : threads) t.join();
    std::size_t end = leakscope::Snapshot::take().blocks();
    if (end != base) {
        std::fprintf(stderr, "FAIL: after the threads freed everything: %zu blocks, expected %zu\n", end, base);
        ++failures;
    }
    if (failures == 0) std::puts("heap_snapshot_concurrent: all checks passed");
    return failures == 0 ? 0 : 1;
}
