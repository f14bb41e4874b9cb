// With sample_bytes on and nothing else tracked yet (no scope, no slot), deleting blocks that were
// never sampled must pass them to free untouched: the bytes in front of such a block are malloc's
// or a neighbour's, and may look like a header of slot 0 (a regression: that dereferenced slot 0
// before any slot existed). Exit 0 = pass.
#include <leakscope.hpp>

#include <cstdio>
#include <cstring>
#include <vector>

int main() {
    leakscope::configure("sample_bytes=512K");
    std::vector<char*> blocks;
    blocks.reserve(4000);
    for (int round = 0; round < 4; ++round) {
        for (int i = 0; i < 1000; ++i) {
            char* p = new char[32];
            std::memset(p, 0, 32);   // zeros in front of the next block: slot 0, seq 0
            blocks.push_back(p);
        }
        for (char* p : blocks) delete[] p;
        blocks.clear();
    }
    leakscope::Report r = leakscope::heap();
    std::printf("sampled_untracked_frees: survived; %zu sampled blocks live\n", r.blocks);
    return 0;
}
