// Attribution: frames[0] is the user's allocating line (leakscope's and the standard library's
// allocation plumbing trimmed into Site::allocator_frames, at -O0 and where -O2 inlined the user's
// line into library frames), the allocated type inferred from those frames or tagged, grouping by
// the top frames, and suppression rules — all with exact counts and exact lines (__LINE__ written
// on the allocating line itself). Symbolization itself is checked against addr2line by
// tests/symbolize; bad input by tests/standalone/attrib_*.cpp.
#include "support.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

using leakscope::Report;
using leakscope::Site;

namespace attrib_test {

struct FloatingVehicle {
    long id[4];
};
struct Vehicle {};

// Where the blocks of a leftovers_of() body go, so the optimiser keeps them.
struct Keep {
    std::shared_ptr<FloatingVehicle> shared;
    std::vector<int>* vector = nullptr;
    std::map<int, long>* map = nullptr;
    std::unordered_map<int, long>* hash = nullptr;
    std::string* string = nullptr;
    void clear() {
        shared.reset();
        delete vector;
        delete map;
        delete hash;
        delete string;
        vector = nullptr;
        map = nullptr;
        hash = nullptr;
        string = nullptr;
    }
};

// A chain for suppression rules: leak_here <- caller_a / caller_b.
__attribute__((noinline)) void* leak_here(int n) {
    void* p = test::kept(::operator new(16));
    test::escape(&n);
    return p;
}
__attribute__((noinline)) void caller_a(std::vector<void*>& out, int n) {
    for (int i = 0; i < test::opaque(&n)[0]; ++i) out.push_back(leak_here(i));
}
__attribute__((noinline)) void caller_b(std::vector<void*>& out, int n) {   // not caller_a's code: no folding
    for (int i = 0; i < test::opaque(&n)[0]; ++i) out.push_back(leak_here(i + 7));
}
void release(std::vector<void*>& blocks) {
    for (void* p : blocks) ::operator delete(p);
    blocks.clear();
}

}  // namespace attrib_test

namespace {
using namespace attrib_test;

bool from_this_file(const leakscope::Frame& f) {
    const std::string name = "test_attribution.cpp";
    return f.file.size() >= name.size() && f.file.compare(f.file.size() - name.size(), name.size(), name) == 0;
}

// The one site of a report (fails the test unless there is exactly one).
const Site& only_site(const Report& r) {
    REQUIRE(r.sites.size() == 1);
    return r.sites[0];
}

void require_user_line(const Site& site, unsigned line) {
    INFO("type " << site.type << ", " << site.allocator_frames.size() << " frames trimmed");
    REQUIRE(!site.frames.empty());
    INFO("frames[0] " << site.frames[0].function << " at " << site.frames[0].file << ":" << site.frames[0].line);
    CHECK(from_this_file(site.frames[0]));
    CHECK(site.frames[0].line == line);
    for (const leakscope::Frame& f : site.allocator_frames) CHECK(!from_this_file(f));
}

struct Options {
    ~Options() {
        leakscope::configure("group_depth=0");
        leakscope::clear_suppressions();
    }
};

}  // namespace

TEST_CASE("trim: plain new starts at the user's line, untyped", "[attribution]") {
    FloatingVehicle* p = nullptr;
    unsigned line = 0;
    Report r = test::leftovers_of([&] {
        line = __LINE__; p = test::kept(new FloatingVehicle());
    });
    delete p;
    const Site& site = only_site(r);
    CHECK(site.blocks == 1);
    CHECK(site.bytes == sizeof(FloatingVehicle));
    CHECK(site.type.empty());
    require_user_line(site, line);
}

TEST_CASE("trim and type: make_shared is typed by its T (control block included)", "[attribution]") {
    Keep keep;
    unsigned line = 0;
    Report r = test::leftovers_of([&] {
        line = __LINE__; keep.shared = std::make_shared<FloatingVehicle>();
        test::escape(keep.shared.get());
    });
    keep.clear();
    const Site& site = only_site(r);
    CHECK(site.blocks == 1);
#if defined(__GLIBCXX__)
    // One block: libstdc++'s control block (vtable pointer, two 4-byte counts) with the object in it.
    CHECK(site.bytes == 16 + sizeof(FloatingVehicle));
#else
    CHECK(site.bytes >= sizeof(FloatingVehicle));
#endif
    CHECK(site.type == "attrib_test::FloatingVehicle");
    CHECK(!site.allocator_frames.empty());
    require_user_line(site, line);
}

TEST_CASE("trim and type: make_unique", "[attribution]") {
    FloatingVehicle* p = nullptr;
    unsigned line = 0;
    Report r = test::leftovers_of([&] {
        line = __LINE__; p = test::kept(std::make_unique<FloatingVehicle>().release());
    });
    delete p;
    const Site& site = only_site(r);
    CHECK(site.blocks == 1);
    CHECK(site.bytes == sizeof(FloatingVehicle));
    require_user_line(site, line);
    // At -O0 make_unique is a frame of its own; where it is inlined DWARF still names it.
    CHECK(site.type == "attrib_test::FloatingVehicle");
}

TEST_CASE("trim and type: vector::push_back gives the element type", "[attribution]") {
    Keep keep;
    keep.vector = test::kept(new std::vector<int>());
    unsigned line = 0;
    Report r = test::leftovers_of([&] {
        line = __LINE__; keep.vector->push_back(7);
        test::escape(keep.vector->data());
    });
    keep.clear();
    const Site& site = only_site(r);
    CHECK(site.blocks == 1);
    CHECK(site.bytes == sizeof(int));
    CHECK(site.type == "int");
    require_user_line(site, line);
}

TEST_CASE("trim and type: std::map insertion gives the node's value type", "[attribution]") {
    Keep keep;
    keep.map = test::kept(new std::map<int, long>());
    unsigned line = 0;
    Report r = test::leftovers_of([&] {
        line = __LINE__; (*keep.map)[1] = 2;
        test::escape(&*keep.map->begin());
    });
    keep.clear();
    const Site& site = only_site(r);
    CHECK(site.blocks == 1);
    CHECK(site.type == "std::pair<int const, long>");
    require_user_line(site, line);
}

TEST_CASE("trim and type: std::unordered_map insertion (node and bucket array: one site)", "[attribution]") {
    Keep keep;
    keep.hash = test::kept(new std::unordered_map<int, long>());
    unsigned line = 0;
    Report r = test::leftovers_of([&] {
        line = __LINE__; (*keep.hash)[1] = 2;
        test::escape(&*keep.hash->begin());
    });
    keep.clear();
    // The node and the first bucket array: the same line, both of the container's element type.
    const Site& site = only_site(r);
    CHECK(site.blocks == 2);
    CHECK(site.type == "std::pair<int const, long>");
    require_user_line(site, line);
}

TEST_CASE("trim and type: std::string growth is typed char", "[attribution]") {
    Keep keep;
    keep.string = test::kept(new std::string());
    unsigned line = 0;
    Report r = test::leftovers_of([&] {
        line = __LINE__; keep.string->append(100, 'x');
        test::escape(keep.string->data());
    });
    keep.clear();
    const Site& site = only_site(r);
    CHECK(site.blocks == 1);
    CHECK(site.bytes == 101);
    CHECK(site.type == "char");
    require_user_line(site, line);
}

TEST_CASE("the full stack is allocator_frames + frames", "[attribution]") {
    Keep keep;
    Report r = test::leftovers_of([&] {
        keep.shared = std::make_shared<FloatingVehicle>();
        test::escape(keep.shared.get());
    });
    keep.clear();
    const Site& site = only_site(r);
    REQUIRE(!site.allocator_frames.empty());
    // The innermost trimmed frame holds the call of operator new; the first kept frame is ours.
    leakscope::Frame last = site.allocator_frames.back();
    CHECK(!from_this_file(last));
    CHECK(from_this_file(site.frames[0]));
    // make_shared's frame is among the trimmed ones, by name.
    bool named = false;
    for (const leakscope::Frame& f : site.allocator_frames) named = named || f.function.find("make_shared") != std::string::npos;
    CHECK(named);
}

TEST_CASE("explicit tags: tagged<Tag>::make, ::allocate and tagged_allocator", "[attribution]") {
    FloatingVehicle* v = nullptr;
    void* raw = nullptr;
    std::vector<char, leakscope::tagged_allocator<char, Vehicle>>* pixels = nullptr;
    unsigned line_make = 0, line_raw = 0, line_vector = 0;
    pixels = test::kept(new std::vector<char, leakscope::tagged_allocator<char, Vehicle>>());
    Report r = test::leftovers_of([&] {
        line_make = __LINE__; v = test::kept(leakscope::tagged<Vehicle>::make<FloatingVehicle>());
        line_raw = __LINE__; raw = test::kept(leakscope::tagged<FloatingVehicle>::allocate(1000));
        line_vector = __LINE__; pixels->resize(3000);
        test::escape(pixels->data());
    });
    delete v;
    leakscope::tagged<FloatingVehicle>::deallocate(raw);
    delete pixels;
    REQUIRE(r.sites.size() == 3);
    // Largest bytes first.
    CHECK(r.sites[0].bytes == 3000);
    CHECK(r.sites[0].type == "attrib_test::Vehicle");
    require_user_line(r.sites[0], line_vector);
    CHECK(r.sites[1].bytes == 1000);
    CHECK(r.sites[1].type == "attrib_test::FloatingVehicle");
    require_user_line(r.sites[1], line_raw);
    CHECK(r.sites[2].bytes == sizeof(FloatingVehicle));
    CHECK(r.sites[2].type == "attrib_test::Vehicle");
    require_user_line(r.sites[2], line_make);
}

TEST_CASE("grouping: largest bytes first, one site per line, group_depth merges callers", "[attribution]") {
    Options restore;
    std::vector<void*> blocks;
    blocks.reserve(64);   // its growth would be a leftover too
    auto body = [&] {
        caller_a(blocks, 3);
        caller_b(blocks, 2);
        for (int i = 0; i < 5; ++i) blocks.push_back(test::kept(::operator new(100)));   // may be unrolled
    };
    Report whole = test::leftovers_of(body);
    attrib_test::release(blocks);
    REQUIRE(whole.sites.size() == 3);
    CHECK(whole.blocks == 10);
    CHECK(whole.bytes == 5 * 16 + 5 * 100);
    CHECK(whole.sites[0].blocks == 5);
    CHECK(whole.sites[0].bytes == 500);
    CHECK(whole.sites[1].blocks == 3);
    CHECK(whole.sites[1].bytes == 48);
    CHECK(whole.sites[2].blocks == 2);
    CHECK(whole.sites[2].bytes == 32);
    CHECK(whole.sites[1].frames[0].function.find("leak_here") != std::string::npos);

    leakscope::configure("group_depth=1");
    Report top = test::leftovers_of(body);
    attrib_test::release(blocks);
    REQUIRE(top.sites.size() == 2);
    CHECK(top.sites[0].bytes == 500);
    CHECK(top.sites[1].blocks == 5);   // leak_here's line, whoever called it
    CHECK(top.sites[1].bytes == 80);
    REQUIRE(top.sites[1].frames.size() == 1);
    CHECK(top.sites[1].frames[0].function.find("leak_here") != std::string::npos);
}

TEST_CASE("suppressions: leak: (LSan), top: anchored, stack: unanchored, with what each hid", "[attribution]") {
    Options restore;
    std::vector<void*> blocks;
    blocks.reserve(64);   // its growth would be a leftover too
    auto body = [&] {
        caller_a(blocks, 3);
        caller_b(blocks, 2);
    };
    SECTION("leak: matches any frame, by substring") {
        leakscope::suppress("# comment\n\nleak:caller_b\n");
        Report r = test::leftovers_of(body);
        attrib_test::release(blocks);
        REQUIRE(r.sites.size() == 1);
        CHECK(r.blocks == 3);
        CHECK(r.bytes == 48);
        REQUIRE(r.suppressed.size() == 1);
        CHECK(r.suppressed[0].rule == "leak:caller_b");
        CHECK(r.suppressed[0].blocks == 2);
        CHECK(r.suppressed[0].bytes == 32);
    }
    SECTION("leak: globs and anchors") {
        leakscope::suppress("leak:^attrib_test::caller_*(std::vector\nleak:^caller_a\n");
        Report r = test::leftovers_of(body);
        attrib_test::release(blocks);
        CHECK(r.sites.empty());
        CHECK(r.blocks == 0);
        CHECK(r.bytes == 0);
        REQUIRE(r.suppressed.size() == 1);   // the second never matches: no function starts with it
        CHECK(r.suppressed[0].blocks == 5);
        CHECK(r.suppressed[0].bytes == 80);
    }
    SECTION("top: is anchored at frames[0]") {
        leakscope::suppress("top:caller_a\ntop:leak_here;caller_b\n");
        Report r = test::leftovers_of(body);
        attrib_test::release(blocks);
        REQUIRE(r.sites.size() == 1);
        CHECK(r.sites[0].blocks == 3);
        CHECK(r.sites[0].frames[1].function.find("caller_a") != std::string::npos);
        REQUIRE(r.suppressed.size() == 1);
        CHECK(r.suppressed[0].rule == "top:leak_here;caller_b");
        CHECK(r.suppressed[0].blocks == 2);
    }
    SECTION("stack: finds the sequence anywhere") {
        leakscope::suppress("stack:caller_a;test_attribution.cpp\nstack:leak_here;caller_a;caller_b\n");
        Report r = test::leftovers_of(body);
        attrib_test::release(blocks);
        REQUIRE(r.sites.size() == 1);
        CHECK(r.sites[0].blocks == 2);
        REQUIRE(r.suppressed.size() == 1);
        CHECK(r.suppressed[0].rule == "stack:caller_a;test_attribution.cpp");
        CHECK(r.suppressed[0].blocks == 3);
        CHECK(r.suppressed[0].bytes == 48);
    }
    SECTION("a budget: beyond it the site is reported again, and later rules are tried") {
        leakscope::suppress("leak:caller_a max_blocks=2\nleak:caller_b max_bytes=32\nleak:caller_a max_bytes=1K\n");
        Report r = test::leftovers_of(body);
        attrib_test::release(blocks);
        CHECK(r.sites.empty());
        REQUIRE(r.suppressed.size() == 2);
        CHECK(r.suppressed[0].rule == "leak:caller_b max_bytes=32");
        CHECK(r.suppressed[0].blocks == 2);
        CHECK(r.suppressed[1].rule == "leak:caller_a max_bytes=1K");
        CHECK(r.suppressed[1].blocks == 3);
        CHECK(r.suppressed[1].bytes == 48);
    }
    SECTION("over budget: reported") {
        leakscope::suppress("leak:caller_a max_blocks=2 max_bytes=100\nleak:caller_b max_bytes=31\n");
        Report r = test::leftovers_of(body);
        attrib_test::release(blocks);
        CHECK(r.sites.size() == 2);
        CHECK(r.blocks == 5);
        CHECK(r.suppressed.empty());
    }
}

TEST_CASE("suppressions: a scope whose leftovers are all suppressed writes no report", "[attribution]") {
    Options restore;
    test::Capture capture;
    std::vector<void*> blocks;
    blocks.reserve(64);   // its growth would be a leftover too
    leakscope::suppress("leak:caller_a\n");
    bool clean_with_suppressed = false, clean_with_both = true;
    {
        leakscope::LeakScope scope("suppressed");
        caller_a(blocks, 4);
        clean_with_suppressed = scope.clean();   // as clean as its report: all of it is hidden
        caller_b(blocks, 1);
        clean_with_both = scope.clean();
        ::operator delete(blocks.back());   // caller_b's block dies in the scope: no report
        blocks.pop_back();
    }
    attrib_test::release(blocks);
    CHECK(clean_with_suppressed);
    CHECK_FALSE(clean_with_both);
    CHECK(capture.reports().empty());
    {
        leakscope::LeakScope scope("reported");
        caller_b(blocks, 1);
    }
    attrib_test::release(blocks);
    REQUIRE(capture.reports().size() == 1);
    CHECK(capture.reports()[0].blocks == 1);
    CHECK(capture.reports()[0].suppressed.empty());
}

TEST_CASE("suppressions: a malformed line is named with its line number; the others apply", "[attribution]") {
    Options restore;
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    ::fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
    int saved = ::dup(2);
    ::dup2(pipe_fds[1], 2);
    leakscope::suppress("leak:nothing_matches\nrace:caller_a\ntop: max_blocks=3\nleak:caller_b max_bytes=lots\nstack:a;;b\n"
                        "leak:caller_a\n",
                        "inline-rules");
    ::dup2(saved, 2);
    ::close(saved);
    ::close(pipe_fds[1]);
    std::string err;
    char buffer[2048];
    for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;) err.append(buffer, std::size_t(n));
    ::close(pipe_fds[0]);
    INFO(err);
    std::size_t lines = 0;
    for (char c : err) lines += c == '\n';
    CHECK(lines == 4);
    CHECK(err.find("inline-rules:2:") != std::string::npos);
    CHECK(err.find("inline-rules:3:") != std::string::npos);
    CHECK(err.find("inline-rules:4:") != std::string::npos);
    CHECK(err.find("inline-rules:5:") != std::string::npos);
    CHECK(err.find("inline-rules:1:") == std::string::npos);
    CHECK(err.find("inline-rules:6:") == std::string::npos);
    std::vector<void*> blocks;
    blocks.reserve(64);   // its growth would be a leftover too
    Report r = test::leftovers_of([&] {
        caller_a(blocks, 3);
        caller_b(blocks, 2);
    });
    attrib_test::release(blocks);
    REQUIRE(r.suppressed.size() == 1);
    CHECK(r.suppressed[0].rule == "leak:caller_a");
    CHECK(r.suppressed[0].blocks == 3);
    CHECK(r.blocks == 2);
}

TEST_CASE("options: group_depth is checked", "[attribution]") {
    Options restore;
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    ::fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
    int saved = ::dup(2);
    ::dup2(pipe_fds[1], 2);
    leakscope::configure("group_depth=257 group_depth=x group_depth=2");
    ::dup2(saved, 2);
    ::close(saved);
    ::close(pipe_fds[1]);
    std::string err;
    char buffer[2048];
    for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;) err.append(buffer, std::size_t(n));
    ::close(pipe_fds[0]);
    CHECK(err.find("group_depth=257") != std::string::npos);
    CHECK(err.find("group_depth=x") != std::string::npos);
    CHECK(err.find("group_depth=2'") == std::string::npos);
    std::vector<void*> blocks;
    blocks.reserve(64);   // its growth would be a leftover too
    Report r = test::leftovers_of([&] { caller_a(blocks, 1); });
    attrib_test::release(blocks);
    REQUIRE(r.sites.size() == 1);
    CHECK(r.sites[0].frames.size() == 2);
}
