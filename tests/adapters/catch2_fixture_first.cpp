// A third translation unit of the Catch2 fixture, one that includes Catch2 itself before the
// adapter: with Catch2 v2 its single header is then already in without the listener interface,
// and this file gets the guard and the escape hatches only (the listener comes from the main
// translation unit). check.sh runs its tests by their tag, [first].
#if defined(__has_include) && __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_test_macros.hpp>
#else
#include <catch2/catch.hpp>
#endif
#include <leakscope/catch2.hpp>

#include "kept.hpp"

using fixture::keep;

TEST_CASE("first: leaks, Catch2 included first", "[first]") {
    keep(new int(13));   // LEAK:catch2_first_listener
}

TEST_CASE("first: guarded, leaks, Catch2 included first", "[first]") {
    LEAKSCOPE_GUARD();   // LEAK:catch2_first_guard_line
    keep(new int(14));   // LEAK:catch2_first_guard
}

TEST_CASE("first: expects one leftover, leaves one", "[first]") {
    LEAKSCOPE_EXPECT_LEFTOVERS(1);
    keep(new int(15));
}
