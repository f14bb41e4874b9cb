// The smallest test file that makes CI fail the tests that leave allocations behind
// (GoogleTest here; leakscope/catch2.hpp and leakscope/doctest.hpp work the same way).
// Build: link with gtest_main (no main of your own needed).
#define LEAKSCOPE_IMPLEMENTATION   // in one test file of the program
#include <leakscope/gtest.hpp>     // from now on every test is checked

#include <string>
#include <vector>

// The code under test: a registry that is never emptied.
std::vector<std::string*> registry;
void remember(const std::string& name) { registry.push_back(new std::string(name)); }

TEST(Registry, Remembers) {   // fails: what remember() allocated outlives the test
    remember("a name longer than a small string");
    EXPECT_EQ(registry.size(), 1u);
}

TEST(Registry, LocalVectorIsClean) {   // passes
    std::vector<std::string> names(3, "a name longer than a small string");
    EXPECT_EQ(names.size(), 3u);
}
