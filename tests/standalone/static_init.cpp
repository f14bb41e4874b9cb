// Allocation before main and after static destruction: leakscope's state is constant-initialised
// POD, so a scope works in a static initialiser (whichever translation unit runs first) and in
// a destructor that runs after main returned. Exit status 0 means every check passed.
#include <leakscope.hpp>

#include <cstdio>
#include <cstdlib>
#include <unistd.h>

namespace {
void escape(const void* p) { asm volatile("" : : "g"(p) : "memory"); }

int failures = 0;
void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "FAILED: %s\n", what);
        ++failures;
    }
}

struct Counting : leakscope::Writer {
    std::size_t reports = 0, blocks = 0, bytes = 0;
    void write(const leakscope::Report& r) override {
        ++reports;
        blocks += r.blocks;
        bytes += r.bytes;
    }
};
Counting* counting = nullptr;   // set before main, checked in main

int* born_before_main = nullptr;
char* leaked_before_main = nullptr;

// Runs during static initialisation.
struct EarlyUser {
    EarlyUser() {
        born_before_main = new int(7);   // no scope open: untracked
        auto writer = std::make_shared<Counting>();
        counting = writer.get();
        leakscope::set_writers({writer});
        leakscope::LeakScope scope("static init");
        leaked_before_main = new char[48];
        escape(leaked_before_main);
    }
} early_user;

// Destroyed after main returns (constructed before it, so destroyed after `late` objects of
// main's own statics) — the tracker must still work then.
struct LateUser {
    ~LateUser() {
        leakscope::LeakScope scope("after main");
        int* p = new int(1);
        escape(p);
        leakscope::Report r = scope.leftovers();
        delete p;
        bool ok = r.blocks == 1 && r.bytes == sizeof(int) && scope.clean();
        scope.dismiss();
        if (!ok) {
            std::fprintf(stderr, "FAILED: a scope after static destruction\n");
            _exit(3);
        }
    }
} late_user;
}  // namespace

int main() {
    check(counting != nullptr, "the static initialiser ran");
    check(counting->reports == 1, "the static-init scope reported once");
    check(counting->blocks == 1, "the static-init scope left 1 block");
    check(counting->bytes == 48, "the static-init scope left 48 bytes");
    leakscope::set_writers({});
    {
        // A block born before main, outside any scope, passes through delete untouched and is
        // counted as an older block released inside this scope.
        leakscope::LeakScope scope("main");
        delete born_before_main;
        delete[] leaked_before_main;
        leakscope::Report r = scope.leftovers();
        check(r.blocks == 0, "nothing born in main's scope");
        check(r.released_blocks == 2, "two older blocks released");
        check(r.released_bytes >= sizeof(int) + 48, "their bytes counted");
        scope.dismiss();
    }
    if (failures == 0) std::printf("static_init: all checks passed\n");
    return failures == 0 ? 0 : 1;
}
