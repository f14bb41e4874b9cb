// A block allocated by a shared library that is unloaded (dlclose) before the report: its frame
// still names the library (module), and — the library's file being still on disk — its function,
// file and line. With the file deleted too: module + offset (into the file), never a crash. The library is
// compiled here, in a temporary directory (c++, or $CXX). Exit status 0 = pass.
#include <leakscope.hpp>

#include "../support/expect.hpp"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

namespace {

bool run(const std::string& command) {
    int rc = std::system(command.c_str());
    if (rc != 0) std::fprintf(stderr, "command failed (%d): %s\n", rc, command.c_str());
    return rc == 0;
}
bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The library: line 3 allocates.
const char* kLibrary =
    "#include <new>\n"
    "extern \"C\" __attribute__((noinline)) void* unloaded_allocate(unsigned long n) {\n"
    "    void* p = ::operator new(n); asm volatile(\"\" : : \"r\"(p) : \"memory\"); return p;\n"
    "}\n";
constexpr unsigned kAllocatingLine = 3;

struct Loaded {
    void* handle;
    void* (*allocate)(unsigned long);
    std::uintptr_t base, function;   // the library's load base, unloaded_allocate's address
};
Loaded load(const std::string& path) {
    Loaded l{::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL), nullptr, 0, 0};
    if (!l.handle) {
        std::fprintf(stderr, "dlopen: %s\n", ::dlerror());
        return l;
    }
    void* symbol = ::dlsym(l.handle, "unloaded_allocate");
    l.allocate = reinterpret_cast<void* (*)(unsigned long)>(symbol);
    Dl_info info{};
    if (symbol && ::dladdr(symbol, &info)) {
        l.base = reinterpret_cast<std::uintptr_t>(info.dli_fbase);
        l.function = reinterpret_cast<std::uintptr_t>(symbol);
    }
    return l;
}

// The report's one site, allocated by the library, after the library is gone.
leakscope::Report leak_and_unload(const Loaded& lib, void*& block) {
    leakscope::LeakScope scope("dlclose");
    block = lib.allocate(40);
    EXPECT(::dlclose(lib.handle) == 0);
    leakscope::Report r = scope.leftovers();
    scope.dismiss();
    return r;
}
}  // namespace

int main() {
    char templ[] = "/tmp/leakscope-dlclose-XXXXXX";
    if (!::mkdtemp(templ)) return 1;
    const std::string dir = templ;
    {
        std::ofstream src(dir + "/unloaded.cpp");
        src << kLibrary;
    }
    const char* cxx = std::getenv("CXX");
    const std::string lib = dir + "/libunloaded.so";
    if (!run(std::string(cxx && *cxx ? cxx : "c++") + " -shared -fPIC -g -O1 -o '" + lib + "' '" + dir + "/unloaded.cpp'"))
        return 1;

    // 1. Unloaded, file still there: the frame is named in full.
    {
        Loaded l = load(lib);
        if (!l.allocate) return 1;
        void* block = nullptr;
        leakscope::Report r = leak_and_unload(l, block);
        EXPECT(r.sites.size() == 1);
        if (!r.sites.empty()) {
            const leakscope::Site& site = r.sites[0];
            EXPECT(site.blocks == 1);
            EXPECT(site.bytes == 40);
            EXPECT(!site.frames.empty());
            if (!site.frames.empty()) {
                const leakscope::Frame& f = site.frames[0];
                std::fprintf(stderr, "  frame 0: %s %s:%u in %s\n", f.function.c_str(), f.file.c_str(), f.line, f.module.c_str());
                EXPECT(f.module == lib);
                EXPECT(f.function == "unloaded_allocate");
                EXPECT(ends_with(f.file, "unloaded.cpp"));
                EXPECT(f.line == kAllocatingLine);
                EXPECT(f.offset == f.address - l.base);
                // symbolize() of the same address agrees.
                std::vector<leakscope::Frame> again = leakscope::symbolize(f.address);
                EXPECT(!again.empty() && again[0].module == lib && again[0].function == "unloaded_allocate");
            }
        }
        ::operator delete(block);
    }
    // 2. Unloaded and its file deleted: the module and the address remain.
    {
        const std::string lib2 = dir + "/libgone.so";
        EXPECT(run("cp '" + lib + "' '" + lib2 + "'"));
        Loaded l = load(lib2);
        if (!l.allocate) return 1;
        std::remove(lib2.c_str());
        void* block = nullptr;
        leakscope::Report r = leak_and_unload(l, block);
        EXPECT(r.sites.size() == 1);
        if (!r.sites.empty() && !r.sites[0].frames.empty()) {
            const leakscope::Frame& f = r.sites[0].frames[0];
            std::fprintf(stderr, "  frame 0: '%s' in %s [%#lx]\n", f.function.c_str(), f.module.c_str(),
                         static_cast<unsigned long>(f.address));
            EXPECT(f.module == lib2);
            EXPECT(f.function.empty());
            EXPECT(f.address != 0);
            // module + offset: the offset into the file (address - load base), inside
            // unloaded_allocate, which is what addr2line -e the library would take.
            EXPECT(f.offset == f.address - l.base);
            EXPECT(f.address > l.function && f.address - l.function < 64);
            char expected[64];
            std::snprintf(expected, sizeof expected, "libgone.so+0x%lx", static_cast<unsigned long>(f.offset));
            std::string text = leakscope::TextWriter(std::cerr).render(r);
            std::fprintf(stderr, "%s", text.c_str());
            EXPECT(text.find(expected) != std::string::npos);
            EXPECT(f.offset < 0x100000);   // an offset, not a run-time address
        } else {
            ++failures;
        }
        ::operator delete(block);
    }
    run("rm -rf '" + dir + "'");
    if (failures) std::fprintf(stderr, "attrib_dlclose: %d failure(s)\n", failures);
    else std::printf("attrib_dlclose: all cases passed\n");
    return failures ? 1 : 0;
}
