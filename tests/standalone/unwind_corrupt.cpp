// Corrupt stacks never crash or hang the unwinders, and results stay bounded.
//  (a) A function overwrites its own return-address slot (and its saved frame pointer) with
//      garbage — 0, 1, 0xdeadbeef, a data page, a non-code global, a PROT_NONE page, an unmapped
//      page, the kernel half, ~0, the slot's own address, the middle of a function — captures
//      with Unwinder::fast and Unwinder::fp, restores the slot and returns. frames[0] must still
//      be the true return address of the capture call; the result <= max.
//  (b) detail::unwind_fast fuzzed with fake register states over a 64 KiB fake stack between
//      PROT_NONE guard pages: random words, words pointing back into the buffer, real return
//      addresses; pc from real code (return addresses, random addresses in every executable
//      segment, near the signal trampoline) or garbage; sp/fp inside the buffer (sometimes
//      misaligned or outside); [stack_lo, stack_hi) the whole buffer or a poisoned sub-window.
//      200k iterations, fixed seed: count <= max, nothing written past max, out[0] == pc, no
//      word read from outside [stack_lo, stack_hi) (guard pages fault; poison is detected).
// Exit status 0 = pass.
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include "unwind_frames.hpp"

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {
using uptr = std::uintptr_t;
constexpr std::size_t kMax = 64;
int failures = 0;
std::size_t page_size() { return static_cast<std::size_t>(sysconf(_SC_PAGESIZE)); }

using unwind_frames::describe;

// Stack slots are read and written with plain moves the compiler (and sanitizers) do not see.
uptr load(const uptr* p) {
    uptr v;
    asm volatile("movq (%1), %0" : "=r"(v) : "r"(p) : "memory");
    return v;
}
void store(uptr* p, uptr v) { asm volatile("movq %1, (%0)" : : "r"(p), "r"(v) : "memory"); }

// What is running, for a crash report: a crash is a failure, but it should say which case.
char current_case[160] = "set-up";
extern "C" void on_crash(int sig) {
    char line[256];
    int n = std::snprintf(line, sizeof line, "FAILED: crashed (signal %d) in: %s\n", sig, current_case);
    ssize_t w = write(2, line, n > 0 ? std::size_t(n) : 0);
    (void)w;
    // SA_RESETHAND: returning re-runs the faulting instruction under the default action.
}

// ---- (a) corrupted return-address slot ---------------------------------------------------------
struct Result {
    uptr fast[kMax + 1], fp[kMax + 1];
    std::size_t nf = 0, np = 0;
    uptr fast0_expected_lo = 0;
    bool slot_found = false;
};

volatile long data_global[64];   // a non-code global
int marker_function_body(int x) { return x * 3 + 1; }

// Finds its return-address slot, corrupts it (and the saved frame pointer below it), captures,
// restores, returns. __builtin_frame_address(0) gives this function a frame pointer, so the slot
// is normally at fp+8; a scan upward from there confirms it.
__attribute__((noinline)) void corrupt_and_capture(uptr bad_ra, int fp_mode, Result& r) {
    uptr* fp = static_cast<uptr*>(__builtin_frame_address(0));
    const uptr ra = reinterpret_cast<uptr>(__builtin_return_address(0));
    uptr* slot = nullptr;
    for (int i = 1; i < 64; ++i)
        if (load(fp + i) == ra) {
            slot = fp + i;
            break;
        }
    r.slot_found = slot != nullptr;
    if (!slot) return;
    uptr* saved_fp_slot = slot - 1;   // push %rbp sits right below the return address
    const uptr saved_fp = load(saved_fp_slot);
    if (bad_ra == ~uptr(1)) bad_ra = reinterpret_cast<uptr>(slot);   // "the slot's own address"
    uptr bad_fp = saved_fp;
    switch (fp_mode) {
        case 1: bad_fp = 0; break;
        case 2: bad_fp = reinterpret_cast<uptr>(saved_fp_slot); break;   // a frame chain loop
        case 3: bad_fp = reinterpret_cast<uptr>(saved_fp_slot) - 256; break;   // points down
        case 4: bad_fp = 0xdeadbeefUL; break;
        default: break;
    }
    store(slot, bad_ra);
    store(saved_fp_slot, bad_fp);
    r.nf = leakscope::current_stack(r.fast, kMax, leakscope::Unwinder::fast);
    r.np = leakscope::current_stack(r.fp, kMax, leakscope::Unwinder::fp);
    store(saved_fp_slot, saved_fp);
    store(slot, ra);
    // frames[0] of both captures: a return address inside this function, i.e. after its entry.
    r.fast0_expected_lo = reinterpret_cast<uptr>(&corrupt_and_capture);
    asm volatile("" : : : "memory");
}

// Its frame, right above the corrupted slot, is full of `plant`: what an unwinder that takes the
// garbage return address for a signal trampoline reads as the interrupted registers.
__attribute__((noinline)) void corrupt_caller(uptr bad_ra, int fp_mode, uptr plant, Result& r) {
    volatile uptr fill[48];
    for (volatile uptr& w : fill) w = plant;
    corrupt_and_capture(bad_ra, fp_mode, r);
    asm volatile("" : : "r"(&fill[0]) : "memory");   // keeps this frame (no tail call)
}

// glibc's signal return trampoline (__restore_rt), as the kernel has it for a handler installed
// through glibc (rt_sigaction read back raw: sanitizers' wrappers do not hide it), checked to be
// `mov $15,%rax; syscall`; else 0.
extern "C" void ignore_signal(int) {}
uptr signal_restorer() {
    struct KernelSigaction {
        void (*handler)(int);
        unsigned long flags;
        void (*restorer)();
        unsigned long mask;
    } now{};
    struct sigaction sa {}, old{};
    sa.sa_handler = ignore_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, &old);
    const long rc = syscall(SYS_rt_sigaction, SIGUSR2, nullptr, &now, sizeof now.mask);
    sigaction(SIGUSR2, &old, nullptr);
    static const unsigned char sigreturn[9] = {0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};
    const uptr at = reinterpret_cast<uptr>(now.restorer);
    Dl_info info{};
    if (rc != 0 || !at || !dladdr(reinterpret_cast<void*>(at), &info)) return 0;   // code of a module only
    return std::memcmp(reinterpret_cast<const void*>(at), sigreturn, sizeof sigreturn) == 0 ? at : 0;
}

// An address inside one of this executable's PLT entries (whose CFI is a DWARF expression), from
// its section headers; 0 if there is no .plt.
int first_module(dl_phdr_info* info, std::size_t, void* bias) {
    *static_cast<uptr*>(bias) = info->dlpi_addr;
    return 1;
}
uptr plt_entry_address() {
    uptr bias = 0, found = 0;
    dl_iterate_phdr(first_module, &bias);
    const int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ElfW(Ehdr) eh;
    if (pread(fd, &eh, sizeof eh, 0) == ssize_t(sizeof eh) && eh.e_shentsize == sizeof(ElfW(Shdr)) &&
        eh.e_shnum > 0 && eh.e_shnum < 1000 && eh.e_shstrndx < eh.e_shnum) {
        static ElfW(Shdr) sh[1000];
        static char names[65536];
        const std::size_t bytes = eh.e_shnum * sizeof(ElfW(Shdr));
        if (pread(fd, sh, bytes, off_t(eh.e_shoff)) == ssize_t(bytes)) {
            const ElfW(Shdr)& strtab = sh[eh.e_shstrndx];
            const std::size_t n = strtab.sh_size < sizeof names - 1 ? strtab.sh_size : sizeof names - 1;
            if (pread(fd, names, n, off_t(strtab.sh_offset)) == ssize_t(n)) {
                for (unsigned i = 0; i < eh.e_shnum && !found; ++i)
                    if (sh[i].sh_name < n && std::strcmp(names + sh[i].sh_name, ".plt") == 0 && sh[i].sh_size >= 48)
                        found = bias + sh[i].sh_addr + 16 + 6;   // the second entry, after its jmp
            }
        }
    }
    close(fd);
    return found;
}

void part_a() {
    const std::size_t page = page_size();
    char* data_page = static_cast<char*>(
        mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    char* none_page =
        static_cast<char*>(mmap(nullptr, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    char* gone_page =
        static_cast<char*>(mmap(nullptr, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (data_page == MAP_FAILED || none_page == MAP_FAILED || gone_page == MAP_FAILED) {
        std::perror("mmap");
        ++failures;
        return;
    }
    munmap(gone_page, page);
    std::memset(data_page, 0x90, page);
    const uptr plt = plt_entry_address();
    if (!plt) std::printf("note: no .plt found; its case uses 0xdeadbeef instead\n");
    uptr restorer = signal_restorer();
    if (!restorer) {
        std::printf("note: signal trampoline not found; its cases use 0xdeadbeef instead\n");
        restorer = 0xdeadbeefUL;
    }
    const uptr bad[] = {
        0,
        1,
        0xdeadbeefUL,
        reinterpret_cast<uptr>(data_page) + 100,
        reinterpret_cast<uptr>(&data_global[3]),
        reinterpret_cast<uptr>(none_page) + 16,
        reinterpret_cast<uptr>(gone_page) + 16,
        0xffff800000000000UL,
        0x00007ffffffff000UL,
        ~uptr(0),
        ~uptr(1),   // replaced by the slot's own address
        reinterpret_cast<uptr>(&marker_function_body) + 1,   // code, but not after a call
        reinterpret_cast<uptr>(&::write) + 3,                 // another module's code
        restorer,          // the signal trampoline: the "ucontext" above it is the planted garbage
        restorer + 1,      // inside the trampoline's signal-frame FDE, but not its start
        restorer + 5,
        plt ? plt : 0xdeadbeefUL,   // a PLT entry: CFI that is a DWARF expression
    };
    const uptr plants[] = {reinterpret_cast<uptr>(gone_page) + 16, 0xdeadbeefUL, 0};
    // Each case in a child process, so that a crash names its case and the others still run.
    int crashed = 0;
    for (uptr b : bad) {
        for (int fp_mode = 0; fp_mode < 5; ++fp_mode) {
            const uptr plant = plants[fp_mode % 3];
            std::snprintf(current_case, sizeof current_case,
                          "(a) return address %#lx, saved-fp mode %d, caller frame filled with %#lx",
                          static_cast<unsigned long>(b), fp_mode, static_cast<unsigned long>(plant));
            std::fflush(nullptr);
            const pid_t pid = fork();
            if (pid == 0) {
                static Result r;
                corrupt_caller(b, fp_mode, plant, r);
                if (!r.slot_found) {
                    std::fprintf(stderr, "note: return-address slot not found; case skipped\n");
                    _exit(0);
                }
                const bool ok = r.nf >= 1 && r.nf <= kMax && r.np <= kMax &&
                                r.fast[0] > r.fast0_expected_lo && r.fast[0] < r.fast0_expected_lo + 4096 &&
                                (r.np == 0 || (r.fp[0] > r.fast0_expected_lo &&
                                               r.fp[0] < r.fast0_expected_lo + 4096));
                if (!ok) {
                    std::fprintf(stderr, "FAILED: %s: fast %zu frames, fp %zu frames\n", current_case, r.nf, r.np);
                    for (std::size_t i = 0; i < r.nf && i < kMax; ++i) describe(r.fast[i]);
                }
                std::fflush(nullptr);
                _exit(ok ? 0 : 1);
            }
            int status = 0;
            if (pid < 0 || waitpid(pid, &status, 0) != pid) {
                std::perror("fork/waitpid");
                ++failures;
            } else if (WIFSIGNALED(status)) {
                ++failures;
                ++crashed;   // the child's SIGSEGV handler named the case
            } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                ++failures;
            }
        }
    }
    if (crashed)
        std::fprintf(stderr, "FAILED: (a) %d cases crashed (signal trampoline at %#lx, PLT entry at %#lx)\n",
                     crashed, static_cast<unsigned long>(restorer), static_cast<unsigned long>(plt));
    munmap(data_page, page);
    munmap(none_page, page);
}

// ---- (b) fuzzing detail::unwind_fast ------------------------------------------------------------
struct Rng {   // xorshift64*: fixed seed, same run every time
    std::uint64_t s = 0x9e3779b97f4a7c15ULL;
    std::uint64_t next() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 0x2545f4914f6cdd1dULL;
    }
    std::size_t below(std::size_t n) { return n ? static_cast<std::size_t>(next() % n) : 0; }
};

struct Segment {
    uptr lo, hi;
};
Segment segments[64];   // executable PT_LOAD segments of every loaded module (incl. the vDSO)
std::size_t n_segments = 0;

int collect_segment(dl_phdr_info* info, std::size_t, void*) {
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr)& ph = info->dlpi_phdr[i];
        if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) && n_segments < 64)
            segments[n_segments++] = {info->dlpi_addr + ph.p_vaddr, info->dlpi_addr + ph.p_vaddr + ph.p_memsz};
    }
    return 0;
}

uptr real_returns[256];   // real return addresses, from captures in ordinary code and a handler
std::size_t n_real = 0;
uptr restorer = 0;        // the signal trampoline, if glibc tells

void add_real(const uptr* s, std::size_t n) {
    for (std::size_t i = 0; i < n && n_real < 256; ++i) real_returns[n_real++] = s[i];
}

extern "C" void on_usr1(int) {
    uptr s[kMax];
    std::size_t n = leakscope::current_stack(s, kMax, leakscope::Unwinder::libgcc);
    add_real(s, n);
}

__attribute__((noinline)) void nested_capture(int depth) {
    if (depth > 0) {
        nested_capture(depth - 1);
    } else {
        uptr s[kMax];
        add_real(s, leakscope::current_stack(s, kMax, leakscope::Unwinder::libgcc));
        raise(SIGUSR1);
    }
    asm volatile("" : : : "memory");
}

constexpr std::uint64_t kPoison = 0xa5a5a5a5a5a5a5a5ULL;
constexpr std::size_t kBand = 512;   // poisoned words on each side of a sub-window
bool looks_poisoned(uptr v) {
    int bytes = 0;
    for (int i = 0; i < 8; ++i) bytes += ((v >> (8 * i)) & 0xff) == 0xa5;
    return bytes >= 4;
}

uptr random_code_address(Rng& rng) {
    const Segment& s = segments[rng.below(n_segments)];
    return s.lo + rng.below(s.hi - s.lo);
}

uptr random_word(Rng& rng, uptr* buf, std::size_t words) {
    switch (rng.below(8)) {
        case 0: return rng.next();
        case 1:
        case 2: return reinterpret_cast<uptr>(buf + rng.below(words));   // back into the buffer
        case 3: return reinterpret_cast<uptr>(buf) + rng.below(words * 8);   // maybe misaligned
        case 4:
        case 5: return n_real ? real_returns[rng.below(n_real)] : 0;
        case 6: return random_code_address(rng);
        default: return rng.below(4) == 0 ? 0 : rng.below(64);
    }
}

void part_b() {
    dl_iterate_phdr(collect_segment, nullptr);
    struct sigaction sa {}, old{};
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, &old);
    nested_capture(5);
    sigaction(SIGUSR1, &old, nullptr);
    restorer = signal_restorer();
    if (n_segments == 0 || n_real < 4) {
        std::fprintf(stderr, "FAILED: fuzz set-up: %zu code segments, %zu real return addresses\n", n_segments,
                     n_real);
        ++failures;
        return;
    }

    const std::size_t page = page_size();
    constexpr std::size_t kBytes = 64 * 1024, kWords = kBytes / sizeof(uptr);
    char* map = static_cast<char*>(
        mmap(nullptr, kBytes + 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (map == MAP_FAILED || mprotect(map + page, kBytes, PROT_READ | PROT_WRITE) != 0) {
        std::perror("mmap");
        ++failures;
        return;
    }
    uptr* buf = reinterpret_cast<uptr*>(map + page);
    const uptr buf_lo = reinterpret_cast<uptr>(buf), buf_hi = buf_lo + kBytes;

    Rng rng;
    uptr out[kMax + 8];
    int reported = 0;
    constexpr long kIterations = 200000;
    std::size_t deepest = 0;
    long walks_2 = 0, walks_5 = 0;   // how far the fake stacks led it (for the log)
    for (long it = 0; it < kIterations; ++it) {
        if (it % 4096 == 0)
            for (std::size_t i = 0; i < kWords; ++i) buf[i] = random_word(rng, buf, kWords);
        // Where the fake stack pointer goes; refresh the words around it.
        std::size_t sp_word = rng.below(kWords);
        for (std::size_t i = sp_word; i < kWords && i < sp_word + 64; ++i) buf[i] = random_word(rng, buf, kWords);
        uptr sp = buf_lo + sp_word * 8 + (rng.below(8) == 0 ? rng.below(8) : 0);
        uptr fp;
        switch (rng.below(6)) {
            case 0: fp = rng.next(); break;
            case 1: fp = buf_lo + rng.below(kBytes); break;
            default: fp = sp + 8 * rng.below(64); break;
        }
        uptr pc;
        switch (rng.below(8)) {
            case 0: pc = rng.next(); break;
            case 1: pc = random_code_address(rng); break;
            case 2: pc = restorer ? restorer + rng.below(16) : random_code_address(rng); break;
            case 3: pc = buf_lo + rng.below(kBytes); break;   // "code" on the stack
            default: pc = real_returns[rng.below(n_real)] + (rng.below(4) == 0 ? rng.below(32) : 0); break;
        }
        // The bounds: the whole buffer, or a sub-window with poison outside it.
        uptr lo = buf_lo, hi = buf_hi;
        std::size_t win_lo = 0, win_hi = kWords;
        const bool window = rng.below(4) == 0;
        if (window) {
            win_lo = rng.below(sp_word + 1);
            win_hi = sp_word + rng.below(kWords - sp_word + 1);
            // Poison a band on each side (reads further out land on unpoisoned words: missed).
            for (std::size_t i = win_lo > kBand ? win_lo - kBand : 0; i < win_lo; ++i) buf[i] = kPoison;
            for (std::size_t i = win_hi; i < kWords && i < win_hi + kBand; ++i) buf[i] = kPoison;
            lo = buf_lo + win_lo * 8;
            hi = buf_lo + win_hi * 8;
        }
        const std::size_t max = rng.below(8) == 0 ? rng.below(3) : 1 + rng.below(kMax);
        for (uptr& o : out) o = 0x5e5e5e5e5e5e5e5eULL;
        if (it % 1024 == 0)
            std::snprintf(current_case, sizeof current_case, "(b) fuzz iterations %ld..%ld", it, it + 1023);
        const std::size_t n = leakscope::detail::unwind_fast(pc, sp, fp, lo, hi, out, max);
        deepest = n > deepest ? n : deepest;
        walks_2 += n >= 2;
        walks_5 += n >= 5;
        bool ok = n <= max;
        for (std::size_t i = max; ok && i < kMax + 8; ++i) ok = out[i] == 0x5e5e5e5e5e5e5e5eULL;
        if (ok && n > 0) ok = out[0] == pc;
        bool poisoned = false;
        for (std::size_t i = 1; ok && i < n; ++i) poisoned |= looks_poisoned(out[i]);
        if (!ok || poisoned) {
            ++failures;
            if (++reported <= 10) {
                std::fprintf(stderr,
                             "FAILED: fuzz iteration %ld: unwind_fast(pc=%#lx, sp=buf+%#lx, fp=%#lx, "
                             "[buf+%#lx, buf+%#lx), max=%zu) = %zu%s\n",
                             it, static_cast<unsigned long>(pc), static_cast<unsigned long>(sp - buf_lo),
                             static_cast<unsigned long>(fp), static_cast<unsigned long>(lo - buf_lo),
                             static_cast<unsigned long>(hi - buf_lo), max, n,
                             poisoned ? " (a frame read from outside the bounds)" : "");
                for (std::size_t i = 0; i < n && i < kMax; ++i) describe(out[i]);
            }
        }
        if (window) {   // undo the poison
            for (std::size_t i = win_lo > kBand ? win_lo - kBand : 0; i < win_lo; ++i)
                buf[i] = random_word(rng, buf, kWords);
            for (std::size_t i = win_hi; i < kWords && i < win_hi + kBand; ++i)
                buf[i] = random_word(rng, buf, kWords);
        }
    }
    munmap(map, kBytes + 2 * page);
    std::printf("(b) %ld walks: %ld reached 2+ frames, %ld reached 5+, the deepest %zu\n", kIterations, walks_2,
                walks_5, deepest);
}
}  // namespace

int main() {
    struct sigaction sa {};
    sa.sa_handler = on_crash;
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, nullptr);
    sigaction(SIGBUS, &sa, nullptr);
    part_a();
    part_b();
    if (failures == 0) std::printf("unwind_corrupt: all checks passed\n");
    return failures == 0 ? 0 : 1;
}
