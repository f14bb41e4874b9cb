// The test runner. leakscope's implementation is tests/support/implementation.cpp, linked in.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <leakscope.hpp>

int main(int argc, char** argv) { return Catch::Session().run(argc, argv); }

// The hook tests make impossible requests to check bad_alloc and nothrow: the sanitizers' own
// allocators must then fail the way malloc does instead of aborting the run.
extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1"; }
extern "C" const char* __tsan_default_options() { return "allocator_may_return_null=1"; }
