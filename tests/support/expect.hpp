// Checks for the standalone tests (one program each, exit 0 = pass): a failed check says what it
// checked, what it got and what it expected, and is counted in `failures`; the test goes on, so
// one run shows every failure.
#pragma once

#include <cstdio>

inline int failures = 0;
inline void expect(bool ok, const char* what, long long got, long long want) {
    if (ok) return;
    std::fprintf(stderr, "FAIL: %s: got %lld, expected %lld\n", what, got, want);
    ++failures;
}
inline void expect_eq(const char* what, long long got, long long want) { expect(got == want, what, got, want); }

// A condition, named by its text and place when it fails.
#define EXPECT(cond)                                                                \
    do {                                                                            \
        if (!(cond)) {                                                              \
            std::fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
            ++failures;                                                             \
        }                                                                           \
    } while (0)
