// The oracle's self-test (scripts/test-symbolize.sh, variants selftest-*): replaces corpus_impl.cpp
// with a symbolize() of its own that asks addr2line (one process per call: a test stand-in, never
// what leakscope may do), and a current_stack() built on _Unwind_Backtrace. It finds the module
// and its load bias another way than the harness (dladdr1's link_map, not dl_iterate_phdr), and
// parses addr2line's output with its own code.
//   default:                   symbolize == addr2line by construction: every site must pass. A
//                              failure here is a fault of the corpus or of the harness.
//   -DORACLE_BREAK_SYMBOLIZE:  three realistic faults: looks up the return address itself
//                              instead of the call (address - 1), drops the outermost frame of
//                              an inlined chain of three or more, says line + 1 in plain_b, and
//                              caches answers by address alone (stale after a dlclose: the
//                              reload_* sites). The oracle must report mismatches.
// Answers are cached (by module and offset), so that each address costs one addr2line run.
#include <leakscope.hpp>

#include <dlfcn.h>
#include <limits.h>
#include <link.h>
#include <unistd.h>
#include <unwind.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace {
struct Trace {
    std::uintptr_t* out;
    std::size_t max;
    std::size_t n;
    int skip;
};

_Unwind_Reason_Code collect(_Unwind_Context* ctx, void* arg) {
    auto* t = static_cast<Trace*>(arg);
    if (t->skip > 0) {  // current_stack's own frame
        --t->skip;
        return _URC_NO_REASON;
    }
    if (t->n >= t->max) return _URC_END_OF_STACK;
    t->out[t->n++] = _Unwind_GetIP(ctx);
    return _URC_NO_REASON;
}

std::mutex g_cache_mutex;
std::map<std::pair<std::string, std::uintptr_t>, std::vector<leakscope::Frame>> g_cache;
}  // namespace

namespace leakscope {
__attribute__((noinline)) std::size_t current_stack(std::uintptr_t* out, std::size_t max,
                                                    Unwinder) noexcept {
    if (max == 0) return 0;
    if (max > 256) max = 256;
    Trace t{out, max, 0, 1};
    _Unwind_Backtrace(collect, &t);
    asm volatile("" ::: "memory");  // not a tail call: out[0] stays in the caller
    return t.n;
}

std::vector<Frame> symbolize(std::uintptr_t return_address) {
    std::vector<Frame> out;
    if (return_address == 0) return out;
#ifdef ORACLE_BREAK_SYMBOLIZE
    std::uintptr_t pc = return_address;
#else
    std::uintptr_t pc = return_address - 1;
#endif
    Dl_info info;
    link_map* map = nullptr;
    if (!dladdr1(reinterpret_cast<void*>(return_address - 1), &info,
                 reinterpret_cast<void**>(&map), RTLD_DL_LINKMAP) ||
        !map)
        return out;
    std::string module;
    if (map->l_name && map->l_name[0]) {
        module = map->l_name;
    } else {
        char buf[PATH_MAX];
        ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
        if (n <= 0) return out;
        module.assign(buf, static_cast<std::size_t>(n));
    }
#ifdef ORACLE_BREAK_SYMBOLIZE
    auto key = std::make_pair(std::string(), return_address);
#else
    auto key = std::make_pair(module, pc - map->l_addr);
#endif
    {
        std::lock_guard<std::mutex> lock(g_cache_mutex);
        auto it = g_cache.find(key);
        if (it != g_cache.end()) {
            out = it->second;
            for (Frame& f : out) f.address = return_address;
            return out;
        }
    }
    char cmd[PATH_MAX + 128];
    std::snprintf(cmd, sizeof cmd, "addr2line -i -f -C -e '%s' 0x%lx", module.c_str(),
                  static_cast<unsigned long>(pc - map->l_addr));
    std::FILE* p = ::popen(cmd, "r");
    if (!p) return out;
    char fn[8192], loc[8192];
    while (std::fgets(fn, sizeof fn, p) && std::fgets(loc, sizeof loc, p)) {
        fn[std::strcspn(fn, "\n")] = 0;
        loc[std::strcspn(loc, "\n")] = 0;
        if (char* d = std::strstr(loc, " (discriminator ")) *d = 0;
        Frame f;
        f.address = return_address;
        f.module = module;
        if (std::strcmp(fn, "??") != 0) f.function = fn;
        char* colon = std::strrchr(loc, ':');
        if (colon) {
            *colon = 0;
            f.line = static_cast<unsigned>(std::strtoul(colon + 1, nullptr, 10));
        }
        if (std::strcmp(loc, "??") != 0) f.file = loc;
        // Without debug info, binutils guesses a local function's file from its STT_FILE symbol
        // ("corpus.cpp:0"); the convention is no file, line 0.
        if (f.line == 0 && f.file.find('/') == std::string::npos) f.file.clear();
        out.push_back(f);
    }
    ::pclose(p);
    for (std::size_t k = 0; k + 1 < out.size(); ++k) out[k].inlined = true;
#ifdef ORACLE_BREAK_SYMBOLIZE
    if (out.size() >= 3) out.pop_back();
    for (Frame& f : out)
        if (f.function.compare(0, 7, "plain_b") == 0) ++f.line;
#endif
    std::lock_guard<std::mutex> lock(g_cache_mutex);
    g_cache[key] = out;
    return out;
}
}  // namespace leakscope
