// Test support: the ELF function symbol containing a file address, read from the file on disk.
// Shared by the unwinder oracle (tests/unwind) and the symbolizer oracle (tests/symbolize) as the
// tests' own, independent reading of the symbol table. No static storage (a library that unloads
// includes it) and no allocation.
#pragma once

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace test_support {

// The smallest function symbol (.symtab, else .dynsym) of the ELF file `path` that contains file
// address `want`: its raw (mangled) name into `name` (n bytes) and its start into `start`.
inline bool elf_function_symbol(const char* path, std::uintptr_t want, char* name, std::size_t n,
                                std::uintptr_t* start) {
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st;
    if (::fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(sizeof(ElfW(Ehdr)))) {
        ::close(fd);
        return false;
    }
    std::size_t size = static_cast<std::size_t>(st.st_size);
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (map == MAP_FAILED) return false;
    const char* file = static_cast<const char*>(map);
    const auto* eh = reinterpret_cast<const ElfW(Ehdr)*>(file);
    bool ok = false;
    if (std::memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_shoff != 0 &&
        eh->e_shoff + std::size_t(eh->e_shnum) * sizeof(ElfW(Shdr)) <= size) {
        const auto* sh = reinterpret_cast<const ElfW(Shdr)*>(file + eh->e_shoff);
        const ElfW(Sym)* best = nullptr;
        const char* best_strtab = nullptr;
        for (unsigned type : {unsigned(SHT_SYMTAB), unsigned(SHT_DYNSYM)}) {
            for (unsigned s = 0; s < eh->e_shnum; ++s) {
                if (sh[s].sh_type != type || sh[s].sh_link >= eh->e_shnum) continue;
                const ElfW(Shdr)& strsh = sh[sh[s].sh_link];
                if (sh[s].sh_offset + sh[s].sh_size > size ||
                    strsh.sh_offset + strsh.sh_size > size || sh[s].sh_entsize == 0)
                    continue;
                const auto* syms = reinterpret_cast<const ElfW(Sym)*>(file + sh[s].sh_offset);
                std::size_t count = sh[s].sh_size / sh[s].sh_entsize;
                for (std::size_t k = 0; k < count; ++k) {
                    const ElfW(Sym)& sym = syms[k];
                    unsigned t = ELF64_ST_TYPE(sym.st_info);
                    if ((t != STT_FUNC && t != STT_GNU_IFUNC) || sym.st_shndx == SHN_UNDEF ||
                        sym.st_name >= strsh.sh_size)
                        continue;
                    std::uintptr_t len = sym.st_size ? sym.st_size : 1;
                    if (want < sym.st_value || want - sym.st_value >= len) continue;
                    if (!best || sym.st_size < best->st_size) {
                        best = &sym;
                        best_strtab = file + strsh.sh_offset;
                    }
                }
            }
            if (best) break;
        }
        if (best) {
            std::snprintf(name, n, "%s", best_strtab + best->st_name);
            *start = best->st_value;
            ok = true;
        }
    }
    ::munmap(map, size);
    return ok;
}

}  // namespace test_support
