// A second translation unit of the Catch2 fixture, as a test file other than the main one includes
// the adapter: without CATCH_CONFIG_MAIN (with Catch2 v2, the adapter asks the single header for
// its listener interface, so the listener is defined here as well, and registered once). Its runs
// are judged by the same listener and guard; check.sh runs them by their tag, [more].
#include <leakscope/catch2.hpp>

#include "kept.hpp"

using fixture::keep;

TEST_CASE("more: leaks in a second file", "[more]") {
    keep(new int(11));   // LEAK:catch2_more_listener
}

TEST_CASE("more: guarded, leaks in a second file", "[more]") {
    LEAKSCOPE_GUARD();   // LEAK:catch2_more_guard_line
    keep(new int(12));   // LEAK:catch2_more_guard
}
