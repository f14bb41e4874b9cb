// leakscope-test-env: LEAKSCOPE_OPTIONS=signal=USR2
// exit() while a Monitor writes every millisecond and the signal dumper is busy: leakscope stops
// and joins both before the program's static destructors run, so no writer is called on a
// destroyed object (the writer below would say so and _exit(3)), and exit completes. Exit 0 = pass.
#include <leakscope.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <unistd.h>

namespace {
// A static the writer depends on, built before main (so destroyed after leakscope's exit handler,
// which is registered when the first leakscope thread starts). Its destructor leaves a window
// in which a writer still running would find it dead.
struct Log {
    std::atomic<bool> alive{true};
    ~Log() {
        alive = false;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
} log_state;

struct SlowWriter : leakscope::Writer {
    std::atomic<int> monitor_reports{0}, dumps{0};
    void write(const leakscope::Report& r) override {
        if (!log_state.alive) {
            static const char said[] = "FAIL: a report was written after static destruction began\n";
            ssize_t ignored = ::write(2, said, sizeof said - 1);
            (void)ignored;
            _exit(3);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        (r.kind == "monitor" ? monitor_reports : dumps)++;
    }
};
}  // namespace

leakscope::Monitor* running_monitor = nullptr;

int main() {
    auto writer = std::make_shared<SlowWriter>();
    leakscope::set_writers({writer});
    leakscope::Monitor::Options options;
    options.warmup_ms = 0;
    options.interval_ms = 1;
    // Alive at exit, never deleted; held by a global so that LeakSanitizer (the asan stage) sees
    // it reachable rather than leaked.
    running_monitor = new leakscope::Monitor(options);
    for (int i = 0; i < 60000 && writer->monitor_reports < 3; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (writer->monitor_reports < 3) {
        std::fprintf(stderr, "FAIL: the monitor wrote no reports\n");
        return 1;
    }
    raise(SIGUSR2);
    for (int i = 0; i < 60000 && writer->dumps < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    for (int i = 0; i < 20; ++i) raise(SIGUSR2);   // keep the dumper busy while exit() runs
    std::puts("monitor_exit: exiting with the monitor and the dumper running");
    std::fflush(stdout);
    std::exit(0);
}
