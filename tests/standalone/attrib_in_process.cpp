// Symbolization is in-process, lazy and cached, and needs no runtime package:
//  - capturing stacks names nothing: the symbolizer has indexed no module and answered no
//    address until a report is built;
//  - the first report answers each distinct return address once; a second report of the same
//    leftovers answers nothing new (cached per address) and gives the same frames;
//  - no process is started on the way (fork, vfork, exec*, posix_spawn*, popen and system are
//    replaced here: leakscope's calls would bind to these, and they count);
//  - the objects loaded into the process are the C and C++ runtimes (and a sanitizer's), nothing
//    else: no libunwind, libdw, libbacktrace, libz.
// Exit status 0 = pass.
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include "../support/expect.hpp"

#include <link.h>
#include <spawn.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {
int processes_started = 0;

__attribute__((noinline)) int* leak_here(int n) {
    int* p = new int(n);
    asm volatile("" : : "g"(p) : "memory");
    return p;
}
// Not the same code as leak_here (g++'s identical-code folding would make them one function).
__attribute__((noinline)) int* leak_there(int n) {
    int* p = new int[3]{n, n, n};
    asm volatile("" : : "g"(p) : "memory");
    return p;
}

std::size_t cached_answers() {
    leakscope::detail::Symbolizer& s = leakscope::detail::symbolizer();
    std::lock_guard<std::mutex> lock(s.mutex);
    return s.cache.size();
}
std::size_t known_modules() {
    leakscope::detail::Symbolizer& s = leakscope::detail::symbolizer();
    std::lock_guard<std::mutex> lock(s.mutex);
    return s.modules.size();
}

bool allowed_object(const char* path) {
    if (!path || !*path) return true;   // the executable
    std::string name = path;
    name = name.substr(name.rfind('/') == std::string::npos ? 0 : name.rfind('/') + 1);
    static const char* const runtime[] = {"linux-vdso.so", "ld-linux", "libc.so", "libm.so", "libstdc++.so", "libgcc_s.so",
                                          "libdl.so", "libpthread.so", "librt.so", "libasan.so", "libtsan.so",
                                          "libubsan.so", "liblsan.so", "libc++.so", "libc++abi.so"};
    for (const char* r : runtime)
        if (name.compare(0, std::strlen(r), r) == 0) return true;
    return false;
}
}  // namespace

// Any of these called by leakscope (compiled into this program) lands here.
extern "C" {
pid_t fork() {
    ++processes_started;
    errno = EPERM;
    return -1;
}
pid_t vfork() {
    ++processes_started;
    errno = EPERM;
    return -1;
}
int execve(const char*, char* const[], char* const[]) {
    ++processes_started;
    errno = EPERM;
    return -1;
}
int execv(const char*, char* const[]) {
    ++processes_started;
    errno = EPERM;
    return -1;
}
int execvp(const char*, char* const[]) {
    ++processes_started;
    errno = EPERM;
    return -1;
}
int execl(const char*, const char*, ...) {
    ++processes_started;
    errno = EPERM;
    return -1;
}
int execlp(const char*, const char*, ...) {
    ++processes_started;
    errno = EPERM;
    return -1;
}
int posix_spawn(pid_t*, const char*, const posix_spawn_file_actions_t*, const posix_spawnattr_t*, char* const[],
                char* const[]) {
    ++processes_started;
    return EPERM;
}
int posix_spawnp(pid_t*, const char*, const posix_spawn_file_actions_t*, const posix_spawnattr_t*, char* const[],
                 char* const[]) {
    ++processes_started;
    return EPERM;
}
FILE* popen(const char*, const char*) {
    ++processes_started;
    errno = EPERM;
    return nullptr;
}
int system(const char*) {
    ++processes_started;
    return -1;
}
}

int main() {
    int* kept[6];
    leakscope::Report first, second;
    {
        leakscope::LeakScope scope("in process");
        for (int i = 0; i < 4; ++i) kept[i] = leak_here(i);
        for (int i = 4; i < 6; ++i) kept[i] = leak_there(i);
        // Lazy: stacks are captured, nothing is named yet.
        EXPECT(known_modules() == 0);
        EXPECT(cached_answers() == 0);
        first = scope.leftovers();
        std::size_t after_first = cached_answers();
        std::size_t modules_after_first = known_modules();
        std::fprintf(stderr, "after the first report: %zu addresses answered, %zu modules\n", after_first,
                     modules_after_first);
        EXPECT(after_first > 0);
        EXPECT(modules_after_first > 0);
        // Cached per address: the same stacks again answer nothing new.
        second = scope.leftovers();
        EXPECT(cached_answers() == after_first);
        EXPECT(known_modules() == modules_after_first);
        scope.dismiss();
    }
    for (int i = 0; i < 4; ++i) delete kept[i];
    for (int i = 4; i < 6; ++i) delete[] kept[i];

    EXPECT(first.blocks == 6);
    EXPECT(first.sites.size() == 2);
    EXPECT(second.sites.size() == first.sites.size());
    for (std::size_t i = 0; i < first.sites.size() && i < second.sites.size(); ++i) {
        const leakscope::Site& a = first.sites[i];
        const leakscope::Site& b = second.sites[i];
        EXPECT(a.blocks == b.blocks && a.frames.size() == b.frames.size());
        for (std::size_t k = 0; k < a.frames.size() && k < b.frames.size(); ++k)
            EXPECT(a.frames[k].function == b.frames[k].function && a.frames[k].line == b.frames[k].line &&
                   a.frames[k].file == b.frames[k].file && a.frames[k].address == b.frames[k].address);
    }
    if (first.sites.size() == 2) {
        // largest bytes first: leak_there's 2 blocks of 12 bytes, then leak_here's 4 of 4
        EXPECT(first.sites[0].blocks == 2 && first.sites[0].bytes == 24 && first.sites[0].frames.size() > 0 &&
               first.sites[0].frames[0].function.find("leak_there") != std::string::npos);
        EXPECT(first.sites[1].blocks == 4 && first.sites[1].bytes == 16 && first.sites[1].frames.size() > 0 &&
               first.sites[1].frames[0].function.find("leak_here") != std::string::npos);
    }
    EXPECT(processes_started == 0);

    // Only the runtimes are loaded.
    dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t, void*) -> int {
            if (!allowed_object(info->dlpi_name)) {
                std::fprintf(stderr, "FAILED: a runtime package is loaded: %s\n", info->dlpi_name);
                ++failures;
            }
            return 0;
        },
        nullptr);

    if (failures) std::fprintf(stderr, "attrib_in_process: %d failure(s)\n", failures);
    else std::printf("attrib_in_process: all cases passed\n");
    return failures ? 1 : 0;
}
