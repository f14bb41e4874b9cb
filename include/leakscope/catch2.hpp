// leakscope/catch2.hpp — Catch2 tests that leave allocations behind fail the run.
//
//     // exactly one translation unit of the test program (with Catch2 v2: the one with
//     // CATCH_CONFIG_MAIN or CATCH_CONFIG_RUNNER, defined before this include):
//     #define CATCH_CONFIG_MAIN            // v2 (v3: link Catch2::Catch2WithMain instead)
//     #define LEAKSCOPE_IMPLEMENTATION
//     #include <leakscope/catch2.hpp>
//     // any other test file:
//     #include <leakscope/catch2.hpp>
//
// Catch2 v2 (the single header <catch2/catch.hpp>) and v3 (<catch2/catch_test_macros.hpp> and
// friends, linked with libCatch2.a/libCatch2Main.a) are both supported; the version is the one
// already included, else the one __has_include finds (v3 first). The tests of this adapter build
// and run the same fixture against both: v2.13 (Debian 12's) and v3.7.1 (bookworm-backports).
//
// Two routes, because a Catch2 listener cannot fail a test:
//
//  1. The listener (registered once, however many translation units include this header) checks
//     every test case automatically, each run of it separately — a test case with SECTIONs runs
//     once per leaf section. A leaking run is printed on stderr, naming the test case and its
//     sections, and the process's exit status becomes 1 when Catch2 itself would return 0.
//     (Catch2 computes its exit status itself; the adapter changes it with an on_exit handler that
//     flushes the standard streams and calls _Exit(1) — later exit handlers, such as gcov's, are
//     skipped then. A main() of one's own can return
//     leakscope::test::exit_status(session.run(argc, argv)) instead.)
//
//  2. The guard, placed first in a test body:
//         TEST_CASE("cache fills") {
//             LEAKSCOPE_GUARD();
//             ...
//         }
//     judges the run when the body ends and fails the test *inside* Catch2 (a failed assertion
//     at the guard's line, with leakscope's report as its message): it counts in Catch2's totals,
//     its exit status and the JUnit/XML reporters. A guarded run is judged by its guard only.
//
// Escape hatches (in the test body): LEAKSCOPE_EXPECT_LEFTOVERS(n) — exactly n blocks must be
// left; LEAKSCOPE_ALLOW_LEAKS() — no verdict. A run that already failed gets no leak verdict.
//
// Never leftovers: what Catch2 keeps while a test runs (assertion results, INFO/CAPTURE messages,
// section and generator trackers, GENERATE's values, reporters' records, captured output). In v2
// every call the test makes into Catch2 runs under leakscope::Ignore (the adapter wraps Catch2's
// result capture); in both versions, what remains is inspected (see leakscope/test_common.hpp):
// v3's compiled library tail-calls the growth of its message vectors, so a block of a standard
// container of Catch2's types (std::vector<Catch::ScopedMessage>) counts as Catch2's.
//
// Stacks: by default (test_stacks=auto) the runs go without, and a test case with a run that left
// blocks behind runs again alone — this program with the test case's name and the parent's
// --rng-seed — in one child that reports all its runs with stacks (leakscope/test_common.hpp).
// A test case with GENERATE leaves Catch2's blocks in its runs, which costs it such a child; after
// 8 children the remaining runs capture stacks themselves. test_stacks=rerun: no limit;
// test_stacks=inline: stacks in every run.
//
// Like leakscope.hpp, this header never defines LEAKSCOPE_IMPLEMENTATION itself.
#ifndef LEAKSCOPE_CATCH2_HPP_INCLUDED
#define LEAKSCOPE_CATCH2_HPP_INCLUDED

#include <leakscope/test_common.hpp>

#if !defined(CATCH_VERSION_MAJOR)
#if defined(__has_include)
#if __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_test_macros.hpp>
#elif __has_include(<catch2/catch.hpp>)
#define LEAKSCOPE_CATCH2_INCLUDE_V2 1
#else
#error "leakscope/catch2.hpp: Catch2 not found (neither <catch2/catch_test_macros.hpp> nor <catch2/catch.hpp>)"
#endif
#else
#define LEAKSCOPE_CATCH2_INCLUDE_V2 1
#endif
#endif
#if defined(LEAKSCOPE_CATCH2_INCLUDE_V2)
// Catch2 v2's single header declares the listener interface only where it is asked for (or in the
// translation unit with CATCH_CONFIG_MAIN or CATCH_CONFIG_RUNNER, which must then be defined
// before this header is included: the implementation is part of the same include).
#ifndef CATCH_CONFIG_EXTERNAL_INTERFACES
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#endif
#include <catch2/catch.hpp>
#undef LEAKSCOPE_CATCH2_INCLUDE_V2
#endif

#if !defined(CATCH_VERSION_MAJOR)
#include <catch2/catch_version_macros.hpp>
#endif

#if !defined(LEAKSCOPE_CATCH2_QUIET_REPORTER)
#define LEAKSCOPE_CATCH2_QUIET_REPORTER 1
#endif

#if CATCH_VERSION_MAJOR >= 3
#include <catch2/catch_test_case_info.hpp>
#include <catch2/interfaces/catch_interfaces_config.hpp>
#include <catch2/interfaces/catch_interfaces_reporter.hpp>
#include <catch2/internal/catch_context.hpp>
#include <catch2/internal/catch_reusable_string_stream.hpp>
#include <catch2/reporters/catch_reporter_event_listener.hpp>
#include <catch2/reporters/catch_reporter_registrars.hpp>
#if LEAKSCOPE_CATCH2_QUIET_REPORTER && defined(LEAKSCOPE_IMPLEMENTATION)
#include <catch2/internal/catch_run_context.hpp>
#endif
#endif

// The listener needs Catch2's reporter interface: always there in v3; in v2 only when
// <catch2/catch.hpp> was first included with CATCH_CONFIG_EXTERNAL_INTERFACES (this header asks
// for it) or in the translation unit with CATCH_CONFIG_MAIN/RUNNER. A translation unit that
// included v2 earlier without it gets the guard and the escape hatches; the listener comes from
// the translation unit with the implementation, which always has it.
#if CATCH_VERSION_MAJOR >= 3 || defined(CATCH_CONFIG_EXTERNAL_INTERFACES) || defined(CATCH_CONFIG_ENABLE_BENCHMARKING)
#define LEAKSCOPE_CATCH2_LISTENER 1
#else
#define LEAKSCOPE_CATCH2_LISTENER 0
#endif

#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <vector>

namespace leakscope {
namespace test {
namespace catch2_detail {

inline const char* const kOwners[] = {"Catch::", "/catch2/", nullptr};
inline const char* const kEvaluators[] = {"Catch::Generators::generate<", nullptr};
inline constexpr detail::FrameworkPatterns kPatterns{kOwners, kEvaluators};

// What the listener knows about the run in progress (the guard reads it for its report).
struct RunInfo {
    std::string test;                    // the test case's name
    const char* file = "";
    unsigned line = 0;
    std::vector<std::string> sections;   // the sections open now
    std::string path;                    // the deepest section path entered in this run
    int depth = 0;                       // section depth (the test case itself is 1)
    bool failed = false;                 // a failed assertion in this run
    unsigned run = 0;                    // this run's number among the test case's (0 first)
    unsigned runs_begun = 0;
    std::chrono::steady_clock::time_point started{};   // the test case's start
};
inline RunInfo& run_info() {
    static RunInfo info;
    return info;
}

inline std::string display_name(const RunInfo& r) {
    return r.path.empty() ? r.test : r.test + " / " + r.path;
}

// The test case as a Catch2 test spec: the name with a backslash before each character a spec gives a
// meaning to (, [ ] " ~ and the backslash; both v2 and v3 take that, neither a quoted name with a
// comma). Matching is case-insensitive, so a child may also run a test case whose name differs
// only in case: its runs have another key, and are not taken for this one's.
inline std::string test_spec(const std::string& name) {
    std::string spec;
    for (char c : name) {
        if (c == ',' || c == '[' || c == ']' || c == '"' || c == '~' || c == '\\') spec += '\\';
        spec += c;
    }
    return spec;
}

// What a re-run child of this run is told (test_stacks=rerun): the program alone with the test
// case's spec and the parent's random seed (GENERATE(random(...)), --order rand); none of the
// parent's other arguments (its reporter, output file, sections or shard).
inline detail::RerunRequest rerun_request() {
    const RunInfo& r = run_info();
    detail::RerunRequest q;
    q.key = r.test;
    q.index = r.run;
    q.keep_parent_args = false;
    q.add_args = {test_spec(r.test), "--rng-seed", std::to_string(Catch::getCurrentContext().getConfig()->rngSeed())};
    // Catch2 v3 under Bazel (BAZEL_TEST) takes its JUnit file, shard and filter from these.
    q.drop_env = {"BAZEL_TEST", "XML_OUTPUT_FILE", "TEST_SHARD_INDEX", "TEST_TOTAL_SHARDS", "TEST_SHARD_STATUS_FILE",
                  "TESTBRIDGE_TEST_ONLY", "TEST_PREMATURE_EXIT_FILE"};
    q.took = std::chrono::steady_clock::now() - r.started;
    return q;
}

// Keeps Catch2's string-stream pool (used by INFO, CAPTURE and stringification) from growing
// inside the first tests that use it: a few streams with some room, created before any test.
inline void warm_up() {
    Ignore quiet;
    std::optional<Catch::ReusableStringStream> streams[8];
    for (auto& s : streams) {
        s.emplace();
        *s << std::string(256, ' ');
    }
}

// Reports a failed assertion at the guard's line, inside the running test.
inline void fail_at(const char* file, unsigned line, const std::string& message) {
    Catch::AssertionHandler handler(Catch::StringRef("LEAKSCOPE_GUARD"), Catch::SourceLineInfo(file, line),
                                    Catch::StringRef(), Catch::ResultDisposition::ContinueOnFailure);
    handler.handleMessage(Catch::ResultWas::ExplicitFailure, std::string(message));
    handler.complete();   // may throw when Catch2 aborts the run (--abort): the guard lets it
}

// The in-test guard (LEAKSCOPE_GUARD()): detail::Guard with this framework's hooks.
struct Framework {
    static RunInfo& run_info() { return catch2_detail::run_info(); }
    static std::string display_name(const RunInfo& r) { return catch2_detail::display_name(r); }
    static void fail_at(const char* file, unsigned line, const std::string& message) {
        catch2_detail::fail_at(file, line, message);
    }
    static constexpr const detail::FrameworkPatterns& patterns = kPatterns;
    static constexpr bool can_rerun = true;
    static detail::RerunRequest rerun_request() { return catch2_detail::rerun_request(); }
};

#if LEAKSCOPE_CATCH2_LISTENER
#if CATCH_VERSION_MAJOR < 3
// Catch2 v2 sends every call a test makes (assertions, messages, sections, generators) through
// the context's IResultCapture. While a test case runs, this one stands in for the run context
// and forwards each call under leakscope::Ignore.
class QuietCapture : public Catch::IResultCapture {
   public:
    Catch::IResultCapture* inner = nullptr;

    bool sectionStarted(Catch::SectionInfo const& info, Catch::Counts& assertions) override {
        Ignore q;
        return inner->sectionStarted(info, assertions);
    }
    void sectionEnded(Catch::SectionEndInfo const& info) override {
        Ignore q;
        inner->sectionEnded(info);
    }
    void sectionEndedEarly(Catch::SectionEndInfo const& info) override {
        Ignore q;
        inner->sectionEndedEarly(info);
    }
    auto acquireGeneratorTracker(Catch::StringRef name, Catch::SourceLineInfo const& line)
        -> Catch::IGeneratorTracker& override {
        Ignore q;
        return inner->acquireGeneratorTracker(name, line);
    }
#if defined(CATCH_CONFIG_ENABLE_BENCHMARKING)
    void benchmarkPreparing(std::string const& name) override {
        Ignore q;
        inner->benchmarkPreparing(name);
    }
    void benchmarkStarting(Catch::BenchmarkInfo const& info) override {
        Ignore q;
        inner->benchmarkStarting(info);
    }
    void benchmarkEnded(Catch::BenchmarkStats<> const& stats) override {
        Ignore q;
        inner->benchmarkEnded(stats);
    }
    void benchmarkFailed(std::string const& error) override {
        Ignore q;
        inner->benchmarkFailed(error);
    }
#endif
    void pushScopedMessage(Catch::MessageInfo const& message) override {
        Ignore q;
        inner->pushScopedMessage(message);
    }
    void popScopedMessage(Catch::MessageInfo const& message) override {
        Ignore q;
        inner->popScopedMessage(message);
    }
    void emplaceUnscopedMessage(Catch::MessageBuilder const& builder) override {
        Ignore q;
        inner->emplaceUnscopedMessage(builder);
    }
    void handleFatalErrorCondition(Catch::StringRef message) override {
        Ignore q;
        inner->handleFatalErrorCondition(message);
    }
    void handleExpr(Catch::AssertionInfo const& info, Catch::ITransientExpression const& expr,
                    Catch::AssertionReaction& reaction) override {
        Ignore q;
        inner->handleExpr(info, expr, reaction);
    }
    void handleMessage(Catch::AssertionInfo const& info, Catch::ResultWas::OfType type,
                       Catch::StringRef const& message, Catch::AssertionReaction& reaction) override {
        Ignore q;
        inner->handleMessage(info, type, message, reaction);
    }
    void handleUnexpectedExceptionNotThrown(Catch::AssertionInfo const& info,
                                            Catch::AssertionReaction& reaction) override {
        Ignore q;
        inner->handleUnexpectedExceptionNotThrown(info, reaction);
    }
    void handleUnexpectedInflightException(Catch::AssertionInfo const& info, std::string const& message,
                                           Catch::AssertionReaction& reaction) override {
        Ignore q;
        inner->handleUnexpectedInflightException(info, message, reaction);
    }
    void handleIncomplete(Catch::AssertionInfo const& info) override {
        Ignore q;
        inner->handleIncomplete(info);
    }
    void handleNonExpr(Catch::AssertionInfo const& info, Catch::ResultWas::OfType type,
                       Catch::AssertionReaction& reaction) override {
        Ignore q;
        inner->handleNonExpr(info, type, reaction);
    }
    bool lastAssertionPassed() override { return inner->lastAssertionPassed(); }
    void assertionPassed() override { inner->assertionPassed(); }
    std::string getCurrentTestName() const override {
        Ignore q;
        return inner->getCurrentTestName();
    }
    const Catch::AssertionResult* getLastResult() const override { return inner->getLastResult(); }
    void exceptionEarlyReported() override { inner->exceptionEarlyReported(); }
};
using ListenerBase = Catch::TestEventListenerBase;
#else
using ListenerBase = Catch::EventListenerBase;
#endif

// ---- the run's reporter, quiet -----------------------------------------------------------------
// Catch2 calls its reporters around and inside each run: the test case's own section starts (the
// reporters after this listener: inside the run's scope), and assertions are reported from the
// test body. What reporters keep is Catch2's: the console reporter's section stack, grown in the
// first test; the JUnit and XML reporters' records of every run, kept for the end. With stacks
// it would be recognised as Catch2's, at the price of building the run's report (the first time
// also reading the test program's debug information: 0.1 s for a thousand trivial tests), and
// without stacks it would be blamed on the test. So when the run starts, the run context's
// reporter (Catch2's multiplexer of listeners and reporters) is put behind one that forwards every
// event under leakscope::Ignore. Catch2 keeps that member private; an explicit instantiation may
// name a private member (the usual trick), once per program: in the translation unit with v2's
// implementation (CATCH_CONFIG_MAIN or CATCH_CONFIG_RUNNER) or, with v3, the one defining
// LEAKSCOPE_IMPLEMENTATION. Written against Catch2 2.13 and 3.7; define
// LEAKSCOPE_CATCH2_QUIET_REPORTER to 0 to do without (correct, slower as described).
using QuietenReporter = void (*)();
inline QuietenReporter& quieten_reporter() noexcept {
    static QuietenReporter hook = nullptr;   // set by the one translation unit that can
    return hook;
}

#if LEAKSCOPE_CATCH2_QUIET_REPORTER && \
    ((CATCH_VERSION_MAJOR < 3 && defined(CATCH_IMPL)) || (CATCH_VERSION_MAJOR >= 3 && defined(LEAKSCOPE_IMPLEMENTATION)))
#define LEAKSCOPE_CATCH2_FORWARD(method, Param)       \
    void method(Param value) override {               \
        Ignore quiet;                                  \
        inner_->method(value);                         \
    }
#if CATCH_VERSION_MAJOR < 3
using ReporterPtr = Catch::IStreamingReporterPtr;
class QuietReporter final : public Catch::IStreamingReporter {
   public:
    explicit QuietReporter(ReporterPtr inner) : inner_(std::move(inner)) {}
    Catch::ReporterPreferences getPreferences() const override { return inner_->getPreferences(); }
    LEAKSCOPE_CATCH2_FORWARD(noMatchingTestCases, std::string const&)
    LEAKSCOPE_CATCH2_FORWARD(reportInvalidArguments, std::string const&)
    LEAKSCOPE_CATCH2_FORWARD(testRunStarting, Catch::TestRunInfo const&)
    LEAKSCOPE_CATCH2_FORWARD(testGroupStarting, Catch::GroupInfo const&)
    LEAKSCOPE_CATCH2_FORWARD(testCaseStarting, Catch::TestCaseInfo const&)
    LEAKSCOPE_CATCH2_FORWARD(sectionStarting, Catch::SectionInfo const&)
#if defined(CATCH_CONFIG_ENABLE_BENCHMARKING)
    LEAKSCOPE_CATCH2_FORWARD(benchmarkPreparing, std::string const&)
    LEAKSCOPE_CATCH2_FORWARD(benchmarkStarting, Catch::BenchmarkInfo const&)
    LEAKSCOPE_CATCH2_FORWARD(benchmarkEnded, Catch::BenchmarkStats<> const&)
    LEAKSCOPE_CATCH2_FORWARD(benchmarkFailed, std::string const&)
#endif
    LEAKSCOPE_CATCH2_FORWARD(assertionStarting, Catch::AssertionInfo const&)
    bool assertionEnded(Catch::AssertionStats const& stats) override {
        Ignore quiet;
        return inner_->assertionEnded(stats);
    }
    LEAKSCOPE_CATCH2_FORWARD(sectionEnded, Catch::SectionStats const&)
    LEAKSCOPE_CATCH2_FORWARD(testCaseEnded, Catch::TestCaseStats const&)
    LEAKSCOPE_CATCH2_FORWARD(testGroupEnded, Catch::TestGroupStats const&)
    LEAKSCOPE_CATCH2_FORWARD(testRunEnded, Catch::TestRunStats const&)
    LEAKSCOPE_CATCH2_FORWARD(skipTest, Catch::TestCaseInfo const&)
    LEAKSCOPE_CATCH2_FORWARD(fatalErrorEncountered, Catch::StringRef)
    bool isMulti() const override { return inner_->isMulti(); }

   private:
    ReporterPtr inner_;
};
#else
using ReporterPtr = Catch::IEventListenerPtr;
class QuietReporter final : public Catch::IEventListener {
   public:
    explicit QuietReporter(ReporterPtr inner)
        : Catch::IEventListener(Catch::getCurrentContext().getConfig()), inner_(std::move(inner)) {
        m_preferences = inner_->getPreferences();   // read by the run context for each run
    }
    LEAKSCOPE_CATCH2_FORWARD(noMatchingTestCases, Catch::StringRef)
    LEAKSCOPE_CATCH2_FORWARD(reportInvalidTestSpec, Catch::StringRef)
    LEAKSCOPE_CATCH2_FORWARD(testRunStarting, Catch::TestRunInfo const&)
    LEAKSCOPE_CATCH2_FORWARD(testCaseStarting, Catch::TestCaseInfo const&)
    void testCasePartialStarting(Catch::TestCaseInfo const& info, std::uint64_t part) override {
        Ignore quiet;
        inner_->testCasePartialStarting(info, part);
    }
    LEAKSCOPE_CATCH2_FORWARD(sectionStarting, Catch::SectionInfo const&)
    LEAKSCOPE_CATCH2_FORWARD(benchmarkPreparing, Catch::StringRef)
    LEAKSCOPE_CATCH2_FORWARD(benchmarkStarting, Catch::BenchmarkInfo const&)
    LEAKSCOPE_CATCH2_FORWARD(benchmarkEnded, Catch::BenchmarkStats<> const&)
    LEAKSCOPE_CATCH2_FORWARD(benchmarkFailed, Catch::StringRef)
    LEAKSCOPE_CATCH2_FORWARD(assertionStarting, Catch::AssertionInfo const&)
    LEAKSCOPE_CATCH2_FORWARD(assertionEnded, Catch::AssertionStats const&)
    LEAKSCOPE_CATCH2_FORWARD(sectionEnded, Catch::SectionStats const&)
    void testCasePartialEnded(Catch::TestCaseStats const& stats, std::uint64_t part) override {
        Ignore quiet;
        inner_->testCasePartialEnded(stats, part);
    }
    LEAKSCOPE_CATCH2_FORWARD(testCaseEnded, Catch::TestCaseStats const&)
    LEAKSCOPE_CATCH2_FORWARD(testRunEnded, Catch::TestRunStats const&)
    LEAKSCOPE_CATCH2_FORWARD(skipTest, Catch::TestCaseInfo const&)
    LEAKSCOPE_CATCH2_FORWARD(fatalErrorEncountered, Catch::StringRef)
    LEAKSCOPE_CATCH2_FORWARD(listReporters, std::vector<Catch::ReporterDescription> const&)
    LEAKSCOPE_CATCH2_FORWARD(listListeners, std::vector<Catch::ListenerDescription> const&)
    LEAKSCOPE_CATCH2_FORWARD(listTests, std::vector<Catch::TestCaseHandle> const&)
    LEAKSCOPE_CATCH2_FORWARD(listTags, std::vector<Catch::TagInfo> const&)

   private:
    ReporterPtr inner_;
};
#endif
#undef LEAKSCOPE_CATCH2_FORWARD

// Catch::RunContext::m_reporter, named through an explicit instantiation (which may name private
// members), handed out by a friend function declared first.
struct RunReporter {
    using type = ReporterPtr Catch::RunContext::*;
};
RunReporter::type member_of(RunReporter) noexcept;
template <class Tag, typename Tag::type Member>
struct Rob {
    friend typename Tag::type member_of(Tag) noexcept { return Member; }
};
template struct Rob<RunReporter, &Catch::RunContext::m_reporter>;

#if CATCH_VERSION_MAJOR < 3
// Catch2 v2 hands every passing assertion to the reporters as soon as any listener is registered
// ("listeners will always want all assertions"), building its stats and expansion each time:
// ~1,100 instructions per passing CHECK, two thirds of what the adapter cost a trivial test. This
// listener wants failures only, which Catch2 reports regardless; so when it is the only listener,
// the run reports passing assertions only if the reporter (JUnit, XML) or -s asks for them.
struct RunIncludesSuccessful {
    using type = bool Catch::RunContext::*;
};
RunIncludesSuccessful::type member_of(RunIncludesSuccessful) noexcept;
template struct Rob<RunIncludesSuccessful, &Catch::RunContext::m_includeSuccessfulResults>;
struct MultiReporter {
    using type = ReporterPtr Catch::ListeningReporter::*;
};
MultiReporter::type member_of(MultiReporter) noexcept;
template struct Rob<MultiReporter, &Catch::ListeningReporter::m_reporter>;
struct MultiListeners {
    using type = std::vector<ReporterPtr> Catch::ListeningReporter::*;
};
MultiListeners::type member_of(MultiListeners) noexcept;
template struct Rob<MultiListeners, &Catch::ListeningReporter::m_listeners>;

inline void report_passing_assertions_as_asked(Catch::RunContext& run, Catch::IStreamingReporter* reporter) {
    auto* multi = dynamic_cast<Catch::ListeningReporter*>(reporter);
    if (!multi || (multi->*member_of(MultiListeners{})).size() != 1) return;   // others may want them
    const ReporterPtr& main = multi->*member_of(MultiReporter{});
    run.*member_of(RunIncludesSuccessful{}) = Catch::getCurrentContext().getConfig()->includeSuccessfulResults() ||
                                              (main && main->getPreferences().shouldReportAllAssertions);
}
#endif

// Called from the listener's testRunStarting, which the run context's constructor triggers once
// it is the result capture: the reporter it holds goes behind a QuietReporter.
inline void quieten_run_reporter() {
    Ignore quiet;
    auto* run = static_cast<Catch::RunContext*>(&Catch::getResultCapture());
    ReporterPtr& reporter = run->*member_of(RunReporter{});
    if (!reporter) return;
#if CATCH_VERSION_MAJOR < 3
    report_passing_assertions_as_asked(*run, reporter.get());
#endif
    reporter = ReporterPtr(new QuietReporter(std::move(reporter)));
}
inline const bool quieten_set = (quieten_reporter() = &quieten_run_reporter, true);
#endif

class Listener : public ListenerBase {
   public:
    using ListenerBase::ListenerBase;
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;
    ~Listener() override {
        if (scope_) scope_->dismiss();   // the process is exiting inside a test (exit())
    }

    void testRunStarting(Catch::TestRunInfo const&) override {
        warm_up();
        if (QuietenReporter quieten = quieten_reporter()) quieten();
    }

    void testCaseStarting(Catch::TestCaseInfo const& info) override {
        Ignore quiet;
        RunInfo& r = run_info();
        r.test = info.name;
        r.file = info.lineInfo.file;
        r.line = unsigned(info.lineInfo.line);
        r.runs_begun = 0;
        r.started = std::chrono::steady_clock::now();
        detail::forget_rerun();
#if CATCH_VERSION_MAJOR < 3
        Catch::IMutableContext& context = Catch::getCurrentMutableContext();
        capture_.inner = context.getResultCapture();
        context.setResultCapture(&capture_);
#endif
    }

    void sectionStarting(Catch::SectionInfo const& section) override {
        RunInfo& r = run_info();
        if (r.depth++ == 0) {
#if CATCH_VERSION_MAJOR < 3
            // Catch2 v2 built this SectionInfo (a copy of the test's name) after the previous
            // run ended: it belongs to Catch2.
            detail::ignore_string(section.name);
            end_run();
#endif
            begin_run();
            return;
        }
        Ignore quiet;
        r.sections.push_back(section.name);
        if (r.sections.size() > count_sections(r.path)) {
            r.path.clear();
            for (const std::string& s : r.sections) r.path.append(r.path.empty() ? "" : " / ").append(s);
        }
    }

    void sectionEnded(Catch::SectionStats const& stats) override {
        RunInfo& r = run_info();
        if (stats.assertions.failed > 0 || stats.assertions.failedButOk > 0) r.failed = true;
        if (--r.depth > 0) {
            Ignore quiet;
            if (!r.sections.empty()) r.sections.pop_back();
        }
    }

#if CATCH_VERSION_MAJOR < 3
    bool assertionEnded(Catch::AssertionStats const& stats) override {
        if (!stats.assertionResult.isOk()) note_failure();
        return true;
    }

    void testCaseEnded(Catch::TestCaseStats const& stats) override {
        // Catch2 v2 copies the test's description into the stats it hands the reporters.
        detail::ignore_string(stats.testInfo.name);
        detail::ignore_string(stats.testInfo.className);
        detail::ignore_string(stats.testInfo.description);
        for (const auto* tags : {&stats.testInfo.tags, &stats.testInfo.lcaseTags}) {
            for (const std::string& t : *tags) detail::ignore_string(t);
            detail::ignore_vector(*tags);
        }
        detail::ignore_string(stats.stdOut);
        detail::ignore_string(stats.stdErr);
        end_run();
        Catch::getCurrentMutableContext().setResultCapture(capture_.inner);
    }
#else
    void assertionEnded(Catch::AssertionStats const& stats) override {
        if (!stats.assertionResult.isOk()) note_failure();
    }

    void testCasePartialEnded(Catch::TestCaseStats const& stats, std::uint64_t) override {
        detail::ignore_string(stats.stdOut);   // this run's captured output, moved into the stats
        detail::ignore_string(stats.stdErr);
        end_run();
    }
#endif

    void testRunEnded(Catch::TestRunStats const&) override {
        unsigned n = detail::globals().leaking_runs;
        if (n)
            detail::print_report("leakscope: " + std::to_string(n) + " test run" + (n == 1 ? "" : "s") +
                                 " left allocations behind (reported above); the exit status will be non-zero");
    }

   private:
    static std::size_t count_sections(const std::string& path) {
        if (path.empty()) return 0;
        std::size_t n = 1;
        for (std::size_t i = path.find(" / "); i != std::string::npos; i = path.find(" / ", i + 3)) ++n;
        return n;
    }
    static void note_failure() {
        run_info().failed = true;
        ++detail::globals().run.failures;
    }

    void begin_run() {
        RunInfo& r = run_info();
        {
            Ignore quiet;
            r.sections.clear();
            r.path.clear();
            r.failed = false;
        }
        r.run = r.runs_begun++;
        detail::begin_run();
        stackless_ = detail::stackless_runs<Framework>();
        if (stackless_) {
            ::leakscope::detail::ScopesWithoutStacks off;
            scope_.emplace(r.test, detail::globals().threads, r.file, r.line);
        } else {
            scope_.emplace(r.test, detail::globals().threads, r.file, r.line);
        }
        detail::globals().scope = &*scope_;
    }

    void end_run() {
        if (!scope_) return;
        detail::globals().scope = nullptr;
        RunInfo& r = run_info();
        detail::Verdict verdict;
        if (r.failed || detail::globals().run.guarded) {
            scope_->dismiss();   // failed already, or judged by its guard
        } else {
            verdict = detail::judge(*scope_, [&r] { return display_name(r); }, kPatterns, &rerun_request, stackless_);
        }
        scope_.reset();
        if (!verdict.failed) return;
        Ignore quiet;
        std::string where = std::string(r.file) + ":" + std::to_string(r.line);
        std::string head = "leakscope: test case \"" + r.test + "\"";
        if (!r.path.empty()) head += " section \"" + r.path + "\"";
        detail::print_report(head + " (" + where + ") FAILED: it left allocations behind\n" + verdict.message);
        detail::note_uncounted_leak();
    }

#if CATCH_VERSION_MAJOR < 3
    QuietCapture capture_;
#endif
    std::optional<LeakScope> scope_;
    bool stackless_ = false;
};

#if CATCH_VERSION_MAJOR < 3
inline const Catch::ListenerRegistrar<Listener> registrar{};
#else
inline const Catch::ListenerRegistrar<Listener> registrar{"leakscope"};
#endif
#endif  // LEAKSCOPE_CATCH2_LISTENER

using Guard = detail::Guard<Framework>;

}  // namespace catch2_detail
}  // namespace test
}  // namespace leakscope

// Placed first in a test body: the run fails inside Catch2 when the body leaves allocations behind.
#define LEAKSCOPE_GUARD() ::leakscope::test::catch2_detail::Guard leakscope_guard_(__FILE__, __LINE__)

#endif  // LEAKSCOPE_CATCH2_HPP_INCLUDED
