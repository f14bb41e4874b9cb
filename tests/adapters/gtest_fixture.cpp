// A GoogleTest program with clean and leaking tests, run by check.sh (which knows, test by test,
// what must pass and what must fail, and finds the leaking lines by their "LEAK:" markers).
// Linked with gtest_main: the adapter needs no main of its own.
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope/gtest.hpp>

#include <gmock/gmock.h>

#include <csignal>
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
using fixture::note_run;

// ---- no noise: the framework's own allocations are never a test's leftovers ----------------
TEST(Noise, Assertions) {
    note_run("Noise.Assertions");
    std::string long_text(200, 'x');
    EXPECT_EQ(long_text.size(), 200u);
    EXPECT_STREQ(long_text.c_str(), std::string(200, 'x').c_str());
    ASSERT_TRUE(!long_text.empty()) << "a streamed message that is long enough to be on the heap";
    EXPECT_NE(long_text, "y");
    EXPECT_NO_THROW(long_text.append("z"));
    EXPECT_THROW(throw std::runtime_error("expected, with a message long enough for the heap"),
                 std::runtime_error);
}

TEST(Noise, Matchers) {
    std::vector<int> v{1, 2, 3};
    EXPECT_THAT(v, ::testing::ElementsAre(1, 2, 3));
    EXPECT_THAT(std::string(100, 'a') + "needle", ::testing::HasSubstr("needle"));
    EXPECT_THAT(v, ::testing::Contains(2));
}

TEST(Noise, ScopedTrace) {
    SCOPED_TRACE("outer trace with a message long enough to live on the heap");
    for (int i = 0; i < 3; ++i) {
        SCOPED_TRACE(std::string(60, 'a' + char(i)));
        SCOPED_TRACE(i);
        EXPECT_LT(i, 3);
    }
}

TEST(Noise, Succeed) {
    SUCCEED();
    SUCCEED() << std::string(120, 's');
    SUCCEED() << "and a third one";
}

TEST(Noise, RecordProperty) {   // GoogleTest keeps the property: without stacks, a leftover
    note_run("Noise.RecordProperty");
    RecordProperty("key", std::string(80, 'v'));
    RecordProperty("number", 42);
}

TEST(Noise, ThreadStartedAndJoined) {
    std::thread worker([] {
        std::vector<std::string> v(50, std::string(40, 'w'));
        EXPECT_EQ(v.size(), 50u);
    });
    worker.join();
}

class Param : public ::testing::TestWithParam<int> {};
TEST_P(Param, Values) {
    std::vector<int> v(static_cast<std::size_t>(GetParam()) * 10);
    EXPECT_EQ(v.size(), static_cast<std::size_t>(GetParam()) * 10);
}
INSTANTIATE_TEST_SUITE_P(Noise, Param, ::testing::Values(1, 2, 3));

template <class T>
class Typed : public ::testing::Test {};
using TypedTypes = ::testing::Types<int, std::string, std::map<int, std::string>>;
// clang -Wpedantic before C++20 wants the optional name generator spelled out.
TYPED_TEST_SUITE(Typed, TypedTypes, ::testing::internal::DefaultNameGenerator);
TYPED_TEST(Typed, DefaultConstructed) {
    auto value = std::make_unique<TypeParam>();
    EXPECT_EQ(*value, TypeParam());
}

// A fixture whose members are built and destroyed around each test: not leftovers.
class WithFixture : public ::testing::Test {
   protected:
    std::vector<std::string> names{std::string(50, 'n'), std::string(50, 'm')};
    static inline std::vector<int>* shared = nullptr;
    static void SetUpTestSuite() { shared = new std::vector<int>(100); }   // before every scope
    static void TearDownTestSuite() {
        delete shared;
        shared = nullptr;
    }
};
TEST_F(WithFixture, UsesMembers) { EXPECT_EQ(names.size() + shared->size(), 102u); }

// ---- leaks: each of these fails -------------------------------------------------------------
TEST(Leaks, OneBlock) {
    note_run("Leaks.OneBlock");
    keep(new int(42));   // LEAK:gtest_one_block
}

TEST(Leaks, OnExceptionPath) {
    try {
        int* scratch = keep_array(new int[4]);   // LEAK:gtest_exception_path
        if (scratch) throw std::runtime_error("the cleanup below is skipped");
        delete[] scratch;
    } catch (const std::exception&) {
    }
}

// ---- test_stacks=rerun: a leaking test runs again alone, for its stacks ----------------------
// Rerun.Prepares sets what the next two depend on; alone (in the re-run child) they behave
// differently, so their reports stay the suite run's own, without stacks.
namespace {
bool prepared = false;
}
TEST(Rerun, Prepares) { prepared = true; }
TEST(Rerun, LeaksOnlyAfterPrepares) {
    note_run("Rerun.LeaksOnlyAfterPrepares");
    if (prepared) keep(new int(10));   // LEAK:gtest_order_dependent
}
TEST(Rerun, DiesAlone) {
    if (!prepared) std::raise(SIGTERM);   // alone: the child dies
    keep(new long(11));                   // LEAK:gtest_dies_alone
}

// test_stacks=auto: the first 8 tests that leave blocks behind run again alone, the later ones
// capture their stacks themselves (run on their own by check.sh).
class Many : public ::testing::TestWithParam<int> {};
TEST_P(Many, Leaks) {
    keep(new int(GetParam()));   // LEAK:gtest_many
}
INSTANTIATE_TEST_SUITE_P(Twelve, Many, ::testing::Range(0, 12));

// ---- escape hatches --------------------------------------------------------------------------
TEST(Escape, ExpectTwo) {
    LEAKSCOPE_EXPECT_LEFTOVERS(2);
    keep(new int(1));
    keep(new int(2));
}

TEST(Escape, ExpectTwoButOne) {
    LEAKSCOPE_EXPECT_LEFTOVERS(2);
    keep(new int(1));   // LEAK:gtest_expect_two_but_one
}

TEST(Escape, AllowLeaks) {
    LEAKSCOPE_ALLOW_LEAKS();
    keep(new int(3));
}

TEST(Escape, AdoptedThread) {   // work handed to a thread counts when the thread adopts the token
    LEAKSCOPE_EXPECT_LEFTOVERS(1);
    std::thread worker([token = leakscope::test::token()] {
        leakscope::Adopt adopt{token};
        keep(new long(7));
    });
    worker.join();
}

// ---- bad input -------------------------------------------------------------------------------
TEST(Bad, ThrowsOutOfBody) {   // fails for the exception; no leak verdict on top
    keep(new int(5));
    throw std::runtime_error("thrown out of the test body");
}

TEST(Bad, AlreadyFailed) {   // fails for its assertion; no leak verdict on top
    keep(new int(6));
    ADD_FAILURE() << "the test's own failure";
}

TEST(ExitCall, Exits) {   // run on its own by check.sh: the process exits with the test's status
    keep(new int(8));
    std::exit(3);
}
