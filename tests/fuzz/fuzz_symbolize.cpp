// libFuzzer harness: the in-process ELF/DWARF reader. The input is written to a file in the scratch
// directory and read the way a report reads a module's file: leakscope::detail::symbolize_file()
// (map, ELF sections, symbol table, DWARF units, inlining tree, line table), then, on one indexing
// of the same file, many lookups at the addresses the file itself names — its symbols, its DWARF
// ranges and its line rows, at their edges — so that corrupt tables are looked up, not just parsed.
// Seeds: small shared objects with -g DWARF 4 and 5 from g++ and clang++ (-O0 and -O2, inlined
// calls), built by scripts/test-fuzz.sh, plus the checked-in corpus. Never a crash, a hang
// (libFuzzer's -timeout) or a leak.
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include "fuzz_common.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace {
const std::string kPath = "input.elf";   // in the scratch directory

void write_input(const std::uint8_t* data, std::size_t size) {
    int fd = ::open(kPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) fuzz::fail("cannot create the input file in the scratch directory", std::strerror(errno));
    for (std::size_t done = 0; done < size;) {
        ssize_t n = ::write(fd, data + done, size - done);
        if (n <= 0) fuzz::fail("cannot write the input file", std::strerror(errno));
        done += std::size_t(n);
    }
    ::close(fd);
}

// Every frame names something: a function, or at least the module.
void check(const std::vector<leakscope::Frame>& frames) {
    if (frames.empty()) fuzz::fail("symbolize_file gave no frame");
    if (frames.size() > 257) fuzz::fail("an inlined chain deeper than the reader's own limit");
    for (const leakscope::Frame& f : frames)
        if (f.module != kPath) fuzz::fail("a frame without its module", f.module);
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    fuzz::enter_scratch_dir("symbolize");
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace leakscope::detail;
    write_input(data, size);

    // The whole path, as a test on a crafted file would take it (uncached: maps, indexes, unmaps).
    std::uint64_t entry = 0;
    if (size >= 32) std::memcpy(&entry, data + 24, sizeof entry);   // e_entry of an ELF64 header
    check(symbolize_file(kPath, entry));

    // One indexing, many lookups: addresses from the file's own tables, and their edges.
    Module m;
    m.path = kPath;
    m.end = ~std::uintptr_t(0);
    ensure_indexed(m);
    leakscope::Frame base;
    base.module = kPath;
    std::vector<std::uint64_t> addresses = {0, 1, 0x1000, ~std::uint64_t(0), entry};
    for (std::size_t i = 0; i < m.symbols.size() && i < 8; ++i) {
        const SymbolEntry& s = m.symbols[i * m.symbols.size() / std::min<std::size_t>(m.symbols.size(), 8)];
        addresses.insert(addresses.end(), {s.address, s.address + s.size / 2, s.address + s.size});
    }
    for (std::size_t i = 0; i < m.ranges_sorted.size() && i < 8; ++i) {
        const DwarfRange& r = m.ranges_sorted[i * m.ranges_sorted.size() / std::min<std::size_t>(m.ranges_sorted.size(), 8)];
        addresses.insert(addresses.end(), {r.low, r.high - 1, r.high});
    }
    for (std::uint64_t a : addresses) {
        base.address = std::uintptr_t(a);
        check(frames_in(m, a, base));
    }
    // The line table is read at the first lookup: its rows too.
    for (std::size_t i = 0; i < m.rows.size() && i < 8; ++i) {
        std::uint64_t a = m.rows[i * m.rows.size() / std::min<std::size_t>(m.rows.size(), 8)].address;
        base.address = std::uintptr_t(a);
        check(frames_in(m, a, base));
    }
    if (m.image) ::munmap(const_cast<std::uint8_t*>(m.image), m.image_size);
    return 0;
}
