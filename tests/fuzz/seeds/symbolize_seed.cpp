// Seed for fuzz_symbolize: scripts/test-fuzz.sh builds it into small shared objects (no libc,
// no page padding: a few KB each) with -g DWARF 4 and 5, from g++ and clang++, at -O0 and -O2, so
// that the fuzzer starts from real symbol tables, line tables, namespaces, a template, a lambda,
// a static function and, at -O2, inlined calls (DW_TAG_inlined_subroutine).
namespace shapes {
struct Square { int side; };
inline int area(const Square& s) { return s.side * s.side; }
static int twice(int x) { return 2 * x; }
template <class T> T add(T a, T b) { return a + b; }
}  // namespace shapes

extern "C" int seed_entry(int n) {
    shapes::Square sq{n};
    return shapes::twice(shapes::area(sq)) + int(shapes::add<long>(n, 3)) + [](int k) { return k + 1; }(n);
}

int seed_loop(const int* v, int n) {
    int sum = 0;
    for (int i = 0; i < n; ++i) sum += shapes::area(shapes::Square{v[i]});
    return sum;
}
