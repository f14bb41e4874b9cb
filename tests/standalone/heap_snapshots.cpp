// leakscope-test-env: LEAKSCOPE_OPTIONS=track=all
// track=all: every block allocated through new is tracked, with no scope open. Snapshots of the
// whole heap and their difference, exact to the block and byte, with the allocating lines; blocks
// of a thread that exited stay known. Exit 0 = pass.
#include <leakscope.hpp>

#include "../support/expect.hpp"

#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

int vehicle_line = 0, name_line = 0;
struct Vehicle {
    double lat = 0, lon = 0;
    long id = 0;
};
__attribute__((noinline)) Vehicle* make_vehicle(long id) {
    vehicle_line = __LINE__ + 1;
    Vehicle* v = new Vehicle;
    v->id = id;
    asm volatile("" : : "g"(v) : "memory");
    return v;
}
__attribute__((noinline)) char* make_name() {
    name_line = __LINE__ + 1;
    char* p = new char[10];
    asm volatile("" : : "g"(p) : "memory");
    return p;
}
bool from_here(const leakscope::Frame& f) {
    const char* tail = "heap_snapshots.cpp";
    return f.file.size() >= std::strlen(tail) && f.file.compare(f.file.size() - std::strlen(tail), std::string::npos, tail) == 0;
}
// Blocks of the sites whose allocating line (frames[0]) is `line` (several stacks may reach it).
long long blocks_at(const leakscope::Report& r, int line, bool released = false) {
    long long blocks = 0;
    for (const leakscope::Site& s : released ? r.released_sites : r.sites)
        if (!s.frames.empty() && from_here(s.frames[0]) && int(s.frames[0].line) == line) blocks += (long long)s.blocks;
    return blocks;
}
}  // namespace

int main() {
    // Room for every pointer first: the vectors' buffers are not part of what is measured.
    std::vector<Vehicle*> vehicles;
    vehicles.reserve(1000);
    std::vector<char*> names;
    names.reserve(1000);
    std::vector<long*> old_blocks;
    old_blocks.reserve(100);
    for (int i = 0; i < 7; ++i) old_blocks.push_back(new long(i));   // live before, gone after

    leakscope::Snapshot before = leakscope::Snapshot::take();
    for (long i = 0; i < 100; ++i) vehicles.push_back(make_vehicle(i));
    for (int i = 0; i < 50; ++i) names.push_back(make_name());
    for (int i = 0; i < 20; ++i) delete vehicles[std::size_t(i)];   // born and died in between: not in the diff
    for (long* p : old_blocks) delete p;
    // A thread's blocks outlive it.
    std::thread([&] {
        for (int i = 0; i < 10; ++i) names.push_back(make_name());
    }).join();
    leakscope::Snapshot after = leakscope::Snapshot::take();

    leakscope::Report diff = after - before;
    expect(diff.kind == "diff", "kind is diff", 0, 0);
    expect_eq("diff blocks", (long long)diff.blocks, 80 + 60);
    expect_eq("diff bytes", (long long)diff.bytes, 80 * (long long)sizeof(Vehicle) + 60 * 10);
    expect_eq("released blocks", (long long)diff.released_blocks, 7);
    expect_eq("released bytes", (long long)diff.released_bytes, 7 * (long long)sizeof(long));
    expect_eq("snapshot growth in blocks", (long long)after.blocks() - (long long)before.blocks(), 140 - 7);
    expect_eq("blocks allocated at make_vehicle's line", blocks_at(diff, vehicle_line), 80);
    expect_eq("blocks allocated at make_name's line (both threads)", blocks_at(diff, name_line), 60);

    // The other way round: what died is the minus side.
    for (std::size_t i = 20; i < vehicles.size(); ++i) delete vehicles[i];
    for (char* p : names) delete[] p;
    leakscope::Snapshot end = leakscope::Snapshot::take();
    leakscope::Report back = end - after;
    expect_eq("after freeing: born", (long long)back.blocks, 0);
    expect_eq("after freeing: released blocks", (long long)back.released_blocks, 140);
    expect_eq("after freeing: released bytes", (long long)back.released_bytes, 80 * (long long)sizeof(Vehicle) + 600);
    expect_eq("released at make_vehicle's line", blocks_at(back, vehicle_line, true), 80);
    expect_eq("released at make_name's line", blocks_at(back, name_line, true), 60);
    expect_eq("first diff: released sites are the old longs'", (long long)diff.released_sites.size(), 1);
    expect(diff.released_sites.size() == 1 && diff.released_sites[0].blocks == 7 &&
               diff.released_sites[0].bytes == 7 * sizeof(long),
           "the released site holds the 7 longs", 0, 0);

    expect_eq("stats agree with the snapshot", (long long)leakscope::stats().live_blocks, (long long)end.blocks());

    // heap(): the whole live heap by site, with the resident set.
    std::vector<Vehicle*> held;
    held.reserve(30);
    for (long i = 0; i < 30; ++i) held.push_back(make_vehicle(i));
    leakscope::Report now = leakscope::heap();
    expect(now.kind == "heap", "kind is heap", 0, 0);
    expect_eq("heap(): blocks at make_vehicle's line", blocks_at(now, vehicle_line), 30);
    expect_eq("heap() totals agree with stats", (long long)now.blocks, (long long)leakscope::stats().live_blocks);
    expect(now.rss_bytes > 0, "heap() gives the resident set", (long long)now.rss_bytes, 1);
    for (Vehicle* v : held) delete v;

    // A big heap, in two threads' arenas (addresses far apart) and of many sizes: a snapshot
    // orders its blocks by address (a radix sort past 512 blocks), and the diff's merge of two
    // snapshots is exact only if both are in order.
    {
        std::vector<char*> big(20000);
        for (std::size_t i = 0; i < big.size() / 2; ++i) big[i] = new char[8 + (i * 37) % 5000];
        std::thread([&] {
            for (std::size_t i = big.size() / 2; i < big.size(); ++i) big[i] = new char[8 + (i * 37) % 5000];
        }).join();
        std::vector<char*> fresh(3000);
        leakscope::Snapshot full = leakscope::Snapshot::take();
        long long freed = 0, freed_bytes = 0;
        for (std::size_t i = 0; i < big.size(); i += 3) {
            delete[] big[i];
            big[i] = nullptr;
            ++freed;
            freed_bytes += (long long)(8 + (i * 37) % 5000);
        }
        for (char*& p : fresh) p = new char[24];
        leakscope::Snapshot later = leakscope::Snapshot::take();
        leakscope::Report grew = later - full;
        expect_eq("big heap: born between the snapshots", (long long)grew.blocks, 3000);
        expect_eq("big heap: bytes born", (long long)grew.bytes, 3000 * 24);
        expect_eq("big heap: released blocks", (long long)grew.released_blocks, freed);
        expect_eq("big heap: released bytes", (long long)grew.released_bytes, freed_bytes);
        leakscope::Report shrank = full - later;   // the other way round: the sides swap
        expect_eq("big heap, reversed: born", (long long)shrank.blocks, freed);
        expect_eq("big heap, reversed: released", (long long)shrank.released_blocks, 3000);
        expect_eq("big heap: snapshot sizes", (long long)later.blocks() - (long long)full.blocks(), 3000 - freed);
        for (char* p : big) delete[] p;
        for (char* p : fresh) delete[] p;
    }

    if (failures == 0) std::puts("heap_snapshots: all checks passed");
    return failures == 0 ? 0 : 1;
}
