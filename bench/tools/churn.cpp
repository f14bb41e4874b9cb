// An allocation churn for bench/heaptrack_compare.sh: what a request-serving process does to the
// heap, on one thread. Each iteration builds strings, a vector, a map and a shared object a few
// calls deep (so each allocation has a real call stack to record) and frees them, and replaces
// one of 10,000 long-lived entries at random (so the heap holds blocks of every age, freed out of
// order). Built twice from this file: plain (no leakscope at all, the program heaptrack runs),
// and with -DCHURN_LEAKSCOPE (leakscope's hook linked in; LEAKSCOPE_OPTIONS chooses the mode).
//   churn [iterations]        (default 200000; prints a checksum)
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
__attribute__((noinline)) std::size_t handle_request(int i) {
    std::string name = make_name(i);
    auto shared = std::make_shared<Vehicle>();
    shared->id = name;
    return build_index(name, i) + shared->id.size();
}
}  // namespace

int main(int argc, char** argv) {
    const long iterations = argc > 1 ? std::atol(argv[1]) : 200000;
    std::vector<std::unique_ptr<std::string>> live(10000);
    std::mt19937 random(1);
    std::size_t checksum = 0;
    for (long i = 0; i < iterations; ++i) {
        checksum += handle_request(int(i));
        live[random() % live.size()] = std::make_unique<std::string>(make_name(int(i)));
    }
    std::printf("%zu\n", checksum);
    return 0;
}
