// The replaced allocation functions: every form is tracked to the exact block and byte, and
// behaves as the standard says (bad_alloc, the new-handler loop, nothrow, zero size, alignment).
#include "support.hpp"

#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>

using leakscope::Report;
using test::escape;
using test::leftovers_of;

namespace {
struct alignas(64) Wide { char bytes[64]; };
struct alignas(256) Huge { char bytes[512]; };

// Allocates with `make` inside a scope, checks the leftover is exactly one block of `bytes`,
// then frees with `free_it` inside a second scope and checks that one is clean.
template <class Make, class Free>
void check_form(Make make, Free free_it, std::size_t bytes) {
    void* p = nullptr;
    Report leaked = leftovers_of([&] { p = make(); escape(p); });
    CHECK(leaked.blocks == 1);
    CHECK(leaked.bytes == bytes);
    Report freed = leftovers_of([&] { free_it(p); });
    CHECK(freed.blocks == 0);
    CHECK(freed.bytes == 0);
    // The block was born in the first scope, so for the second it is an older block freed.
    CHECK(freed.released_blocks == 1);
    CHECK(freed.released_bytes == bytes);
}
}  // namespace

TEST_CASE("every form of new is tracked exactly and every form of delete releases it", "[hook]") {
    SECTION("plain") {
        check_form([] { return static_cast<void*>(new std::uint32_t(7)); },
                   [](void* p) { delete static_cast<std::uint32_t*>(p); }, sizeof(std::uint32_t));
    }
    SECTION("array") {
        check_form([] { return static_cast<void*>(new char[123]); }, [](void* p) { delete[] static_cast<char*>(p); },
                   123);
    }
    SECTION("nothrow") {
        check_form([] { return static_cast<void*>(new (std::nothrow) double(1.5)); },
                   [](void* p) { delete static_cast<double*>(p); }, sizeof(double));
    }
    SECTION("nothrow array") {
        check_form([] { return static_cast<void*>(new (std::nothrow) short[50]); },
                   [](void* p) { delete[] static_cast<short*>(p); }, 100);
    }
    SECTION("aligned") {
        check_form([] { return static_cast<void*>(new Wide()); }, [](void* p) { delete static_cast<Wide*>(p); },
                   sizeof(Wide));
    }
    SECTION("aligned array") {
        check_form([] { return static_cast<void*>(new Huge[3]); }, [](void* p) { delete[] static_cast<Huge*>(p); },
                   3 * sizeof(Huge));
    }
    SECTION("aligned nothrow") {
        check_form([] { return static_cast<void*>(new (std::nothrow) Wide()); },
                   [](void* p) { delete static_cast<Wide*>(p); }, sizeof(Wide));
    }
    SECTION("aligned nothrow array") {
        check_form([] { return static_cast<void*>(new (std::nothrow) Wide[2]); },
                   [](void* p) { delete[] static_cast<Wide*>(p); }, 2 * sizeof(Wide));
    }
    SECTION("explicit sized delete") {
        check_form([] { return ::operator new(40); }, [](void* p) { ::operator delete(p, std::size_t(40)); }, 40);
    }
    SECTION("explicit sized array delete") {
        check_form([] { return ::operator new[](41); }, [](void* p) { ::operator delete[](p, std::size_t(41)); },
                   41);
    }
    SECTION("explicit aligned delete") {
        check_form([] { return ::operator new(48, std::align_val_t(128)); },
                   [](void* p) { ::operator delete(p, std::align_val_t(128)); }, 48);
    }
    SECTION("explicit sized aligned delete") {
        check_form([] { return ::operator new[](96, std::align_val_t(128)); },
                   [](void* p) { ::operator delete[](p, std::size_t(96), std::align_val_t(128)); }, 96);
    }
    SECTION("explicit nothrow delete") {
        check_form([] { return ::operator new(24, std::nothrow); },
                   [](void* p) { ::operator delete(p, std::nothrow); }, 24);
    }
    SECTION("explicit nothrow array delete") {
        check_form([] { return ::operator new[](25, std::nothrow); },
                   [](void* p) { ::operator delete[](p, std::nothrow); }, 25);
    }
    SECTION("explicit aligned nothrow delete") {
        check_form([] { return ::operator new(26, std::align_val_t(64), std::nothrow); },
                   [](void* p) { ::operator delete(p, std::align_val_t(64), std::nothrow); }, 26);
    }
    SECTION("explicit aligned nothrow array delete") {
        check_form([] { return ::operator new[](27, std::align_val_t(64), std::nothrow); },
                   [](void* p) { ::operator delete[](p, std::align_val_t(64), std::nothrow); }, 27);
    }
}

TEST_CASE("the allocation functions keep the standard's semantics", "[hook]") {
    SECTION("zero-size requests give distinct non-null blocks, tracked as zero bytes") {
        void* a = nullptr;
        void* b = nullptr;
        Report r = leftovers_of([&] {
            a = ::operator new(0);
            b = ::operator new[](0);
            escape(a);
            escape(b);
        });
        CHECK(a != nullptr);
        CHECK(b != nullptr);
        CHECK(a != b);
        CHECK(r.blocks == 2);
        CHECK(r.bytes == 0);
        ::operator delete(a);
        ::operator delete[](b);
    }
    SECTION("an impossible request throws bad_alloc; nothrow gives null; nothing is recorded") {
        const std::size_t impossible = std::numeric_limits<std::size_t>::max() / 2;
        bool threw = false;
        void* nothrow_result = reinterpret_cast<void*>(1);
        Report r = leftovers_of([&] {
            try {
                escape(::operator new(impossible));
            } catch (const std::bad_alloc&) {
                threw = true;
            }
            nothrow_result = ::operator new(impossible, std::nothrow);
            escape(nothrow_result);
        });
        CHECK(threw);
        CHECK(nothrow_result == nullptr);
        CHECK(r.blocks == 0);
    }
    SECTION("the new-handler is called until it gives up") {
        static int calls;
        calls = 0;
        std::set_new_handler([] {
            if (++calls == 3) std::set_new_handler(nullptr);
        });
        bool threw = false;
        try {
            escape(::operator new(std::numeric_limits<std::size_t>::max() / 2));
        } catch (const std::bad_alloc&) {
            threw = true;
        }
        std::set_new_handler(nullptr);
        CHECK(threw);
        CHECK(calls == 3);
    }
    SECTION("a new-handler that throws makes nothrow new return null") {
        std::set_new_handler([] { throw std::bad_alloc(); });
        void* p = ::operator new(std::numeric_limits<std::size_t>::max() / 2, std::nothrow);
        std::set_new_handler(nullptr);
        CHECK(p == nullptr);
    }
    SECTION("large alignments are honoured") {
        for (std::size_t align : {std::size_t(32), std::size_t(4096), std::size_t(1) << 21}) {
            void* p = ::operator new(100, std::align_val_t(align));
            CHECK(reinterpret_cast<std::uintptr_t>(p) % align == 0);
            ::operator delete(p, std::align_val_t(align));
        }
    }
    SECTION("an alignment that is not a power of two is refused") {
        volatile std::size_t not_a_power_of_two = 48;   // a run-time value: no compile-time warning
        auto align = std::align_val_t(not_a_power_of_two);
        CHECK_THROWS_AS(::operator new(16, align), std::bad_alloc);
        CHECK(::operator new(16, align, std::nothrow) == nullptr);
    }
    SECTION("delete of a null pointer does nothing") {
        Report r = leftovers_of([] {
            int* p = nullptr;
            delete p;
            ::operator delete(nullptr, std::size_t(8));
        });
        CHECK(r.blocks == 0);
        CHECK(r.released_blocks == 0);
    }
}

TEST_CASE("a pointer the registry never recorded passes through delete untouched", "[hook]") {
    int* outside = test::kept(new int(1));   // born outside every scope: never recorded
    escape(outside);
    void* from_malloc = test::opaque(std::malloc(16));
    char* leaked = nullptr;
    Report r = leftovers_of([&] {
        leaked = test::kept(new char[10]);   // a leftover, so the registry is not empty
        escape(leaked);
        delete outside;
        ::operator delete(from_malloc);   // another allocator's block, freed through the hook
    });
    CHECK(r.blocks == 1);
    CHECK(r.bytes == 10);
    CHECK(r.released_blocks == 2);
    delete[] leaked;
}
