// How the registry recognises tracked blocks: a header in front of each block born in a scope,
// proved by the birth's log entry; the side table for blocks that cannot carry one; the detached
// log for blocks that never count. Each case checks exact counts through the public API.
#include "support.hpp"

#include <algorithm>
#include <cstdint>
#include <random>
#include <thread>

using leakscope::Report;
using test::leftovers_of;

namespace {
std::size_t live_blocks() { return leakscope::stats().live_blocks; }
std::size_t live_bytes() { return leakscope::stats().live_bytes; }
}  // namespace

TEST_CASE("extended alignments are tracked exactly, with or without room for a header", "[registry]") {
    // 2048: the block lands on a page start about half the time, and is then moved one pad up;
    // 4096 and beyond: no header fits in front of a page, so the side table keeps the block.
    for (std::size_t align : {std::size_t(32), std::size_t(2048), std::size_t(4096), std::size_t(16384)}) {
        CAPTURE(align);
        const std::size_t n = 64, size = 24;
        std::vector<void*> blocks(n);
        std::size_t blocks0 = live_blocks(), bytes0 = live_bytes();
        Report born = leftovers_of([&] {
            for (std::size_t i = 0; i < n; ++i) blocks[i] = test::opaque(::operator new(size, std::align_val_t(align)));
        });
        CHECK(born.blocks == n);
        CHECK(born.bytes == n * size);
        CHECK(live_blocks() - blocks0 == n);
        CHECK(live_bytes() - bytes0 == n * size);
        bool all_aligned = true;
        for (void* p : blocks) all_aligned = all_aligned && reinterpret_cast<std::uintptr_t>(p) % align == 0;
        CHECK(all_aligned);
        // Half die inside another scope: older blocks released there, exactly.
        Report half = leftovers_of([&] {
            for (std::size_t i = 0; i < n / 2; ++i) ::operator delete(blocks[i], std::align_val_t(align));
        });
        CHECK(half.blocks == 0);
        CHECK(half.released_blocks == n / 2);
        CHECK(half.released_bytes == n / 2 * size);
        for (std::size_t i = n / 2; i < n; ++i) ::operator delete(blocks[i], size, std::align_val_t(align));
        CHECK(live_blocks() == blocks0);
        CHECK(live_bytes() == bytes0);
    }
}

TEST_CASE("ignored blocks stay recognised through the detached log's compaction", "[registry]") {
    // Enough ignore()d blocks, dying in a shuffled order while more are ignored, that the detached
    // log compacts several times and rewrites the headers of the blocks it moves.
    const std::size_t n = 20000;
    std::vector<int*> blocks(n);
    std::size_t blocks0 = live_blocks();
    Report r = leftovers_of([&] {
        for (std::size_t i = 0; i < n; ++i) {
            blocks[i] = test::kept(new int(int(i)));
            leakscope::ignore(blocks[i]);
        }
    });
    CHECK(r.blocks == 0);
    CHECK(live_blocks() - blocks0 == n);   // ignored blocks are still live heap
    std::mt19937 rng(42);
    std::shuffle(blocks.begin(), blocks.end(), rng);
    std::vector<int*> more;
    more.reserve(n / 4 + 1);   // outside the scope: its buffer is not a birth there
    Report later = leftovers_of([&] {
        for (std::size_t i = 0; i < n; ++i) {
            delete blocks[i];
            if (i % 4 == 0) {
                more.push_back(test::kept(new int(1)));
                leakscope::ignore(more.back());
            }
        }
        for (int* p : more) delete p;
    });
    CHECK(later.blocks == 0);
    CHECK(later.released_blocks == 0);   // an ignored block is nobody's older block
    CHECK(live_blocks() == blocks0);
}

TEST_CASE("blocks born under Ignore inside a scope are never its leftovers nor anyone's released", "[registry]") {
    const std::size_t n = 1000;
    std::vector<char*> quiet(n);
    Report r = leftovers_of([&] {
        leakscope::Ignore ignore;
        for (std::size_t i = 0; i < n; ++i) quiet[i] = test::kept(new char[i % 64 + 1]);
    });
    CHECK(r.blocks == 0);
    Report later = leftovers_of([&] {
        for (char* p : quiet) delete[] p;
    });
    CHECK(later.released_blocks == 0);
}

TEST_CASE("a scope's births freed by other threads while it is open, and after it closed", "[registry]") {
    const std::size_t n = 3000;
    std::vector<long*> blocks(n);
    std::size_t blocks0 = live_blocks();
    {
        leakscope::LeakScope scope("owner");
        for (std::size_t i = 0; i < n; ++i) blocks[i] = test::kept(new long(long(i)));
        // A third die on another thread while the scope is open.
        std::thread([&] {
            for (std::size_t i = 0; i < n / 3; ++i) delete blocks[i];
        }).join();
        Report open = scope.leftovers();
        CHECK(open.blocks == n - n / 3);
        CHECK(open.bytes == (n - n / 3) * sizeof(long));
        scope.dismiss();
    }
    // The rest die on two threads after the scope closed; every one is still recognised.
    std::thread a([&] {
        for (std::size_t i = n / 3; i < 2 * n / 3; ++i) delete blocks[i];
    });
    std::thread b([&] {
        for (std::size_t i = 2 * n / 3; i < n; ++i) delete blocks[i];
    });
    a.join();
    b.join();
    CHECK(live_blocks() == blocks0);
}

TEST_CASE("a chunk whose block would start a page is kept, not handed out again and again", "[registry]") {
    // A block behind its 16-byte header cannot start a page (delete never reads in front of a page
    // start). malloc reuses the chunk freed last first, so a rejected chunk given back would come
    // back at the next birth of its size, and the next: the hook keeps it instead. Find such a
    // chunk: requests whose chunks are an odd multiple of 16 bytes reach every 16-byte position.
    void* page_start_chunk = nullptr;
    std::size_t request = 0;
    std::vector<void*> held;
    held.reserve(1 << 16);
    for (std::size_t r = 40; r <= 1000 && !page_start_chunk; r += 16) {
        for (int i = 0; i < 1024; ++i) {
            void* raw = std::malloc(r);
            if (((reinterpret_cast<std::uintptr_t>(raw) + 16) & 4095) == 0) {
                page_start_chunk = raw;
                request = r;
                break;
            }
            held.push_back(raw);
        }
    }
    REQUIRE(page_start_chunk != nullptr);
    std::free(page_start_chunk);   // freed last (the others stay held): malloc's next of this size
    const std::size_t size = request - 16;
    void* block = nullptr;
    Report born = leftovers_of([&] { block = test::opaque(::operator new(size)); });
    CHECK(born.blocks == 1);
    CHECK(born.bytes == size);
    CHECK((reinterpret_cast<std::uintptr_t>(block) & 4095) != 0);
    // Without the keeping, page_start_chunk is among the next few chunks of this size again
    // (under what the scope's close freed since).
    std::vector<void*> next(64);
    bool met_again = false;
    for (void*& raw : next) met_again = met_again || (raw = std::malloc(request)) == page_start_chunk;
    CHECK_FALSE(met_again);
    for (void* raw : next) std::free(raw);
    ::operator delete(block, size);
    for (void* raw : held) std::free(raw);
    // The scope's births go the lane's way too: none of them meets the chunk.
    Report again = leftovers_of([&] {
        for (int i = 0; i < 8; ++i) ::operator delete(test::opaque(::operator new(size)), size);
    });
    CHECK(again.blocks == 0);
}
