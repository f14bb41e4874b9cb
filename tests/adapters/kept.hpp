// Blocks a fixture test leaves behind on purpose. They stay reachable (and are freed at exit), so
// LeakSanitizer has nothing to say about them; for leakscope they are leftovers of the test that
// allocated them: born inside its scope and still live when it ends.
#pragma once
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace fixture {

struct Kept {
    std::vector<void*> blocks;
    std::vector<void (*)(void*)> deleters;
    Kept() {
        blocks.reserve(4096);   // never grows inside a test
        deleters.reserve(4096);
    }
    ~Kept() {
        for (std::size_t i = 0; i < blocks.size(); ++i) deleters[i](blocks[i]);
    }
};
inline Kept& kept() {
    static Kept k;
    return k;
}
inline const bool kept_ready = (kept(), true);   // constructed before any test runs

// keep(new T(...)): the block outlives the test.
template <class T>
T* keep(T* p) {
    kept().blocks.push_back(p);
    kept().deleters.push_back([](void* q) { delete static_cast<T*>(q); });
    return p;
}
template <class T>
T* keep_array(T* p) {
    kept().blocks.push_back(p);
    kept().deleters.push_back([](void* q) { delete[] static_cast<T*>(q); });
    return p;
}

// Appends "NAME parent" or "NAME child" to the file $FIXTURE_RUNS names, if set: check.sh counts
// which tests ran again in a child (test_stacks=rerun: the adapter sets LEAKSCOPE_RERUN there).
// (stdio's buffers come from malloc, which leakscope does not track.)
inline void note_run(const char* name) {
    const char* path = std::getenv("FIXTURE_RUNS");
    if (!path) return;
    if (std::FILE* f = std::fopen(path, "a")) {
        std::fprintf(f, "%s %s\n", name, std::getenv("LEAKSCOPE_RERUN") ? "child" : "parent");
        std::fclose(f);
    }
}

}  // namespace fixture
