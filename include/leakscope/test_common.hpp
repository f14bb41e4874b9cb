// leakscope/test_common.hpp — what the test-framework adapters share (leakscope/gtest.hpp,
// leakscope/catch2.hpp, leakscope/doctest.hpp). Not meant to be included on its own.
//
// Built on leakscope's public API only. Like leakscope.hpp itself, the adapters never define
// LEAKSCOPE_IMPLEMENTATION: define it in exactly one translation unit of the test program,
// before including an adapter (or leakscope.hpp) there.
//
// What an adapter does for every test (every run of a test, for Catch2 sections and doctest
// subcases):
//   * opens a leakscope::LeakScope named after the test when the test starts and judges its
//     leftovers when it ends;
//   * keeps the framework's own bookkeeping out of the verdict:
//       - framework calls the adapter can route (GoogleTest's test-part reporter, Catch2 v2's
//         result capture) run under leakscope::Ignore;
//       - blocks held by the objects the framework hands to the end-of-test event (copies of the
//         test's name, its captured output) are leakscope::ignore()d;
//       - what is left is inspected: a leftover whose allocating stack starts (above the standard
//         library's allocation plumbing) in the framework's namespace ("testing::", "Catch::",
//         "doctest::") is the framework's — a result, a message, a section tracker, a reporter's
//         node — and is dropped from the report. This needs call stacks (option stacks=on, the
//         default); without a stack a leftover is blamed on the test.
//   * a test that already failed gets no leak verdict (its leftovers are likely a consequence),
//     neither does a test that expects leftovers with allow_leaks().
#ifndef LEAKSCOPE_TEST_COMMON_HPP_INCLUDED
#define LEAKSCOPE_TEST_COMMON_HPP_INCLUDED

#include <leakscope.hpp>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include <stdlib.h>   // on_exit (glibc)

namespace leakscope {
namespace test {

// ---- escape hatches, for the test that is running ------------------------------------------
// This test (this run of it) must leave exactly `blocks` blocks behind; any other count fails it.
void expect_leftovers(std::size_t blocks) noexcept;
// This test may leave anything behind: it gets no leak verdict.
void allow_leaks() noexcept;

// The running test's scope, for work handed to another thread: `leakscope::Adopt a{token()};`.
// Empty outside a test.
Token token() noexcept;

// Whose allocations the per-test scopes count (default Threads::current: the test's thread and
// threads that Adopt its token; Threads::all: also every thread that has no scope of its own).
void set_threads(Threads threads) noexcept;

// For a main() of one's own: the status to return, given the framework's. The Catch2 and doctest
// listeners cannot fail a test, so when tests leaked but the framework says 0 this returns 1.
// Without it, a process whose tests leaked and whose main returned 0 exits with status 1
// anyway (an on_exit handler; it calls _Exit after flushing stdio and the standard streams, so
// later exit handlers — e.g. gcov's — are skipped in that one case).
int exit_status(int framework_status) noexcept;

namespace detail {

// The state of the test that is running. Tests run on one thread at a time in every framework
// adapted here; the escape hatches may be called from any thread of the test.
struct RunState {
    long expected = -1;        // expect_leftovers(), or -1
    bool allowed = false;      // allow_leaks()
    bool guarded = false;      // an in-test guard judged this run (the listener then stays quiet)
    unsigned failures = 0;     // failed assertions seen in this run (Catch2, doctest listeners)
};
struct Globals {
    RunState run;
    Threads threads = Threads::current;
    const LeakScope* scope = nullptr;   // the listener's scope of the running test, if any
    unsigned leaking_runs = 0;          // verdicts the framework could not count (listeners)
    bool exit_hook = false;
    bool status_taken = false;
};
inline Globals& globals() noexcept {
    static Globals g;
    return g;
}

// The qualified name of a demangled function, without the return type that demangled template
// instantiations carry ("void std::vector<int>::_M_realloc_insert<...>(...)" ->
// "std::vector<int>::_M_realloc_insert<...>"; also past a "decltype (...)" return type).
inline std::string_view qualified_name(const std::string& function) noexcept {
    std::string_view f(function);
    if (f.compare(0, 9, "operator ") == 0) return f;
    int depth = 0;
    std::size_t start = 0;
    for (std::size_t i = 0; i < f.size(); ++i) {
        char c = f[i];
        if (c == '<') ++depth;
        else if (c == '>' && depth > 0) --depth;
        else if (c == '(' && depth == 0) {
            // A return type "decltype (...)" (a template deduced from an expression) is skipped.
            std::size_t e = i;
            while (e > 0 && f[e - 1] == ' ') --e;
            if (e < 8 || f.compare(e - 8, 8, "decltype") != 0) break;
            int parens = 0;
            for (; i < f.size(); ++i) {
                if (f[i] == '(') ++parens;
                else if (f[i] == ')' && --parens == 0) break;
            }
        } else if (c == ' ' && depth == 0) start = i + 1;
    }
    return f.substr(start);
}

inline bool starts_with(std::string_view s, const char* prefix) noexcept {
    std::size_t n = std::strlen(prefix);
    return s.size() >= n && s.compare(0, n, prefix) == 0;
}

// The standard library's allocation machinery, operator new/delete and leakscope itself: frames
// that say nothing about who allocated.
inline bool plumbing_frame(const Frame& f) {
    if (starts_with(f.file, "/usr/include/c++/") || starts_with(f.file, "/usr/lib/gcc/") ||
        f.file.find("/include/c++/v1/") != std::string::npos)
        return true;
    std::string_view name = qualified_name(f.function);
    static const char* const names[] = {"std::", "__gnu_cxx::", "__cxxabiv1::", "operator new",
                                        "operator delete", "leakscope::", "__cxa_", "_Unwind_"};
    for (const char* n : names)
        if (starts_with(name, n)) return true;
    if (f.function.empty() && f.file.empty() && f.module.find("libstdc++") != std::string::npos) return true;
    return false;
}

// What marks a framework's own allocations in a leftover's stack (null-terminated lists):
//   owners      namespace prefixes ("Catch::") and, starting with '/', fragments of the
//               framework's header paths ("/catch2/": g++'s debug info names a function inlined
//               from a header without its namespace);
//   evaluators  the framework's functions that evaluate an expression of the test and keep its
//               values beyond the run ("Catch::Generators::generate<": GENERATE's values live in
//               the generator until the test case's last run). Matched by qualified name, or by
//               the unqualified name ("generate<") in one of the owners' header paths.
struct FrameworkPatterns {
    const char* const* owners;
    const char* const* evaluators;
};

// A name in one of the framework's namespaces.
inline bool framework_name(std::string_view name, const FrameworkPatterns& p) {
    for (const char* const* o = p.owners; *o; ++o)
        if (**o != '/' && starts_with(name, *o)) return true;
    return false;
}
inline bool framework_file(const Frame& f, const FrameworkPatterns& p) {
    for (const char* const* o = p.owners; *o; ++o)
        if (**o == '/' && f.file.find(*o) != std::string::npos) return true;
    return false;
}

// A standard-library frame working for the framework's own types: its class template's first
// argument is in the framework's namespace ("std::vector<Catch::ScopedMessage, ...>::
// _M_realloc_insert<...>"). Such a frame stands for the framework's container even when the
// framework's own frame is gone from the stack (a compiled framework library tail-calls its
// vector's growth: Catch2 v3's RunContext::emplaceUnscopedMessage).
inline bool framework_container(const Frame& f, const FrameworkPatterns& p) {
    std::string_view name = qualified_name(f.function);
    if (!starts_with(name, "std::")) return false;
    std::size_t open = name.find('<');
    std::size_t paren = name.find('(');
    if (open == std::string_view::npos || (paren != std::string_view::npos && paren < open)) return false;
    return framework_name(name.substr(open + 1), p);
}

inline bool evaluator_frame(const Frame& f, const FrameworkPatterns& p) {
    if (!p.evaluators) return false;
    std::string_view name = qualified_name(f.function);
    for (const char* const* e = p.evaluators; *e; ++e) {
        std::string_view full(*e);
        if (starts_with(name, *e)) return true;
        std::size_t colons = full.rfind("::", full.find('<'));
        std::string_view unqualified = colons == std::string_view::npos ? full : full.substr(colons + 2);
        if (name.size() >= unqualified.size() && name.compare(0, unqualified.size(), unqualified) == 0 &&
            framework_file(f, p))
            return true;
    }
    return false;
}

// A leftover site is the framework's when the first frame outside the plumbing is the
// framework's (by namespace, or by header path for an inlined call), when a standard-library
// frame below it works for the framework's types (framework_container), or when it was allocated
// inside one of the framework's evaluators. No stack: not provably the framework's.
inline bool framework_site(const Site& site, const FrameworkPatterns& p) {
    for (const Frame& f : site.allocator_frames)
        if (framework_container(f, p)) return true;
    std::size_t i = 0;
    for (; i < site.frames.size(); ++i) {
        const Frame& f = site.frames[i];
        if (!plumbing_frame(f)) break;
        if (framework_container(f, p)) return true;
    }
    if (i == site.frames.size()) return false;
    if (framework_name(qualified_name(site.frames[i].function), p) || framework_file(site.frames[i], p)) return true;
    for (; i < site.frames.size(); ++i)
        if (evaluator_frame(site.frames[i], p)) return true;
    return false;
}

// Ignores the heap block behind a std::string, if it has one (a short string lives inside the
// object: ignore() of an address leakscope never recorded does nothing).
inline void ignore_string(const std::string& s) noexcept {
    if (s.capacity() > 15) leakscope::ignore(s.data());
}
template <class T>
inline void ignore_vector(const std::vector<T>& v) noexcept {
    if (v.capacity()) leakscope::ignore(v.data());
}

// The verdict on a closed run.
struct Verdict {
    bool failed = false;
    std::size_t blocks = 0, bytes = 0;
    std::string message;   // the report (and what was expected), when failed
};

inline std::string render(const Report& r) {
    std::string out;
    char* buffer = nullptr;
    std::size_t size = 0;
    if (std::FILE* mem = open_memstream(&buffer, &size)) {   // malloc'd: never counted
        TextWriter(mem).write(r);
        std::fclose(mem);
        out.assign(buffer, size);
        std::free(buffer);
    }
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

// Judges the scope's leftovers and closes it. `display()` names the run in the report (test,
// sections), asked only for a report; `patterns` are the framework's. A failing run's report is
// the verdict's message and, when the program chose writers of its own, goes to them as well.
template <class Display>
inline Verdict judge(LeakScope& scope, const Display& display, const FrameworkPatterns& patterns) {
    Verdict v;
    RunState& run = globals().run;
    if (run.allowed) {
        scope.dismiss();
        return v;
    }
    // Nearly every run: nothing left and none expected; nothing to build.
    const bool clean = scope.clean();
    if (clean && run.expected <= 0) {
        scope.dismiss();
        return v;
    }
    Ignore quiet;   // what the verdict allocates belongs to no one
    Report report;
    if (!clean) report = scope.leftovers();
    scope.dismiss();
    if (!report.sites.empty()) {
        std::vector<Site> kept;
        report.blocks = report.bytes = 0;
        for (Site& site : report.sites) {
            if (framework_site(site, patterns)) continue;
            report.blocks += site.blocks;
            report.bytes += site.bytes;
            kept.push_back(std::move(site));
        }
        report.sites = std::move(kept);
    } else {
        report.blocks = report.bytes = 0;
    }
    v.blocks = report.blocks;
    v.bytes = report.bytes;
    report.scope = display();
    if (run.expected >= 0) {
        if (v.blocks == std::size_t(run.expected)) return v;
        v.failed = true;
        v.message = "leakscope: expected " + std::to_string(run.expected) + " leftover block" +
                    (run.expected == 1 ? "" : "s") + ", found " + std::to_string(v.blocks);
        if (v.blocks) v.message += "\n" + render(report);
    } else {
        if (v.blocks == 0) return v;
        v.failed = true;
        v.message = render(report);
    }
    // The writers the program chose (report=json=leaks-%n.json, set_writers(), add_writer()) get
    // the failing run's report too, named after the run; the default writer (text on stderr)
    // does not: the framework's failure message already is that report.
    if (v.blocks && ::leakscope::detail::writers_configured()) ::leakscope::write(report);
    return v;
}

inline void flush_all() noexcept {
    try {
        std::cout.flush();
        std::cerr.flush();
        std::clog.flush();
    } catch (...) {
    }
    std::fflush(nullptr);
}

inline void on_exit_hook(int status, void*) {
    Globals& g = globals();
    if (status != 0 || g.status_taken || g.leaking_runs == 0) return;
    flush_all();
    std::_Exit(EXIT_FAILURE);
}

// A leak verdict the framework cannot count (listeners): the run's exit status must say so.
inline void note_uncounted_leak() noexcept {
    Globals& g = globals();
    ++g.leaking_runs;
    if (!g.exit_hook) {
        g.exit_hook = true;
        on_exit(on_exit_hook, nullptr);
    }
}

// Writes a listener's report to stderr, as leakscope's own writer does (stdout may be a JUnit
// or XML document being written).
inline void print_report(const std::string& text) {
    flush_all();
    std::fprintf(stderr, "%s\n", text.c_str());
    std::fflush(stderr);
}

inline void begin_run() noexcept { globals().run = RunState{}; }


// The in-test guard (LEAKSCOPE_GUARD()) of the adapters whose listener cannot fail a test
// (Catch2, doctest): its destructor judges the run and fails it inside the framework.
// `Framework` supplies run_info(), display_name(), fail_at() and patterns for its framework.
template <class Framework>
class Guard {
   public:
    Guard(const char* file, unsigned line) noexcept
        : file_(file), line_(line), uncaught_(std::uncaught_exceptions()),
          scope_(Framework::run_info().test, globals().threads, file, line) {}
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    ~Guard() noexcept(false) {
        globals().run.guarded = true;
        if (std::uncaught_exceptions() > uncaught_ || Framework::run_info().failed) {
            scope_.dismiss();   // the test is failing already
            return;
        }
        Verdict verdict = judge(scope_, [] { return Framework::display_name(Framework::run_info()); }, Framework::patterns);
        if (verdict.failed) Framework::fail_at(file_, line_, verdict.message);
    }

   private:
    const char* file_;
    unsigned line_;
    int uncaught_;
    LeakScope scope_;
};
}  // namespace detail

inline void expect_leftovers(std::size_t blocks) noexcept { detail::globals().run.expected = long(blocks); }
inline void allow_leaks() noexcept { detail::globals().run.allowed = true; }
inline Token token() noexcept {
    const LeakScope* s = detail::globals().scope;
    return s ? s->token() : Token();
}
inline void set_threads(Threads threads) noexcept { detail::globals().threads = threads; }
inline int exit_status(int framework_status) noexcept {
    detail::Globals& g = detail::globals();
    g.status_taken = true;
    if (framework_status != 0) return framework_status;
    return g.leaking_runs ? EXIT_FAILURE : 0;
}

}  // namespace test
}  // namespace leakscope

// The escape hatches as statements, the same in every adapter.
#define LEAKSCOPE_EXPECT_LEFTOVERS(blocks) ::leakscope::test::expect_leftovers(blocks)
#define LEAKSCOPE_ALLOW_LEAKS() ::leakscope::test::allow_leaks()

#endif  // LEAKSCOPE_TEST_COMMON_HPP_INCLUDED
