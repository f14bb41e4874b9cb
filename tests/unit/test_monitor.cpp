// The options of the monitor and the signal dump (signal=, monitor=, monitor_*=): a malformed
// entry is one stderr line naming it, installs nothing and starts nothing, and the entries after
// it still apply. (What they do when valid: tests/standalone/monitor_* and signal_dump*.)
#include "support.hpp"

#include <catch2/catch.hpp>
#include <csignal>
#include <fcntl.h>
#include <unistd.h>

#include <dirent.h>
#include <fstream>
#include <string>

namespace {

std::size_t lines_in(const std::string& s) {
    std::size_t n = 0;
    for (char c : s) n += c == '\n';
    return n;
}

// Threads of this process named `name` (/proc/self/task/*/comm).
int threads_named(const char* name) {
    int n = 0;
    if (DIR* d = ::opendir("/proc/self/task")) {
        while (dirent* e = ::readdir(d)) {
            if (e->d_name[0] == '.') continue;
            std::ifstream comm(std::string("/proc/self/task/") + e->d_name + "/comm");
            std::string line;
            std::getline(comm, line);
            n += line == name;
        }
        ::closedir(d);
    }
    return n;
}

// Captured return addresses of the one site of a block allocated in a scope (stack_depth's effect).
__attribute__((noinline)) std::size_t captured_depth() {
    int* p = nullptr;
    leakscope::Report r = test::leftovers_of([&] { p = test::kept(new int(1)); });
    delete p;
    if (r.sites.size() != 1) return 0;
    std::size_t n = 0;
    for (const leakscope::Frame& f : r.sites[0].frames) n += !f.inlined;
    for (const leakscope::Frame& f : r.sites[0].allocator_frames) n += !f.inlined;
    return n;
}

// The handler installed on a signal (Catch2 has its own on SIGSEGV).
void* handler_of(int signo) {
    struct sigaction now;
    ::sigaction(signo, nullptr, &now);
    return (now.sa_flags & SA_SIGINFO) ? reinterpret_cast<void*>(now.sa_sigaction) : reinterpret_cast<void*>(now.sa_handler);
}

}  // namespace

TEST_CASE("signal= and monitor*= take only their values, each error in one line", "[options][monitor]") {
    struct Case {
        const char* entry;
        const char* says;
    };
    const Case cases[] = {
        {"signal=USR3", "configure(): signal must be a signal name or number (USR2, SIGUSR2, 12) or 0 in 'signal=USR3'; ignored"},
        {"signal=", "signal must be a signal name or number"},
        {"signal=SIG", "signal must be a signal name or number"},
        {"signal=12x", "signal must be a signal name or number"},
        {"signal=99", "signal must be a signal name or number"},
        {"signal=RTMIN+99", "signal must be a signal name or number"},
        {"signal=SEGV", "signal cannot be a fault, abort, KILL, STOP or glibc-reserved signal in 'signal=SEGV'"},
        {"signal=SIGKILL", "signal cannot be a fault, abort, KILL, STOP or glibc-reserved signal in 'signal=SIGKILL'"},
        {"signal=6", "signal cannot be"},
        {"signal=32", "signal cannot be"},
        {"monitor=2", "monitor must be 0, 1 or warmup_s,interval_s (seconds) in 'monitor=2'"},
        {"monitor=on", "monitor must be 0, 1 or warmup_s,interval_s (seconds) in 'monitor=on'"},
        {"monitor=60,0", "monitor must be 0, 1 or warmup_s,interval_s (seconds) in 'monitor=60,0'"},
        {"monitor=,10", "monitor must be 0, 1 or warmup_s,interval_s"},
        {"monitor_warmup_ms=-1", "monitor_warmup_ms must be 0..4294967295 (milliseconds) in 'monitor_warmup_ms=-1'"},
        {"monitor_warmup_ms=4294967296", "monitor_warmup_ms must be"},
        {"monitor_interval_ms=0", "monitor_interval_ms must be 1..4294967295 (milliseconds) in 'monitor_interval_ms=0'"},
        {"monitor_interval_ms=10s", "monitor_interval_ms must be"},
        {"monitor_growth=three", "monitor_growth must be 0..4294967295 (intervals; 0: no site marked) in 'monitor_growth=three'"},
        {"monitor_threshold=12X", "monitor_threshold must be a number of bytes (K, M, G allowed) in 'monitor_threshold=12X'"},
        {"monitor_threshold=", "monitor_threshold must be"},
        {"monitor_intervals=5", "unknown option 'monitor_intervals=5'"},
    };
    void* const usr2 = handler_of(SIGUSR2);
    void* const segv = handler_of(SIGSEGV);
    std::string all;
    for (const Case& c : cases) {
        INFO(c.entry);
        std::string err = stderr_of([&] { leakscope::configure(c.entry); });
        CHECK(lines_in(err) == 1);
        CHECK(err.find(c.says) != std::string::npos);
        CHECK(handler_of(SIGUSR2) == usr2);   // nothing installed
        CHECK(handler_of(SIGSEGV) == segv);
        CHECK(threads_named("leakscope-mon") == 0);
        CHECK(threads_named("leakscope-dump") == 0);
        all += std::string(c.entry) + " ";
    }
    // All at once: one line each, and the entry after them still applies.
    std::string err = stderr_of([&] { leakscope::configure(all + "stack_depth=3"); });
    CHECK(lines_in(err) == sizeof cases / sizeof cases[0]);
    CHECK(captured_depth() == 3);
    leakscope::configure("stack_depth=32");
    // Well-formed values say nothing (and, without monitor=1 or a signal, start nothing).
    err = stderr_of([] {
        leakscope::configure("monitor=0 signal=0 monitor_warmup_ms=0 monitor_interval_ms=4294967295 monitor_growth=0 "
                             "monitor_threshold=64K monitor_threshold=2g");
    });
    CHECK(err.empty());
    CHECK(threads_named("leakscope-mon") == 0);
    CHECK(threads_named("leakscope-dump") == 0);
    leakscope::configure("stack_depth=32 monitor_warmup_ms=10000 monitor_interval_ms=10000 monitor_growth=3 monitor_threshold=0");
    // The design's form, monitor=warmup_s,interval_s: accepted silently, starts the options'
    // monitor; monitor=0 stops it.
    err = stderr_of([] { leakscope::configure("monitor=3600,60"); });
    CHECK(err.empty());
    CHECK(threads_named("leakscope-mon") == 1);
    leakscope::configure("monitor=0 track=scopes");
    CHECK(threads_named("leakscope-mon") == 0);
}
