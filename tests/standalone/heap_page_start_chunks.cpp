// leakscope-test-env: LEAKSCOPE_OPTIONS=track=all stacks=off
// A block whose malloc chunk would put it at a page start can carry no header, so its chunk is
// kept aside (parked) and the birth takes another. Under a big tracked heap the page starts run
// into the thousands; a fixed allowance of parked chunks used to run out (~120,000 blocks of 32
// bytes), and then the page-start chunk, freed, came back from malloc at every birth of its size:
// every such birth took the slow path and three mallocs. This builds a heap of 400,000 tracked
// blocks and counts malloc's calls (the test replaces malloc; not under a sanitizer, which
// replaces it itself): one per new, while building the heap and in new/delete pairs of several
// sizes after it. The counts stay exact throughout. Exit 0 = pass.
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include "../support/expect.hpp"

#include <cstddef>
#include <cstdio>
#include <vector>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define COUNTS_MALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define COUNTS_MALLOC 0
#endif
#endif
#ifndef COUNTS_MALLOC
#define COUNTS_MALLOC 1
#endif

#if COUNTS_MALLOC
extern "C" void* __libc_malloc(std::size_t);
namespace {
long g_mallocs = 0;   // (one thread)
}
extern "C" void* malloc(std::size_t n) {
    ++g_mallocs;
    return __libc_malloc(n);
}
#endif

namespace {
long mallocs() {
#if COUNTS_MALLOC
    return g_mallocs;
#else
    return 0;
#endif
}
constexpr long kHeapBlocks = 400000;
constexpr long kPairs = 20000;
}  // namespace

int main() {
    std::vector<char*> heap;
    heap.reserve(kHeapBlocks);   // before the count: the buffer is not one of the blocks below
    const std::size_t live_before = leakscope::stats().live_blocks;

    long calls = mallocs();
    for (long i = 0; i < kHeapBlocks; ++i) {
        char* p = new char[32];
        asm volatile("" : : "g"(p) : "memory");
        heap.push_back(p);
    }
    calls = mallocs() - calls;
    expect(leakscope::stats().live_blocks == live_before + std::size_t(kHeapBlocks),
           "the heap's blocks are all tracked", (long long)leakscope::stats().live_blocks,
           (long long)(live_before + std::size_t(kHeapBlocks)));
    if (COUNTS_MALLOC) {
        // Each page start met costs one malloc more (the chunk parked, another taken): ~1 in 85
        // births of 48-byte chunks.
        expect(calls <= kHeapBlocks + kHeapBlocks / 50, "building the heap: one malloc per new, and one per page start",
               calls, kHeapBlocks + kHeapBlocks / 50);
    }

    for (std::size_t size : {std::size_t(32), std::size_t(24), std::size_t(100), std::size_t(1000), std::size_t(3000)}) {
        calls = mallocs();
        for (long k = 0; k < kPairs; ++k) {
            char* p = new char[size];
            asm volatile("" : : "g"(p) : "memory");
            delete[] p;
        }
        calls = mallocs() - calls;
        if (COUNTS_MALLOC) {
            char what[96];
            std::snprintf(what, sizeof what, "new/delete pairs of %zu bytes under the heap: one malloc per new", size);
            expect(calls <= kPairs + 4, what, calls, kPairs + 4);
        }
    }
    expect(leakscope::stats().live_blocks == live_before + std::size_t(kHeapBlocks), "the pairs left nothing live",
           (long long)leakscope::stats().live_blocks, (long long)(live_before + std::size_t(kHeapBlocks)));

    for (char* p : heap) delete[] p;
    expect(leakscope::stats().live_blocks == live_before, "every block of the heap died",
           (long long)leakscope::stats().live_blocks, (long long)live_before);
    if (failures == 0) std::printf("heap_page_start_chunks: ok\n");
    return failures == 0 ? 0 : 1;
}
