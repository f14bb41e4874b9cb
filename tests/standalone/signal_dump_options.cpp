// signal= set and changed with configure(): a handler the program had on the signal keeps being
// called (chained) and is put back when leakscope lets the signal go (signal=0 or another signal);
// SIGUSR1, SIGUSR2, 12 and RTMIN+n are accepted; a bad value is one stderr line and the other
// entries still apply; a writer on the dumper thread may turn the dump off (no deadlock) and a
// later configure() turns it on again. Exit 0 = pass.
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {
int failures = 0;
void expect(bool ok, const char* what) {
    if (ok) return;
    std::fprintf(stderr, "FAIL: %s\n", what);
    ++failures;
}

std::atomic<int> program_handler_calls{0};   // lock-free: fine in a handler
void program_handler(int) { ++program_handler_calls; }

struct Recorder : leakscope::Writer {
    std::mutex mutex;
    std::vector<std::string> kinds;
    std::atomic<bool> turn_off{false};
    void write(const leakscope::Report& r) override {
        {
            std::lock_guard<std::mutex> lock(mutex);
            kinds.push_back(r.kind);
        }
        // On the dumper thread: turning the dump off from here must not wait for this thread.
        if (turn_off.exchange(false)) leakscope::configure("signal=0");
    }
    std::size_t size() {
        std::lock_guard<std::mutex> lock(mutex);
        return kinds.size();
    }
};
template <class Done>
bool wait_for(Done done) {
    for (int i = 0; i < 60000; ++i) {
        if (done()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return done();
}
bool handler_is(int signo, void (*handler)(int)) {
    struct sigaction now;
    sigaction(signo, nullptr, &now);
    return !(now.sa_flags & SA_SIGINFO) && now.sa_handler == handler;
}
void* handler_of(int signo) {
    struct sigaction now;
    sigaction(signo, nullptr, &now);
    return (now.sa_flags & SA_SIGINFO) ? reinterpret_cast<void*>(now.sa_sigaction) : reinterpret_cast<void*>(now.sa_handler);
}
bool leakscope_handler_on(int signo) {
    struct sigaction now;
    sigaction(signo, nullptr, &now);
    return (now.sa_flags & SA_SIGINFO) != 0;
}
// What `body` writes on stderr.
template <class Body>
std::string stderr_of(Body body) {
    std::fflush(stderr);
    char path[] = "/tmp/leakscope-sigopt-XXXXXX";
    int fd = mkstemp(path);
    int saved = dup(2);
    dup2(fd, 2);
    body();
    std::fflush(stderr);
    dup2(saved, 2);
    close(saved);
    std::string text;
    char buf[4096];
    lseek(fd, 0, SEEK_SET);
    for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) text.append(buf, std::size_t(n));
    close(fd);
    unlink(path);
    return text;
}
std::size_t lines_in(const std::string& s) {
    std::size_t n = 0;
    for (char c : s) n += c == '\n';
    return n;
}
// A dump (heap + peak) arrives after `signo` is raised.
bool dumps_on(Recorder& rec, int signo) {
    std::size_t before = rec.size();
    raise(signo);
    return wait_for([&] { return rec.size() >= before + 2; });
}
}  // namespace

int main() {
    auto rec = std::make_shared<Recorder>();
    leakscope::set_writers({rec});
    signal(SIGUSR1, program_handler);

    // Taken over: the program's handler is still called, and the dump comes.
    leakscope::configure("signal=SIGUSR1");
    expect(leakscope_handler_on(SIGUSR1), "signal=SIGUSR1 installs the handler");
    expect(dumps_on(*rec, SIGUSR1), "SIGUSR1 dumps");
    expect(program_handler_calls == 1, "the program's handler is chained");

    // Another signal: SIGUSR1 goes back to the program's handler.
    leakscope::configure("signal=12");
    expect(handler_is(SIGUSR1, program_handler), "the previous signal gets its handler back");
    expect(leakscope_handler_on(SIGUSR2), "signal=12 installs on SIGUSR2");
    expect(dumps_on(*rec, SIGUSR2), "SIGUSR2 dumps");
    raise(SIGUSR1);
    expect(program_handler_calls == 2, "SIGUSR1 is the program's alone again");

    // The same signal again changes nothing; a real-time signal works; 0 restores the default.
    leakscope::configure("signal=usr2");
    expect(dumps_on(*rec, SIGUSR2), "signal=usr2 (lower case) keeps SIGUSR2");
    leakscope::configure("signal=RTMIN+2");
    expect(handler_is(SIGUSR2, SIG_DFL), "SIGUSR2 back to its default action");
    expect(dumps_on(*rec, SIGRTMIN + 2), "SIGRTMIN+2 dumps");
    leakscope::configure("signal=0");
    expect(handler_is(SIGRTMIN + 2, SIG_DFL), "signal=0 restores the default action");

    // A handler the program installs over ours is left alone when leakscope lets go.
    leakscope::configure("signal=USR2");
    signal(SIGUSR2, program_handler);
    leakscope::configure("signal=0");
    expect(handler_is(SIGUSR2, program_handler), "a handler installed after ours is not overwritten");
    signal(SIGUSR2, SIG_DFL);

    // Bad values: one line each, naming the entry; what follows still applies.
    struct {
        const char* text;
        const char* says;
    } bad[] = {
        {"signal=USR3 stack_depth=7", "signal must be a signal name or number (USR2, SIGUSR2, 12) or 0 in 'signal=USR3'"},
        {"signal= stack_depth=8", "in 'signal='"},
        {"signal=-1 stack_depth=9", "in 'signal=-1'"},
        {"signal=65 stack_depth=10", "in 'signal=65'"},
        {"signal=SEGV stack_depth=11", "signal cannot be a fault, abort, KILL, STOP or glibc-reserved signal in 'signal=SEGV'"},
        {"signal=9 stack_depth=12", "in 'signal=9'"},
        {"signal=33 stack_depth=13", "in 'signal=33'"},
    };
    unsigned depth = 7;
    void* const segv = handler_of(SIGSEGV);   // (a sanitizer may have one)
    for (const auto& b : bad) {
        std::string err = stderr_of([&] { leakscope::configure(b.text); });
        if (lines_in(err) != 1 || err.find(b.says) == std::string::npos) {
            std::fprintf(stderr, "FAIL: '%s' said: %s\n", b.text, err.c_str());
            ++failures;
        }
        expect(leakscope::detail::st.depth.load() == depth++, "the entry after a bad one applies");
        expect(handler_of(SIGSEGV) == segv && !leakscope_handler_on(SIGUSR2), "a bad value installs nothing");
    }
    leakscope::configure("stack_depth=32");

    // A writer on the dumper thread turns the dump off: no deadlock, no handler left.
    leakscope::configure("signal=USR1");
    rec->turn_off = true;
    expect(dumps_on(*rec, SIGUSR1), "the dump before the writer turns it off");
    expect(wait_for([] { return handler_is(SIGUSR1, program_handler); }), "signal=0 from a writer restores the handler");
    leakscope::configure("signal=USR1");   // and on again, with a new dumper thread
    expect(dumps_on(*rec, SIGUSR1), "dumps again after signal=USR1");
    leakscope::configure("signal=0");

    if (failures == 0) std::puts("signal_dump_options: all checks passed");
    return failures == 0 ? 0 : 1;
}
