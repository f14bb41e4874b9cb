// A snapshot reads one header word per block without faulting on memory freed and unmapped
// meanwhile: read_words_safely reads ascending words close together as one range, and a range
// the kernel cannot read whole word by word. Here, on pages of known content: words in runs,
// runs that reach into a PROT_NONE page and over an unmapped page, words out of order, repeated,
// far apart, on the last word of a page; each word must be read exactly when its page is readable,
// with its value — with process_vm_readv, and again in a child whose seccomp filter forbids it
// (/proc/self/mem). Exit 0 = pass.
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include "../support/expect.hpp"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

namespace {
constexpr std::size_t kPage = 4096;
constexpr std::size_t kPages = 64;

// A sandbox that forbids process_vm_readv (EPERM), as some container profiles do.
bool forbid_process_vm_readv() {
#if defined(__x86_64__)
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_process_vm_readv, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog program = {static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
    return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) == 0;
#else
    return false;
#endif
}
}  // namespace

int main() {
    auto* base = static_cast<unsigned char*>(
        ::mmap(nullptr, kPages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (base == MAP_FAILED) {
        std::perror("mmap");
        return 1;
    }
    auto word_at = [&](std::size_t offset) { return reinterpret_cast<std::uintptr_t>(base + offset); };
    for (std::size_t o = 0; o + 8 <= kPages * kPage; o += 8) {
        std::uint64_t v = 0x1000000000ull + o;   // each word says where it is
        std::memcpy(base + o, &v, 8);
    }
    // Page 10 unreadable, page 20 unmapped: a run over either must still read its other words.
    ::mprotect(base + 10 * kPage, kPage, PROT_NONE);
    ::munmap(base + 20 * kPage, kPage);
    auto readable = [&](std::uintptr_t a) {
        std::size_t page = (a - reinterpret_cast<std::uintptr_t>(base)) / kPage;
        return page != 10 && page != 20;
    };

    std::vector<std::uintptr_t> at;
    for (std::size_t o = 0; o < 3 * kPage; o += 48) at.push_back(word_at(o));                    // a dense run
    for (std::size_t o = 9 * kPage; o < 12 * kPage; o += 64) at.push_back(word_at(o));           // into PROT_NONE
    for (std::size_t o = 19 * kPage + 4000; o < 21 * kPage + 200; o += 96) at.push_back(word_at(o));   // over a hole
    at.push_back(word_at(30 * kPage - 8));   // the last word of a page
    at.push_back(word_at(30 * kPage));
    at.push_back(word_at(40 * kPage));       // descending and repeated
    at.push_back(word_at(35 * kPage));
    at.push_back(word_at(35 * kPage));
    at.push_back(word_at(20 * kPage + 8));   // alone in the hole
    std::mt19937 random(3);
    for (int k = 0; k < 2000; ++k) at.push_back(word_at((random() % (kPages * kPage / 8)) * 8));   // anywhere
    for (std::size_t o = 50 * kPage; o < 64 * kPage; o += 16) at.push_back(word_at(o));          // longer than a run

    // Reads every word of `at` and checks each against the pages. /proc/self/mem reads a
    // PROT_NONE page (the kernel forces the access), so through it those words may read as well,
    // with their values; an unmapped page is never read.
    auto check = [&](const char* how, bool prot_none_may_read) {
        std::vector<std::uint64_t> out(at.size(), 0);
        std::unique_ptr<bool[]> ok(new bool[at.size()]());
        leakscope::detail::read_words_safely(at.data(), out.data(), ok.get(), at.size());
        long long wrong_ok = 0, wrong_value = 0, read = 0;
        for (std::size_t i = 0; i < at.size(); ++i) {
            bool want = readable(at[i]);
            bool prot_none = (at[i] - reinterpret_cast<std::uintptr_t>(base)) / kPage == 10;
            if (ok[i] != want && !(prot_none && prot_none_may_read)) ++wrong_ok;
            if (ok[i]) {
                ++read;
                if (out[i] != 0x1000000000ull + (at[i] - reinterpret_cast<std::uintptr_t>(base))) ++wrong_value;
            }
        }
        std::printf("heap_read_words (%s): %lld of %zu words readable\n", how, read, at.size());
        expect_eq("words whose readability was misjudged", wrong_ok, 0);
        expect_eq("words read with a wrong value", wrong_value, 0);
        expect(read > 3000, "most words were read", read, 3000);
    };
    check("process_vm_readv", false);
    expect_eq("process_vm_readv allowed here", leakscope::detail::vm_readv_forbidden.load(), 0);

    // The same reads where a sandbox forbids process_vm_readv: /proc/self/mem, word by word, as
    // soon as the first ranged call is refused, and at once for every later call.
    std::fflush(stdout);
    pid_t child = ::fork();
    if (child == 0) {
        if (!forbid_process_vm_readv()) {
            std::puts("heap_read_words: no seccomp filter here; the sandboxed reads are not checked");
            std::_Exit(0);
        }
        check("sandboxed, first call", true);
        expect_eq("the refusal is remembered", leakscope::detail::vm_readv_forbidden.load(), 1);
        check("sandboxed, later call", true);
        std::fflush(stdout);
        std::_Exit(failures == 0 ? 0 : 1);
    }
    int status = -1;
    bool waited = child > 0 && ::waitpid(child, &status, 0) == child;
    expect(waited && WIFEXITED(status) && WEXITSTATUS(status) == 0, "the sandboxed child's checks passed", status, 0);
    if (failures == 0) std::puts("heap_read_words: all checks passed");
    return failures == 0 ? 0 : 1;
}
