// An allocation churn for bench/heaptrack_compare.sh and bench/scope_compare.sh: what a
// request-serving process does to the heap. Each iteration builds strings, a vector, a map and a
// shared object a few calls deep (so each allocation has a real call stack to record) and frees
// them, and replaces one of 10,000 long-lived entries at random (so the heap holds blocks of every
// age, freed out of order). Built twice from this file: plain (no leakscope at all: the program
// heaptrack runs, and the "same workload without leakscope"), and with -DCHURN_LEAKSCOPE
// (leakscope's hook linked in; LEAKSCOPE_OPTIONS chooses the mode).
//   churn [iterations [threads [scope|noscope [work]]]]
// iterations per thread (default 200000); threads (default 1) each run the loop on their own data;
// `scope`: each thread runs its loop inside one LeakScope (the plain build runs the same loop: the
// word only changes what the leakscope build does); `work` (default 0): rounds of work per request
// that allocate nothing (hashing the request's name), so that allocation is a smaller share of the
// time, as in a handler that does more than build its objects. Prints a checksum, the same for
// both builds.
#if defined(CHURN_LEAKSCOPE)
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>
#endif

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {
struct Vehicle {
    double lat = 0, lon = 0;
    std::string id;
};

__attribute__((noinline)) std::string make_name(int i) {
    return "vehicle-" + std::to_string(i) + "-with-a-name-longer-than-sso";
}
__attribute__((noinline)) std::size_t build_index(const std::string& name, int i) {
    std::vector<int> v;
    for (int k = 0; k < 16; ++k) v.push_back(k * i);
    std::map<int, std::string> m;
    for (int k = 0; k < 4; ++k) m.emplace(k, name);
    std::size_t sum = m.size();
    for (int x : v) sum += std::size_t(x);
    return sum;
}
// Work that allocates nothing: `rounds` FNV-1a passes over the name.
__attribute__((noinline)) std::size_t digest(const std::string& name, int rounds) {
    std::size_t h = 14695981039346656037ull;
    for (int r = 0; r < rounds; ++r)
        for (char c : name) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    return h & 0xff;
}
__attribute__((noinline)) std::size_t handle_request(int i, int work) {
    std::string name = make_name(i);
    auto shared = std::make_shared<Vehicle>();
    shared->id = name;
    return build_index(name, i) + shared->id.size() + digest(name, work);
}

// One thread's loop: its own long-lived entries and random sequence.
std::size_t run_loop(long iterations, unsigned seed, int work) {
    std::vector<std::unique_ptr<std::string>> live(10000);
    std::mt19937 random(seed);
    std::size_t checksum = 0;
    for (long i = 0; i < iterations; ++i) {
        checksum += handle_request(int(i), work);
        live[random() % live.size()] = std::make_unique<std::string>(make_name(int(i)));
    }
    return checksum;
}
std::size_t run_thread(long iterations, unsigned seed, bool in_scope, int work) {
#if defined(CHURN_LEAKSCOPE)
    if (in_scope) {
        leakscope::LeakScope scope("request loop");
        std::size_t checksum = run_loop(iterations, seed, work);
        scope.dismiss();   // its leftovers (the long-lived entries) are expected: no report
        return checksum;
    }
#endif
    (void)in_scope;
    return run_loop(iterations, seed, work);
}
}  // namespace

int main(int argc, char** argv) {
    const long iterations = argc > 1 ? std::atol(argv[1]) : 200000;
    const int threads = argc > 2 ? std::atoi(argv[2]) : 1;
    const bool in_scope = argc > 3 && std::string(argv[3]) == "scope";
    const int work = argc > 4 ? std::atoi(argv[4]) : 0;
    if (threads < 1 || work < 0) {
        std::fprintf(stderr, "churn: threads must be at least 1, work at least 0\n");
        return 2;
    }
    std::vector<std::size_t> sums(std::size_t(threads), 0);
    std::vector<std::thread> others;
    for (int k = 1; k < threads; ++k)
        others.emplace_back([&, k] { sums[std::size_t(k)] = run_thread(iterations, unsigned(k + 1), in_scope, work); });
    sums[0] = run_thread(iterations, 1, in_scope, work);
    for (std::thread& t : others) t.join();
    std::size_t checksum = 0;
    for (std::size_t s : sums) checksum += s;
    std::printf("%zu\n", checksum);
    return 0;
}
