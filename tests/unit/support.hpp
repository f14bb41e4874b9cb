// Helpers shared by the unit tests.
#pragma once
#include <leakscope.hpp>

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <memory>
#include <new>
#include <cstdio>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

// Without -fsized-deallocation (clang's default before 19) the sized forms are not declared by
// <new>; they are still replaceable functions, and leakscope defines them, so declare them here.
#if !defined(__cpp_sized_deallocation)
void operator delete(void* p, std::size_t n) noexcept;
void operator delete[](void* p, std::size_t n) noexcept;
void operator delete(void* p, std::size_t n, std::align_val_t a) noexcept;
void operator delete[](void* p, std::size_t n, std::align_val_t a) noexcept;
#endif

namespace test {

// Keeps the optimiser from eliding an allocation whose pointer is otherwise unused (clang may
// remove a new/delete pair, or an unused new, even when operator new is replaced).
inline void escape(const void* p) { asm volatile("" : : "g"(p) : "memory"); }
// escape() for an expression: `int* p = test::kept(new int(1));`
template <class T>
T* kept(T* p) {
    escape(p);
    return p;
}
// Hides where a pointer came from, so the compiler cannot reason about (or warn on) its origin.
template <class T>
T* opaque(T* p) {
    asm volatile("" : "+r"(p));
    return p;
}

// Runs `body` inside a scope and returns the scope's leftovers, closing it without a report.
// Catch2 allocates for its own bookkeeping when an assertion runs, so tests assert on the
// returned report after the scope ended, never inside it.
template <class Body>
leakscope::Report leftovers_of(Body&& body, leakscope::Threads threads = leakscope::Threads::current) {
    leakscope::Report report;
    {
        leakscope::LeakScope scope("test", threads);
        body();
        report = scope.leftovers();
        scope.dismiss();
    }
    return report;
}

// A writer that keeps every report it receives.
struct CaptureWriter : leakscope::Writer {
    std::mutex mutex;
    std::vector<leakscope::Report> reports;
    void write(const leakscope::Report& r) override {
        std::lock_guard<std::mutex> lock(mutex);
        reports.push_back(r);
    }
};

// Installs a CaptureWriter for its lifetime, then restores the default writer.
struct Capture {
    std::shared_ptr<CaptureWriter> writer = std::make_shared<CaptureWriter>();
    Capture() { leakscope::set_writers({writer}); }
    ~Capture() { leakscope::set_writers({}); }
    std::vector<leakscope::Report>& reports() { return writer->reports; }
};

// Runs `body` with a TextWriter writing into memory installed, then restores the default
// writer and returns what was written.
template <class Body>
std::string text_report_of(Body&& body) {
    char buffer[4096] = {};
    std::FILE* mem = fmemopen(buffer, sizeof buffer - 1, "w");
    REQUIRE(mem != nullptr);
    leakscope::set_writers({std::make_shared<leakscope::TextWriter>(mem)});
    body();
    leakscope::set_writers({});
    std::fclose(mem);
    return buffer;
}

}  // namespace test

// What `body` writes to file descriptor `target` (1 or 2; leakscope's diagnostics use write(2)
// directly, so the descriptor is redirected, not the FILE*). Through a file, so a long report
// never fills a pipe.
template <class Body>
std::string output_of(int target, Body&& body) {
    std::fflush(stdout);
    std::fflush(stderr);
    char name[] = "/tmp/leakscope-output-XXXXXX";
    int fd = ::mkstemp(name);
    REQUIRE(fd >= 0);
    int saved = ::dup(target);
    ::dup2(fd, target);
    body();
    std::fflush(stdout);
    std::fflush(stderr);
    ::dup2(saved, target);
    ::close(saved);
    ::close(fd);
    std::ifstream in(name, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    ::unlink(name);
    return text.str();
}
template <class Body>
std::string stderr_of(Body&& body) {
    return output_of(2, body);
}
