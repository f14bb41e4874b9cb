// libFuzzer harness: the LEAKSCOPE_OPTIONS parser, through leakscope::configure() (the same
// code reads the environment variable). Properties checked besides "no crash, no hang, no leak":
//  * everything written to stderr is whole lines of leakscope's diagnostics, at most one per
//    entry (issue 7: "a malformed option gives one clear line on stderr naming it");
//  * an entry after malformed ones still applies (" stack_depth=7" appended to the input);
//  * the writers of a report= the parser accepted can be built.
// Nothing is written: the harness's own writer replaces any report= before a report could use it,
// and the harness works in a scratch directory (see fuzz_common.hpp).
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include "fuzz_common.hpp"

#include <cstdint>
#include <fstream>

namespace {
std::shared_ptr<fuzz::KeepWriter> keeper;

// What every input starts from, so that one input's options do not change the next one's run.
constexpr const char* kDefaults = "stacks=on unwinder=fast stack_depth=32 group_depth=0 suppressions= signal=0 monitor=0";

bool separator(char c) { return c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// An upper bound on the entries: runs of non-separator bytes, plus one per quote (a closing quote
// inside a run starts a new entry right after it: `a="x"b=1` is two).
std::size_t max_entries(std::string_view text) {
    std::size_t n = 0;
    for (std::size_t i = 0; i < text.size(); ++i)
        if ((!separator(text[i]) && (i == 0 || separator(text[i - 1]))) || text[i] == '\'' || text[i] == '"') ++n;
    return n;
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    fuzz::enter_scratch_dir("options");
    // The seeds' suppressions=rules.txt reads this (one malformed line: its diagnostic too).
    std::ofstream("rules.txt") << "# seed rules\nleak:operator new\nnot a rule\ntop:main;x max_blocks=3 max_bytes=1K\n";
    // signal= and monitor=1 are parsed and applied, but start no thread here: a monitor or the
    // signal dumper (on SIGALRM, which libFuzzer uses) would write reports while an input runs.
    // Their threads are tested by tests/standalone/monitor_* and signal_dump*.
    leakscope::detail::monitor_registry().no_new_threads.store(1);
    keeper = std::make_shared<fuzz::KeepWriter>();
    leakscope::set_writers({keeper});
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // No '/': a path in the input (suppressions=, report=) stays inside the scratch directory.
    // suppressions= reads its file at once, and /dev/zero or a FIFO would never end.
    std::string text(reinterpret_cast<const char*>(data), size);
    for (char& c : text)
        if (c == '/') c = '_';
    bool quoted = text.find_first_of("'\"") != std::string::npos;
    text += " stack_depth=7";

    fuzz::StderrCapture capture;
    leakscope::configure(text);
    std::string said = capture.take();
    std::size_t lines = fuzz::check_diagnostic_lines(said, {"leakscope: configure(): ", "leakscope: suppressions"});
    // configure() reads the suppressions file once, after all entries: at most one line per line
    // of rules.txt, or one saying that it cannot be read.
    std::size_t rules_lines = said.find("leakscope: suppressions") != std::string::npos ? 4 : 0;
    if (lines > max_entries(text) + rules_lines) fuzz::fail("more diagnostic lines than entries", said);
    // Without quotes every entry ends at a separator, so the last one is always parsed.
    if (!quoted && leakscope::detail::st.depth.load() != 7) fuzz::fail("an entry after the input did not apply", text);

    // report=: the writers it names, built (constructors only: nothing is opened or written).
    std::vector<std::shared_ptr<leakscope::Writer>> built;
    if (leakscope::detail::take_report_option(built))
        for (const auto& w : built)
            if (!w) fuzz::fail("report= built a null writer", text);
    built.clear();
    leakscope::set_writers({keeper});   // also drops a report= not taken yet

    fuzz::StderrCapture quiet;
    leakscope::configure(kDefaults);
    std::string defaults_said = quiet.take();
    if (!defaults_said.empty()) fuzz::fail("the default options gave a diagnostic", defaults_said);
    if (keeper->reports) fuzz::fail("a report was written", text);
    return 0;
}
