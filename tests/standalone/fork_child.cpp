// fork while other threads allocate inside their scopes: the child finds every lock free and the
// registry consistent, allocates, reports exactly, and exits cleanly. Exit status 0 = pass.
#include <leakscope.hpp>

#include <atomic>
#include <cstdio>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>


#if defined(__SANITIZE_ADDRESS__)
#define ALLOCATOR_IS_FORK_SAFE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ALLOCATOR_IS_FORK_SAFE 0
#endif
#endif
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
#ifndef ALLOCATOR_IS_FORK_SAFE
#define ALLOCATOR_IS_FORK_SAFE 1   // glibc malloc is; AddressSanitizer's allocator (LLVM 14, GCC 12) is not
#endif

namespace {
void escape(const void* p) { asm volatile("" : : "g"(p) : "memory"); }

// The child's checks; returns the exit status.
int child_main() {
    int status = 0;
    {
        leakscope::LeakScope scope("child");
        std::vector<std::string> churn;
        for (int i = 0; i < 1000; ++i) churn.emplace_back(64, 'c');
        churn.clear();
        churn.shrink_to_fit();
        int* leak = new int(5);
        escape(leak);
        leakscope::Report r = scope.leftovers();
        if (r.blocks != 1 || r.bytes != sizeof(int)) status = 10;
        delete leak;
        if (!scope.clean()) status = 11;
        scope.dismiss();
    }
    // Threads in the child work too.
    if (THREADS_IN_CHILD) std::thread([&] {
        leakscope::LeakScope scope("child thread");
        int* p = new int(1);
        escape(p);
        if (scope.leftovers().blocks != 1) status = 12;
        delete p;
        scope.dismiss();
    }).join();
    return status;
}
}  // namespace

int main() {
    std::atomic<bool> stop{false};
    // Under AddressSanitizer the workers park while fork runs: its allocator, unlike glibc's,
    // may be left locked in the child by a thread that was inside malloc.
    std::atomic<bool> park{false};
    std::atomic<int> parked{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < 2; ++t)
        workers.emplace_back([&] {
            while (!stop.load()) {
                if (!ALLOCATOR_IS_FORK_SAFE && park.load()) {
                    ++parked;
                    while (park.load()) std::this_thread::yield();
                    --parked;
                }
                leakscope::LeakScope scope("worker");
                std::vector<std::string> v;
                for (int i = 0; i < 100; ++i) v.emplace_back(40, 'w');
                scope.dismiss();
            }
        });
    int failures = 0;
    leakscope::LeakScope parent_scope("parent");
    int* before_fork = new int(9);
    escape(before_fork);
    for (int round = 0; round < 50; ++round) {
        if (!ALLOCATOR_IS_FORK_SAFE) {
            park.store(true);
            while (parked.load() != 2) std::this_thread::yield();
        }
        pid_t pid = fork();
        park.store(false);
        if (pid == 0) _exit(child_main());
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            std::fprintf(stderr, "FAILED: fork round %d: child status %d\n", round,
                         WIFEXITED(status) ? WEXITSTATUS(status) : -1);
            ++failures;
        }
    }
    stop.store(true);
    for (auto& w : workers) w.join();
    leakscope::Report r = parent_scope.leftovers();
    // The workers' std::thread states were born on this thread inside the parent scope and
    // freed by join: only before_fork remains.
    if (r.blocks != 1 || r.bytes != sizeof(int)) {
        std::fprintf(stderr, "FAILED: parent leftovers %zu blocks %zu bytes\n", r.blocks, r.bytes);
        ++failures;
    }
    delete before_fork;
    parent_scope.dismiss();
    if (failures == 0) std::printf("fork_child: all checks passed\n");
    return failures == 0 ? 0 : 1;
}
