// What the unwinder tests share: naming a return address when a stack differs from the truth,
// and telling whether one follows a call to operator new. Header-only; include after leakscope.hpp.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <new>

namespace unwind_frames {

// One line per address: module+offset and symbol where dladdr knows them, else `unknown`.
inline void describe(std::uintptr_t a, const char* unknown = "?") {
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(a), &info) && info.dli_fname)
        std::fprintf(stderr, "    %#18lx  %s+%#lx %s\n", static_cast<unsigned long>(a), info.dli_fname,
                     static_cast<unsigned long>(a - reinterpret_cast<std::uintptr_t>(info.dli_fbase)),
                     info.dli_sname ? info.dli_sname : "");
    else
        std::fprintf(stderr, "    %#18lx  %s\n", static_cast<unsigned long>(a), unknown);
}

// Is `ret` the return address of a direct call to ::operator new(std::size_t)?
inline bool after_call_to_operator_new(std::uintptr_t ret) {
    using NewFn = void* (*)(std::size_t);
    const auto target = reinterpret_cast<std::uintptr_t>(static_cast<NewFn>(&::operator new));
    const unsigned char* insn = reinterpret_cast<const unsigned char*>(ret - 5);
    if (insn[0] != 0xe8) return false;
    std::int32_t rel;
    std::memcpy(&rel, insn + 1, 4);
    return ret + static_cast<std::uintptr_t>(static_cast<std::intptr_t>(rel)) == target;
}

}  // namespace unwind_frames
