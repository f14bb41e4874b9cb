// A fixed loop of 32-byte allocate/free pairs, for instruction counts under callgrind (see
// bench/instructions.sh): unlike wall time on a shared machine, they repeat exactly.
//   pair_loop plain|idle|scope|heap|sampled|model_idle|model [pairs]
// heap: track=all with stacks off (every block tracked); sampled: track=all sample_bytes=512K;
// model_idle, model: bench/tools/floor_model.hpp (not the hook) with nothing / every block tracked.
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include "floor_model.hpp"

#include <cstdlib>
#include <cstring>

namespace {
void escape(const void* p) { asm volatile("" : : "g"(p) : "memory"); }
}  // namespace

int main(int argc, char** argv) {
    const char* mode = argc > 1 ? argv[1] : "plain";
    const long pairs = argc > 2 ? std::atol(argv[2]) : 1000000;
    if (std::strcmp(mode, "plain") == 0) {
        for (long i = 0; i < pairs; ++i) {
            void* p = std::malloc(32);
            escape(p);
            std::free(p);
        }
    } else if (std::strcmp(mode, "idle") == 0) {
        for (long i = 0; i < pairs; ++i) {
            char* p = new char[32];
            escape(p);
            delete[] p;
        }
    } else if (std::strcmp(mode, "scope") == 0) {
        leakscope::LeakScope scope("pairs");
        for (long i = 0; i < pairs; ++i) {
            char* p = new char[32];
            escape(p);
            delete[] p;
        }
        scope.dismiss();
    } else if (std::strcmp(mode, "heap") == 0 || std::strcmp(mode, "sampled") == 0) {
        leakscope::configure(std::strcmp(mode, "heap") == 0 ? "track=all stacks=off" : "track=all sample_bytes=512K");
        for (long i = 0; i < pairs; ++i) {
            char* p = new char[32];
            escape(p);
            delete[] p;
        }
    } else if (std::strcmp(mode, "model_idle") == 0 || std::strcmp(mode, "model") == 0) {
        floor_model::state.tracking = std::strcmp(mode, "model") == 0;
        for (long i = 0; i < pairs; ++i) {
            void* p = floor_model::allocate(32);
            escape(p);
            floor_model::deallocate(p);
        }
    } else if (std::strcmp(mode, "none") != 0) {
        return 2;
    }
    return 0;
}
