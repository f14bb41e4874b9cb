// LEAKSCOPE_NO_NEW_DELETE: a program that replaces operator new/delete itself (here: a
// size-class pool for small blocks, malloc for the rest) reports its blocks with
// record_allocation / record_deallocation, and scopes count them exactly. Exit 0 = pass.
#define LEAKSCOPE_IMPLEMENTATION
#define LEAKSCOPE_NO_NEW_DELETE
#include <leakscope.hpp>

#include <cstdio>
#include <cstdlib>
#include <new>

namespace {
// A pool handing out 8-byte cells packed back to back (tighter than malloc ever packs).
struct Pool {
    alignas(16) unsigned char cells[8 * 4096];
    void* free_list = nullptr;
    std::size_t used = 0;
    void* get() {
        if (free_list) {
            void* p = free_list;
            free_list = *static_cast<void**>(p);
            return p;
        }
        if (used == 4096) return nullptr;
        return cells + 8 * used++;
    }
    bool owns(void* p) const { return p >= cells && p < cells + sizeof cells; }
    void put(void* p) {
        *static_cast<void**>(p) = free_list;
        free_list = p;
    }
} pool;

int replaced_news = 0;
}  // namespace

void* operator new(std::size_t n) {
    ++replaced_news;
    void* p = n <= 8 ? pool.get() : nullptr;
    if (!p) p = std::malloc(n ? n : 1);
    if (!p) throw std::bad_alloc();
    leakscope::record_allocation(p, n);
    return p;
}
void operator delete(void* p) noexcept {
    if (!p) return;
    leakscope::record_deallocation(p);
    if (pool.owns(p))
        pool.put(p);
    else
        std::free(p);
}
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }
// A program that replaces new must replace every form it (or its libraries) may call.
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    try {
        return operator new(n);
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](std::size_t n, const std::nothrow_t& tag) noexcept { return operator new(n, tag); }
void operator delete[](void* p) noexcept { operator delete(p); }
void operator delete[](void* p, std::size_t) noexcept { operator delete(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { operator delete(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { operator delete(p); }

namespace {
void escape(const void* p) { asm volatile("" : : "g"(p) : "memory"); }
}

int main() {
    int failures = 0;
    leakscope::Report r;
    int* small[10];
    long* kept = nullptr;
    {
        leakscope::LeakScope scope("own allocator");
        for (auto& p : small) {
            p = new int(1);   // 4-byte blocks, 8 bytes apart
            escape(p);
        }
        for (int i = 0; i < 10; i += 2) delete small[i];
        kept = new long(2);
        escape(kept);
        char* big = new char[300];
        escape(big);
        delete[] big;
        r = scope.leftovers();
        scope.dismiss();
    }
    if (replaced_news < 13) ++failures, std::fprintf(stderr, "FAILED: the program's own new was not used\n");
    if (r.blocks != 6) ++failures, std::fprintf(stderr, "FAILED: %zu blocks, expected 6\n", r.blocks);
    if (r.bytes != 5 * sizeof(int) + sizeof(long))
        ++failures, std::fprintf(stderr, "FAILED: %zu bytes, expected %zu\n", r.bytes, 5 * sizeof(int) + sizeof(long));
    for (int i = 1; i < 10; i += 2) delete small[i];
    delete kept;
    if (failures == 0) std::printf("no_new_delete: all checks passed\n");
    return failures == 0 ? 0 : 1;
}
