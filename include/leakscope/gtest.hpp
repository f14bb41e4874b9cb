// leakscope/gtest.hpp — every GoogleTest test fails when it leaves allocations behind.
//
//     // exactly one translation unit of the test program (any test file; works with gtest_main):
//     #define LEAKSCOPE_IMPLEMENTATION
//     #include <leakscope/gtest.hpp>
//     // other test files that want the escape hatches:
//     #include <leakscope/gtest.hpp>
//
// Including this header anywhere in the program appends one listener (once, however many
// translation units include it) after GoogleTest's default printer. For each test it opens a
// leakscope::LeakScope named "Suite.Test" when the test starts (after the fixture's
// SetUpTestSuite, before its constructor) and, when the test ends (after the fixture's
// destructor), judges what is left: a leak fails the test through GoogleTest's own result —
// ADD_FAILURE_AT the test's file and line with leakscope's report as the message — so it shows
// as failed in the summary, in --gtest_output=xml/json and in the exit status.
//
// Like leakscope.hpp, this header never defines LEAKSCOPE_IMPLEMENTATION itself: the adapter may
// be included by several test files, and the implementation (which replaces operator new) must
// exist exactly once in the program.
//
// In a test:
//     LEAKSCOPE_EXPECT_LEFTOVERS(2);   // exactly 2 blocks must be left behind (a cache that fills)
//     LEAKSCOPE_ALLOW_LEAKS();         // no leak verdict for this test
//     leakscope::Adopt a{leakscope::test::token()};   // in a thread: its allocations count
// A test that failed (or was skipped) gets no leak verdict. What GoogleTest records while a test
// runs (assertion results, SUCCEED(), skips, properties, SCOPED_TRACE) is never a leftover.
//
// Stacks: by default (test_stacks=auto) the tests run without call stacks, which would be most of
// the adapter's cost in a suite of fast tests; a test that leaves blocks behind runs again alone —
// this program, with --gtest_filter=Suite.Test, without its --gtest_output and sharding — and
// that run's report, with stacks, is the failure message (test_common.hpp says when the run's own
// stackless one is kept instead). After 8 such children, the remaining tests capture stacks
// themselves. test_stacks=rerun re-runs without that limit; test_stacks=inline never.
#ifndef LEAKSCOPE_GTEST_HPP_INCLUDED
#define LEAKSCOPE_GTEST_HPP_INCLUDED

#include <leakscope/test_common.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>

namespace leakscope {
namespace test {
namespace gtest_detail {

inline const char* const kOwners[] = {"testing::", "/gtest/", "/gmock/", "/googletest/", "/googlemock/", nullptr};
inline constexpr detail::FrameworkPatterns kPatterns{kOwners, nullptr};
struct Framework {
    static constexpr bool can_rerun = true;
};

// GoogleTest routes every test-part result of this thread (EXPECT_*, ASSERT_*, SUCCEED(),
// GTEST_SKIP(), ADD_FAILURE()) through the thread's test-part reporter before storing it in the
// test's result. HasNewFatalFailureHelper installs itself as that reporter and forwards to the one
// it replaced; this subclass forwards under leakscope::Ignore, so the stored result (and the
// vector that holds it) never counts for the test.
class QuietReporter : public ::testing::internal::HasNewFatalFailureHelper {
   public:
    void ReportTestPartResult(const ::testing::TestPartResult& result) override {
        Ignore quiet;
        HasNewFatalFailureHelper::ReportTestPartResult(result);
    }
};

class Listener : public ::testing::EmptyTestEventListener {
   public:
    Listener() = default;
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;
    // GoogleTest destroys its listeners at exit: a test that called exit() never ended, and gets
    // no verdict.
    ~Listener() override {
        if (scope_) scope_->dismiss();
    }

    void OnTestProgramStart(const ::testing::UnitTest&) override {
        // GoogleTest creates this thread's trace stack (SCOPED_TRACE) on first use and keeps it:
        // create it now, with room for 4 nested traces, rather than inside the first test.
        Ignore quiet;
        ::testing::ScopedTrace a(__FILE__, __LINE__, ""), b(__FILE__, __LINE__, ""),
            c(__FILE__, __LINE__, ""), d(__FILE__, __LINE__, "");
        // Once for the whole run, on the thread that runs the tests (installing one per test cost
        // ~550 instructions of each test: a thread-local lookup and a dynamic_cast each way).
        reporter_.emplace();
    }
    void OnTestProgramEnd(const ::testing::UnitTest&) override { reporter_.reset(); }

    void OnTestStart(const ::testing::TestInfo& info) override {
        detail::begin_run();
        detail::forget_rerun();
        {
            Ignore quiet;
            name_.assign(info.test_suite_name()).append(".").append(info.name());
        }
        rerun_ = detail::stackless_runs<Framework>();
        started_ = std::chrono::steady_clock::now();
        if (rerun_) {
            ::leakscope::detail::ScopesWithoutStacks stackless;
            scope_.emplace(name_, detail::globals().threads, info.file(), unsigned(info.line()));
        } else {
            scope_.emplace(name_, detail::globals().threads, info.file(), unsigned(info.line()));
        }
        detail::globals().scope = &*scope_;
    }

    void OnTestEnd(const ::testing::TestInfo& info) override {
        if (!scope_) return;
        detail::globals().scope = nullptr;
        const ::testing::TestResult& result = *info.result();
        detail::Verdict verdict;
        if (result.Failed() || result.Skipped())
            scope_->dismiss();   // already failed: the leftovers are likely its consequence
        else
            verdict = judge_or_rerun();
        scope_.reset();
        // This listener runs before the default printer's OnTestEnd (GoogleTest calls the end
        // events in reverse order), so the failure is part of the test's result when printed.
        if (verdict.failed) ADD_FAILURE_AT(info.file(), info.line()) << verdict.message;
    }

   private:
    // Judges the run; a stackless one (rerun_) that leaked, by this test run alone with stacks.
    // (In such a re-run child, the run's leftovers go back to the parent instead.)
    detail::Verdict judge_or_rerun() {
        auto request = [this] {
            detail::RerunRequest r;
            r.key = name_;   // (index 0: a test runs once)
            r.add_args = {"--gtest_filter=" + name_, "--gtest_repeat=1", "--gtest_also_run_disabled_tests"};
            // (The appended filter wins over the parent's: GoogleTest takes a flag's last value.)
            r.drop_args = {"--gtest_output", "--gtest_repeat", "--gtest_shuffle", "--gtest_fail_fast"};
            // What would make the child write the parent's XML or run another shard.
            r.drop_env = {"GTEST_OUTPUT", "XML_OUTPUT_FILE", "GTEST_SHARD_INDEX", "GTEST_TOTAL_SHARDS",
                          "GTEST_SHARD_STATUS_FILE", "TEST_SHARD_INDEX", "TEST_TOTAL_SHARDS",
                          "TEST_SHARD_STATUS_FILE", "TEST_PREMATURE_EXIT_FILE", "GTEST_REPEAT", "GTEST_SHUFFLE"};
            r.took = std::chrono::steady_clock::now() - started_;
            return r;
        };
        return detail::judge(*scope_, [this] { return name_; }, kPatterns, request, rerun_);
    }

    std::optional<QuietReporter> reporter_;
    std::optional<LeakScope> scope_;
    std::string name_;
    bool rerun_ = false;
    std::chrono::steady_clock::time_point started_{};
};

inline bool install() {
    Ignore quiet;
    ::testing::UnitTest::GetInstance()->listeners().Append(new Listener);
    return true;
}

// One listener per program, however many translation units include this header.
inline const bool installed = install();

}  // namespace gtest_detail
}  // namespace test
}  // namespace leakscope

#endif  // LEAKSCOPE_GTEST_HPP_INCLUDED
