// What a re-run child sends its parent (test_stacks=rerun, leakscope/test_common.hpp): each run's
// leftovers report, field for field, and nothing but the complete records when the child died
// while writing. The adapters' fixtures (tests/adapters) check the re-run end to end.
#include "support.hpp"

#include <catch2/catch.hpp>
#include <leakscope/test_common.hpp>

#include <string>

using leakscope::Report;
using leakscope::test::detail::ChildRuns;
using leakscope::test::detail::decode_runs;
using leakscope::test::detail::encode_run;

namespace {

// A report with every field the wire carries set, strings with spaces, digits and the magic.
Report sample(unsigned n) {
    Report r;
    r.kind = "leftovers";
    r.scope = "Suite.Test " + std::to_string(n) + " leakscope-rerun 1 ";
    r.file = "/src/a file.cpp";
    r.line = 40 + n;
    r.by_exception = n % 2 == 1;
    r.blocks = 3;
    r.bytes = 74 + n;
    r.released_blocks = 1;
    r.released_bytes = 26;
    for (unsigned i = 0; i < 2; ++i) {
        leakscope::Site site;
        leakscope::Frame f;
        f.address = 0x7f0000001234u + i;
        f.function = "remember(std::string const&)";
        f.file = "";
        f.module = "/bin/tests";
        f.line = 12;
        f.inlined = i == 1;
        f.offset = 0x1234;
        site.frames = {f, f};
        site.allocator_frames = {f};
        site.type = i ? "char" : "";
        site.blocks = 1 + i;
        site.bytes = 34 + i;
        r.sites.push_back(site);
    }
    r.suppressed.push_back({"leak:Cache::fill", 2, 64});
    return r;
}

void check_same(const Report& a, const Report& b) {
    CHECK(a.kind == b.kind);
    CHECK(a.scope == b.scope);
    CHECK(a.file == b.file);
    CHECK(a.line == b.line);
    CHECK(a.by_exception == b.by_exception);
    CHECK(a.blocks == b.blocks);
    CHECK(a.bytes == b.bytes);
    CHECK(a.released_blocks == b.released_blocks);
    CHECK(a.released_bytes == b.released_bytes);
    REQUIRE(a.sites.size() == b.sites.size());
    for (std::size_t i = 0; i < a.sites.size(); ++i) {
        const leakscope::Site &x = a.sites[i], &y = b.sites[i];
        CHECK(x.type == y.type);
        CHECK(x.blocks == y.blocks);
        CHECK(x.bytes == y.bytes);
        REQUIRE(x.frames.size() == y.frames.size());
        REQUIRE(x.allocator_frames.size() == y.allocator_frames.size());
        for (std::size_t k = 0; k < x.frames.size(); ++k) {
            CHECK(x.frames[k].address == y.frames[k].address);
            CHECK(x.frames[k].function == y.frames[k].function);
            CHECK(x.frames[k].file == y.frames[k].file);
            CHECK(x.frames[k].module == y.frames[k].module);
            CHECK(x.frames[k].line == y.frames[k].line);
            CHECK(x.frames[k].inlined == y.frames[k].inlined);
            CHECK(x.frames[k].offset == y.frames[k].offset);
        }
    }
    REQUIRE(a.suppressed.size() == b.suppressed.size());
    CHECK(a.suppressed[0].rule == b.suppressed[0].rule);
    CHECK(a.suppressed[0].blocks == b.suppressed[0].blocks);
    CHECK(a.suppressed[0].bytes == b.suppressed[0].bytes);
}

}  // namespace

TEST_CASE("re-run wire: every field of each run's report comes back", "[rerun]") {
    std::string wire = encode_run(0, sample(0)) + encode_run(5, sample(5)) + encode_run(6, Report{});
    ChildRuns c;
    decode_runs(wire, c);
    REQUIRE(c.runs.size() == 3);
    CHECK(c.runs[0].first == 0);
    CHECK(c.runs[1].first == 5);
    CHECK(c.runs[2].first == 6);
    check_same(c.runs[0].second, sample(0));
    check_same(c.runs[1].second, sample(5));
    CHECK(c.runs[2].second.sites.empty());
    REQUIRE(c.run(5) != nullptr);
    CHECK(c.run(5)->scope == sample(5).scope);
    CHECK(c.run(1) == nullptr);
}

TEST_CASE("re-run wire: an answer cut anywhere keeps exactly its complete records", "[rerun]") {
    std::string first = encode_run(0, sample(0)), second = encode_run(1, sample(1));
    std::string wire = first + second;
    for (std::size_t cut = 0; cut <= wire.size(); ++cut) {
        ChildRuns c;
        decode_runs(wire.substr(0, cut), c);
        std::size_t complete = cut == wire.size() ? 2 : cut >= first.size() ? 1 : 0;
        // A record cut after its last number's digits but before its space is incomplete too.
        INFO("cut at " << cut << " of " << wire.size());
        REQUIRE(c.runs.size() == complete);
    }
}

TEST_CASE("re-run wire: garbage is no record, and never a crash", "[rerun]") {
    for (const char* text : {"", "x", "leakscope-rerun 1 ", "leakscope-rerun 2 0 ", "leakscope-rerun 1 99999999999999999999999 ",
                             "leakscope-rerun 1 0 18446744073709551615 leftovers", "leakscope-rerun 1 0 9 leftovers 0 0 0 0 0 0 0 0 "
                                                                                   "99999999 "}) {
        ChildRuns c;
        decode_runs(text, c);
        CHECK(c.runs.empty());
    }
}
