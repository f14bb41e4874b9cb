// libFuzzer harness: suppression rules (leakscope::suppress(), the syntax of a suppressions=
// file), parsed and then matched against real frames: a LeakScope leaks blocks from five sites
// (untyped new, make_shared<Widget>, a vector<Widget>'s buffer, std::string growth, and two
// blocks from one line, for the budgets), and its report is built and handed to a writer that
// keeps it. Properties checked besides "no crash, no hang, no leak":
//  * stderr holds only whole diagnostic lines naming the source, at most one per input line;
//  * the report adds up: its blocks and bytes are its sites' sums, and with what the rules hid
//    they are exactly what was leaked; a rule listed as hiding something hid something.
// Every block the scope leaks is freed afterwards, so libFuzzer's leak check stays on.
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include "fuzz_common.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace {
struct Widget {
    char payload[40];
};

// Each leaking site is a function of its own, so that each has its own stack (and name to match).
struct Held {
    std::vector<void*> raw;
    std::vector<std::shared_ptr<Widget>> shared;
    std::vector<Widget> widgets;
    std::string text;
};
__attribute__((noinline)) void leak_raw(Held& h, std::size_t n) { h.raw.push_back(::operator new(n)); }
__attribute__((noinline)) void leak_shared(Held& h) { h.shared.push_back(std::make_shared<Widget>()); }
__attribute__((noinline)) void leak_vector(Held& h) { h.widgets.reserve(3); }
__attribute__((noinline)) void leak_string(Held& h) { h.text.assign(100, 'x'); }
__attribute__((noinline)) void leak_twice(Held& h) {
    for (int i = 0; i < 2; ++i) leak_raw(h, 8);
}

constexpr std::size_t kBlocks = 1 + 1 + 1 + 1 + 2;   // the blocks leak_* leave in one scope

std::shared_ptr<fuzz::KeepWriter> keeper;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    fuzz::enter_scratch_dir("suppressions");
    keeper = std::make_shared<fuzz::KeepWriter>();
    leakscope::set_writers({keeper});
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view rules(reinterpret_cast<const char*>(data), size);
    leakscope::clear_suppressions();

    Held held;
    held.raw.reserve(8);   // nothing allocated inside the scope but the leaks
    held.shared.reserve(2);
    keeper->reports = 0;
    leakscope::Report before;
    std::string said;
    {
        leakscope::LeakScope scope("fuzz suppressions");
        leak_raw(held, 24);
        leak_shared(held);
        leak_vector(held);
        leak_string(held);
        leak_twice(held);
        before = scope.leftovers();   // no rules yet: everything (leakscope's own memory is not counted)
        // Parsed inside the scope: what parsing allocates must not count as the scope's.
        fuzz::StderrCapture capture;
        leakscope::suppress(rules, "fuzz");
        leakscope::Ignore mine;   // the harness's own string is not a leftover
        said = capture.take();
    }
    leakscope::clear_suppressions();
    for (void* p : held.raw) ::operator delete(p);

    std::size_t lines = fuzz::check_diagnostic_lines(said, {"leakscope: suppressions fuzz:"});
    std::size_t input_lines = 1;
    for (char c : rules) input_lines += c == '\n';
    if (lines > input_lines) fuzz::fail("more diagnostic lines than rule lines", said);
    if (before.blocks != kBlocks || !before.suppressed.empty()) fuzz::fail("the harness did not leak what it means to");

    // All hidden: no report. Otherwise the report adds up.
    if (keeper->reports > 1) fuzz::fail("one scope wrote several reports");
    if (keeper->reports == 1) {
        const leakscope::Report& r = keeper->last;
        std::size_t site_blocks = 0, site_bytes = 0, hid_blocks = 0, hid_bytes = 0;
        for (const leakscope::Site& s : r.sites) {
            site_blocks += s.blocks;
            site_bytes += s.bytes;
        }
        for (const leakscope::Suppression& s : r.suppressed) {
            if (s.blocks == 0 || s.rule.empty()) fuzz::fail("a rule is listed as hiding nothing", s.rule);
            hid_blocks += s.blocks;
            hid_bytes += s.bytes;
        }
        if (site_blocks != r.blocks || site_bytes != r.bytes) fuzz::fail("the sites do not add up to the report's totals");
        if (r.blocks + hid_blocks != kBlocks || r.bytes + hid_bytes != before.bytes)
            fuzz::fail("shown plus hidden is not what the scope leaked",
                       "shown " + std::to_string(r.blocks) + " blocks " + std::to_string(r.bytes) + " bytes, hidden " +
                           std::to_string(hid_blocks) + " / " + std::to_string(hid_bytes) + ", leaked " +
                           std::to_string(kBlocks) + " / " + std::to_string(before.bytes));
    }
    keeper->last = leakscope::Report();
    return 0;
}
