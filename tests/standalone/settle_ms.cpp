// leakscope-test-env: LEAKSCOPE_OPTIONS=settle_ms=300
// settle_ms: a scope's leftovers are reported only if still live that long after it ended, by a
// leakscope thread. A block handed to another thread and freed there moments later is no leak;
// one still live is reported, exactly once, with the scope's name; a scope whose leftovers all
// die in time gives no report; and at exit, a parked report is written at once. Exit 0 = pass.
#include <leakscope.hpp>

#include "../support/expect.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Collect : leakscope::Writer {
    std::mutex m;
    std::condition_variable cv;
    std::vector<leakscope::Report> got;
    void write(const leakscope::Report& r) override {
        std::lock_guard<std::mutex> lock(m);
        got.push_back(r);
        cv.notify_all();
    }
    std::size_t count() {
        std::lock_guard<std::mutex> lock(m);
        return got.size();
    }
    bool wait_for(std::size_t n, int ms) {
        std::unique_lock<std::mutex> lock(m);
        return cv.wait_for(lock, std::chrono::milliseconds(ms), [&] { return got.size() >= n; });
    }
};

int kept_line = 0;
__attribute__((noinline)) long* kept_block() {
    kept_line = __LINE__ + 1;
    long* p = new long(2);
    asm volatile("" : : "g"(p) : "memory");
    return p;
}
}  // namespace

int main(int argc, char** argv) {
    if (argc > 1 && std::strcmp(argv[1], "--exit-pending") == 0) {
        leakscope::configure("settle_ms=60000");
        {
            leakscope::LeakScope scope("POST /exit-pending");
            long* leaked = new long(7);
            asm volatile("" : : "g"(leaked) : "memory");   // (the compiler may not elide it)
        }
        std::exit(0);   // the report is due in a minute: exit writes it now
    }
    auto collect = std::make_shared<Collect>();
    leakscope::set_writers({collect});
    std::vector<long*> kept;
    kept.reserve(16);

    // One scope hands 5 blocks to a worker that frees them 50 ms later, and keeps 3.
    std::vector<int*> handed;
    handed.reserve(5);
    {
        leakscope::LeakScope scope("GET /handoff");
        for (int i = 0; i < 5; ++i) handed.push_back(new int(i));
        for (int i = 0; i < 3; ++i) kept.push_back(kept_block());
    }
    expect_eq("nothing reported at the scope's end", (long long)collect->count(), 0);
    std::thread worker([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        for (int* p : handed) delete p;
    });
    worker.join();
    // A scope whose leftovers all die in time: no report at all.
    int* soon = nullptr;
    {
        leakscope::LeakScope scope("GET /clean-later");
        soon = new int(1);
    }
    delete soon;

    expect(collect->wait_for(1, 10000), "the settled report arrives", (long long)collect->count(), 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(700));   // the second scope's due time, twice
    {
        std::lock_guard<std::mutex> lock(collect->m);
        expect_eq("reports: only the scope that still holds blocks", (long long)collect->got.size(), 1);
        if (!collect->got.empty()) {
            const leakscope::Report& r = collect->got[0];
            expect(r.scope == "GET /handoff", "the report names the scope", 0, 0);
            expect_eq("blocks still live after settling", (long long)r.blocks, 3);
            expect_eq("bytes still live after settling", (long long)r.bytes, 3 * (long long)sizeof(long));
            bool line_ok = !r.sites.empty() && !r.sites[0].frames.empty() && int(r.sites[0].frames[0].line) == kept_line;
            expect(line_ok, "the report points at the kept block's line", r.sites.empty() || r.sites[0].frames.empty() ? -1 : (long long)r.sites[0].frames[0].line, kept_line);
        }
    }

    // At exit a parked report is written at once, exactly once (a child process, to see it).
    int pipe_fds[2];
    if (pipe(pipe_fds) != 0) return 2;
    pid_t child = fork();
    if (child == 0) {
        // A fresh process (exec): a multi-threaded fork's child should not start threads.
        dup2(pipe_fds[1], 2);
        close(pipe_fds[0]);
        execl("/proc/self/exe", "settle_ms", "--exit-pending", static_cast<char*>(nullptr));
        _exit(3);
    }
    close(pipe_fds[1]);
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = read(pipe_fds[0], buf, sizeof buf)) > 0;) text.append(buf, std::size_t(n));
    close(pipe_fds[0]);
    int status = 0;
    waitpid(child, &status, 0);
    expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child exits normally", status, 0);
    std::size_t first = text.find("POST /exit-pending");
    expect(first != std::string::npos, "the parked report is written at exit", 0, 1);
    expect(first == std::string::npos || text.find("POST /exit-pending", first + 1) == std::string::npos ||
               text.find("POST /exit-pending", first + 1) < text.find('\n', first),   // the same header line
           "... exactly once", 2, 1);

    for (long* p : kept) delete p;
    if (failures == 0) std::puts("settle_ms: all checks passed");
    else std::fputs(text.c_str(), stderr);
    return failures == 0 ? 0 : 1;
}
