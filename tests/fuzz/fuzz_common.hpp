// Shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.cpp): a scratch directory to work in,
// stderr captured around a call so that leakscope's diagnostics can be checked, a writer that
// keeps the last report instead of writing it anywhere, and a failure that libFuzzer records.
// Included after <leakscope.hpp> (with LEAKSCOPE_IMPLEMENTATION) by each harness.
#ifndef LEAKSCOPE_FUZZ_COMMON_HPP
#define LEAKSCOPE_FUZZ_COMMON_HPP

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>
#include <string_view>

namespace fuzz {

// The original stderr, kept by enter_scratch_dir(): libFuzzer's -close_fd_mask=2 sends fd 2 to
// /dev/null, and StderrCapture borrows it; a broken property must still be seen.
inline int& report_fd() {
    static int fd = 2;
    return fd;
}

// A broken property is a crash for libFuzzer: it keeps the input as crash-<sha1>.
// The detail is shown C-escaped: it may hold the very control bytes the property is about.
[[noreturn]] inline void fail(const char* what, std::string_view detail = {}) {
    std::string line = std::string("fuzz: property broken: ") + what + "\nfuzz: detail (" + std::to_string(detail.size()) + " bytes): '";
    char hex[8];
    for (unsigned char c : detail.substr(0, 4000)) {
        if (c == '\n') line += "\\n\n";   // keep multi-line diagnostics readable
        else if (c < 0x20 || c >= 0x7f || c == '\\') std::snprintf(hex, sizeof hex, "\\x%02x", c), line += hex;
        else line += char(c);
    }
    line += "'\n";
    if (::write(report_fd(), line.data(), line.size()) < 0) std::perror("fuzz");
    std::abort();
}

// Every harness runs in its own fresh directory (LEAKSCOPE_FUZZ_SCRATCH, else a mkdtemp under
// TMPDIR): whatever a fuzzed path names, relative paths stay there.
// (LLVMFuzzerInitialize runs before libFuzzer applies -close_fd_mask, so fd 2 is still stderr.)
inline void enter_scratch_dir(const char* name) {
    if (report_fd() == 2) report_fd() = ::fcntl(2, F_DUPFD_CLOEXEC, 3);
    std::string dir;
    if (const char* given = std::getenv("LEAKSCOPE_FUZZ_SCRATCH")) {
        dir = given;
    } else {
        const char* tmp = std::getenv("TMPDIR");
        dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/leakscope-fuzz-" + name + "-XXXXXX";
        if (!::mkdtemp(&dir[0])) {
            std::perror("fuzz: mkdtemp");
            std::exit(2);
        }
    }
    if (::chdir(dir.c_str()) != 0) {
        std::perror("fuzz: chdir to the scratch directory");
        std::exit(2);
    }
}

// What a call wrote to file descriptor 2 (leakscope's diagnostics use write(2) directly).
// libFuzzer's -close_fd_mask=2 keeps its own and the sanitizers' reports on a duplicate of the
// original stderr, so a crash inside the call is still reported.
class StderrCapture {
   public:
    StderrCapture() {
        std::fflush(stderr);
        saved_ = ::dup(2);
        fd_ = ::memfd_create("leakscope-fuzz-stderr", 0);
        if (saved_ < 0 || fd_ < 0 || ::dup2(fd_, 2) < 0) {
            std::perror("fuzz: capturing stderr");
            std::exit(2);
        }
    }
    ~StderrCapture() { restore(); }
    StderrCapture(const StderrCapture&) = delete;
    StderrCapture& operator=(const StderrCapture&) = delete;

    // Restores stderr and returns what was written meanwhile.
    std::string take() {
        restore();
        std::string text;
        if (fd_ < 0) return text;
        off_t end = ::lseek(fd_, 0, SEEK_END);
        text.resize(end > 0 ? std::size_t(end) : 0);
        std::size_t got = 0;
        while (got < text.size()) {
            ssize_t n = ::pread(fd_, &text[got], text.size() - got, off_t(got));
            if (n <= 0) break;
            got += std::size_t(n);
        }
        text.resize(got);
        ::close(fd_);
        fd_ = -1;
        return text;
    }

   private:
    void restore() {
        if (saved_ < 0) return;
        std::fflush(stderr);
        ::dup2(saved_, 2);
        ::close(saved_);
        saved_ = -1;
    }
    int saved_ = -1, fd_ = -1;
};

// Each line of `text` starts with one of the prefixes and holds no control byte; returns the number of lines (text that
// does not end in '\n' is a broken line too).
inline std::size_t check_diagnostic_lines(std::string_view text, std::initializer_list<std::string_view> prefixes) {
    const std::string_view all = text;   // shown whole when a line is wrong
    std::size_t lines = 0;
    while (!text.empty()) {
        std::size_t end = text.find('\n');
        if (end == std::string_view::npos) fail("a diagnostic does not end with a newline", text);
        std::string_view line = text.substr(0, end);
        bool ok = false;
        for (std::string_view p : prefixes) ok = ok || line.substr(0, p.size()) == p;
        if (!ok) fail("a stderr line is not one of leakscope's diagnostics", all);
        // One clear line: no control byte (an escape sequence, a carriage return) from the input;
        // a tab is harmless.
        for (char c : line)
            if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) fail("a diagnostic holds a control byte", line);
        ++lines;
        text.remove_prefix(end + 1);
    }
    return lines;
}

// Keeps the reports it is given; writes nothing.
struct KeepWriter : leakscope::Writer {
    std::size_t reports = 0;
    leakscope::Report last;
    void write(const leakscope::Report& report) override {
        ++reports;
        last = report;
    }
};

}  // namespace fuzz

#endif
