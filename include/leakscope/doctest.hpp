// leakscope/doctest.hpp — doctest test cases that leave allocations behind fail the run.
//
//     // exactly one translation unit of the test program (e.g. the one with
//     // DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN):
//     #define LEAKSCOPE_IMPLEMENTATION
//     #include <leakscope/doctest.hpp>
//     // any test file:
//     #include <leakscope/doctest.hpp>
//
// Two routes, because a doctest listener cannot fail a test:
//
//  1. The listener "leakscope" (registered once, however many translation units include this
//     header) checks every test case automatically, each run of it separately — a test case with
//     SUBCASEs runs once per leaf subcase. A leaking run is printed on stderr, naming the test
//     case and its subcases, and the process's exit status becomes 1 when doctest itself would
//     return 0 (an on_exit handler: see leakscope/test_common.hpp; a main() of one's own can
//     return leakscope::test::exit_status(context.run()) instead).
//
//  2. The guard, placed first in a test body:
//         TEST_CASE("cache fills") {
//             LEAKSCOPE_GUARD();
//             ...
//         }
//     judges the run when the body ends and fails the test inside doctest (ADD_FAIL_CHECK_AT the
//     guard's line, with leakscope's report as the message): it counts in doctest's totals, its
//     exit status and its JUnit/XML reporters. A guarded run is judged by its guard only.
//
// Escape hatches (in the test body): LEAKSCOPE_EXPECT_LEFTOVERS(n), LEAKSCOPE_ALLOW_LEAKS().
// A run that already failed gets no leak verdict. What doctest keeps while a test runs (subcase
// trackers, INFO contexts, reporters' records) is never a leftover (see test_common.hpp).
//
// Like leakscope.hpp, this header never defines LEAKSCOPE_IMPLEMENTATION itself.
#ifndef LEAKSCOPE_DOCTEST_HPP_INCLUDED
#define LEAKSCOPE_DOCTEST_HPP_INCLUDED

#include <leakscope/test_common.hpp>

#include <doctest/doctest.h>

#include <exception>
#include <optional>
#include <string>
#include <vector>

namespace leakscope {
namespace test {
namespace doctest_detail {

inline const char* const kOwners[] = {"doctest::", "/doctest/", nullptr};
inline constexpr detail::FrameworkPatterns kPatterns{kOwners, nullptr};

struct RunInfo {
    std::string test;
    std::string file;
    unsigned line = 0;
    std::vector<std::string> subcases;   // open now
    std::string path;                    // the deepest subcase path entered in this run
    bool failed = false;
};
inline RunInfo& run_info() {
    static RunInfo info;
    return info;
}
inline std::string display_name(const RunInfo& r) { return r.path.empty() ? r.test : r.test + " / " + r.path; }

// ---- the other reporters, quiet --------------------------------------------------------------
// doctest calls every reporter in use for each event, this listener first: what the others keep
// while a test runs (the JUnit and XML reporters' records of every run, kept for the end) would
// sit in the run's scope: recognised as doctest's with stacks, at the price of building the run's
// report (the first time also reading the test program's debug information: 0.1 s for a thousand
// trivial tests), and blamed on the test without stacks. So when the run starts, the listener
// puts every other reporter in use behind one that forwards each event under leakscope::Ignore.
// doctest's list of reporters in use is part of its implementation: in the translation unit that
// has it (DOCTEST_CONFIG_IMPLEMENT or DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN defined before this
// header is included), which sets the hook. Define LEAKSCOPE_DOCTEST_QUIET_REPORTERS to 0 to do
// without (correct, slower as described).
#if !defined(LEAKSCOPE_DOCTEST_QUIET_REPORTERS)
#define LEAKSCOPE_DOCTEST_QUIET_REPORTERS 1
#endif
using QuietenReporters = void (*)(doctest::IReporter* self);
inline QuietenReporters& quieten_reporters() noexcept {
    static QuietenReporters hook = nullptr;
    return hook;
}

#if LEAKSCOPE_DOCTEST_QUIET_REPORTERS && defined(DOCTEST_LIBRARY_IMPLEMENTATION)
class QuietReporter final : public doctest::IReporter {
   public:
    explicit QuietReporter(doctest::IReporter* inner) : inner_(inner) {}
    QuietReporter(const QuietReporter&) = delete;
    QuietReporter& operator=(const QuietReporter&) = delete;
    ~QuietReporter() override {
        Ignore quiet;
        delete inner_;
    }
#define LEAKSCOPE_DOCTEST_FORWARD(method, Param) \
    void method(Param value) override {          \
        Ignore quiet;                             \
        inner_->method(value);                    \
    }
    LEAKSCOPE_DOCTEST_FORWARD(report_query, const doctest::QueryData&)
    void test_run_start() override {
        Ignore quiet;
        inner_->test_run_start();
    }
    LEAKSCOPE_DOCTEST_FORWARD(test_run_end, const doctest::TestRunStats&)
    LEAKSCOPE_DOCTEST_FORWARD(test_case_start, const doctest::TestCaseData&)
    LEAKSCOPE_DOCTEST_FORWARD(test_case_reenter, const doctest::TestCaseData&)
    LEAKSCOPE_DOCTEST_FORWARD(test_case_end, const doctest::CurrentTestCaseStats&)
    LEAKSCOPE_DOCTEST_FORWARD(test_case_exception, const doctest::TestCaseException&)
    LEAKSCOPE_DOCTEST_FORWARD(subcase_start, const doctest::SubcaseSignature&)
    void subcase_end() override {
        Ignore quiet;
        inner_->subcase_end();
    }
    LEAKSCOPE_DOCTEST_FORWARD(log_assert, const doctest::AssertData&)
    LEAKSCOPE_DOCTEST_FORWARD(log_message, const doctest::MessageData&)
    LEAKSCOPE_DOCTEST_FORWARD(test_case_skipped, const doctest::TestCaseData&)
#undef LEAKSCOPE_DOCTEST_FORWARD

   private:
    doctest::IReporter* inner_;
};

// Called from the listener's test_run_start, inside doctest's loop over the reporters in use:
// replacing the entries (never the vector's storage) is what that loop tolerates; doctest deletes
// them (the wrappers, which delete theirs) when the run ends.
inline void quieten_other_reporters(doctest::IReporter* self) {
    Ignore quiet;
    if (!doctest::detail::g_cs) return;
    for (doctest::IReporter*& reporter : doctest::detail::g_cs->reporters_currently_used)
        if (reporter && reporter != self) reporter = new QuietReporter(reporter);
}
inline const bool quieten_set = (quieten_reporters() = &quieten_other_reporters, true);
#endif

class Listener : public doctest::IReporter {
   public:
    explicit Listener(const doctest::ContextOptions&) {}
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;
    ~Listener() override {
        if (scope_) scope_->dismiss();
    }

    void report_query(const doctest::QueryData&) override {}
    void test_run_start() override {
        if (QuietenReporters quieten = quieten_reporters()) quieten(this);
    }
    void test_run_end(const doctest::TestRunStats&) override {
        unsigned n = detail::globals().leaking_runs;
        if (n)
            detail::print_report("leakscope: " + std::to_string(n) + " test run" + (n == 1 ? "" : "s") +
                                 " left allocations behind (reported above); the exit status will be non-zero");
    }
    void test_case_start(const doctest::TestCaseData& tc) override {
        {
            Ignore quiet;
            RunInfo& r = run_info();
            r.test = tc.m_name ? tc.m_name : "";
            r.file = tc.m_file.c_str();
            r.line = tc.m_line;
        }
        begin_run();
    }
    void test_case_reenter(const doctest::TestCaseData&) override {
        end_run();
        begin_run();
    }
    void test_case_end(const doctest::CurrentTestCaseStats&) override { end_run(); }
    void test_case_exception(const doctest::TestCaseException&) override { note_failure(); }
    void subcase_start(const doctest::SubcaseSignature& s) override {
        Ignore quiet;
        RunInfo& r = run_info();
        r.subcases.emplace_back(s.m_name.c_str());
        std::string path;
        for (const std::string& n : r.subcases) path.append(path.empty() ? "" : " / ").append(n);
        if (path.size() > r.path.size() || r.path.compare(0, path.size(), path) != 0) r.path = path;
    }
    void subcase_end() override {
        Ignore quiet;
        RunInfo& r = run_info();
        if (!r.subcases.empty()) r.subcases.pop_back();
    }
    void log_assert(const doctest::AssertData& a) override {
        if (a.m_failed) note_failure();
    }
    void log_message(const doctest::MessageData& m) override {
        if (m.m_severity & doctest::assertType::is_warn) return;
        note_failure();   // FAIL_CHECK / ADD_FAIL_CHECK and friends
    }
    void test_case_skipped(const doctest::TestCaseData&) override {}

   private:
    static void note_failure() {
        run_info().failed = true;
        ++detail::globals().run.failures;
    }

    void begin_run() {
        RunInfo& r = run_info();
        {
            Ignore quiet;
            r.subcases.clear();
            r.path.clear();
            r.failed = false;
        }
        detail::begin_run();
        scope_.emplace(r.test, detail::globals().threads, r.file.c_str(), r.line);
        detail::globals().scope = &*scope_;
    }

    void end_run() {
        if (!scope_) return;
        detail::globals().scope = nullptr;
        RunInfo& r = run_info();
        detail::Verdict verdict;
        if (r.failed || detail::globals().run.guarded) {
            scope_->dismiss();
        } else {
            verdict = detail::judge(*scope_, [&r] { return display_name(r); }, kPatterns);
        }
        scope_.reset();
        if (!verdict.failed) return;
        Ignore quiet;
        std::string head = "leakscope: test case \"" + r.test + "\"";
        if (!r.path.empty()) head += " subcase \"" + r.path + "\"";
        detail::print_report(head + " (" + r.file + ":" + std::to_string(r.line) +
                             ") FAILED: it left allocations behind\n" + verdict.message);
        detail::note_uncounted_leak();
    }

    std::optional<LeakScope> scope_;
};

// A failed CHECK at the guard's line whose "values" are leakscope's report. An assertion rather
// than ADD_FAIL_CHECK: doctest's JUnit reporter records failed assertions only.
inline void fail_at(const char* file, unsigned line, const std::string& report) {
    doctest::detail::ResultBuilder rb(doctest::assertType::DT_CHECK, file, int(line),
                                      "LEAKSCOPE_GUARD(): the test left allocations behind");
    rb.setResult(doctest::detail::Result(false, doctest::String(report.c_str())));
    if (rb.log()) DOCTEST_BREAK_INTO_DEBUGGER();
    rb.react();   // throws only when doctest aborts the run (--abort-after): the guard lets it
}

// The in-test guard (LEAKSCOPE_GUARD()): detail::Guard with this framework's hooks.
struct Framework {
    static RunInfo& run_info() { return doctest_detail::run_info(); }
    static std::string display_name(const RunInfo& r) { return doctest_detail::display_name(r); }
    static void fail_at(const char* file, unsigned line, const std::string& message) {
        doctest_detail::fail_at(file, line, message);
    }
    static constexpr const detail::FrameworkPatterns& patterns = kPatterns;
    static constexpr bool can_rerun = false;   // (test_stacks=rerun is not written for doctest yet)
};
using Guard = detail::Guard<Framework>;

inline doctest::IReporter* make_listener(const doctest::ContextOptions& options) {
    Ignore quiet;
    return new Listener(options);
}
inline const bool registered = (doctest::detail::registerReporterImpl("leakscope", 0, make_listener, false), true);

}  // namespace doctest_detail
}  // namespace test
}  // namespace leakscope

// Placed first in a test body: the run fails inside doctest when the body leaves allocations behind.
#define LEAKSCOPE_GUARD() ::leakscope::test::doctest_detail::Guard leakscope_guard_(__FILE__, __LINE__)

#endif  // LEAKSCOPE_DOCTEST_HPP_INCLUDED
