// A program that allocates only through new/delete: blocks of many sizes and forms, some freed,
// some left, on several threads, some freed by static destructors. Built twice by
// tests/heap/CMakeLists.txt: with leakscope's hook (its exit report says what is in use at exit)
// and with LEAKSCOPE_NO_NEW_DELETE (Valgrind says it). valgrind_oracle.sh compares the two.
// No stdio: its buffers are malloc'd and would be Valgrind's "in use" but not new's.
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

namespace {
void keep(const void* p) { asm volatile("" : : "g"(p) : "memory"); }

struct Node {
    Node* next = nullptr;
    std::uint64_t payload[3] = {};
};
// Freed at static destruction: in use at exit for neither.
struct Registry {
    std::vector<std::string> names;
    ~Registry() = default;
} registry;

void work(unsigned seed, std::vector<void*>& left) {
    std::uint64_t x = seed * 2654435761u + 1;
    auto next = [&] { return x = x * 6364136223846793005ull + 1442695040888963407ull; };
    std::vector<char*> live;
    live.reserve(4000);
    for (int i = 0; i < 4000; ++i) {
        std::size_t size = 1 + next() % 700;
        char* p = new char[size];
        keep(p);
        live.push_back(p);
        if (next() % 3 == 0) {   // free a random live one
            std::size_t k = next() % live.size();
            delete[] live[k];
            live[k] = live.back();
            live.pop_back();
        }
    }
    // Keep one in 16 of what is still live; free the rest.
    for (std::size_t i = 0; i < live.size(); ++i) {
        if (i % 16 == 0)
            left.push_back(live[i]);
        else
            delete[] live[i];
    }
}
}  // namespace

int main() {
    registry.names.assign(50, std::string(40, 'n'));
    std::vector<void*>* left = new std::vector<void*>;   // itself left: in use at exit
    left->reserve(2000);
    Node* list = nullptr;
    for (int i = 0; i < 100; ++i) {
        Node* n = new Node;
        n->next = list;
        list = n;
    }
    keep(list);   // a list of 100 nodes left behind
    void* aligned = ::operator new(200, std::align_val_t(64));
    keep(aligned);   // an aligned block left
    auto shared = std::make_shared<std::string>(100, 's');
    new std::shared_ptr<std::string>(shared);   // a leaked owner keeps the string alive
    std::vector<void*> from_threads[3];
    for (auto& v : from_threads) v.reserve(2000);
    std::thread a([&] { work(1, from_threads[0]); });
    std::thread b([&] { work(2, from_threads[1]); });
    work(3, from_threads[2]);
    a.join();
    b.join();
    for (auto& v : from_threads) left->insert(left->end(), v.begin(), v.end());
    return 0;
}
