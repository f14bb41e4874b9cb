// sample_bytes=N switched on and off at run time: outside scopes, one block per N bytes on
// average is tracked, and heap reports estimate the whole from them within the error they state;
// a block much larger than N is always sampled (so it is exact); scopes stay exact; freed
// sampled blocks leave the estimate; sample_bytes=0 returns to exact whole-heap tracking.
// Exit 0 = pass.
#include <leakscope.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {
int failures = 0;
void expect(bool ok, const char* what, double got, double want) {
    if (ok) return;
    std::fprintf(stderr, "FAIL: %s: got %.0f, expected %.0f\n", what, got, want);
    ++failures;
}
void expect_eq(const char* what, long long got, long long want) { expect(got == want, what, double(got), double(want)); }

int small_line = 0, big_line = 0, exact_line = 0, scoped_line = 0;
__attribute__((noinline)) long* small_block() {
    small_line = __LINE__ + 1;
    long* p = new long[8];   // 64 bytes
    asm volatile("" : : "g"(p) : "memory");
    return p;
}
__attribute__((noinline)) char* big_block() {
    big_line = __LINE__ + 1;
    char* p = new char[4 << 20];   // 64 sample intervals: sampled with probability 1 - e^-64
    asm volatile("" : : "g"(p) : "memory");
    return p;
}
__attribute__((noinline)) int* exact_block() {
    exact_line = __LINE__ + 1;
    int* p = new int(7);
    asm volatile("" : : "g"(p) : "memory");
    return p;
}
__attribute__((noinline)) short* scoped_block() {
    scoped_line = __LINE__ + 1;
    short* p = new short(1);
    asm volatile("" : : "g"(p) : "memory");
    return p;
}
bool from_here(const leakscope::Frame& f) {
    const char* tail = "heap_sampled.cpp";
    return f.file.size() >= std::strlen(tail) && f.file.compare(f.file.size() - std::strlen(tail), std::string::npos, tail) == 0;
}
leakscope::Site site_at(const leakscope::Report& r, int line) {
    leakscope::Site all;
    for (const leakscope::Site& s : r.sites)
        if (!s.frames.empty() && from_here(s.frames[0]) && int(s.frames[0].line) == line) {
            all.blocks += s.blocks;
            all.bytes += s.bytes;
            all.samples += s.samples;
        }
    return all;
}
}  // namespace

int main() {
    constexpr std::size_t kSmall = 200000;
    std::vector<long*> small;
    small.reserve(kSmall);
    std::vector<char*> big;
    big.reserve(8);
    std::vector<int*> exact;
    exact.reserve(64);

    leakscope::configure("sample_bytes=64K");
    for (std::size_t i = 0; i < kSmall; ++i) small.push_back(small_block());
    for (int i = 0; i < 3; ++i) big.push_back(big_block());

    // A scope stays exact while sampling is on.
    std::vector<short*> kept;
    kept.reserve(16);
    {
        leakscope::LeakScope scope("sampled-but-exact");
        for (int i = 0; i < 7; ++i) kept.push_back(scoped_block());
        leakscope::Report r = scope.leftovers();
        expect_eq("scope leftovers are exact", (long long)r.blocks, 7);
        expect_eq("scope leftover bytes are exact", (long long)r.bytes, 7 * (long long)sizeof(short));
        expect_eq("scope report is not sampled", (long long)r.sample_bytes, 0);
        scope.dismiss();
    }

    leakscope::Report heap = leakscope::heap();
    expect_eq("the report says it was sampled, and how", (long long)heap.sample_bytes, 65536);
    leakscope::Site s = site_at(heap, small_line);
    double truth = double(kSmall * 8 * sizeof(long));
    // Theory: about truth / 64K = 195 samples; the estimate's error is about 1/sqrt(samples).
    expect(s.samples > 100 && s.samples < 320, "samples behind the small blocks' estimate", double(s.samples), 195);
    double sigma = heap.error * double(heap.bytes);
    expect(heap.error > 0.02 && heap.error < 0.2, "stated relative error (x1000)", heap.error * 1000, 70);
    expect(std::fabs(double(s.bytes) - truth) <= 5 * sigma,
           "small blocks' bytes estimate within 5 stated sigma", double(s.bytes), truth);
    expect(std::fabs(double(s.blocks) - double(kSmall)) <= 5 * sigma / 64, "small blocks' count estimate",
           double(s.blocks), double(kSmall));
    leakscope::Site b = site_at(heap, big_line);
    expect_eq("big blocks: always sampled, so exact", (long long)b.blocks, 3);
    expect_eq("big bytes: exact", (long long)b.bytes, 3LL * (4 << 20));
    expect_eq("big blocks: one sample each", (long long)b.samples, 3);

    // Freed sampled blocks leave the estimate.
    for (long* p : small) delete[] p;
    leakscope::Report after = leakscope::heap();
    expect_eq("freed small blocks are gone from the estimate", (long long)site_at(after, small_line).blocks, 0);
    expect_eq("big blocks still there", (long long)site_at(after, big_line).blocks, 3);

    // Off again: every block, exactly.
    leakscope::configure("sample_bytes=0");
    for (int i = 0; i < 50; ++i) exact.push_back(exact_block());
    leakscope::Report exact_heap = leakscope::heap();
    leakscope::Site e = site_at(exact_heap, exact_line);
    expect_eq("after sample_bytes=0: blocks exact", (long long)e.blocks, 50);
    expect_eq("after sample_bytes=0: not samples", (long long)e.samples, 0);
    expect_eq("the sampled big blocks are still estimated", (long long)site_at(exact_heap, big_line).blocks, 3);

    // track=sample (the design's key): sampling at the default 524288 when sample_bytes is 0.
    leakscope::configure("track=sample");
    char* huge[2] = {big_block(), big_block()};   // 8 intervals each: one is sampled but for ~1e-7
    leakscope::Report sampled_again = leakscope::heap();
    expect_eq("track=sample samples at the default interval", (long long)sampled_again.sample_bytes, 524288);
    for (char* p : huge) delete[] p;
    leakscope::configure("sample_bytes=0");

    for (char* p : big) delete[] p;
    for (int* p : exact) delete p;
    for (short* p : kept) delete p;
    if (failures == 0) std::puts("heap_sampled: all checks passed");
    return failures == 0 ? 0 : 1;
}
