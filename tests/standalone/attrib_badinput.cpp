// The symbolizer on bad input: copies of this very executable, truncated, with corrupt DWARF,
// stripped, with a .gnu_debuglink pointing nowhere, with compressed debug sections (objcopy from
// binutils makes them); files that are no ELF at all; and an address in an anonymous (JIT)
// mapping. Expected: the function's name where the symbol table still has it, module + address
// otherwise, never a crash or a hang (a hang is ctest's timeout). Exit status 0 = pass.
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include "../support/expect.hpp"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {
// What a case gave, when it fails.
#define EXPECT_NAME(frame, name)                                                                              \
    do {                                                                                                      \
        if ((frame).function != (name)) {                                                                     \
            std::fprintf(stderr, "%s:%d: FAILED: function '%s', expected '%s' (%s:%u)\n", __FILE__, __LINE__, \
                         (frame).function.c_str(), name, (frame).file.c_str(), (frame).line);                \
            ++failures;                                                                                       \
        }                                                                                                     \
    } while (0)

std::string dir;

std::vector<char> read_all(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}
void write_all(const std::string& path, const std::vector<char>& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), std::streamsize(bytes.size()));
}
bool run(const std::string& command) {
    int rc = std::system(command.c_str());
    if (rc != 0) std::fprintf(stderr, "command failed (%d): %s\n", rc, command.c_str());
    return rc == 0;
}

// A section of an ELF image in memory: its header's offset in the image, and the header.
struct SectionAt { std::size_t header_at = 0; Elf64_Shdr sh{}; bool found = false; };
SectionAt section(const std::vector<char>& image, const char* name) {
    SectionAt out;
    Elf64_Ehdr eh;
    std::memcpy(&eh, image.data(), sizeof eh);
    Elf64_Shdr names;
    std::memcpy(&names, image.data() + eh.e_shoff + eh.e_shstrndx * sizeof(Elf64_Shdr), sizeof names);
    for (unsigned i = 0; i < eh.e_shnum; ++i) {
        std::size_t at = eh.e_shoff + i * sizeof(Elf64_Shdr);
        Elf64_Shdr sh;
        std::memcpy(&sh, image.data() + at, sizeof sh);
        if (std::strcmp(image.data() + names.sh_offset + sh.sh_name, name) == 0) {
            out.header_at = at;
            out.sh = sh;
            out.found = true;
        }
    }
    return out;
}

std::uintptr_t load_bias() {
    std::uintptr_t bias = 0;
    dl_iterate_phdr([](dl_phdr_info* info, std::size_t, void* arg) -> int {
        *static_cast<std::uintptr_t*>(arg) = info->dlpi_addr;
        return 1;
    }, &bias);
    return bias;
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// A deterministic byte stream for the corruptions.
struct Random {
    unsigned long long state;
    unsigned char next() {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        return static_cast<unsigned char>(state >> 56);
    }
};

}  // namespace

// The function whose address every case symbolizes.
extern "C" __attribute__((noinline, used)) int attrib_target_function(int x) {
    asm volatile("" : "+r"(x));
    return x * 3 + 1;
}

int main() {
    char templ[] = "/tmp/leakscope-attrib-XXXXXX";
    if (!::mkdtemp(templ)) return 1;
    dir = templ;
    const std::string self = dir + "/self";
    char exe[4096] = {};
    if (::readlink("/proc/self/exe", exe, sizeof exe - 1) <= 0) return 1;   // (in cp, /proc/self is cp)
    if (!run(std::string("cp '") + exe + "' '" + self + "'")) return 1;
    const std::vector<char> image = read_all(self);
    const std::uint64_t target = reinterpret_cast<std::uintptr_t>(&attrib_target_function) - load_bias() + 4;
    const bool has_dwarf = section(image, ".debug_info").found;
    if (!has_dwarf) {   // every build of the suite has -g: the DWARF cases below must run
        std::fprintf(stderr, "FAILED: this test was built without -g, so its DWARF cases cannot run\n");
        ++failures;
    }
    using leakscope::detail::symbolize_file;

    // The intact copy: the reference.
    {
        auto frames = symbolize_file(self, target);
        EXPECT(frames.size() == 1);
        EXPECT_NAME(frames[0], "attrib_target_function");
        EXPECT(frames[0].module == self);
        if (has_dwarf) {
            EXPECT(contains(frames[0].file, "attrib_badinput.cpp"));
            EXPECT(frames[0].line > 0);
        }
    }
    // Truncated in the middle of .debug_info (section headers and symbol table lost with it).
    if (has_dwarf) {
        SectionAt info = section(image, ".debug_info");
        std::vector<char> cut(image.begin(), image.begin() + std::ptrdiff_t(info.sh.sh_offset + info.sh.sh_size / 2));
        write_all(dir + "/truncated", cut);
        auto frames = symbolize_file(dir + "/truncated", target);
        EXPECT(frames.size() == 1);
        EXPECT(frames[0].function.empty());
        EXPECT(frames[0].module == dir + "/truncated");
    }
    // .debug_info's size halved in its header: the unit that straddles the end is dropped.
    if (has_dwarf) {
        std::vector<char> copy = image;
        SectionAt info = section(copy, ".debug_info");
        info.sh.sh_size /= 2;
        std::memcpy(copy.data() + info.header_at, &info.sh, sizeof info.sh);
        write_all(dir + "/short", copy);
        auto frames = symbolize_file(dir + "/short", target);
        EXPECT(!frames.empty());
        EXPECT_NAME(frames.back(), "attrib_target_function");
    }
    // Sections whose offset or size points past the file (and would overflow when added).
    if (has_dwarf) {
        for (std::uint64_t bad : {std::uint64_t(~0ull), std::uint64_t(~0ull - 64), std::uint64_t(image.size())}) {
            std::vector<char> copy = image;
            SectionAt info = section(copy, ".debug_info");
            info.sh.sh_offset = bad;
            std::memcpy(copy.data() + info.header_at, &info.sh, sizeof info.sh);
            write_all(dir + "/offset", copy);
            auto frames = symbolize_file(dir + "/offset", target);
            EXPECT(frames.size() == 1);
            EXPECT_NAME(frames[0], "attrib_target_function");   // the symbol table still says
            EXPECT(frames[0].file.empty());
        }
    }
    // Unit lengths that say "more than there is" (0xff bytes: a 64-bit length of ~0).
    if (has_dwarf) {
        std::vector<char> copy = image;
        SectionAt info = section(copy, ".debug_info");
        std::memset(copy.data() + info.sh.sh_offset, 0xff, info.sh.sh_size);
        write_all(dir + "/ff", copy);
        auto frames = symbolize_file(dir + "/ff", target);
        EXPECT(frames.size() == 1);
        EXPECT_NAME(frames[0], "attrib_target_function");
    }
    // Garbage in each debug section, many patterns: whatever it says, it ends, and without a crash.
    if (has_dwarf) {
        const char* sections[] = {".debug_info", ".debug_abbrev", ".debug_line", ".debug_str", ".debug_rnglists",
                                  ".debug_ranges", ".debug_line_str", ".debug_addr", ".debug_str_offsets"};
        for (const char* name : sections) {
            SectionAt at = section(image, name);
            if (!at.found) continue;
            for (unsigned seed = 1; seed <= 12; ++seed) {
                std::vector<char> copy = image;
                Random random{seed * 7919ull};
                // Seeds 1-4 garble everything, the others a few bytes (so most structure survives).
                std::size_t n = at.sh.sh_size;
                for (std::size_t i = 0; i < n; ++i)
                    if (seed <= 4 || random.next() < 4) copy[at.sh.sh_offset + i] = char(random.next());
                write_all(dir + "/garbage", copy);
                auto frames = symbolize_file(dir + "/garbage", target);
                EXPECT(!frames.empty());
                EXPECT(frames[0].module == dir + "/garbage");
                // .debug_line garbage may only hurt files and lines: names come from the DIEs.
                if (std::strcmp(name, ".debug_line") == 0) EXPECT_NAME(frames.back(), "attrib_target_function");
            }
        }
    }
    // Stripped: no symbol table, no DWARF. The target is not exported (usually): module + address only;
    // operator new is (libstdc++ refers to it), so the dynamic symbol table names it.
    if (run("objcopy --strip-all '" + self + "' '" + dir + "/stripped'")) {
        auto frames = symbolize_file(dir + "/stripped", target);
        EXPECT(frames.size() == 1);
        // Unnamed unless something exports it. (Under clang's -fsanitize=address the sanitizer
        // runtime's exported symbols are in .dynsym, some of them assembly without a size, and
        // such a symbol below the target claims it, as in addr2line: not our function's name.)
        if (::dlsym(RTLD_DEFAULT, "attrib_target_function")) EXPECT_NAME(frames[0], "attrib_target_function");
        else if (::dlsym(RTLD_DEFAULT, "__asan_init")) EXPECT(frames[0].function != "attrib_target_function");
        else EXPECT_NAME(frames[0], "");
        EXPECT(frames[0].file.empty());
        EXPECT(frames[0].line == 0);
        EXPECT(frames[0].module == dir + "/stripped");
        void* (*new_fn)(std::size_t) = &::operator new;
        std::uint64_t at_new = reinterpret_cast<std::uintptr_t>(new_fn) - load_bias() + 1;
        auto named = symbolize_file(dir + "/stripped", at_new);
        EXPECT(named.size() == 1);
        EXPECT_NAME(named[0], "operator new(unsigned long)");
    } else {
        ++failures;
    }
    // A .gnu_debuglink to a file that is gone: the symbol table still names the function.
    if (has_dwarf && run("objcopy --only-keep-debug '" + self + "' '" + dir + "/self.debug' && cd '" + dir +
                         "' && objcopy --strip-debug --add-gnu-debuglink=self.debug self linked && rm self.debug")) {
        auto frames = symbolize_file(dir + "/linked", target);
        EXPECT(frames.size() == 1);
        EXPECT_NAME(frames[0], "attrib_target_function");
        EXPECT(frames[0].file.empty());
    } else if (has_dwarf) {
        ++failures;
    }
    // Compressed debug sections (as -gz makes them): not read (no zlib); the symbol table names it.
    if (has_dwarf && run("objcopy --compress-debug-sections=zlib '" + self + "' '" + dir + "/compressed'")) {
        SectionAt compressed = section(read_all(dir + "/compressed"), ".debug_info");
        EXPECT(compressed.found && (compressed.sh.sh_flags & SHF_COMPRESSED));   // the case is the real one
        auto frames = symbolize_file(dir + "/compressed", target);
        EXPECT(frames.size() == 1);
        EXPECT_NAME(frames[0], "attrib_target_function");
    } else if (has_dwarf) {
        ++failures;
    }
    // Not ELF at all, empty, missing.
    {
        std::vector<char> noise(100000);
        Random random{42};
        for (char& c : noise) c = char(random.next());
        write_all(dir + "/noise", noise);
        write_all(dir + "/empty", {});
        std::vector<char> header_only(image.begin(), image.begin() + 64);
        write_all(dir + "/header", header_only);
        for (const char* name : {"/noise", "/empty", "/header", "/missing"}) {
            auto frames = symbolize_file(dir + name, 0x1234);
            EXPECT(frames.size() == 1);
            EXPECT(frames[0].function.empty());
            EXPECT(frames[0].address == 0x1234);
        }
    }
    // An address in an anonymous executable mapping (JIT code): no module, no name, no crash.
    {
        void* jit = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (jit == MAP_FAILED) jit = ::mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        EXPECT(jit != MAP_FAILED);
        std::uintptr_t at = reinterpret_cast<std::uintptr_t>(jit) + 100;
        auto frames = leakscope::symbolize(at);
        EXPECT(frames.size() == 1);
        EXPECT(frames[0].address == at);
        EXPECT(frames[0].module.empty());
        EXPECT(frames[0].function.empty());
        ::munmap(jit, 4096);
        // and the address 0, and the very last one
        EXPECT(leakscope::symbolize(0).size() == 1);
        EXPECT(leakscope::symbolize(~std::uintptr_t(0)).size() == 1);
    }
    run("rm -rf '" + dir + "'");
    if (failures) std::fprintf(stderr, "attrib_badinput: %d failure(s)\n", failures);
    else std::printf("attrib_badinput: all cases passed\n");
    return failures ? 1 : 0;
}
