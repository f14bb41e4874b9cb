// leakscope-test-env: LEAKSCOPE_OPTIONS=suppressions=attrib_env.supp:group_depth=1
// A suppressions file named by LEAKSCOPE_OPTIONS (read when the first report is built, since the
// options are parsed where nothing may allocate), with a malformed line: one stderr line naming
// the file and line 3, and the rules around it still apply; group_depth=1 from the environment
// too (rules see whole stacks; grouping merges what they left). Exit status 0 = pass.
#include <leakscope.hpp>

#include "../support/expect.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

namespace {

void escape(const void* p) { asm volatile("" : : "g"(p) : "memory"); }

__attribute__((noinline)) void* env_leak(std::size_t n) {
    void* p = ::operator new(n);
    escape(p);
    return p;
}
__attribute__((noinline)) void via_hidden(std::vector<void*>& out) { out.push_back(env_leak(16)); }
__attribute__((noinline)) void via_shown(std::vector<void*>& out) {
    out.push_back(env_leak(24));
    escape(&out);
}
__attribute__((noinline)) void via_other(std::vector<void*>& out) {
    void* p = ::operator new(8);
    escape(p);
    out.push_back(p);
}
}  // namespace

int main() {
    {
        std::FILE* f = std::fopen("attrib_env.supp", "w");
        if (!f) return 1;
        std::fputs("# rules for attrib_suppressions_env\n"
                   "top:env_leak;via_hidden\n"
                   "leak via_other\n"
                   "leak:via_other\n",
                   f);
        std::fclose(f);
    }
    std::vector<void*> blocks;
    blocks.reserve(16);
    // stderr into a pipe while the first report is built (that is when the file is read).
    int fds[2];
    if (::pipe(fds) != 0) return 1;
    ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
    int saved = ::dup(2);
    ::dup2(fds[1], 2);
    leakscope::Report r;
    {
        leakscope::LeakScope scope("env");
        via_hidden(blocks);
        via_shown(blocks);
        via_other(blocks);
        r = scope.leftovers();
        scope.dismiss();
    }
    ::dup2(saved, 2);
    ::close(saved);
    ::close(fds[1]);
    std::string err;
    char buffer[1024];
    for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) > 0;) err.append(buffer, std::size_t(n));
    ::close(fds[0]);
    std::fprintf(stderr, "%s", err.c_str());
    std::size_t lines = 0;
    for (char c : err) lines += c == '\n';
    EXPECT(lines == 1);
    EXPECT(err.find("attrib_env.supp:3:") != std::string::npos);
    // Rules see whole stacks (before group_depth merges sites): the anchored rule hides
    // env_leak <- via_hidden only, leak:via_other hides via_other's block; what remains is
    // env_leak <- via_shown, shown as one frame (group_depth=1).
    EXPECT(r.blocks == 1);
    EXPECT(r.bytes == 24);
    EXPECT(r.sites.size() == 1);
    if (r.sites.size() == 1) {
        EXPECT(r.sites[0].frames.size() == 1);
        EXPECT(!r.sites[0].frames.empty() && r.sites[0].frames[0].function.find("env_leak") != std::string::npos);
    }
    EXPECT(r.suppressed.size() == 2);
    if (r.suppressed.size() == 2) {
        EXPECT(r.suppressed[0].rule == "top:env_leak;via_hidden");
        EXPECT(r.suppressed[0].blocks == 1 && r.suppressed[0].bytes == 16);
        EXPECT(r.suppressed[1].rule == "leak:via_other");
        EXPECT(r.suppressed[1].blocks == 1 && r.suppressed[1].bytes == 8);
    }
    for (void* p : blocks) ::operator delete(p);
    std::remove("attrib_env.supp");
    if (failures) std::fprintf(stderr, "attrib_suppressions_env: %d failure(s)\n", failures);
    else std::printf("attrib_suppressions_env: all cases passed\n");
    return failures ? 1 : 0;
}
