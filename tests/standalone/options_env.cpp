// leakscope-test-env: LEAKSCOPE_OPTIONS=stacks=off:bogus=1:stack_depth=4
// LEAKSCOPE_OPTIONS is read once, at the tracker's first use (here: before main), and a malformed
// entry in it does not stop the others from applying. Code can then override it. Exit 0 = pass.
#include <leakscope.hpp>

#include <cstdio>

namespace {
__attribute__((noinline)) int* allocate_one() {
    int* p = new int(1);
    asm volatile("" : : "g"(p) : "memory");
    return p;
}
__attribute__((noinline)) int* deeper(int n) {
    int* p = n ? deeper(n - 1) : allocate_one();
    asm volatile("" ::: "memory");
    return p;
}
std::size_t frames_of_one_leak() {
    leakscope::LeakScope scope("env");
    int* p = deeper(8);
    leakscope::Report r = scope.leftovers();
    delete p;
    if (r.sites.size() != 1) return 999;
    std::size_t addresses = 0;   // captured addresses: frames that are not inlined into the next
    for (const leakscope::Frame& f : r.sites[0].frames) addresses += !f.inlined;
    return addresses;
}
}  // namespace

int main() {
    int failures = 0;
    std::size_t n = frames_of_one_leak();
    if (n != 0) {
        std::fprintf(stderr, "FAIL: stacks=off from LEAKSCOPE_OPTIONS: %zu frames\n", n);
        ++failures;
    }
    leakscope::configure("stacks=on");   // stack_depth=4 from the environment still holds
    n = frames_of_one_leak();
    if (n != 4) {
        std::fprintf(stderr, "FAIL: stack_depth=4 from LEAKSCOPE_OPTIONS: %zu frames\n", n);
        ++failures;
    }
    std::printf("%s\n", failures ? "FAILED" : "ok: LEAKSCOPE_OPTIONS applied (the bogus entry was reported above)");
    return failures ? 1 : 0;
}
