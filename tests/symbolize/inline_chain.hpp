// Three always_inline functions in a header of their own (used by corpus.cpp and corpus_lib.cpp):
// at every optimization level the capture at the leaf is inlined into ai_mid, ai_top and the
// caller's function, so one return address expands to four source frames, three of them with
// this file as their file and the caller's own file for the outermost one (DW_AT_call_file).
#pragma once

#include "oracle.hpp"

namespace oracle_inline {

ORACLE_ALWAYS_INLINE int ai_leaf(const oracle::Api& api, const char* site, const char* expect,
                                 int x) {
    ORACLE_CAPTURE(api, site, expect);
    return x + 1;
}

ORACLE_ALWAYS_INLINE int ai_mid(const oracle::Api& api, const char* site, const char* expect,
                                int x) {
    int r = ai_leaf(api, site, expect, x * 2);
    ORACLE_BARRIER();
    return r + 3;
}

ORACLE_ALWAYS_INLINE int ai_top(const oracle::Api& api, const char* site, const char* expect,
                                int x) {
    int r = ai_mid(api, site, expect, x - 1);
    ORACLE_BARRIER();
    return r * 5;
}

}  // namespace oracle_inline
