// The oracle's self-test (scripts/test-unwind.sh, variants selftest-*): replaces corpus_impl.cpp
// with a current_stack() of its own, built on _Unwind_Backtrace for every Unwinder.
//   default:               fast is exactly libgcc: every check must pass. A failure here is a
//                          fault of the corpus or of oracle.hpp, not of leakscope.
//   -DORACLE_BREAK_FAST:   fast drops a caller frame in deep stacks and shifts one
//                          return address by one byte: the oracle must report mismatches.
#include <leakscope.hpp>

#include <unwind.h>

namespace {
struct Trace {
    std::uintptr_t* out;
    std::size_t max;
    std::size_t n;
    int skip;
};

_Unwind_Reason_Code collect(_Unwind_Context* ctx, void* arg) {
    auto* t = static_cast<Trace*>(arg);
    if (t->skip > 0) {  // current_stack's own frame
        --t->skip;
        return _URC_NO_REASON;
    }
    if (t->n >= t->max) return _URC_END_OF_STACK;
    t->out[t->n++] = _Unwind_GetIP(ctx);
    return _URC_NO_REASON;
}
}  // namespace

namespace leakscope {
__attribute__((noinline)) std::size_t current_stack(std::uintptr_t* out, std::size_t max,
                                                    Unwinder how) noexcept {
    if (max == 0) return 0;
    if (max > 256) max = 256;   // the documented cap of leakscope::current_stack
    Trace t{out, max, 0, 1};
    _Unwind_Backtrace(collect, &t);
#ifdef ORACLE_BREAK_FAST
    if (how == Unwinder::fast && t.n > 8) {
        for (std::size_t i = 3; i + 1 < t.n; ++i) out[i] = out[i + 1];  // a lost frame
        --t.n;
        out[2] += 1;
    }
#else
    (void)how;
#endif
    asm volatile("" ::: "memory");  // not a tail call: out[0] stays in the caller
    return t.n;
}
}  // namespace leakscope
