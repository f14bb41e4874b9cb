// A doctest program with clean and leaking test cases, run by check.sh in several selections
// (by test suite): "noise" must all pass; "listener" tests are judged by the adapter's listener;
// "guard" tests by LEAKSCOPE_GUARD(); "bad" ones fail for their own reasons; "exit" calls exit().
// Leaking lines carry "LEAK:" markers that check.sh looks up.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope/doctest.hpp>

#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "kept.hpp"

using fixture::keep;
using fixture::keep_array;

// ---- no noise -----------------------------------------------------------------------------------
TEST_CASE("assertions with long operands stay clean" * doctest::test_suite("noise")) {
    std::string text(200, 'x');
    REQUIRE(text.size() == 200);
    CHECK(text == std::string(200, 'x'));
    CHECK_FALSE(text.empty());
    CHECK_NOTHROW(text.append("y"));
    CHECK_THROWS_AS(throw std::runtime_error(std::string(100, 'e')), std::runtime_error);
    CHECK_THROWS_WITH(throw std::runtime_error("a message long enough to be on the heap"),
                      "a message long enough to be on the heap");
}

TEST_CASE("matchers stay clean" * doctest::test_suite("noise")) {
    CHECK_THROWS_WITH_AS(throw std::runtime_error(std::string(60, 'a') + "needle"), doctest::Contains("needle"),
                         std::runtime_error);
    CHECK(0.1 + 0.2 == doctest::Approx(0.3));
}

TEST_CASE("INFO and CAPTURE messages stay clean" * doctest::test_suite("noise")) {
    INFO("a message that is long enough to live on the heap, not in a small string");
    int answer = 42;
    std::string label(64, 'l');
    CAPTURE(answer);
    CAPTURE(label);
    for (int i = 0; i < 3; ++i) {
        INFO("iteration ", i, ' ', std::string(80, 'i'));
        CHECK(i < 3);
    }
    MESSAGE("a message, long enough to be allocated on the heap as well");
    CHECK(answer == 42);
}

TEST_CASE("subcases three deep stay clean" * doctest::test_suite("noise")) {
    std::vector<std::string> names{std::string(40, 'n')};
    SUBCASE("first level with a long enough name to be on the heap") {
        names.push_back(std::string(40, 'a'));
        SUBCASE("second level") {
            names.push_back(std::string(40, 'b'));
            SUBCASE("third level") {
                names.push_back(std::string(40, 'c'));
                CHECK(names.size() == 4);
            }
            SUBCASE("third level, sibling") { CHECK(names.size() == 3); }
        }
    }
    SUBCASE("first level, sibling") { CHECK(names.size() == 1); }
}

TEST_CASE("a thread started and joined stays clean" * doctest::test_suite("noise")) {
    std::thread worker([] {
        std::vector<std::string> v(50, std::string(40, 'w'));
        (void)v;
    });
    worker.join();
    CHECK(true);
}

TEST_CASE("a guarded clean test with subcases" * doctest::test_suite("noise")) {
    LEAKSCOPE_GUARD();
    std::map<int, std::string> m{{1, std::string(30, 'o')}};
    SUBCASE("one") { CHECK(m.size() == 1); }
    SUBCASE("two") {
        INFO("a message in a guarded subcase, long enough for the heap");
        CHECK(m.at(1).size() == 30);
    }
}

TEST_CASE("expecting two leftovers, leaving two" * doctest::test_suite("noise")) {
    LEAKSCOPE_EXPECT_LEFTOVERS(2);
    keep(new int(1));
    keep(new int(2));
}

TEST_CASE("allowed to leak" * doctest::test_suite("noise")) {
    LEAKSCOPE_ALLOW_LEAKS();
    keep(new int(3));
}

// Run alone with stacks=off by check.sh: doctest's other reporters (JUnit and XML keep a record of
// every run) work behind leakscope::Ignore, so not even a leftover without a stack, which would be
// blamed on the test, is left by them.
TEST_CASE("reporters: two passing assertions" * doctest::test_suite("reporters")) {
    CHECK(1 + 1 == 2);
    REQUIRE(std::string(40, 'r').size() == 40);
}

// ---- judged by the listener -------------------------------------------------------------------
TEST_CASE("listener: leaks one block" * doctest::test_suite("listener")) {
    keep(new int(42));   // LEAK:doctest_one_block
}

TEST_CASE("listener: leaks in one subcase only" * doctest::test_suite("listener")) {
    SUBCASE("clean subcase") { CHECK(std::string(40, 'c').size() == 40); }
    SUBCASE("leaking subcase") {
        keep(new long(1));   // LEAK:doctest_subcase
    }
}

TEST_CASE("listener: leaks three subcases deep" * doctest::test_suite("listener")) {
    SUBCASE("level one") {
        SUBCASE("level two") {
            SUBCASE("level three") {
                keep(new short(3));   // LEAK:doctest_deep
            }
            SUBCASE("level three, clean sibling") { CHECK(true); }
        }
    }
}

TEST_CASE("listener: leaks on an exception path" * doctest::test_suite("listener")) {
    try {
        int* scratch = keep_array(new int[4]);   // LEAK:doctest_exception_path
        if (scratch) throw std::runtime_error("the cleanup below is skipped");
        delete[] scratch;
    } catch (const std::exception&) {
    }
}

TEST_CASE("listener: expects two, leaves one" * doctest::test_suite("listener")) {
    LEAKSCOPE_EXPECT_LEFTOVERS(2);
    keep(new int(1));   // LEAK:doctest_expect_two_but_one
}

// ---- judged by the guard ----------------------------------------------------------------------------
TEST_CASE("guard: leaks one block" * doctest::test_suite("guard")) {
    LEAKSCOPE_GUARD();   // LEAK:doctest_guard_line
    keep(new int(7));    // LEAK:doctest_guard_leak
}

TEST_CASE("guard: leaks in one subcase" * doctest::test_suite("guard")) {
    LEAKSCOPE_GUARD();
    SUBCASE("clean") { CHECK(true); }
    SUBCASE("leaking") {
        keep(new int(8));   // LEAK:doctest_guard_subcase
    }
}

TEST_CASE("guard: clean" * doctest::test_suite("guard")) {
    LEAKSCOPE_GUARD();
    std::vector<int> v(10);
    CHECK(v.size() == 10);
}

// ---- failing for their own reasons: no leak verdict on top ----------------------------------------
TEST_CASE("bad: throws out of the body" * doctest::test_suite("bad")) {
    keep(new int(5));
    throw std::runtime_error("thrown out of the test body");
}

TEST_CASE("bad: already failed" * doctest::test_suite("bad")) {
    keep(new int(6));
    CHECK(1 == 2);
}

TEST_CASE("bad: guarded and already failed" * doctest::test_suite("bad")) {
    LEAKSCOPE_GUARD();
    keep(new int(9));
    CHECK(1 == 2);
}

TEST_CASE("exit: calls exit" * doctest::test_suite("exit")) {
    keep(new int(8));
    std::exit(3);
}
