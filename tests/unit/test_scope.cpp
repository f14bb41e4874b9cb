// LeakScope semantics: leftovers, nesting, the minus side, Ignore/ignore, dismiss, clean,
// exceptions, and reports that never count leakscope's own allocations.
#include "support.hpp"

#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using leakscope::LeakScope;
using leakscope::Report;
using test::escape;
using test::leftovers_of;

TEST_CASE("a scope reports what it allocated and did not free, with the place it was opened", "[scope]") {
    test::Capture capture;
    int* keep = nullptr;
    char* keep2 = nullptr;
    unsigned line = 0;
    {
        line = __LINE__ + 1;
        LeakScope scope("GET /page");
        keep = test::kept(new int(3));
        keep2 = test::kept(new char[29]);
        escape(keep);
        escape(keep2);
        int* gone = test::kept(new int(4));
        escape(gone);
        delete gone;
    }
    REQUIRE(capture.reports().size() == 1);
    const Report& r = capture.reports()[0];
    CHECK(r.kind == "leftovers");
    CHECK(r.scope == "GET /page");
    CHECK(r.file.find("test_scope.cpp") != std::string::npos);
    CHECK(r.line == line);
    CHECK_FALSE(r.by_exception);
    CHECK(r.blocks == 2);
    CHECK(r.bytes == sizeof(int) + 29);
    CHECK(r.released_blocks == 0);
    // Two allocating lines, two sites, largest first, each with its call stack.
    REQUIRE(r.sites.size() == 2);
    CHECK(r.sites[0].bytes == 29);
    CHECK(r.sites[1].bytes == sizeof(int));
    CHECK(r.sites[0].blocks == 1);
    CHECK_FALSE(r.sites[0].frames.empty());
    CHECK_FALSE(r.sites[1].frames.empty());
    delete keep;
    delete[] keep2;
}

TEST_CASE("a clean scope reports nothing", "[scope]") {
    test::Capture capture;
    {
        LeakScope scope("clean");
        std::string s(100, 'x');
        std::map<int, std::string> m{{1, s}, {2, s}};
        escape(&m);
    }
    CHECK(capture.reports().empty());
}

TEST_CASE("clean() and leftovers() watch a scope while it stays open", "[scope]") {
    LeakScope scope("watch");
    bool clean_at_start = scope.clean();
    int* p = test::kept(new int(1));
    escape(p);
    bool clean_with_one = scope.clean();
    Report one = scope.leftovers();
    Report again = scope.leftovers();   // building reports never adds leftovers
    delete p;
    bool clean_at_end = scope.clean();
    scope.dismiss();
    CHECK(clean_at_start);
    CHECK_FALSE(clean_with_one);
    CHECK(one.blocks == 1);
    CHECK(one.bytes == sizeof(int));
    CHECK(again.blocks == 1);
    CHECK(clean_at_end);
}

TEST_CASE("nested scopes: the outer scope sees the inner scope's leftovers", "[scope]") {
    test::Capture capture;
    int *a = nullptr, *b = nullptr, *c = nullptr;
    {
        LeakScope outer("outer");
        a = test::kept(new int(1));
        {
            LeakScope inner("inner");
            b = test::kept(new int(2));
            {
                LeakScope innermost("innermost");
                c = test::kept(new int(3));
            }
        }
    }
    REQUIRE(capture.reports().size() == 3);
    CHECK(capture.reports()[0].scope == "innermost");
    CHECK(capture.reports()[0].blocks == 1);
    CHECK(capture.reports()[1].scope == "inner");
    CHECK(capture.reports()[1].blocks == 2);
    CHECK(capture.reports()[2].scope == "outer");
    CHECK(capture.reports()[2].blocks == 3);
    CHECK(capture.reports()[2].bytes == 3 * sizeof(int));
    delete a;
    delete b;
    delete c;
}

TEST_CASE("nested scopes: a child's leftover freed before the parent closes is not the parent's", "[scope]") {
    int* b = nullptr;
    Report outer = leftovers_of([&] {
        Report inner = leftovers_of([&] { b = test::kept(new int(2)); });
        CHECK(inner.blocks == 1);
        delete b;
    });
    CHECK(outer.blocks == 0);
    CHECK(outer.released_blocks == 0);   // born inside the outer scope: not an older block
}

TEST_CASE("the minus side counts older blocks freed inside, exact to the byte", "[scope]") {
    void* untracked = ::operator new(40);        // born outside every scope
    void* tracked_older = nullptr;               // born in an earlier scope
    leftovers_of([&] { tracked_older = ::operator new(72); });
    int* kept = nullptr;
    Report r = leftovers_of([&] {
        ::operator delete(untracked, std::size_t(40));   // the size comes with the sized delete
        ::operator delete(tracked_older);                // the registry knows this one's size
        kept = test::kept(new int(1));                               // not freed: the + side
    });
    CHECK(r.released_blocks == 2);
    CHECK(r.released_bytes == 40 + 72);
    CHECK(r.blocks == 1);
    delete kept;
}

TEST_CASE("Ignore and ignore() exclude intentional survivors", "[scope]") {
    int* cached = nullptr;
    int* skipped = nullptr;
    int* leaked = nullptr;
    Report r = leftovers_of([&] {
        {
            leakscope::Ignore quiet;
            skipped = test::kept(new int(1));
        }
        cached = test::kept(new int(2));
        leakscope::ignore(cached);
        leakscope::ignore(&r);   // not a heap block: ignored silently
        leakscope::ignore(nullptr);
        leaked = test::kept(new int(3));
    });
    CHECK(r.blocks == 1);
    CHECK(r.bytes == sizeof(int));
    // Freeing ignored blocks later inside a scope is not "releasing an older block" either.
    Report later = leftovers_of([&] {
        delete skipped;
        delete cached;
    });
    CHECK(later.released_blocks == 0);
    delete leaked;
}

TEST_CASE("dismiss() closes a scope without a report", "[scope]") {
    test::Capture capture;
    int* p = nullptr;
    {
        LeakScope scope("dismissed");
        p = test::kept(new int(5));
        scope.dismiss();
        scope.dismiss();   // twice is harmless
    }
    CHECK(capture.reports().empty());
    delete p;
}

namespace {
void work_that_leaks_on_error(bool fail, int*& lost) {
    int* scratch = test::kept(new int[8]);
    if (fail) {
        lost = scratch;   // kept only so the test can free it in the end
        throw std::runtime_error("bad request");   // scratch is never freed
    }
    delete[] scratch;
}
}  // namespace

TEST_CASE("a leak only on an exception path is reported, and the report says so", "[scope]") {
    test::Capture capture;
    int* lost = nullptr;
    for (bool fail : {false, true, false}) {
        try {
            LeakScope scope("request");
            work_that_leaks_on_error(fail, lost);
        } catch (const std::runtime_error&) {
        }
    }
    REQUIRE(capture.reports().size() == 1);
    CHECK(capture.reports()[0].by_exception);
    CHECK(capture.reports()[0].blocks == 1);
    CHECK(capture.reports()[0].bytes == 8 * sizeof(int));
    delete[] lost;
}

TEST_CASE("a scope ended normally inside a catch handler is not 'by exception'", "[scope]") {
    test::Capture capture;
    int* p = nullptr;
    try {
        throw std::runtime_error("x");
    } catch (...) {
        LeakScope scope("handler");
        p = test::kept(new int(1));
    }
    REQUIRE(capture.reports().size() == 1);
    CHECK_FALSE(capture.reports()[0].by_exception);
    delete p;
}

TEST_CASE("writers: add_writer adds, set_writers replaces, a throwing writer is contained", "[scope][writers]") {
    struct Throwing : leakscope::Writer {
        void write(const Report&) override { throw std::runtime_error("disk full"); }
    };
    auto a = std::make_shared<test::CaptureWriter>();
    auto b = std::make_shared<test::CaptureWriter>();
    leakscope::set_writers({std::make_shared<Throwing>(), a});
    leakscope::add_writer(b);
    int* p = nullptr;
    {
        LeakScope scope("two writers");
        p = test::kept(new int(1));
    }
    leakscope::set_writers({});
    CHECK(a->reports.size() == 1);
    CHECK(b->reports.size() == 1);
    CHECK(b->reports[0].scope == "two writers");
    delete p;
}

TEST_CASE("the default writer prints a readable report on stderr", "[scope][writers]") {
    int* p = nullptr;
    std::string text = test::text_report_of([&] {
        LeakScope scope("GET /page");
        p = test::kept(new int(1));
    });
    CHECK(text.find("scope \"GET /page\"") != std::string::npos);
    CHECK(text.find("1 block (4 bytes)") != std::string::npos);
    CHECK(text.find("test_scope.cpp:") != std::string::npos);
    delete p;
}

TEST_CASE("long scope names are kept up to 95 characters", "[scope]") {
    std::string name(200, 'n');
    leakscope::Report r;
    {
        LeakScope scope(name);
        r = scope.leftovers();
        scope.dismiss();
    }
    CHECK(r.scope == std::string(95, 'n'));
}

TEST_CASE("stats() counts live tracked blocks and bytes exactly", "[scope][stats]") {
    leakscope::Stats before = leakscope::stats();
    int* a = nullptr;
    char* b = nullptr;
    leftovers_of([&] {
        a = test::kept(new int(1));
        b = test::kept(new char[1000]);
        escape(a);
        escape(b);
    });
    leakscope::Stats during = leakscope::stats();
    delete a;
    delete[] b;
    leakscope::Stats after = leakscope::stats();
    CHECK(during.live_blocks - before.live_blocks == 2);
    CHECK(during.live_bytes - before.live_bytes == sizeof(int) + 1000);
    CHECK(after.live_blocks == before.live_blocks);
    CHECK(after.live_bytes == before.live_bytes);
    CHECK(during.total_allocations >= before.total_allocations + 2);
}

TEST_CASE("stats() peak_bytes follows the high-water mark of large tracked blocks", "[scope][stats]") {
    const std::size_t big = 1 << 20;   // above the per-thread publication granularity
    leakscope::Stats before = leakscope::stats();
    leftovers_of([&] {
        char* a = test::kept(new char[big]);
        char* b = test::kept(new char[big]);
        escape(a);
        escape(b);
        delete[] a;
        delete[] b;
    });
    leakscope::Stats after = leakscope::stats();
    // Published per thread in steps of LEAKSCOPE_PEAK_GRANULARITY (64 KiB).
    CHECK(after.peak_bytes + 65536 >= before.live_bytes + 2 * big);
    CHECK(after.live_bytes == before.live_bytes);
}

TEST_CASE("reset_peak() starts a new high-water mark; tracked_bytes_total adds up every birth", "[scope][stats]") {
    const std::size_t big = 1 << 20;
    leftovers_of([&] { delete[] test::kept(new char[4 * big]); });   // an old, higher peak
    std::size_t old_peak = leakscope::reset_peak();
    CHECK(old_peak >= 4 * big);
    leakscope::Stats before = leakscope::stats();
    CHECK(before.peak_bytes < 4 * big);   // the old mark is gone
    leftovers_of([&] {
        char* a = test::kept(new char[big]);
        char* b = test::kept(new char[2 * big]);
        delete[] a;
        delete[] b;
        for (int i = 0; i < 100; ++i) delete test::kept(new int(i));
    });
    leakscope::Stats after = leakscope::stats();
    CHECK(after.tracked_bytes_total - before.tracked_bytes_total == 3 * big + 100 * sizeof(int));
    CHECK(after.peak_bytes + 65536 >= before.live_bytes + 3 * big);
    CHECK(after.peak_bytes < before.live_bytes + 4 * big);
}

TEST_CASE("a long scope with churn keeps the tracker's memory flat", "[scope][memory]") {
    std::size_t before = 0, after = 0;
    Report r = leftovers_of([&] {
        // Warm up: every shard the allocator's addresses reach gets its table (under
        // AddressSanitizer's quarantine, addresses cycle through a wide range).
        for (int i = 0; i < 1000000; ++i) delete test::kept(new int(i));
        before = leakscope::stats().tracker_bytes;
        for (int i = 0; i < 1000000; ++i) delete test::kept(new int(i));
        after = leakscope::stats().tracker_bytes;
    });
    CHECK(r.blocks == 0);
    CHECK(after - before < 64 * 1024);
}

TEST_CASE("a scope per request reuses the tracker's memory", "[scope][memory]") {
    for (int i = 0; i < 100; ++i) leftovers_of([] { delete test::kept(new int(1)); });
    std::size_t before = leakscope::stats().tracker_bytes;
    for (int i = 0; i < 100000; ++i) leftovers_of([] { delete test::kept(new int(1)); });
    CHECK(leakscope::stats().tracker_bytes - before < 64 * 1024);
}

TEST_CASE("a scope ended by an exception on a thread that then exits is still reported", "[scope]") {
    test::Capture capture;
    int* lost = nullptr;
    std::thread([&] {
        try {
            LeakScope scope("worker request");
            lost = test::kept(new int[4]);
            throw std::runtime_error("worker failed with a long message that needs the heap");
        } catch (const std::exception&) {
        }
        // No further scope on this thread: the deferred report is written at thread exit.
    }).join();
    REQUIRE(capture.reports().size() == 1);
    CHECK(capture.reports()[0].scope == "worker request");
    CHECK(capture.reports()[0].by_exception);
    CHECK(capture.reports()[0].blocks == 1);
    CHECK(capture.reports()[0].bytes == 4 * sizeof(int));
    delete[] lost;
}

TEST_CASE("a report is written exactly once, whatever ends the scope", "[scope]") {
    test::Capture capture;
    std::vector<int*> lost;
    lost.reserve(8);
    for (int i = 0; i < 3; ++i) {
        try {
            LeakScope scope("once");
            lost.push_back(test::kept(new int(i)));
            if (i == 1) throw std::runtime_error("x");
        } catch (...) {
        }
    }
    { LeakScope flush("next"); }   // the next scope on this thread writes the deferred one
    CHECK(capture.reports().size() == 3);
    for (int* p : lost) delete p;
}

TEST_CASE("an unnamed scope works and reports under \"(unnamed)\"", "[scope]") {
    int* p = nullptr;
    std::string text = test::text_report_of([&] {
        LeakScope scope;
        p = test::kept(new int(1));
    });
    CHECK(text.find("scope \"(unnamed)\"") != std::string::npos);
    delete p;
}
