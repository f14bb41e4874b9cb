// exit_report=1: at exit, after static destruction, every tracked block still live is reported
// (Valgrind's "in use at exit"). This program runs itself as a child with the option and a JSON
// writer, then checks the child's report: exactly the blocks it left, at their lines, and none of
// what static destructors freed. Exit 0 = pass.
#include <leakscope.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace {
int leak_line = 0;
__attribute__((noinline)) void leak(std::size_t bytes) {
    leak_line = __LINE__ + 1;
    char* p = new char[bytes];
    asm volatile("" : : "g"(p) : "memory");
}
// A static that owns a block until static destruction: not in use at exit.
struct Owner {
    int* block = nullptr;
    Owner() {
        block = new int(42);
        asm volatile("" : : "g"(block) : "memory");
    }
    ~Owner() { delete block; }
} owner;

int child() {
    leak(100);
    leak(200);
    leak(300);
    int* freed = new int(1);
    asm volatile("" : : "g"(freed) : "memory");
    delete freed;
    std::printf("%d\n", leak_line);   // the parent needs the line
    return 0;
}

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}
// The integer after `"key": ` in a flat JSON text (first occurrence after `from`).
long long field(const std::string& json, const char* key, std::size_t from = 0) {
    std::string k = std::string("\"") + key + "\":";
    std::size_t at = json.find(k, from);
    if (at == std::string::npos) return -1;
    at += k.size();
    while (at < json.size() && json[at] == ' ') ++at;
    return std::atoll(json.c_str() + at);
}
}  // namespace

int main(int argc, char** argv) {
    if (argc > 1 && std::strcmp(argv[1], "--child") == 0) return child();

    char dir[] = "/tmp/leakscope-exit-XXXXXX";
    if (!mkdtemp(dir)) return 2;
    std::string json = std::string(dir) + "/exit.json", out = std::string(dir) + "/out.txt";
    std::string options = "exit_report=1 report=json=" + json;
    // The child leaks on purpose: under AddressSanitizer its LeakSanitizer must not fail it.
    const char* asan = std::getenv("ASAN_OPTIONS");
    std::string asan_options = std::string(asan ? asan : "") + (asan && *asan ? ":" : "") + "detect_leaks=0";
    std::string command = "ASAN_OPTIONS='" + asan_options + "' LEAKSCOPE_OPTIONS='" + options + "' '" + argv[0] +
                          "' --child > '" + out + "'";
    int status = std::system(command.c_str());
    int failures = 0;
    auto expect = [&](bool ok, const char* what) {
        if (!ok) {
            std::fprintf(stderr, "FAIL: %s\n", what);
            ++failures;
        }
    };
    expect(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child exits with 0");
    std::string report = slurp(json);
    int line = std::atoi(slurp(out).c_str());
    expect(report.find("\"kind\":\"exit\"") != std::string::npos || report.find("\"kind\": \"exit\"") != std::string::npos,
           "one report of kind exit");
    expect(field(report, "blocks") == 3, "exactly the 3 blocks left (not the static's, freed at destruction)");
    expect(field(report, "bytes") == 600, "exactly their 600 bytes");
    std::string at_line = "\"line\":" + std::to_string(line), at_line_spaced = "\"line\": " + std::to_string(line);
    expect(line > 0 && (report.find(at_line) != std::string::npos || report.find(at_line_spaced) != std::string::npos),
           "the site is the allocating line");
    if (failures) std::fprintf(stderr, "report was:\n%s\n", report.c_str());
    std::remove(json.c_str());
    std::remove(out.c_str());
    rmdir(dir);
    if (failures == 0) std::puts("heap_exit_report: all checks passed");
    return failures == 0 ? 0 : 1;
}
