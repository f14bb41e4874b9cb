// leakscope-test-env: LEAKSCOPE_OPTIONS=signal=USR2
// fork with the signal dumper and a Monitor running: threads do not survive fork. In the child
// the handler stays installed (SIGUSR2 does not kill it) but dumps nothing until the child calls
// configure() (any text), which starts a dumper of its own; a child's signal never makes the
// parent dump; the inherited Monitor stops at once and is destroyed without waiting for the
// thread that is not there. The parent's dumper and monitor go on. Exit 0 = pass.
#include <leakscope.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
#define THREADS_IN_CHILD 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define THREADS_IN_CHILD 0
#endif
#endif
#ifndef THREADS_IN_CHILD
#define THREADS_IN_CHILD 1   // ThreadSanitizer cannot follow threads started after fork
#endif

namespace {
struct Counter : leakscope::Writer {
    std::atomic<int> heap{0}, peak{0}, monitor{0};
    void write(const leakscope::Report& r) override {
        if (r.kind == "heap") ++heap;
        if (r.kind == "peak") ++peak;
        if (r.kind == "monitor") ++monitor;
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

int child_main(Counter& counter, std::unique_ptr<leakscope::Monitor>& monitor) {
    alarm(60);   // a hang (a join of a thread that is not here) ends the child: the parent sees it
    monitor->stop();   // returns at once: no thread to join
    if (monitor->intervals() != 0) return 10;
    if (monitor->latest().kind != "monitor") return 11;
    monitor.reset();   // destroyed without waiting for anything
    int heaps = counter.heap;
    raise(SIGUSR2);    // the handler is still there: the child lives, and nothing is dumped
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (counter.heap != heaps) return 12;
    if (THREADS_IN_CHILD) {
        leakscope::configure("");   // the child's own dumper
        raise(SIGUSR2);
        if (!wait_for([&] { return counter.heap > heaps && counter.peak > heaps; })) return 13;
    }
    return 0;
}
}  // namespace

int main() {
    int failures = 0;
    auto counter = std::make_shared<Counter>();
    leakscope::set_writers({counter});
    leakscope::Monitor::Options options;
    options.warmup_ms = 0;
    options.interval_ms = 3600000;   // it takes its baseline, then waits: idle at fork
    auto monitor = std::make_unique<leakscope::Monitor>(options);
    raise(SIGUSR2);
    if (!wait_for([&] { return counter->heap == 1 && counter->peak == 1; })) {
        std::fprintf(stderr, "FAIL: the parent's first dump\n");
        ++failures;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));   // the monitor's baseline is done

    for (int round = 0; round < 3; ++round) {
        int heaps = counter->heap;
        pid_t pid = fork();
        if (pid == 0) _exit(child_main(*counter, monitor));
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            std::fprintf(stderr, "FAIL: fork round %d: child %s %d\n", round, WIFEXITED(status) ? "exit status" : "signal",
                         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            ++failures;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (counter->heap != heaps) {
            std::fprintf(stderr, "FAIL: the child's signal made the parent dump\n");
            ++failures;
        }
    }
    // The parent's dumper and monitor are untouched.
    raise(SIGUSR2);
    if (!wait_for([&] { return counter->heap == 2 && counter->peak == 2; })) {
        std::fprintf(stderr, "FAIL: the parent dumps after the forks\n");
        ++failures;
    }
    monitor->stop();
    if (failures == 0) std::puts("signal_dump_fork: all checks passed");
    return failures == 0 ? 0 : 1;
}
