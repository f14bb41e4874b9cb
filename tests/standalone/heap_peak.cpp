// leakscope-test-env: LEAKSCOPE_OPTIONS=track=all
// peak(): the high-water mark of the heap and the sites that held memory at that moment, exact to
// the block when each step of the growth is larger than the copy margin (1/64 of the heap). Blocks
// freed before the peak, or born after it, are not in it; a thread's blocks are; reset_peak()
// starts a new mark whose sites are those of now. Exit 0 = pass.
#include <leakscope.hpp>

#include "../support/expect.hpp"

#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr std::size_t kMiB = 1 << 20;
int small_line = 0, big_line = 0, late_line = 0, thread_line = 0;
__attribute__((noinline)) char* small_block() {
    small_line = __LINE__ + 1;
    char* p = new char[1024];
    asm volatile("" : : "g"(p) : "memory");
    return p;
}
__attribute__((noinline)) char* big_block() {
    big_line = __LINE__ + 1;
    char* p = new char[kMiB];
    std::memset(p, 1, kMiB);   // resident: the RSS check sees it
    return p;
}
__attribute__((noinline)) char* late_block() {
    late_line = __LINE__ + 1;
    char* p = new char[kMiB];
    std::memset(p, 1, kMiB);   // resident: the RSS check sees it
    return p;
}
__attribute__((noinline)) char* thread_block() {
    thread_line = __LINE__ + 1;
    char* p = new char[kMiB];
    std::memset(p, 1, kMiB);   // resident: the RSS check sees it
    return p;
}
bool from_here(const leakscope::Frame& f) {
    const char* tail = "heap_peak.cpp";
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
long long bytes_at(const leakscope::Report& r, int line) {
    const leakscope::Site* s = site_at(r, line);
    return s ? (long long)s->bytes : 0;
}
}  // namespace

int main() {
    std::vector<char*> small, big, late, held;
    small.reserve(64);
    big.reserve(64);
    late.reserve(64);
    held.reserve(64);
    for (int i = 0; i < 10; ++i) small.push_back(small_block());
    std::thread([&] {
        for (int i = 0; i < 8; ++i) held.push_back(thread_block());
    }).join();
    for (int i = 0; i < 32; ++i) big.push_back(big_block());
    std::size_t at_peak = leakscope::stats().live_bytes;
    for (char* p : big) delete[] p;
    for (int i = 0; i < 4; ++i) late.push_back(late_block());   // after the peak: not in it

    leakscope::Report r = leakscope::peak();
    expect(r.kind == "peak", "kind is peak", 0, 0);
    expect(r.bytes >= at_peak, "peak bytes cover the live bytes at the peak", (long long)r.bytes, (long long)at_peak);
    expect_eq("big blocks at the peak", blocks_at(r, big_line), 32);
    expect_eq("big bytes at the peak", bytes_at(r, big_line), 32 * (long long)kMiB);
    expect_eq("small blocks at the peak", blocks_at(r, small_line), 10);
    expect_eq("small bytes at the peak", bytes_at(r, small_line), 10 * 1024);
    expect_eq("the exited thread's blocks at the peak", blocks_at(r, thread_line), 8);
    expect_eq("blocks born after the peak", blocks_at(r, late_line), 0);
    expect(r.rss_bytes >= 40 * kMiB, "peak RSS (VmHWM) holds the 40 MiB", (long long)r.rss_bytes, 40 * (long long)kMiB);

    // A new mark: its sites are those of now (the small, late and thread blocks).
    std::size_t old = leakscope::reset_peak();
    expect(old >= at_peak, "reset_peak returns the old mark", (long long)old, (long long)at_peak);
    leakscope::Report now = leakscope::peak();
    expect_eq("after reset: big blocks", blocks_at(now, big_line), 0);
    expect_eq("after reset: late blocks", blocks_at(now, late_line), 4);
    expect_eq("after reset: small blocks", blocks_at(now, small_line), 10);
    expect(now.bytes < at_peak, "after reset: the mark is below the old peak", (long long)now.bytes, (long long)at_peak);

    for (char* p : small) delete[] p;
    for (char* p : late) delete[] p;
    for (char* p : held) delete[] p;
    if (failures == 0) std::puts("heap_peak: all checks passed");
    return failures == 0 ? 0 : 1;
}
