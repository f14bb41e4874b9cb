// A snapshot keeps its blocks ordered by birth_before (address, then scope and position in its
// log): the difference of two snapshots is a merge of the two orders. Past 512 blocks the order
// comes from a radix sort on the address; here it must equal a comparison sort's, record for
// record, for addresses of every shape: random, two arenas far apart, unaligned, near the top of
// the address space, all equal, and for every size around the switch between the two sorts.
// Exit 0 = pass.
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include "../support/expect.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

using leakscope::detail::Record;

namespace {

// Distinct (address, scope, seq) triples: the sorted order is then unique.
std::vector<Record> make_records(std::size_t n, int shape, std::mt19937_64& random) {
    std::vector<Record> out(n);
    for (std::size_t i = 0; i < n; ++i) {
        Record& r = out[i];
        std::uint64_t x = random();
        switch (shape) {
            case 0: r.addr = (x & 0x0000ffffffffffffull) & ~std::uint64_t(15); break;           // 48-bit, aligned
            case 1: r.addr = ((i % 2) ? 0x7f0000000000ull : 0x550000000000ull) + (x % 5000000) * 16; break;
            case 2: r.addr = 0x10000 + x % 100000; break;                                        // unaligned, close
            case 3: r.addr = ~std::uint64_t(0) - (x % (std::uint64_t(1) << 40)); break;          // the very top
            case 4: r.addr = 0x7f1234567890ull; break;                                           // all equal
            default: r.addr = 0x600000000000ull + (x % 64) * 16; break;                          // few, repeated
        }
        r.scope = std::uint32_t(x >> 48) % 7;
        r.seq = std::uint32_t(i);   // unique: no two records compare equal
        r.size = i;
        r.stack = std::uint32_t(i * 3);
        r.flags = 0;
    }
    return out;
}

bool same(const Record& a, const Record& b) {
    return a.addr == b.addr && a.scope == b.scope && a.seq == b.seq && a.size == b.size && a.stack == b.stack;
}

}  // namespace

int main() {
    std::mt19937_64 random(12345);
    const std::size_t sizes[] = {0, 1, 2, 511, 512, 513, 2047, 5000, 100000};
    for (int shape = 0; shape < 6; ++shape) {
        for (std::size_t n : sizes) {
            std::vector<Record> input = make_records(n, shape, random);
            std::vector<Record> expected = input;
            std::sort(expected.begin(), expected.end(), leakscope::detail::birth_before);
            std::vector<Record> scratch = input, got(n);
            leakscope::detail::sort_by_birth(scratch.data(), got.data(), n);
            std::size_t wrong = 0;
            for (std::size_t i = 0; i < n; ++i)
                if (!same(got[i], expected[i])) ++wrong;
            char what[96];
            std::snprintf(what, sizeof what, "shape %d, %zu records: records out of order", shape, n);
            expect_eq(what, (long long)wrong, 0);
        }
    }
    if (failures == 0) std::puts("heap_snapshot_order: all checks passed");
    return failures == 0 ? 0 : 1;
}
