// leakscope-test-env: LEAKSCOPE_OPTIONS=track=all stacks=off
// A heap slot lives as long as its thread, so its birth log must be reused, not only grown:
// blocks born on one thread and freed on another (a producer and its consumer) leave the tracker's
// memory bounded by what is live, not by the births so far; and blocks logged in reused positions
// are counted exactly (snapshots, stats) while long-lived ones die out of order. Exit 0 = pass.
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include "../support/expect.hpp"

#include <cstdio>
#include <random>
#include <thread>
#include <vector>

namespace {

// A batch born here and freed on another thread: every death is a remote one.
void produce_and_hand_over(std::vector<char*>& batch) {
    for (char*& p : batch) {
        p = new char[24];
        asm volatile("" : : "g"(p) : "memory");
    }
    std::thread([&batch] {
        for (char* p : batch) delete[] p;
    }).join();
}
}  // namespace

int main() {
    std::vector<char*> batch(4096);
    for (int i = 0; i < 20; ++i) produce_and_hand_over(batch);   // warm: threads, chunks, lists
    std::size_t before = leakscope::stats().tracker_bytes;
    std::size_t live_before = leakscope::stats().live_blocks;
    for (int i = 0; i < 400; ++i) produce_and_hand_over(batch);   // 1.6M births, all freed remotely
    std::size_t after = leakscope::stats().tracker_bytes;
    // Growing, the log would have taken 8 bytes per birth: 13 MB.
    expect(after <= before + (256u << 10), "tracker bytes grow by at most 256 KiB over 1.6M remote deaths",
           (long long)(after - before), 256 << 10);
    expect(leakscope::stats().live_blocks == live_before, "live blocks back where they were",
           (long long)leakscope::stats().live_blocks, (long long)live_before);

    // Long-lived blocks among short-lived ones, freed in random order: positions are reused
    // while some of them live, and the counts stay exact.
    std::vector<char*> kept;
    kept.reserve(20000);   // before the base snapshot: its buffer is not one of the counted blocks
    leakscope::Snapshot base = leakscope::Snapshot::take();
    for (int i = 0; i < 20000; ++i) {
        for (int k = 0; k < 50; ++k) {
            char* p = new char[16];
            asm volatile("" : : "g"(p) : "memory");
            delete[] p;
        }
        kept.push_back(new char[40]);
    }
    std::mt19937 random(7);
    for (int round = 0; round < 4; ++round) {
        std::shuffle(kept.begin(), kept.end(), random);
        for (std::size_t i = 0; i < kept.size() / 2; ++i) delete[] kept[i];
        kept.erase(kept.begin(), kept.begin() + std::ptrdiff_t(kept.size() / 2));
        for (int i = 0; i < 5000; ++i) {   // more births into the positions just emptied
            for (int k = 0; k < 20; ++k) {
                char* p = new char[16];
                asm volatile("" : : "g"(p) : "memory");
                delete[] p;
            }
            kept.push_back(new char[40]);
        }
        leakscope::Snapshot now = leakscope::Snapshot::take();
        leakscope::Report grown = now - base;
        expect(grown.blocks == kept.size(), "snapshot diff counts exactly the kept blocks", (long long)grown.blocks,
               (long long)kept.size());
        expect(grown.bytes == kept.size() * 40, "and their bytes", (long long)grown.bytes, (long long)kept.size() * 40);
        expect(grown.released_blocks == 0, "no block of the base is gone", (long long)grown.released_blocks, 0);
    }
    for (char* p : kept) delete[] p;
    leakscope::Report none = leakscope::Snapshot::take() - base;
    expect(none.blocks == 0, "nothing left after freeing them all", (long long)none.blocks, 0);

    if (failures == 0)
        std::printf("heap_log_reuse: all checks passed (tracker bytes %zu -> %zu over 1.6M remote deaths)\n", before,
                    after);
    return failures == 0 ? 0 : 1;
}
