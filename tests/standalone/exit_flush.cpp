// Nothing is lost at exit: a scope ended by an exception on a thread that is still inside the
// catch handler when the process exits has its deferred report written by the exit hook.
// main returns 1; the writer turns the expected report into exit status 0.
#include <leakscope.hpp>

#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>
#include <unistd.h>

namespace {
void escape(const void* p) { asm volatile("" : : "g"(p) : "memory"); }

struct ExpectAtExit : leakscope::Writer {
    void write(const leakscope::Report& r) override {
        bool ok = r.scope == "stuck" && r.by_exception && r.blocks == 1 && r.bytes == 24;
        std::fprintf(stderr, "exit_flush: report for \"%s\", %zu blocks, %zu bytes: %s\n", r.scope.c_str(),
                     r.blocks, r.bytes, ok ? "as expected" : "UNEXPECTED");
        std::fflush(stderr);
        _exit(ok ? 0 : 2);
    }
};

std::mutex m;
std::condition_variable cv;
bool in_handler = false;
}  // namespace

int main() {
    leakscope::set_writers({std::make_shared<ExpectAtExit>()});
    std::thread([] {
        try {
            leakscope::LeakScope scope("stuck");
            char* lost = new char[24];
            escape(lost);
            throw 42;   // an exception that owns no heap block: the leftover is exactly `lost`
        } catch (int) {
            std::unique_lock<std::mutex> lock(m);
            in_handler = true;
            cv.notify_all();
            for (;;) cv.wait(lock);   // never leaves the handler
        }
    }).detach();
    std::unique_lock<std::mutex> lock(m);
    cv.wait(lock, [] { return in_handler; });
    lock.unlock();
    std::fprintf(stderr, "exit_flush: exiting with a report still deferred\n");
    return 1;   // the exit hook must write the report (the writer then exits with 0)
}
