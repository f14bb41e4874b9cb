// The floor of exact tracking over malloc: a model of the least any tracker must do per
// allocate/free pair if it knows every live block (a scope's leftovers are exact) and lists a
// scope's leftovers in O(its own births), with malloc underneath. Not leakscope's code: a
// yardstick for it (bench_core and bench_unhooked time it, bench/instructions.sh counts its instructions).
//
// Per birth: the interposed call, one thread-local check, malloc of 16 more bytes, a header
// (where the birth is logged, and the size), an entry in the thread's birth log, two counters.
// Per death: the call, the check, the header read, the log entry compared (the header alone is
// only a claim: the 16 bytes before a block that was never tracked are malloc's or a
// neighbour's) and cleared, two counters, free.
//
// Everything a real tracker needs beyond that is left out, so the model is a lower bound:
// no stacks, no scopes (one per thread, always open), no other thread's frees, no nesting, no
// leakscope-internal or ignored allocations, no alignment beyond malloc's, no whole-heap totals or
// peak, no sampling, no log chunks (one fixed array whose tail is trimmed as births die, which a
// LIFO loop keeps at one entry), and the cheapest header tag (one constant byte).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace floor_model {

struct Thread {
    bool tracking;            // a scope is open on this thread
    std::uint32_t log_size;   // births logged (the tail trimmed as they die)
    std::uint64_t live_blocks, live_bytes;
    std::uintptr_t log[4096];
};
inline thread_local Thread state;   // zero-initialised: no constructor on the hot path
constexpr std::uint64_t kTag = 0x5b;

[[noreturn]] __attribute__((noinline, cold)) inline void out_of_log() { throw std::bad_alloc(); }

__attribute__((noinline)) inline void* allocate(std::size_t n) {
    Thread& t = state;
    if (!t.tracking) {
        void* p = std::malloc(n ? n : 1);
        if (!p) throw std::bad_alloc();
        return p;
    }
    auto* raw = static_cast<std::uint64_t*>(std::malloc(n + 16));
    if (!raw) throw std::bad_alloc();
    std::uint32_t seq = t.log_size;
    if (seq == sizeof t.log / sizeof t.log[0]) out_of_log();
    auto p = reinterpret_cast<std::uintptr_t>(raw + 2);
    t.log[seq] = p;
    t.log_size = seq + 1;
    raw[0] = std::uint64_t(seq) << 8 | kTag;
    raw[1] = n;
    ++t.live_blocks;
    t.live_bytes += n;
    return raw + 2;
}

__attribute__((noinline)) inline void deallocate(void* block) noexcept {
    if (!block) return;
    Thread& t = state;
    if (t.tracking) {
        auto p = reinterpret_cast<std::uintptr_t>(block);
        const auto* header = static_cast<const std::uint64_t*>(block) - 2;
        // (A block that starts a page has no header: the bytes before it may be unmapped.)
        std::uint64_t where = (p & 4095) != 0 ? header[0] : 0;
        std::uint32_t seq = std::uint32_t(where >> 8);
        if ((where & 0xff) == kTag && seq < t.log_size && t.log[seq] == p) {
            t.log[seq] = 0;
            if (seq + 1 == t.log_size) t.log_size = seq;
            --t.live_blocks;
            t.live_bytes -= header[1];
            std::free(const_cast<std::uint64_t*>(header));
            return;
        }
    }
    std::free(block);
}

}  // namespace floor_model
