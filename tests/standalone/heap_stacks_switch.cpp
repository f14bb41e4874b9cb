// stacks= switched at run time under track=all: blocks born outside every scope from then on
// carry their allocating stack, or do not, as asked — on a thread whose heap slot was opened
// before the switch (the main thread) and on one started after it — while the blocks born before
// keep what they had, and every block is still counted exactly once. Exit 0 = pass.
#include <leakscope.hpp>

#include "../support/expect.hpp"

#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {
int block_line = 0;
__attribute__((noinline)) int* make_block() {
    block_line = __LINE__ + 1;
    int* p = new int(5);
    asm volatile("" : : "g"(p) : "memory");
    return p;
}
// A block of its own size, so that the report's stackless site can be told from others'.
struct Marked {
    char bytes[4000];
};
__attribute__((noinline)) Marked* make_marked() {
    Marked* p = new Marked;
    asm volatile("" : : "g"(p) : "memory");
    return p;
}

// 64 sampling intervals at sample_bytes=64K: sampled but for a chance of e^-64.
int big_line = 0;
__attribute__((noinline)) char* make_big() {
    big_line = __LINE__ + 1;
    char* p = new char[4 << 20];
    asm volatile("" : : "g"(p) : "memory");
    return p;
}

bool from_here(const leakscope::Frame& f) {
    const char* tail = "heap_stacks_switch.cpp";
    return f.file.size() >= std::strlen(tail) && f.file.compare(f.file.size() - std::strlen(tail), std::string::npos, tail) == 0;
}
// Blocks of make_block's line with a stack, and 4000-byte blocks with none (only Marked blocks
// are that size here).
struct Count {
    long long with_stack = 0, marked_without = 0, big_with_stack = 0;
};
Count count(const leakscope::Report& r) {
    Count c;
    for (const leakscope::Site& s : r.sites) {
        if (!s.frames.empty() && from_here(s.frames[0]) && int(s.frames[0].line) == block_line) c.with_stack += s.blocks;
        if (!s.frames.empty() && from_here(s.frames[0]) && int(s.frames[0].line) == big_line) c.big_with_stack += s.blocks;
        if (s.frames.empty()) c.marked_without += s.bytes / sizeof(Marked);
    }
    return c;
}
}  // namespace

int main() {
    std::vector<int*> ints;
    ints.reserve(64);
    std::vector<Marked*> marked;
    marked.reserve(64);

    leakscope::configure("track=all stacks=off");
    for (int i = 0; i < 3; ++i) marked.push_back(make_marked());   // the main thread's heap slot opens here
    Count c = count(leakscope::heap());
    expect_eq("stacks=off: blocks without a stack", c.marked_without, 3);

    leakscope::configure("stacks=on");
    for (int i = 0; i < 5; ++i) ints.push_back(make_block());
    std::thread([&] {
        for (int i = 0; i < 7; ++i) ints.push_back(make_block());
    }).join();
    c = count(leakscope::heap());
    expect_eq("after stacks=on: the new blocks carry their stack (both threads)", c.with_stack, 12);
    expect_eq("after stacks=on: the blocks from before keep none", c.marked_without, 3);

    leakscope::configure("stacks=off");
    for (int i = 0; i < 2; ++i) marked.push_back(make_marked());
    c = count(leakscope::heap());
    expect_eq("stacks=off again: new blocks without a stack", c.marked_without, 5);
    expect_eq("stacks=off again: the stacked blocks keep theirs", c.with_stack, 12);

    // Sampling: the sample slot follows the setting too.
    leakscope::configure("sample_bytes=64K");
    char* big[2] = {make_big(), nullptr};
    c = count(leakscope::heap());
    expect_eq("sampled under stacks=off: no stack", c.big_with_stack, 0);
    leakscope::configure("stacks=on");
    big[1] = make_big();
    c = count(leakscope::heap());
    expect_eq("sampled after stacks=on: the new block's stack", c.big_with_stack, 1);
    for (char* p : big) delete[] p;
    leakscope::configure("sample_bytes=0");

    // Every block exactly once, whichever heap slot it was born in, and gone when freed.
    for (int* p : ints) delete p;
    for (Marked* p : marked) delete p;
    c = count(leakscope::heap());
    expect_eq("all freed: no stacked block left", c.with_stack, 0);
    expect_eq("all freed: no stackless block left", c.marked_without, 0);
    leakscope::configure("track=scopes");
    if (failures == 0) std::puts("heap_stacks_switch: all checks passed");
    return failures == 0 ? 0 : 1;
}
