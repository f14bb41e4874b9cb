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
//   * with test_stacks=rerun (LEAKSCOPE_OPTIONS; GoogleTest and Catch2), the scopes capture no
//     stacks — a capture is ~100 ns, and a suite's captures are most of what
//     the adapter costs a fast test — and a run that leaves blocks behind is run again, alone, in
//     a child process: the test program itself, with the framework's arguments selecting that
//     test (case) and stacks on; one child answers for every run of a Catch2 test case. The
//     child sends back each run's leftovers with their stacks. The parent takes that report for
//     its run when the run alone left at least the blocks and bytes the parent's run did, and no
//     more than those of the test's own (not the framework's): the rest is the framework's, such
//     as a block made in a process's first test. Otherwise — the run alone left other blocks (the
//     test leaks only after another test ran), or the child did not start, died or timed out —
//     the parent's own report stands, exact and stackless, with one line saying why. So nothing
//     is lost, and a clean test never pays for a stack. test_stacks=auto, the default, does this
//     for the first kAutoReruns (8) children of the process, then captures stacks in every test.
#ifndef LEAKSCOPE_TEST_COMMON_HPP_INCLUDED
#define LEAKSCOPE_TEST_COMMON_HPP_INCLUDED

#include <leakscope.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdlib.h>   // on_exit (glibc)
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

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

inline void flush_all() noexcept {
    try {
        std::cout.flush();
        std::cerr.flush();
        std::clog.flush();
    } catch (...) {
    }
    std::fflush(nullptr);
}

// ---- re-running a leaking test alone, for its stacks (test_stacks=rerun) ----------------------
// What the parent asks: which run to judge — `key` names the test (GoogleTest: Suite.Test;
// Catch2: the test case) and `index` is the run's number among the test's runs (Catch2 runs a
// test case once per section path and generator value) —, the arguments that select the test,
// the parent's arguments and environment variables that must not reach the child (its XML output,
// its shard), and how long the run took here.
struct RerunRequest {
    std::string key;
    unsigned index = 0;
    bool keep_parent_args = true;         // else the child gets argv[0] and add_args only
    std::vector<std::string> add_args;
    std::vector<std::string> drop_args;   // a parent argument starting with one of these is left out
    std::vector<std::string> drop_env;    // variable names
    std::chrono::steady_clock::duration took{};
};
// What came back: the leftovers of each run of the test the child judged, with stacks, by run
// index (`ran`: it started and answered at least in part), or why there are none.
struct ChildRuns {
    bool ran = false;
    std::string why;
    std::vector<std::pair<unsigned, Report>> runs;
    const Report* run(unsigned index) const {
        for (const auto& r : runs)
            if (r.first == index) return &r.second;
        return nullptr;
    }
};

// In the child: LEAKSCOPE_RERUN="FD:KEY" — every run of test KEY sends its leftovers to FD as it
// ends (one child serves all the runs of a Catch2 test case the parent may ask about).
struct ChildTarget {
    bool active = false;
    int fd = -1;
    std::string key;
};
inline ChildTarget parse_child_target(const char* text) {
    ChildTarget t;
    if (!text) return t;
    char* end = nullptr;
    long fd = std::strtol(text, &end, 10);
    if (end == text || *end != ':' || fd < 0 || fd > 65535) return t;
    t.active = true;
    t.fd = int(fd);
    t.key = end + 1;
    return t;
}
inline ChildTarget& child_target() {
    static ChildTarget target = [] {
        Ignore quiet;
        return parse_child_target(std::getenv("LEAKSCOPE_RERUN"));
    }();
    return target;
}

// The child's answer: one record per run, "leakscope-rerun 1 ", the run's index and then every
// field of its leftovers report in order; numbers in decimal, each followed by a space; strings as
// their length, a space and their bytes; a list as its length and its elements. One list of the
// fields (report_fields) serves both directions.
struct WireWriter {
    std::string out;
    template <class T>
    void number(const T& n) {
        out.append(std::to_string(static_cast<unsigned long long>(n))).push_back(' ');
    }
    void text(const std::string& s) {
        number(s.size());
        out.append(s);
    }
    template <class T, class Each>
    void list(const std::vector<T>& v, const Each& each) {
        number(v.size());
        for (const T& x : v) each(x);
    }
};
// Reads what a WireWriter wrote; `ok` turns false at the first thing that does not parse (a child
// that died while writing), after which every field reads as empty.
struct WireReader {
    const std::string& in;
    std::size_t at = 0;
    bool ok = true;
    unsigned long long value() {
        unsigned long long n = 0;
        std::size_t start = at;
        while (ok && at < in.size() && in[at] >= '0' && in[at] <= '9' && at - start < 20) n = n * 10 + unsigned(in[at++] - '0');
        if (at == start || at >= in.size() || in[at] != ' ') ok = false;
        ++at;
        return ok ? n : 0;
    }
    template <class T>
    void number(T& n) {
        n = static_cast<T>(value());
    }
    void text(std::string& s) {
        unsigned long long n = value();
        if (!ok || n > in.size() - std::min(at, in.size())) {
            ok = false;
            return;
        }
        s.assign(in, at, std::size_t(n));
        at += std::size_t(n);
    }
    template <class T, class Each>
    void list(std::vector<T>& v, const Each& each) {
        unsigned long long n = value();
        if (n > in.size()) ok = false;   // each element takes at least one byte
        for (unsigned long long i = 0; ok && i < n; ++i) {
            v.emplace_back();
            each(v.back());
        }
    }
};
template <class Wire, class Frames>
void frame_fields(Wire& w, Frames& frames) {
    w.list(frames, [&w](auto& f) {
        w.number(f.address);
        w.text(f.function);
        w.text(f.file);
        w.text(f.module);
        w.number(f.line);
        w.number(f.inlined);
        w.number(f.offset);
    });
}
// Report or const Report: what a leftovers report holds (not the whole-heap fields).
template <class Wire, class R>
void report_fields(Wire& w, R& r) {
    w.text(r.kind);
    w.text(r.scope);
    w.text(r.file);
    w.number(r.line);
    w.number(r.by_exception);
    w.number(r.blocks);
    w.number(r.bytes);
    w.number(r.released_blocks);
    w.number(r.released_bytes);
    w.list(r.sites, [&w](auto& site) {
        frame_fields(w, site.frames);
        frame_fields(w, site.allocator_frames);
        w.text(site.type);
        w.number(site.blocks);
        w.number(site.bytes);
    });
    w.list(r.suppressed, [&w](auto& rule) {
        w.text(rule.rule);
        w.number(rule.blocks);
        w.number(rule.bytes);
    });
}
inline const std::string& wire_magic() {
    static const std::string magic = "leakscope-rerun 1 ";
    return magic;
}
inline std::string encode_run(unsigned index, const Report& r) {
    WireWriter w;
    w.out = wire_magic();
    w.number(index);
    report_fields(w, r);
    return w.out;
}
// One record at w.at; false if it does not parse.
inline bool decode_run(WireReader& w, unsigned& index, Report& r) {
    const std::string& magic = wire_magic();
    if (w.in.compare(w.at, magic.size(), magic) != 0) return false;
    w.at += magic.size();
    w.number(index);
    report_fields(w, r);
    return w.ok;
}
inline void decode_runs(const std::string& in, ChildRuns& c) {
    WireReader w{in};
    while (w.at < in.size()) {
        unsigned index = 0;
        Report r;
        if (!decode_run(w, index, r)) return;
        c.runs.emplace_back(index, std::move(r));
    }
}

// Every leftover of a leftovers report, suppressed ones included: what a child's run must match.
inline void all_leftovers(const Report& r, std::size_t& blocks, std::size_t& bytes) {
    blocks = r.blocks;
    bytes = r.bytes;
    for (const Suppression& s : r.suppressed) {
        blocks += s.blocks;
        bytes += s.bytes;
    }
}

inline bool has_prefix_of(const std::string& s, const std::vector<std::string>& names) {
    for (const std::string& n : names)
        if (s.size() > n.size() && s.compare(0, n.size(), n) == 0 && s[n.size()] == '=') return true;
    return false;
}

// Runs this program again (/proc/self/exe, with the arguments of /proc/self/cmdline) to judge
// one run alone, and waits for its verdict. Never throws; the child's own output goes to
// /dev/null. Called under Ignore.
inline ChildRuns rerun_alone(const RerunRequest& request) {
    ChildRuns c;
    std::vector<std::string> args;
    {
        int fd = ::open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            c.why = "/proc/self/cmdline cannot be read";
            return c;
        }
        std::string all;
        char buffer[4096];
        for (;;) {
            ssize_t n = ::read(fd, buffer, sizeof buffer);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            all.append(buffer, std::size_t(n));
        }
        ::close(fd);
        for (std::size_t at = 0; at < all.size();) {
            std::size_t end = all.find('\0', at);
            if (end == std::string::npos) end = all.size();
            std::string arg = all.substr(at, end - at);
            bool dropped = false;
            for (const std::string& d : request.drop_args)
                if (!args.empty() && arg.compare(0, d.size(), d) == 0) dropped = true;
            if (!args.empty() && !request.keep_parent_args) dropped = true;
            if (!dropped) args.push_back(std::move(arg));
            at = end + 1;
        }
    }
    if (args.empty()) {
        c.why = "/proc/self/cmdline is empty";
        return c;
    }
    for (const std::string& a : request.add_args) args.push_back(a);

    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
        c.why = std::string("no pipe: ") + std::strerror(errno);
        return c;
    }
    if (pipe_fds[1] <= 2) {   // (a program that closed a standard stream): keep clear of them
        int moved = ::fcntl(pipe_fds[1], F_DUPFD_CLOEXEC, 3);
        ::close(pipe_fds[1]);
        pipe_fds[1] = moved;
        if (moved < 0) {
            ::close(pipe_fds[0]);
            c.why = std::string("no pipe: ") + std::strerror(errno);
            return c;
        }
    }
    // The environment: the parent's, without the dropped variables; stacks on, the adapter told
    // it is a child (test_stacks=inline: it never re-runs in turn).
    std::vector<std::string> env;
    std::string options = "LEAKSCOPE_OPTIONS=";
    for (char** e = environ; e && *e; ++e) {
        std::string var(*e);
        if (has_prefix_of(var, request.drop_env) || has_prefix_of(var, {"LEAKSCOPE_RERUN"})) continue;
        if (has_prefix_of(var, {"LEAKSCOPE_OPTIONS"})) {
            options = var + " ";
            continue;
        }
        env.push_back(std::move(var));
    }
    env.push_back(options + "stacks=on test_stacks=inline");
    env.push_back("LEAKSCOPE_RERUN=" + std::to_string(pipe_fds[1]) + ":" + request.key);
    std::vector<char*> argv, envp;
    for (std::string& a : args) argv.push_back(&a[0]);
    argv.push_back(nullptr);
    for (std::string& e : env) envp.push_back(&e[0]);
    envp.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], pipe_fds[1]);   // (clears close-on-exec)
    pid_t pid = -1;
    int spawned = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    ::close(pipe_fds[1]);
    if (spawned != 0) {
        ::close(pipe_fds[0]);
        c.why = std::string("the child could not start: ") + std::strerror(spawned);
        return c;
    }
    // The child's start-up and the test: two minutes, more for a test that took long here.
    using namespace std::chrono;
    const auto deadline = steady_clock::now() + seconds(120) + 10 * request.took;
    std::string answer;
    bool timed_out = false;
    for (;;) {
        auto left = duration_cast<milliseconds>(deadline - steady_clock::now()).count();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        pollfd p{pipe_fds[0], POLLIN, 0};
        int ready = ::poll(&p, 1, int(std::min<long long>(left, 1000)));
        if (ready < 0 && errno != EINTR) break;
        if (ready <= 0) continue;
        char buffer[4096];
        ssize_t n = ::read(pipe_fds[0], buffer, sizeof buffer);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) break;   // end of file: the child exited (or closed it)
        answer.append(buffer, std::size_t(n));
    }
    ::close(pipe_fds[0]);
    if (timed_out) ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    decode_runs(answer, c);
    c.ran = !c.runs.empty();
    if (timed_out)
        c.why = "the child timed out";
    else if (WIFSIGNALED(status))
        c.why = std::string("the child died of signal ") + std::to_string(WTERMSIG(status));
    else
        c.why = "the child judged no run of the test (it failed there, or did not run)";
    return c;
}

// The parent's last child, kept for the test's later runs (Catch2: one child per test case).
struct RerunCache {
    bool valid = false;
    std::string key;
    ChildRuns child;
    unsigned spawned = 0;   // children started in this process
};
inline RerunCache& rerun_cache() {
    static RerunCache cache;
    return cache;
}
// A new test (case) starts: the last child's answers are stale.
inline void forget_rerun() noexcept { rerun_cache().valid = false; }
inline const ChildRuns& child_runs_for(const RerunRequest& request) {
    RerunCache& cache = rerun_cache();
    if (!cache.valid || cache.key != request.key) {
        cache.child = rerun_alone(request);
        ++cache.spawned;
        cache.key = request.key;
        cache.valid = true;
    }
    return cache.child;
}
// Drops the framework's sites from a leftovers report; its totals become the test's own.
inline void keep_test_sites(Report& report, const FrameworkPatterns& patterns) {
    std::vector<Site> kept;
    report.blocks = report.bytes = 0;
    for (Site& site : report.sites) {
        if (framework_site(site, patterns)) continue;
        report.blocks += site.blocks;
        report.bytes += site.bytes;
        kept.push_back(std::move(site));
    }
    report.sites = std::move(kept);
}

template <class Rerun>
inline RerunRequest make_request(const Rerun& rerun) {
    return rerun();
}
inline RerunRequest make_request(std::nullptr_t) { return RerunRequest{}; }

// Judges the scope's leftovers and closes it. `display()` names the run in the report (test,
// sections), asked only for a report; `patterns` are the framework's. A failing run's report is
// the verdict's message and, when the program chose writers of its own, goes to them as well.
// `rerun()`, when given, makes the RerunRequest naming this run (only when one is needed): in a
// re-run child, the run the parent asked about answers it; in the parent, a `stackless` scope
// (test_stacks=rerun) with leftovers is judged by a child that runs it alone with stacks (see the
// top of this file).
template <class Display, class Rerun = std::nullptr_t>
inline Verdict judge(LeakScope& scope, const Display& display, const FrameworkPatterns& patterns,
                     const Rerun& rerun = nullptr, bool stackless = false) {
    constexpr bool can_rerun = !std::is_same<Rerun, std::nullptr_t>::value;
    Verdict v;
    RunState& run = globals().run;
    if (run.allowed) {
        scope.dismiss();
        return v;
    }
    ChildTarget& child = child_target();
    // Nearly every run: nothing left and none expected; nothing to build. (A child still answers.)
    const bool clean = scope.clean();
    if (clean && run.expected <= 0 && !child.active) {
        scope.dismiss();
        return v;
    }
    Ignore quiet;   // what the verdict allocates belongs to no one
    Report report;
    if (!clean) report = scope.leftovers();
    scope.dismiss();
    if (can_rerun && child.active) {
        // A run of the test the parent asked about: its leftovers go back; the parent judges.
        RerunRequest self = make_request(rerun);
        if (self.key == child.key) {
            std::string answer = encode_run(self.index, report);
            for (std::size_t at = 0; at < answer.size();) {
                ssize_t n = ::write(child.fd, answer.data() + at, answer.size() - at);
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) break;
                at += std::size_t(n);
            }
            return v;   // no verdict here: no failure, nothing to the program's writers
        }
    }
    std::string stacks_note;
    std::size_t raw_blocks = 0, raw_bytes = 0;
    all_leftovers(report, raw_blocks, raw_bytes);
    if (can_rerun && stackless && !child.active && raw_blocks != 0) {
        RerunRequest request = make_request(rerun);
        const ChildRuns& c = child_runs_for(request);
        const Report* alone = c.run(request.index);
        std::size_t child_blocks = 0, child_bytes = 0, own_blocks = 0, own_bytes = 0;
        Report own;
        if (alone) {
            all_leftovers(*alone, child_blocks, child_bytes);
            own = *alone;
            keep_test_sites(own, patterns);
            own_blocks = own.blocks;
            own_bytes = own.bytes;
        }
        // The run alone explains this one when it left at least these blocks and bytes, and no
        // more than these of the test's own: the difference is the framework's (Catch2 v3 makes
        // an 8-byte block in the first test of a process, which the run alone always is).
        if (alone && raw_blocks <= child_blocks && raw_bytes <= child_bytes && own_blocks <= raw_blocks &&
            own_bytes <= raw_bytes) {
            report = std::move(own);
            stacks_note = "\nleakscope: stacks from this test run again alone, in a child process (test_stacks=rerun)";
        } else {
            stacks_note = alone ? "run again alone (for its stacks), it left " + std::to_string(child_blocks) + " block" +
                                      (child_blocks == 1 ? "" : "s") + " (" + std::to_string(child_bytes) + " bytes)"
                          : c.ran ? std::string("run again alone (for its stacks), this run was not judged there")
                                  : "it could not be run again alone for its stacks: " + c.why;
            stacks_note = "\nleakscope: no stacks: " + stacks_note +
                          "; LEAKSCOPE_OPTIONS=test_stacks=inline captures them in the run itself";
        }
    }
    keep_test_sites(report, patterns);
    v.blocks = report.blocks;
    v.bytes = report.bytes;
    report.scope = display();
    if (run.expected >= 0) {
        if (v.blocks != std::size_t(run.expected)) {
            v.failed = true;
            v.message = "leakscope: expected " + std::to_string(run.expected) + " leftover block" +
                        (run.expected == 1 ? "" : "s") + ", found " + std::to_string(v.blocks);
            if (v.blocks) v.message += "\n" + render(report);
        }
    } else if (v.blocks != 0) {
        v.failed = true;
        v.message = render(report);
    }
    if (v.failed) v.message += stacks_note;
    // The writers the program chose (report=json=leaks-%n.json, set_writers(), add_writer()) get
    // the failing run's report too, named after the run; the default writer (text on stderr)
    // does not: the framework's failure message already is that report.
    if (v.failed && v.blocks && ::leakscope::detail::writers_configured()) ::leakscope::write(report);
    return v;
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

// test_stacks=auto re-runs this many tests alone, then takes stacks in every test: a child costs
// a start of the program (~50 ms with the reading of its debug information), as much as the
// stacks of thousands of tests, so a suite that leaks a lot, or whose framework leaves blocks in
// many tests (Catch2's GENERATE), pays for a few children and no more.
constexpr unsigned kAutoReruns = 8;

// Whether the run starting now goes without stacks (test_stacks=rerun, or auto before its
// kAutoReruns children). Never in a re-run child, which is told test_stacks=inline.
template <class Framework>
inline bool stackless_runs() noexcept {
    if constexpr (!Framework::can_rerun) {
        return false;
    } else {
        auto mode = ::leakscope::detail::test_stacks();
        if (mode == ::leakscope::detail::TestStacks::automatic) return rerun_cache().spawned < kAutoReruns;
        return mode == ::leakscope::detail::TestStacks::rerun;
    }
}


// The in-test guard (LEAKSCOPE_GUARD()) of the adapters whose listener cannot fail a test
// (Catch2, doctest): its destructor judges the run and fails it inside the framework.
// `Framework` supplies run_info(), display_name(), fail_at() and patterns for its framework.
// `Framework::can_rerun`: it names runs for a re-run child (Framework::rerun_request()).
template <class Framework>
class Guard {
   public:
    Guard(const char* file, unsigned line) noexcept
        : file_(file), line_(line), uncaught_(std::uncaught_exceptions()), stackless_(stackless_runs<Framework>()) {
        if (stackless_) {
            ::leakscope::detail::ScopesWithoutStacks off;
            scope_.emplace(Framework::run_info().test, globals().threads, file, line);
        } else {
            scope_.emplace(Framework::run_info().test, globals().threads, file, line);
        }
    }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    ~Guard() noexcept(false) {
        globals().run.guarded = true;
        if (std::uncaught_exceptions() > uncaught_ || Framework::run_info().failed) {
            scope_->dismiss();   // the test is failing already
            return;
        }
        auto display = [] { return Framework::display_name(Framework::run_info()); };
        Verdict verdict;
        if constexpr (Framework::can_rerun)
            verdict = judge(*scope_, display, Framework::patterns, [] { return Framework::rerun_request(); }, stackless_);
        else
            verdict = judge(*scope_, display, Framework::patterns);
        if (verdict.failed) Framework::fail_at(file_, line_, verdict.message);
    }

   private:
    const char* file_;
    unsigned line_;
    int uncaught_;
    bool stackless_;
    std::optional<LeakScope> scope_;
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
