// leakscope-test-env: LEAKSCOPE_OPTIONS=report=json=report-env-%p-%n.json,folded=report-env-%p-%n.folded:stack_depth=8
// report= from LEAKSCOPE_OPTIONS: read before main (inside the allocation hook, where no writer
// can be built), the writers are made at the first report. Two leaking scopes give two files per
// writer, numbered by %n, named by %p; nothing goes to the default text writer. Exit 0 = pass.
#include <leakscope.hpp>

#include "../writers/checks.hpp"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace {
int failures = 0;
void check(bool ok, const std::string& what) {
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
    failures += !ok;
}
std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return in ? s.str() : std::string("(missing)");
}
__attribute__((noinline)) int* leak(int n) {
    int* p = new int(n);
    asm volatile("" : : "g"(p) : "memory");
    return p;
}
}  // namespace

int main() {
    int* kept[2];
    for (int i = 0; i < 2; ++i) {
        leakscope::LeakScope scope(i ? "second" : "first");
        kept[i] = leak(i);
    }
    delete kept[0];
    delete kept[1];
    std::string stem = "report-env-" + std::to_string(::getpid()) + "-";
    for (int n = 1; n <= 2; ++n) {
        std::string json = slurp(stem + std::to_string(n) + ".json");
        try {
            checks::Json j = checks::parse_json(json);
            check(j["scope"].text == (n == 1 ? "first" : "second"), "report " + std::to_string(n) + " names its scope");
            check(j["blocks"].value == 1 && j["bytes"].value == sizeof(int), "report " + std::to_string(n) + ": 1 block");
        } catch (const std::exception& e) {
            check(false, stem + std::to_string(n) + ".json: " + e.what());
        }
        std::string folded = slurp(stem + std::to_string(n) + ".folded");
        check(folded.size() > 2 && folded.compare(folded.size() - 3, 3, " 4\n") == 0,
              "folded report " + std::to_string(n) + " ends with its 4 bytes: " + folded);
        std::remove((stem + std::to_string(n) + ".json").c_str());
        std::remove((stem + std::to_string(n) + ".folded").c_str());
    }
    return failures ? 1 : 0;
}
