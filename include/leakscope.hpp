// leakscope — find which code leaks memory, in a live server and in a unit test.
// https://example.invalid/leakscope  ·  MIT licence (see LICENSE at the end of this file)
//
// Usage:
//     // exactly one .cpp of the program (usually the one with main):
//     #define LEAKSCOPE_IMPLEMENTATION
//     #include <leakscope.hpp>
//     // everywhere else:
//     #include <leakscope.hpp>
//
//     void handle(Request& r) {
//         leakscope::LeakScope scope("GET /page");   // leftovers are reported when it ends
//         ...
//     }
//
// Layout of this file (one header, four sections, as doctest and stb do it):
//   1. CONFIGURATION  — every macro a user may set, documented in one place.
//   2. PUBLIC API     — what users type.
//   3. DETAIL         — declarations shared by the API and the implementation.
//   4. IMPLEMENTATION — only under LEAKSCOPE_IMPLEMENTATION: the tracker, the replaced global
//                       allocation functions (which the standard forbids to be inline).
//
// ============================================================================================
// 1. CONFIGURATION
// ============================================================================================
//
// LEAKSCOPE_IMPLEMENTATION   Define in exactly one translation unit before including this
//                            header. That unit gets the tracker and replaces all 20 global
//                            operator new/delete forms.
// LEAKSCOPE_NO_NEW_DELETE    With LEAKSCOPE_IMPLEMENTATION: do not replace operator new/delete
//                            (for programs that replace them already). Such a program reports
//                            its own blocks with leakscope::record_allocation() and
//                            leakscope::record_deallocation(); so can a custom pool allocator.
// LEAKSCOPE_SHARD_BITS       log2 of the number of lock-striped registry shards (default 6: 64).
// LEAKSCOPE_PEAK_GRANULARITY Bytes a thread may drift from the global live-bytes counter before
//                            it publishes (default 65536). stats().peak_bytes is exact to
//                            within this much per thread; live_* are always exact.
// LEAKSCOPE_TLS_FAST         The attribute of leakscope's one thread-local (default: the
//                            initial-exec TLS model, the fastest). Define it empty when the
//                            implementation is in a shared library loaded with dlopen.
// LEAKSCOPE_HOOK_MALLOC      Reserved for the opt-in malloc-family hook (not yet available).
// LEAKSCOPE_NO_DLCLOSE_HOOK  With LEAKSCOPE_IMPLEMENTATION: do not wrap dlclose(). The wrapper
//                            (x86-64 Linux) tells the stack unwinder that cached unwind rules of
//                            an unloaded library are void; without it, a library unloaded and
//                            another loaded at its address can give wrong (never unsafe) stacks.
//
// Environment: LEAKSCOPE_OPTIONS, read once when the tracker first runs (usually before main);
// leakscope::configure() takes the same text at run time and wins over it. Entries are
// key=value, separated by ':' or white space; a value may be quoted ('...' or "...") to hold
// either. A malformed entry gets one line on stderr naming it; the others still apply.
//   stacks=on|off|demand       capture the allocating call stack of every tracked block (on,
//                              the default); never (off); or only for the runs of a scope whose
//                              name has leaked before (demand: a healthy server pays nothing).
//                              Changed at run time: for scopes opened after, and for every
//                              thread's births outside scopes (track=all, sampling) from then on
//   unwinder=fast|fp|libgcc    how stacks are walked (see leakscope::Unwinder); default fast
//   stack_depth=1..256         frames kept per stack; default 32
//   test_stacks=auto|rerun|inline  how the test adapters (leakscope/gtest.hpp, catch2.hpp,
//                              doctest.hpp) get a leaking test's stacks. inline: every test's
//                              scope captures them. rerun: tests run without stacks, and a test
//                              that leaves blocks behind runs again, alone, in a child process
//                              with stacks (its report is the test's when it explains the run's
//                              leftovers; otherwise the run's own, stackless, with a
//                              line saying why; leakscope/test_common.hpp has the rule). auto, the
//                              default: rerun for the first 8 children of the process, then
//                              inline (doctest: always inline, it has no rerun yet).
//                              LEAKSCOPE_RERUN is set in that child (by
//                              the adapter, for the adapter: which test, where to send its runs)
//   group_depth=0..256         how many top frames of a leftover's trimmed stack (frames[0] is the
//                              user's line) decide its site; 0, the default, the whole stack.
//                              Stacks sharing them (and the inferred type) are one site, whose
//                              frames are those deciding frames
//   suppressions=PATH          a file of suppression rules (read at the next report; a later
//                              suppressions= replaces it; leakscope::suppress() adds rules in code).
//                              One rule per line, '#' comment lines:
//                                leak:PATTERN     LSan's form: any frame of the whole stack matches
//                                stack:P1;P2;...  consecutive frames of the trimmed stack match
//                                                 P1, P2, ... (innermost first), anywhere
//                                top:P1;P2;...    the same, anchored: frames[0] matches P1
//                              A frame matches when its function, file or module contains the
//                              pattern ('*' any run, leading '^' / trailing '$' anchor: LSan's).
//                              A rule may end with a budget, max_blocks=N and/or max_bytes=N[K|M|G]:
//                              a site above it is reported again. Rules are tried in order; the
//                              first that matches within its budget hides the site, and the report
//                              lists each rule that hid something (Report::suppressed). A malformed
//                              line gets one stderr line with the file and line number.
//   report=KIND[=DEST],...     the writers: text json jsonl folded html pprof; DEST stderr,
//                              stdout or a path (%p pid, %n report number). KIND:DEST too: in
//                              report='s value a ':' ends it only before another key=
//                              (report=text:stderr,json:leaks-%p.json:stacks=on is two entries).
//                              Default text (on stderr). See the README.
//  Whole heap (leakscope::Snapshot, heap(), peak(), Monitor):
//   track=scopes|all|sample    which births are tracked: those inside scopes (the default), every
//                              block allocated through new (the whole heap), or the whole heap
//                              sampled by sample_bytes (below; 524288 unless set)
//   sample_bytes=N[K|M|G]      the mean bytes between sampled blocks: outside scopes one block per
//                              N allocated bytes on average (tcmalloc's sampling: a block of s bytes
//                              is sampled with probability 1-exp(-s/N)) carries a header and a
//                              stack; heap and peak reports estimate the whole and state the error.
//                              Scopes stay exact. N > 0 also switches sampling on (track=sample);
//                              0 switches it off (every block). Run-time switchable
//   settle_ms=N                a scope's leftovers are reported only if still live N ms after it
//                              ended (freed meanwhile on another thread: not a leak); the check
//                              runs on a leakscope thread, off the request's. 0 (default): at once
//   exit_report=0|1            at exit, after static destructors, report every block still live
//                              (Valgrind's "in use at exit"); 1 implies track=all
//   signal=NAME|NUMBER|0       on this signal (USR2, SIGUSR2, 12, RTMIN+2, ...) write the heap and
//                              peak reports (implies track=all); the handler only wakes a leakscope
//                              thread, which writes. A handler the program had on the signal is
//                              still called, and is put back by signal=0 or another signal. Fault
//                              signals, ABRT, KILL and STOP are refused. 0 (default): none
//   monitor=0|1|W,I            start a leakscope::Monitor at start-up (implies track=all); W,I (the
//                              design's form): warm-up W and interval I seconds. With
//   monitor_warmup_ms=N          its warm-up before the baseline (default 10000),
//   monitor_interval_ms=N        its interval (default 10000, at least 1),
//   monitor_growth=K             the intervals of growth that mark a site growing (default 3; 0: none),
//   monitor_threshold=N[K|M|G]   and the bytes born since the baseline and still live below which
//                                an interval is not written (default 0: every interval is)
//                              Their threads never start inside the allocation hook: for
//                              LEAKSCOPE_OPTIONS, at load (a constructor function of the
//                              implementation); for configure(), when it has applied every entry (a
//                              new monitor_* value restarts the monitor: a new baseline). exit()
//                              stops them before static destructors run. A fork child has neither
//                              thread (the handler stays, so the signal does not kill it) until it
//                              calls configure(), with any text
//
// Guarantees the implementation keeps (why it looks the way it does):
//  * The tracker's own memory comes from mmap, never from the hooked allocator, so it can
//    never recurse into itself; its global state is zero-initialised POD, usable before main
//    and after static destruction; its thread-locals are trivially destructible.
//  * A pointer the registry never recorded passes through delete untouched.
//  * Outside every scope a hooked new costs a thread-local check and the real allocation.

#ifndef LEAKSCOPE_HPP_INCLUDED
#define LEAKSCOPE_HPP_INCLUDED

#define LEAKSCOPE_VERSION_MAJOR 0
#define LEAKSCOPE_VERSION_MINOR 1
#define LEAKSCOPE_VERSION_PATCH 0

#ifndef LEAKSCOPE_SHARD_BITS
#define LEAKSCOPE_SHARD_BITS 6
#endif
#ifndef LEAKSCOPE_PEAK_GRANULARITY
#define LEAKSCOPE_PEAK_GRANULARITY 65536
#endif

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <iosfwd>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <vector>

// ============================================================================================
// 2. PUBLIC API
// ============================================================================================
namespace leakscope {

// Whose allocations a scope counts.
//  current: the thread that opened it, plus threads holding an Adopt of its token().
//  all:     also every thread that has no scope of its own while it is open.
enum class Threads { current, all };

// One frame of an allocating call stack. One captured return address gives one frame, or several
// when the compiler inlined calls there: those are marked `inlined` (inlined into the next frame,
// which has the same address).
struct Frame {
    std::uintptr_t address = 0;
    std::string function, file, module;
    unsigned line = 0;
    bool inlined = false;
    std::uintptr_t offset = 0;   // address - the module's load base: what addr2line and objdump
                                 // take for `module` (0 when no module is known)
};

// Leftovers grouped by allocating stack (and type, where it is known).
struct Site {
    std::vector<Frame> frames;   // innermost first; frames[0] is the user's line that allocated
    std::vector<Frame> allocator_frames;   // the standard library's allocation plumbing (and
                                           // operator new) trimmed from above frames[0],
                                           // innermost first: the full stack is these + frames
    std::string type;            // the allocated type, where it can be inferred or was tagged
    std::size_t blocks = 0, bytes = 0;   // estimates in a sampled report (Report::sample_bytes)
    std::size_t samples = 0;     // sampled report: the sampled blocks behind the estimate
    bool growing = false;        // monitor: its live bytes rose in each of the last k intervals
};

// What one suppression rule hid from a report.
struct Suppression {
    std::string rule;                  // the rule as written, e.g. "leak:Cache::fill"
    std::size_t blocks = 0, bytes = 0;
};

struct Report {
    std::string kind;                 // "leftovers" | "diff" | "heap" | "peak" | "exit" | "monitor"
    std::string scope;                // scope name, if any
    std::string file;                 // where the scope was opened
    unsigned line = 0;
    bool by_exception = false;        // the scope ended while an exception unwound it
    std::size_t blocks = 0, bytes = 0;                     // + side: born inside, still live
    std::size_t released_blocks = 0, released_bytes = 0;   // - side: older blocks freed inside
    std::vector<Site> sites;          // largest bytes first
    std::vector<Site> released_sites; // diff, monitor: the - side by site (gone since `before`)
    std::vector<Suppression> suppressed;   // rules that matched, and how much each hid
    std::size_t rss_bytes = 0;        // heap, peak, monitor: the process's resident memory
    std::size_t sample_bytes = 0;     // nonzero: the whole-heap part was sampled, one block per
                                      // this many bytes on average; its counts are estimates
    double error = 0;                 // sampled: relative standard error of `bytes` (1 sigma)
    unsigned interval = 0;            // monitor: intervals since the baseline
    unsigned growth_intervals = 0;    // monitor: the k of Site::growing
};

// The single extension point for reports.
class Writer {
   public:
    virtual ~Writer() = default;
    virtual void write(const Report& report) = 0;
};

// ---- writers ------------------------------------------------------------------------------------
// The built-in writers render a report in their format, then deliver the bytes to a FILE*, an
// std::ostream or a path. A path may hold %p (the process id) and %n (the number of the report
// this writer is writing: 1, 2, ...) so that a server writing many reports never clobbers one with
// the next; %% is a '%'. A path is written to a temporary file beside it and renamed into place
// (a reader never sees half a report), never through a symbolic link planted at the path; when it
// cannot be written, one warning line goes to stderr and the report goes there, as text.
// Mode::append adds each report to the end of the file instead (JsonWriter: JSON Lines).
// A writer may be called from several threads: the built-in ones deliver one report at a time.
class OutputWriter : public Writer {
   public:
    enum class Mode { replace, append };
    explicit OutputWriter(std::FILE* out) noexcept;   // null: stderr
    explicit OutputWriter(std::ostream& out) noexcept;
    explicit OutputWriter(std::string path, Mode mode = Mode::replace);
    void write(const Report& report) final;
    std::string render(const Report& report) const;   // the bytes write() delivers, without I/O

   protected:
    virtual void render_to(const Report& report, std::string& out) const = 0;
    bool terminal_ = false;   // the destination is a terminal: colour is welcome

   private:
    std::FILE* file_ = nullptr;
    std::ostream* stream_ = nullptr;
    std::string path_;
    Mode mode_ = Mode::replace;
    unsigned long reports_ = 0;   // reports written so far (the next %n is one more)
};

// Human-readable, the default (stderr): a header by kind (what is left, where the scope was
// opened, the minus side; "live heap: ..., RSS"; "peak: ..."; "interval N since baseline: +/-"),
// a partition table of the sites (rank, blocks, %, bytes, %, cumulative %, type, site; the 20
// largest, growing sites first and marked '*'), the top frames of the first 10, and for a diff or
// monitor the 5 largest freed sites with their file:line. A sampled report's estimates carry '~'
// and the header its error and sample rate. Fits 80 columns; colour only on a terminal (and not
// with a non-empty NO_COLOR or TERM=dumb).
class TextWriter : public OutputWriter {
   public:
    using OutputWriter::OutputWriter;
    explicit TextWriter(std::FILE* out = stderr) noexcept;

   protected:
    void render_to(const Report& report, std::string& out) const override;
};

// One JSON document per report, on one line (so a file in Mode::append is JSON Lines); the
// schema is in the README. Any byte string gives valid JSON: bytes that are not UTF-8 become
// U+FFFD; an error that is not a number, null.
class JsonWriter : public OutputWriter {
   public:
    using OutputWriter::OutputWriter;

   protected:
    void render_to(const Report& report, std::string& out) const override;
};

// Folded stacks, one line per site, "root;...;leaf bytes", as flamegraph.pl and speedscope read
// them. Frames are Site::frames (the standard library's allocation frames stay out). The + side
// only (a diff's or monitor's released_sites are not in it); a sampled report's bytes are its
// estimates.
class FoldedWriter : public OutputWriter {
   public:
    using OutputWriter::OutputWriter;

   protected:
    void render_to(const Report& report, std::string& out) const override;
};

// One self-contained HTML file (no network, no external script): a header with the kind and RSS,
// an interactive flame graph of the + side (click to zoom, hover for function, file:line, blocks,
// bytes), the partition table (growing sites first, marked) and, for a diff or monitor, the freed
// sites in a second table. A sampled report's estimates carry '~'.
class HtmlWriter : public OutputWriter {
   public:
    using OutputWriter::OutputWriter;

   protected:
    void render_to(const Report& report, std::string& out) const override;
};

// profile.proto (gzip), readable by the pprof tool: sample types inuse_objects/count and
// inuse_space/bytes, functions with file and line, inlined frames as lines of one location,
// mappings of the loaded modules with their GNU build ids. The + side only; kind, RSS, the minus
// side and the sampling are comments (pprof -comments); labels type, growing=true and, sampled,
// samples; a sampled report's values are its estimates and its period the sample rate.
class PprofWriter : public OutputWriter {
   public:
    using OutputWriter::OutputWriter;

   protected:
    void render_to(const Report& report, std::string& out) const override;
};

void set_writers(std::vector<std::shared_ptr<Writer>> writers);   // replaces all (empty: default)
void add_writer(std::shared_ptr<Writer> writer);
// Hands a report to the installed writers (the default: text on stderr), as leakscope's own
// reports go: for reports a program builds or edits itself (test adapters, a monitor's caller).
void write(const Report& report) noexcept;

// A handle on a scope that another thread can adopt. Small, copyable; an empty or stale
// token (its scope already ended) adopts nothing.
class Token {
   public:
    Token() noexcept = default;
    bool empty() const noexcept { return slot_ == 0; }

   private:
    friend class LeakScope;
    friend class Adopt;
    Token(std::uint32_t slot, std::uint32_t generation) noexcept : slot_(slot), generation_(generation) {}
    std::uint32_t slot_ = 0, generation_ = 0;
};

// RAII guard around a critical section. What the section allocated and did not free by its end
// is a leftover; the destructor hands a Report of them to the installed writers.
class LeakScope {
   public:
    explicit LeakScope(std::string_view name = {}, Threads threads = Threads::current,
                       const char* file = __builtin_FILE(), unsigned line = __builtin_LINE()) noexcept;
    ~LeakScope();
    LeakScope(const LeakScope&) = delete;
    LeakScope& operator=(const LeakScope&) = delete;

    Report leftovers() const;      // born inside and still live; the scope stays open
    bool clean() const noexcept;   // no leftovers, without building a report
    void dismiss() noexcept;       // close now without reporting
    Token token() const noexcept;  // hand work to another thread: leakscope::Adopt a{token};

   private:
    void close(bool report) noexcept;
    std::uint32_t slot_ = 0, generation_ = 0;
    std::uint64_t saved_current_ = 0;   // the thread's scope before this one
    // The thread's stack-walk anchor before this one (see detail::anchor_key): address, scope
    // handle, epoch, mark.
    std::uintptr_t saved_anchor_ = 0;
    std::uint64_t saved_anchor_scope_ = 0, saved_anchor_epoch_ = 0, saved_anchor_mark_ = 0;
    int uncaught_at_open_ = 0;
    bool open_ = false;
    const char* file_;
    unsigned line_;
    char name_[96];                     // a copy: the caller's string may die first
};

// While alive, this thread's allocations count for the token's scope.
class Adopt {
   public:
    explicit Adopt(Token token) noexcept;
    ~Adopt();
    Adopt(const Adopt&) = delete;
    Adopt& operator=(const Adopt&) = delete;

   private:
    std::uint32_t slot_ = 0;            // held slot, 0 if nothing adopted
    std::uint64_t saved_current_ = 0;
};

// While alive, this thread's allocations never count as anyone's leftovers.
class Ignore {
   public:
    Ignore() noexcept;
    ~Ignore();
    Ignore(const Ignore&) = delete;
    Ignore& operator=(const Ignore&) = delete;
};

// This block may outlive its scope (a cache entry, a singleton): it stops counting.
void ignore(const void* block) noexcept;

// For allocators leakscope does not hook (LEAKSCOPE_NO_NEW_DELETE, pools): report a block
// when it is handed out and when it comes back. `size` of a deallocation may be 0 (unknown).
void record_allocation(const void* block, std::size_t size) noexcept;
void record_deallocation(const void* block, std::size_t size = 0) noexcept;

// ---- call stacks and run-time options ----------------------------------------------------------
// How allocating call stacks are walked (option unwinder=):
//  fast:   DWARF call-frame information (.eh_frame) read in-process, rules cached per return
//          address; needs no frame pointers. Falls back to libgcc for what it cannot express.
//  fp:     a frame-pointer walk, bounds-checked against the thread's stack; garbles or drops
//          frames in code built without frame pointers.
//  libgcc: _Unwind_Backtrace, exact and about 50x slower.
enum class Unwinder { fast, fp, libgcc };

// The calling thread's stack as return addresses, innermost first: out[0] is the return address
// of this call (an address inside the caller). Writes at most `max` (and at most 256), returns how many. Never
// allocates; a corrupt or foreign stack gives a shorter result, never a crash.
std::size_t current_stack(std::uintptr_t* out, std::size_t max, Unwinder how = Unwinder::fast) noexcept;

// The source frames of one captured return address, innermost first: where inlining put the
// call, then the functions it was inlined into (what `addr2line -i -f -C` answers for the call
// instruction, address - 1). Function names are demangled; file and line need debug info. Read
// in-process from the ELF and DWARF of the module, cached; never starts a process.
std::vector<Frame> symbolize(std::uintptr_t return_address);

// ---- attribution: types and suppressions ---------------------------------------------------------
// A report's sites start at the user's line: leakscope's own frames and the standard library's
// allocation plumbing go to Site::allocator_frames. Site::type is read from those frames' names:
// make_shared<T>/allocate_shared<T> and their control block, make_unique<T>, and the allocator
// (std::allocator<T>, __new_allocator<T>, allocator_traits) of a container — which gives the
// container's element type: vector<T> and deque<T> give T, list/set nodes their value, a map's
// nodes (and an unordered container's bucket array) std::pair<K const, V>, std::string char.
// A plain `new T` has no such frame: tag it (below) where the type matters.

// Suppression rules in the syntax of a suppressions= file (one rule per line; see the options
// comment at the top of this header), kept in addition to the file's. A malformed line gets one
// stderr line naming `source` and its line number; the others still apply.
void suppress(std::string_view rules, std::string_view source = "suppress()");
void clear_suppressions();   // drops the rules given to suppress() (not the file's)

// Explicit type tags, where inference cannot see the type (raw buffers, type-erased storage): the
// tag's non-inlined frame is in the block's captured stack and names Tag, and report building
// reads it as it reads std::allocator<T>. Nothing changes on the allocation path.
//     auto* v = leakscope::tagged<Vehicle>::make<FloatingVehicle>(args...);   // typed "Vehicle"
//     void* raw = leakscope::tagged<struct FrameBuffer>::allocate(4096);       // typed "FrameBuffer"
//     std::vector<char, leakscope::tagged_allocator<char, Image>> pixels;        // typed "Image"
namespace detail {
template <class Tag> struct tag_anchor { static constexpr char id = 0; };
// Keeps the calling frame real: no tail call (the frame would vanish from the stack) and no
// identical-code folding of two tags' functions (the anchor differs per Tag).
template <class Tag> inline void keep_tag_frame(const void* p) { asm volatile("" : : "r"(p), "r"(&tag_anchor<Tag>::id) : "memory"); }
}  // namespace detail
template <class Tag>
struct tagged {
    template <class T = Tag, class... Args>
    __attribute__((noinline)) static T* make(Args&&... args) {
        T* p = new T(static_cast<Args&&>(args)...);
        detail::keep_tag_frame<Tag>(p);
        return p;
    }
    __attribute__((noinline)) static void* allocate(std::size_t bytes) {
        void* p = ::operator new(bytes);
        detail::keep_tag_frame<Tag>(p);
        return p;
    }
    static void deallocate(void* p) noexcept { ::operator delete(p); }
};
// A standard allocator whose blocks are typed Tag (rebinding keeps the tag: a container's nodes too).
template <class T, class Tag = T>
struct tagged_allocator {
    using value_type = T;
    template <class U> struct rebind { using other = tagged_allocator<U, Tag>; };
    tagged_allocator() noexcept = default;
    template <class U> tagged_allocator(const tagged_allocator<U, Tag>&) noexcept {}
    T* allocate(std::size_t n) { return static_cast<T*>(tagged<Tag>::allocate(n * sizeof(T))); }
    void deallocate(T* p, std::size_t) noexcept { tagged<Tag>::deallocate(p); }
    template <class U> bool operator==(const tagged_allocator<U, Tag>&) const noexcept { return true; }
    template <class U> bool operator!=(const tagged_allocator<U, Tag>&) const noexcept { return false; }
};

// Applies options in the LEAKSCOPE_OPTIONS syntax (`key=value`, separated by ':' or white space,
// values may be quoted). Keys this version knows:
//   stacks=on|off|demand   capture allocating stacks (demand: for a scope name's runs after it
//                          first leaked)                                   default on
//   unwinder=fast|fp|libgcc                                                default fast
//   stack_depth=1..256     frames kept per stack                          default 32
//   test_stacks=auto|rerun|inline   the test adapters' stacks (section 1)  default auto
//   group_depth=0..256     top frames of the trimmed stack deciding a site (0: all)  default 0
//   suppressions=PATH      suppression rules file, read here at once (syntax: section 1)
//   report=text,json=leaks-%p-%n.json,...   the writers (they replace set_writers()'s, and
//                          set_writers() replaces theirs: the later wins)  default text
//   track, sample_bytes, settle_ms, exit_report, signal, monitor*: the whole-heap views (their
//                          table is in section 1)
// A malformed entry gets one line on stderr naming it; the other entries still apply.
void configure(std::string_view options) noexcept;

struct Stats {
    std::size_t live_blocks = 0, live_bytes = 0;   // tracked blocks still live
    std::size_t peak_bytes = 0;                    // high-water mark of live_bytes (since reset_peak)
    std::size_t total_allocations = 0;             // every allocation through the hook
    std::size_t tracked_bytes_total = 0;           // bytes of every tracked birth so far
    std::size_t tracker_bytes = 0;                 // memory leakscope holds from the OS (mmap);
                                                   // each tracked block also carries a 16-byte
                                                   // header in the heap
};
Stats stats() noexcept;
// Starts a new high-water mark at the live bytes of now; returns the old one (what stats() said).
// The mark is exact to LEAKSCOPE_PEAK_GRANULARITY bytes per thread.
std::size_t reset_peak() noexcept;

// ---- whole heap ------------------------------------------------------------------------------------
namespace detail {
struct SnapshotData;
}
// Every tracked block live at one moment: with track=all (LEAKSCOPE_OPTIONS or configure()),
// the whole heap allocated through new since tracking began; otherwise the blocks of scopes.
// Blocks born under Ignore, ignore()d ones and leakscope's own are left out. Copies are cheap.
class Snapshot {
   public:
    static Snapshot take();
    std::size_t blocks() const noexcept;
    std::size_t bytes() const noexcept;

   private:
    friend Report operator-(const Snapshot& after, const Snapshot& before);
    std::shared_ptr<const detail::SnapshotData> data_;
};
// What changed from `before` to `after` (kind "diff"): the sites of the blocks live in `after`
// that were not in `before` (born meanwhile, still live) and, as the minus side
// (released_blocks/bytes, by site in released_sites), the blocks of `before` that are gone.
Report operator-(const Snapshot& after, const Snapshot& before);

// Every tracked block live now, by site (kind "heap"; what the signal dump writes). With
// track=all that is the whole heap allocated through new since tracking began.
Report heap();

// The high-water mark of live tracked bytes since start or reset_peak() (Report::bytes) and the
// sites that held memory at that moment (kind "peak"). Needs track=all (or sample_bytes): a
// live-bytes total per call stack is kept while it is on, and copied when the heap passes its
// last copied peak by 1/64 (at least LEAKSCOPE_PEAK_GRANULARITY), so the sites are those of a
// moment within that margin of the peak, without copying the heap at every new high.
Report peak();

namespace detail {
struct MonitorState;
}
// The Doctor-Thread view: a background thread that waits `warmup_ms`, takes the heap as its
// baseline, then every `interval_ms` writes the diff against it (kind "monitor", with the RSS)
// through the writers when the heap grew by at least `threshold_bytes` (Report::bytes: born since
// the baseline and still live). Sites whose live bytes rose in each of the last `growth_intervals`
// intervals are marked Site::growing: the likely leaks, apart from one-off growth (0: none is
// marked). Starting one switches track=all on. Option monitor=1 starts one at start-up,
// configured by monitor_warmup_ms, monitor_interval_ms, monitor_growth and monitor_threshold.
// Its allocations are leakscope's own (never anyone's leftovers, never in a report); its writers
// are called on its thread. intervals() == n means interval n's report was written (if at all);
// latest() before the first interval is an empty report. A Monitor alive at exit() is stopped
// before static destructors run; in a fork child it is inert (stop() returns at once).
class Monitor {
   public:
    struct Options {
        unsigned warmup_ms = 10000;
        unsigned interval_ms = 10000;
        unsigned growth_intervals = 3;
        std::size_t threshold_bytes = 0;
    };
    Monitor();
    explicit Monitor(Options options);
    ~Monitor();   // stops and joins the thread
    Monitor(const Monitor&) = delete;
    Monitor& operator=(const Monitor&) = delete;

    void stop() noexcept;                 // no more intervals (idempotent)
    unsigned intervals() const noexcept;  // intervals done since the baseline
    Report latest() const;                // the last interval's report (written or not)

   private:
    std::shared_ptr<detail::MonitorState> state_;
};

}  // namespace leakscope

// ============================================================================================
// 3. DETAIL
// ============================================================================================
namespace leakscope {
namespace detail {
// The tracker lives entirely in the implementation section so that exactly one copy of its state
// exists in a program; what other translation units need of it is declared here.

// True when reports go to writers the program chose (set_writers(), add_writer() or a report=
// option), false when they go to the default (text on stderr). The test adapters hand a leaking
// test's report to write() only then: by default it is the framework's failure message alone.
bool writers_configured() noexcept;

// How the test adapters get a leaking test's stacks (option test_stacks=, see section 1):
// automatic leaves it to the adapter. inline_ when stacks=off (there are none to get).
enum class TestStacks : unsigned { automatic = 0, rerun = 1, inline_ = 2 };
TestStacks test_stacks() noexcept;

// While alive, the scopes this thread opens capture no stacks, whatever the stacks= option
// (the test adapters' runs with test_stacks=rerun: a leaking test is run again for its stacks).
class ScopesWithoutStacks {
   public:
    ScopesWithoutStacks() noexcept;
    ~ScopesWithoutStacks();
    ScopesWithoutStacks(const ScopesWithoutStacks&) = delete;
    ScopesWithoutStacks& operator=(const ScopesWithoutStacks&) = delete;
};
}  // namespace detail
}  // namespace leakscope

#endif  // LEAKSCOPE_HPP_INCLUDED

// ============================================================================================
// 4. IMPLEMENTATION
// ============================================================================================
#if defined(LEAKSCOPE_IMPLEMENTATION) && !defined(LEAKSCOPE_IMPLEMENTATION_DONE)
#define LEAKSCOPE_IMPLEMENTATION_DONE

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <cxxabi.h>
#include <dlfcn.h>
#include <exception>
#include <fcntl.h>
#include <link.h>
#include <malloc.h>
#include <mutex>
#include <ostream>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <time.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <unordered_map>
#include <unwind.h>

#if defined(__GNUC__)
#define LEAKSCOPE_LIKELY(x) __builtin_expect(!!(x), 1)
#define LEAKSCOPE_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define LEAKSCOPE_NOINLINE __attribute__((noinline))
#define LEAKSCOPE_HOT_INLINE inline __attribute__((always_inline))
#ifndef LEAKSCOPE_TLS_FAST
#define LEAKSCOPE_TLS_FAST __attribute__((tls_model("initial-exec")))
#endif
#else
#define LEAKSCOPE_LIKELY(x) (x)
#define LEAKSCOPE_UNLIKELY(x) (x)
#define LEAKSCOPE_NOINLINE
#define LEAKSCOPE_HOT_INLINE inline
#ifndef LEAKSCOPE_TLS_FAST
#define LEAKSCOPE_TLS_FAST
#endif
#endif

#if defined(__GLIBC__)
extern "C" void* __libc_stack_end;   // glibc: the top of the main thread's stack at start-up
#endif

namespace leakscope {
namespace detail {

using u8 = std::uint8_t;
using u32 = std::uint32_t;
using u64 = std::uint64_t;
using i64 = std::int64_t;
constexpr auto relaxed = std::memory_order_relaxed;
constexpr auto acquire = std::memory_order_acquire;
constexpr auto release = std::memory_order_release;
constexpr auto acq_rel = std::memory_order_acq_rel;

// ---- memory the tracker owns: straight from the kernel, never from the hooked allocator ----
inline std::atomic<std::size_t>& os_bytes() noexcept {
    static std::atomic<std::size_t> bytes;   // constant-initialised: no guard, no constructor
    return bytes;
}
// Maps [p, p + bytes) in now instead of page by page on first touch, where the kernel can
// (MADV_POPULATE_WRITE, Linux 5.14); a no-op elsewhere. For memory touched at random (hashed).
inline void populate(void* p, std::size_t bytes) noexcept {
#if defined(MADV_POPULATE_WRITE)
    auto from = reinterpret_cast<std::uintptr_t>(p) & ~std::uintptr_t(4095);
    auto to = (reinterpret_cast<std::uintptr_t>(p) + bytes + 4095) & ~std::uintptr_t(4095);
    ::madvise(reinterpret_cast<void*>(from), to - from, MADV_POPULATE_WRITE);
#else
    (void)p;
    (void)bytes;
#endif
}
inline void* os_alloc(std::size_t bytes) noexcept {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    os_bytes().fetch_add(bytes, relaxed);
    return p;
}
inline void os_free(void* p, std::size_t bytes) noexcept {
    if (!p) return;
    ::munmap(p, bytes);
    os_bytes().fetch_sub(bytes, relaxed);
}

// A test-and-test-and-set lock. Zero-initialised, so usable before main; the tracker's critical
// sections are short, so spinning (then yielding) beats a futex round trip.
struct SpinLock {
    std::atomic<u32> word;
    void lock() noexcept {
        for (unsigned spins = 0; word.exchange(1, acquire) != 0;) {
            while (word.load(relaxed) != 0) {
                if (++spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
                    __builtin_ia32_pause();
#endif
                } else {
                    sched_yield();
                }
            }
        }
    }
    bool try_lock() noexcept { return word.load(relaxed) == 0 && word.exchange(1, acquire) == 0; }
    void unlock() noexcept { word.store(0, release); }
    void reset_after_fork() noexcept { word.store(0, relaxed); }
};
struct SpinGuard {
    SpinLock& l;
    explicit SpinGuard(SpinLock& lock) noexcept : l(lock) { l.lock(); }
    ~SpinGuard() { l.unlock(); }
    SpinGuard(const SpinGuard&) = delete;
    SpinGuard& operator=(const SpinGuard&) = delete;
};

// A growable array of trivially copyable T in mmap'd memory (for logs and scratch space).
template <class T>
struct OsVector {
    T* data;
    std::size_t size, capacity;   // in elements
    bool push(const T& v) noexcept {
        if (size == capacity && !grow()) return false;
        data[size++] = v;
        return true;
    }
    bool grow() noexcept {
        std::size_t new_cap = capacity ? capacity * 2 : 4096 / sizeof(T);
        T* fresh = static_cast<T*>(os_alloc(new_cap * sizeof(T)));
        if (!fresh) return false;
        if (size) std::memcpy(static_cast<void*>(fresh), data, size * sizeof(T));
        os_free(data, capacity * sizeof(T));
        data = fresh;
        capacity = new_cap;
        return true;
    }
    void release() noexcept {
        os_free(data, capacity * sizeof(T));
        data = nullptr;
        size = capacity = 0;
    }
};

// ---- the registry of live tracked blocks ----------------------------------------------------
// A lock-striped open-addressing table keyed by address. No header is put in front of user
// blocks, so a foreign pointer passes through delete untouched: a pointer that is not in the
// table is not ours.
enum RecordFlags : u32 {
    kNoScope = 1u << 0,     // recorded only so its free is recognised (leakscope's own, Ignore'd)
    kInternal = 1u << 1,    // allocated by leakscope itself: never in stats
    kNeedsHeader = 1u << 2, // (while collecting the heap) size and stack are in the block's header
};

struct Record {              // 32 bytes
    std::uintptr_t addr;     // 0 empty, 1 tombstone
    u64 size;
    u32 scope;               // scope slot it was born in (0: none)
    u32 seq;                 // its position in that scope's birth log
    u32 stack;               // interned call stack id (0: none captured)
    u32 flags;
};
static_assert(sizeof(Record) == 32, "registry record must stay 32 bytes");

constexpr std::uintptr_t kEmpty = 0, kTombstone = 1;
constexpr unsigned kShardBits = LEAKSCOPE_SHARD_BITS;
constexpr unsigned kShards = 1u << kShardBits;

// Writers hold the shard's lock. Readers asking only "is this address here?" (every delete once
// anything is tracked) probe without it: a rehash is bracketed by an odd `version`, and a table
// it replaces is never unmapped, only emptied (MADV_DONTNEED) and kept for reuse, so a reader
// that raced with it reads mapped memory and retries. Inserts and erases of *other* addresses
// never change the answer for the one a reader asks about, so they need no version bump.
struct alignas(64) Shard {
    SpinLock lock;
    std::atomic<u32> version;              // odd while a rehash runs
    std::atomic<Record*> table;
    std::atomic<u32> capacity_log2;        // 0: no table yet
    u32 count;                             // live records
    u32 used;                              // live + tombstones
    Record* spare[48];                     // emptied tables by log2 capacity, for reuse
    // Live records per hash bucket, saturating at 255 (then sticky). Written under the lock;
    // a zero read without it proves absence in one load, so once a few blocks are tracked
    // somewhere, frees of all the other blocks still skip the table.
    std::atomic<u8> filter[1024];
};
inline unsigned filter_of(u64 h) noexcept { return unsigned(h) & 1023u; }
inline void filter_add(Shard& sh, u64 h, int delta) noexcept {
    std::atomic<u8>& f = sh.filter[filter_of(h)];
    u8 v = f.load(relaxed);
    if (v != 255) f.store(u8(v + delta), relaxed);
}

// A record's `addr` is read by lock-free readers, so every write to it is atomic.
// (Acquire/release order a lock-free probe against the version checks; on x86 both are plain
// moves. No fences: ThreadSanitizer does not model them.)
inline std::uintptr_t load_addr(const Record& r) noexcept { return __atomic_load_n(&r.addr, __ATOMIC_ACQUIRE); }
inline void store_addr(Record& r, std::uintptr_t a) noexcept { __atomic_store_n(&r.addr, a, __ATOMIC_RELEASE); }

inline u64 hash_address(std::uintptr_t a) noexcept {
    return (static_cast<u64>(a) >> 4) * 0x9E3779B97F4A7C15ull;
}
// The shard is chosen by the 64 KiB region of the address, not the address itself: malloc hands
// each thread blocks from its own arena, so threads mostly work in disjoint shards and do not
// bounce the shard locks' cache lines between cores.
inline unsigned shard_of(std::uintptr_t addr) noexcept {
    return static_cast<unsigned>(((u64(addr) >> 16) * 0xD6E8FEB86659FD93ull) >> (64 - kShardBits));
}
inline std::size_t home_index(u64 h, u32 log2) noexcept { return static_cast<std::size_t>(h >> (64 - log2)); }

// ---- scopes -----------------------------------------------------------------------------------
// A scope's state lives in a slot the tracker owns (the LeakScope object may die first; its
// leftovers keep the slot alive). A slot counts live references: blocks born in it, child scopes
// that ended with leftovers, Adopt holders, and a bias while it is open. Blocks born and freed on
// the owner thread while the scope is open move a plain owner-only counter instead, so the common
// case costs no atomic read-modify-write.
constexpr i64 kOpenBias = i64(1) << 40;
constexpr u32 kNoSeq = 0xffffffffu;           // a child scope's reference: not in any log
constexpr u32 kLogChunk = 512;                // owner-log entries per chunk

struct LogChunkRef {
    std::atomic<std::uintptr_t*> entries;   // kLogChunk log values, 0 where the block already died
    u32 live;                               // owner births minus owner deaths in this chunk
    u32 next_free;                          // on the slot's list of emptied chunks: the next (ci + 1)
};
// The owner log's directory never moves once made (other threads read it to retire a block born
// here): 8 chunks of 512 births in the slot itself (most scopes need no more), then up to 64
// directories of 8192 chunks, made on demand and kept with the slot.
constexpr u32 kLogInlineChunks = 8, kLogDirs = 64, kLogDirChunks = 8192;
struct LogDir { LogChunkRef chunks[kLogDirChunks]; };
// A birth logged by address, with the scope incarnation it was born in: a record matches only
// while that slot still has that generation (a live record keeps its slot alive), so an entry
// for a dead block never matches a new block that a reused slot puts at the same address.
struct SharedEntry { std::uintptr_t addr; u32 scope, seq, generation, unused; };

struct PendingStacks;   // deferred stacks (see defer_capture)
struct alignas(64) Slot {
    // --- owner-thread line: written only by the thread that opened the scope ---
    std::atomic<i64> owner_live;
    std::atomic<u64> owner_released_blocks, owner_released_bytes;
    std::atomic<u32> owner;        // thread serial of the opener
    std::atomic<u32> closed;
    std::atomic<u32> generation;   // bumped when the slot is freed: stale handles see a mismatch
    u32 parent;                    // enclosing scope slot (holds a reference on it)
    u32 threads_all;
    u32 stacks;                    // births capture their call stacks
    u32 site_totals;               // births with a stack count in the per-site live totals (peak)
    std::atomic<u64> sample_bytes; // a sample slot: its births are sampled, one per this many bytes
    LogChunkRef log_inline[kLogInlineChunks];  // owner births, by seq / kLogChunk: the first ones
    std::atomic<LogDir*> log_dirs[kLogDirs];   // and the rest
    // The owner log is reused, never only grown: births go to the current chunk, and when it is
    // full to a chunk whose births have all died (free_chunks) before a new one. So the log
    // stays as large as the chunks that hold live births, however long the slot lives (a heap
    // slot lives as long as its thread).
    u32 log_size;                  // next seq for an owner birth, in the current chunk
    LogChunkRef* log_current;      // the current chunk (valid while log_size < log_end)
    u32 log_end;                   // the current chunk's end: a birth at log_end takes a chunk
    u32 free_chunks;               // emptied chunks, linked through next_free (ci + 1; 0: none)
    u32 reclaim_in;                // chunks to take before looking again for chunks others emptied
    std::atomic<u32> log_chunks;   // chunk indices used since the slot was last freed (others
                                   // read it to list the slot's births)
    u32 next_free;
    PendingStacks* pending;        // deferred stacks of owner births (mmap'd on first use, kept)
    // --- shared line ---
    alignas(64) SpinLock lock;
    std::atomic<i64> refs;
    std::atomic<u32> holds;        // Adopt holders (also counted in refs)
    std::atomic<u64> remote_released_blocks, remote_released_bytes;
    OsVector<SharedEntry> shared;  // births on other threads, and children that closed with
                                   // leftovers (addr 0: scope/generation name the child)
    u32 prev_all;                  // for Threads::all scopes: the all-scope opened before
    // --- a report deferred until the exception that ended the scope has been handled ---
    const char* deferred_file;
    unsigned deferred_line;
    int deferred_uncaught;
    u32 deferred_thrown;           // settle_ms: the scope ended by an exception
    char deferred_name[96];
};

constexpr u32 kSlotsPerChunk = 256;
constexpr u32 kSlotChunks = 1u << 16;
constexpr u32 kMaxScopeSlots = 0xffffff;   // a block header holds 24 bits of slot index; this one
                                           // names the detached log

// A thread's last few complete stack walks (see walk_remembered), each outermost frame first.
struct WalkFrame {
    std::uintptr_t pc, sp, fp;
    std::uintptr_t ra_at, fp_at;   // the slots read to step to the caller (fp_at 0: none)
    u32 cfa_uses_fp;               // that step computed the caller's sp from fp
    u32 fp_matters;                // the rest of the walk depends on this frame's fp
};
constexpr u32 kWalkMemory = 64;       // frames a remembered walk holds
constexpr u32 kWalkMemories = 32;     // walks a thread remembers
// 16-aligned: an entry's size a multiple of 16 makes entry[i] cheaper to index on the hook's path.
struct alignas(16) WalkMemory {
    WalkFrame frames[kWalkMemory];
    // The same slots flat, with the values the walk found there: "is this still that stack?" is
    // one pass of independent loads.
    std::uintptr_t check_at[2 * kWalkMemory], check_value[2 * kWalkMemory];
    u32 checks;
    u32 count;
    // The anchor (see known_walk): all checks passed while anchor epoch `verified_under` was in
    // force (0: never), and of them only the first `inner_checks` lie below its LeakScope.
    u64 verified_under;
    u32 inner_checks;
    u32 stack_id;                     // what the walk interned as, for (its start's first, id_max); 0: none
    u32 id_max;
    u64 salt;                         // the rule-cache salt it was walked with (a dlclose: stale)
};
// Where each remembered walk started (its innermost frame), kept together so that finding the
// candidates for a new walk touches a few cache lines, not every entry.
struct WalkStart {
    std::uintptr_t pc, sp, fp;
    u64 salt_and_fp;   // bit 0: fp matters
    u64 last_use;      // for choosing which walk to forget
    std::uintptr_t first;   // the hooked call's return address it was interned for: here, not in
                            // the entry, so that another site is told apart without the entry
};
constexpr u32 kWalkHints = 64;        // start frame -> the walk last found for it (hashed)
constexpr u32 kDeferredSites = 512;   // sites a thread knows it deferred (hashed, one way)
struct WalkMemories {
    WalkStart start[kWalkMemories];   // sp 0: entry empty
    WalkMemory entry[kWalkMemories];
    u32 clock;
    u32 hand;                         // the next entry the clock considers forgetting
    u32 latest;                       // the entry used last, + 1 (0: none)
    u8 hint[kWalkHints][2];           // an allocation site seen again is found without a scan
                                      // (two ways: sites sharing a hint do not evict each other)
    u64 deferred_site[kDeferredSites];   // allocation sites whose capture was deferred (see
                                         // defer_capture): a hash, bit 0 set once walked after all
};

// Deferred stacks (see defer_capture): per slot, the copied stack words of owner births whose
// capture was not a remembered walk, walked only if the block outlives what decides.
constexpr u32 kHeaderStackBits = 22;                      // a block header holds 22 bits of stack id
constexpr u32 kMaxHeaderStack = (1u << kHeaderStackBits) - 1;   // a later stack id is kept as "none"
constexpr u32 kPendingStacks = 128;                       // deferred captures a slot holds at once
constexpr u32 kPendingBase = kMaxHeaderStack + 1 - kPendingStacks;   // header ids from here: deferred
constexpr std::size_t kDeferMaxWords = 512;               // deeper stacks (4 KiB) are walked at once
// Room for kPendingStacks of the largest copies, so that the area fills by their number alone:
// 512 KiB per slot that deferred, mmap'd, its pages touched as copies need them.
constexpr std::size_t kPendingWords = kPendingStacks * kDeferMaxWords;
struct PendingStack {
    std::uintptr_t block;          // the birth (0: not bound to one: it did not happen)
    std::uintptr_t pc, sp, fp;     // the capture's start frame, as the walk would begin
    std::uintptr_t first;          // the hooked call's return address: the stack starts there
    u32 seq;                       // the birth's position in the slot's owner log
    u32 max;                       // the depth asked for
    u32 offset, words;             // its copy: words[offset, offset + words) = [sp, sp + 8 * words)
};
struct PendingStacks {
    u32 count;                     // records in use
    u32 used;                      // words in use
    PendingStack record[kPendingStacks];
    std::uintptr_t words[kPendingWords];
};

struct SiteDeltas;

// ---- threads ----------------------------------------------------------------------------------
// Per-thread state: constant-initialised, trivially destructible, so it is valid before main,
// during thread exit and after static destruction. Counters other threads read are atomics with
// a single writer (relaxed load + store: no read-modify-write on the hot path).
struct ThreadState {
    u64 current;                   // innermost scope counting this thread's births: a scope
                                   // handle (generation << 32 | slot), 0 for none
    u32 ignore_depth;              // Ignore guards alive
    u32 internal;                  // >0 while leakscope itself allocates
    u32 serial;                    // 0 until registered
    u32 registry_index;
    u32 slot_cache_size;
    u32 scopes_without_stacks;     // >0: scopes this thread opens capture no stacks (see
                                   // ScopesWithoutStacks)
    u32 slot_cache[8];
    u32 deferred_count;            // entries of g.deferred this thread owns
    i64 pending_bytes;             // live-bytes drift not yet published to the global counter
    std::uintptr_t stack_low, stack_high;   // this thread's stack (stack_high 1: unknown)
    std::atomic<u64> allocations;  // every hooked allocation
    std::atomic<i64> live_blocks, live_bytes;   // tracked births minus deaths done here
    std::atomic<u64> born_bytes;   // bytes of tracked births done here
    WalkMemories* walks;           // mmap'd on a registered thread's first capture
    SiteDeltas* site_deltas;       // track=all: per-stack changes not yet in the shared totals
    u64 heap;                      // track=all: handle of this thread's heap slot (0: none yet)
    OsVector<Record> leftovers;    // scratch for enumerating a scope's leftovers, kept for reuse
    u32 leftovers_busy;
    // sample_bytes: bytes still to allocate before the next sampled block; the generator of the
    // intervals (0: not seeded yet); the slot this thread's sampled blocks are born in.
    i64 sample_countdown;
    u64 sample_rng;
    u64 sample_heap;
    // The birth lane: the slot this thread's births went to last (its own open scope, or its heap
    // slot), and what made it so. While t.current and g.mode are still what they were, the next
    // birth and death take it straight (lane_birth, lane_death) instead of deciding again.
    Slot* lane;                    // null: no lane
    u64 lane_current;              // t.current when the lane was set
    u32 lane_mode;                 // g.mode then
    u32 lane_scope;                // the slot's index
    u32 lane_generation;           // and its generation (a slot closed elsewhere may be reused)
    // The anchor: the LeakScope this thread opened last, while it is its current scope. Stack
    // words at or above its address are its frame's and its callers' saved slots, fixed until
    // it closes (see known_walk). Kept by LeakScope's constructor and close(), nowhere else.
    std::uintptr_t anchor;         // the object's address
    u64 anchor_scope;              // its handle: the anchor holds only while t.current is it
    u64 anchor_epoch;              // names this opening for remembered walks (from 1, unique
                                   // on the thread)
    u64 anchor_mark;               // st.anchor_breaks + 1 when set; 0: not on this stack
    u64 anchor_openings;           // epochs handed out
    // Chunks malloc gave whose block would have started a page (park_chunk): kept, not freed,
    // linked through their first word.
    void* parked;
    u64 parked_bytes;
    // Deferred captures: the stack's top as this thread's walks see it (the outermost frame's
    // sp; 0: not learnt yet, 1: cannot be), and >0 while a pending area is being written or
    // settled (a signal handler's births in between capture at once).
    std::uintptr_t walk_top;
    u32 deferring;
    u64 deferred;                  // captures deferred on this thread (a count for tests)
};

constexpr u32 kMaxThreads = 1u << 16;

constexpr u32 kSharedSeq = 0x80000000u;      // seq top bit: logged in the scope's shared log

struct Globals {
    Shard shards[kShards];
    std::atomic<u32> mode;                  // ModeBits: the hot-path gate
    std::atomic<u64> all_scope;             // generation << 32 | slot of the innermost all-scope
    std::atomic<Slot*> slot_chunks[kSlotChunks];
    SpinLock slot_lock;                     // slot chunk creation and the global free list
    u32 slot_free_head;
    u32 slot_count;                         // slots handed out so far (index 0 is reserved)
    SpinLock log_lock;                      // recycled owner-log chunks
    std::uintptr_t* log_free;               // singly linked through entries[0]
    SpinLock thread_lock;
    std::atomic<ThreadState*> threads[kMaxThreads];
    u32 thread_high;
    u32 thread_free_head;                   // free registry indices, linked through free_next
    u32 thread_free_next[kMaxThreads];
    u32 next_serial;
    // Counts of exited threads, and of threads that allocate after their exit hook ran.
    std::atomic<i64> retired_live_blocks, retired_live_bytes;
    std::atomic<u64> retired_allocations, retired_born_bytes;
    std::atomic<i64> live_bytes_published;
    std::atomic<i64> peak_bytes;
    std::atomic<u32> init_state;            // 0 none, 1 running, 2 done
    pthread_key_t exit_key;
    std::atomic<u32> warned_cross_thread_close;
    SpinLock all_lock;                      // the chain of Threads::all scopes
    std::atomic<u32> exit_report;           // exit_report=1: report every tracked block at exit
    std::atomic<u64> sample_bytes;          // sample_bytes=N: mean bytes between sampled blocks
    std::atomic<u32> settle_ms;             // settle_ms=N: leftovers confirmed N ms after the scope
    SpinLock detached_lock;                 // ignore()d blocks that carry a header
    OsVector<std::uintptr_t> detached;      // their log (0: died)
    std::size_t detached_live;
    SpinLock writer_lock;
    std::vector<std::shared_ptr<Writer>>* writers;   // leaked on purpose: outlives statics
    // Scopes ended by an exception whose report waits until the exception has been handled.
    // Global (not thread-local) so that exit can write what threads still running left pending;
    // an entry is claimed with an exchange, so each report is written exactly once.
    struct Deferred {
        std::atomic<u64> handle;   // 0: free
        std::atomic<u32> owner;    // thread serial
    } deferred[64];
};
enum ModeBits : u32 {
    kEverTracked = 1,    // some block was given a header: delete looks in front of blocks
    kAllScopeOpen = 2,
    kSideTable = 4,      // some block went to the side table: delete looks there too
    kTrackAll = 8,       // track=all: a thread's births outside every scope go to its heap slot
    kSampled = 16,       // sample_bytes: ... only one per sample_bytes on average, to its sample slot
    // Bits 16-31 count the changes of stacks=: a change invalidates every thread's lane, so each
    // thread's next birth outside a scope decides again, and its heap slot follows the new setting.
    kStacksChange = 1u << 16,
};
constexpr u64 kDefaultSampleBytes = 524288;   // track=sample without sample_bytes=

// Both are constant-initialised (aggregates initialised from {}): no constructor runs, so they are
// valid for allocations in other translation units' static initialisers, before ours would run.
#if defined(__cpp_constinit)
#define LEAKSCOPE_CONSTINIT constinit
#else
#define LEAKSCOPE_CONSTINIT
#endif
LEAKSCOPE_CONSTINIT static Globals g{};
LEAKSCOPE_CONSTINIT static thread_local ThreadState tls LEAKSCOPE_TLS_FAST{};

// Marks leakscope's own allocations (reports, writer lists) so they never count for anyone.
struct InternalGuard {
    ThreadState& t;
    InternalGuard() noexcept : t(tls) { ++t.internal; }
    ~InternalGuard() { --t.internal; }
    InternalGuard(const InternalGuard&) = delete;
    InternalGuard& operator=(const InternalGuard&) = delete;
};

inline void diagnostic(const char* message) noexcept {
    // One line, written with write(2): no allocation, safe in any state.
    char line[512];
    int n = std::snprintf(line, sizeof line, "leakscope: %s\n", message);
    if (n > 0) {
        // Text from the user (option entries, rule lines, paths) may hold control bytes: a quoted
        // newline must not split the line, nor an escape sequence reach a terminal.
        int end = std::min(n, int(sizeof line) - 1) - 1;   // the '\n' (or the last byte kept)
        for (int i = 0; i < end; ++i)
            if ((static_cast<unsigned char>(line[i]) < 0x20 && line[i] != '\t') || line[i] == 0x7f) line[i] = '?';
        line[end] = '\n';
        ssize_t ignored = ::write(2, line, static_cast<std::size_t>(std::min(n, int(sizeof line) - 1)));
        (void)ignored;
    }
}

// ---- process hooks: thread exit and fork ------------------------------------------------------
void thread_exit(void* arg) noexcept;
void flush_at_exit() noexcept;
void before_fork() noexcept;
void after_fork_parent() noexcept;
void after_fork_child() noexcept;
void apply_environment_options() noexcept;
inline void learn_thread_stack(ThreadState& t) noexcept;

inline void ensure_init() noexcept {
    if (LEAKSCOPE_LIKELY(g.init_state.load(acquire) == 2)) return;
    u32 expected = 0;
    if (g.init_state.compare_exchange_strong(expected, 1, acq_rel)) {
        pthread_key_create(&g.exit_key, thread_exit);
        pthread_atfork(before_fork, after_fork_parent, after_fork_child);
        std::atexit(flush_at_exit);
        apply_environment_options();
        g.init_state.store(2, release);
        return;
    }
    while (g.init_state.load(acquire) != 2) sched_yield();
}

LEAKSCOPE_NOINLINE void register_thread(ThreadState& t) noexcept {
    ensure_init();
    {
        SpinGuard guard(g.thread_lock);
        if (t.serial == 0) t.serial = ++g.next_serial;
        u32 index = g.thread_free_head;
        if (index != 0) {
            g.thread_free_head = g.thread_free_next[index];
        } else if (g.thread_high + 1 < kMaxThreads) {
            index = ++g.thread_high;
        }
        t.registry_index = index ? index : kMaxThreads;   // full: count globally
        if (index) g.threads[index].store(&t, release);
    }
    // A non-null value makes the destructor run at thread exit; no allocation for early keys.
    if (t.registry_index != kMaxThreads) pthread_setspecific(g.exit_key, &t);
    ++t.internal;   // (it may allocate)
    learn_thread_stack(t);
    --t.internal;
}

inline void ensure_registered(ThreadState& t) noexcept {
    if (LEAKSCOPE_UNLIKELY(t.registry_index == 0)) register_thread(t);
}
// Registered threads keep their counters in thread-local memory; a thread that is not (its exit
// hook already ran, or the registry is full) counts straight into the global totals.
inline bool counts_locally(const ThreadState& t) noexcept { return t.registry_index - 1u < kMaxThreads - 1u; }

// ---- per-site live totals: who holds the memory at the peak --------------------------------
// With track=all, each slot keeps, per call stack, the live bytes and blocks of its births that
// have one. When the published live bytes pass the last copy by 1/64 (at least the publishing
// granularity), the totals are copied: peak() reads the copy. The copies' cost is bounded by the
// geometric margin, and nobody copies the heap itself.
constexpr u32 kSiteChunkBits = 16, kSiteChunks = 64;   // stack ids below 2^22 (a header's)
struct SiteLive { std::atomic<i64> bytes, blocks; };
struct PeakSite { u32 stack; u32 unused; i64 bytes, blocks; };
struct SiteTotals {
    std::atomic<SiteLive*> chunks[kSiteChunks];   // made on first use, never freed
    std::atomic<u32> high;                        // highest stack id counted so far
    std::atomic<i64> next_copy;                   // published live bytes that trigger a copy
    SpinLock copy_lock;
    OsVector<PeakSite> copy;                      // the totals at the last copy
    i64 copied_bytes;                             // live bytes then
};
LEAKSCOPE_CONSTINIT static SiteTotals site_totals{};

LEAKSCOPE_NOINLINE SiteLive* site_chunk(u32 index) noexcept {
    SiteLive* made = static_cast<SiteLive*>(os_alloc(sizeof(SiteLive) << kSiteChunkBits));
    if (!made) return nullptr;
    SiteLive* expected = nullptr;
    if (site_totals.chunks[index].compare_exchange_strong(expected, made, acq_rel)) return made;
    os_free(made, sizeof(SiteLive) << kSiteChunkBits);   // another thread made it first
    return expected;
}
// A birth (+) or death (-) of a block with a stack in a slot that keeps site totals.
inline void site_count(u32 stack, i64 bytes, i64 blocks) noexcept {
    u32 index = stack >> kSiteChunkBits;
    if (index >= kSiteChunks) return;
    SiteLive* chunk = site_totals.chunks[index].load(acquire);
    if (LEAKSCOPE_UNLIKELY(!chunk)) {
        if (blocks < 0) return;   // its birth found no memory either
        chunk = site_chunk(index);
        if (!chunk) return;
    }
    SiteLive& e = chunk[stack & ((1u << kSiteChunkBits) - 1)];
    e.bytes.fetch_add(bytes, relaxed);
    e.blocks.fetch_add(blocks, relaxed);
    u32 high = site_totals.high.load(relaxed);
    while (stack > high && !site_totals.high.compare_exchange_weak(high, stack, relaxed)) {
    }
}
// Every birth and death under track=all changes its stack's live totals. A thread keeps those
// changes in a small table of its own (direct-mapped by stack) and adds them to the shared totals
// (two atomic adds) only when another stack takes the entry and whenever it publishes its live
// bytes: the totals a peak copy reads then lag exactly as the published bytes do (by at most
// LEAKSCOPE_PEAK_GRANULARITY per thread), and a churning site costs no atomic read-modify-write.
struct SiteDelta { u32 stack; u32 unused; i64 bytes, blocks; };
constexpr u32 kSiteDeltas = 64;
struct SiteDeltas { SiteDelta entry[kSiteDeltas]; };
inline void flush_site_delta(SiteDelta& e) noexcept {
    if (e.bytes | e.blocks) site_count(e.stack, e.bytes, e.blocks);
    e.bytes = e.blocks = 0;
}
inline void flush_site_deltas(ThreadState& t) noexcept {
    if (SiteDeltas* d = t.site_deltas)
        for (SiteDelta& e : d->entry) flush_site_delta(e);
}
LEAKSCOPE_NOINLINE void site_change_slow(ThreadState& t, u32 stack, i64 bytes, i64 blocks) noexcept {
    SiteDeltas* d = t.site_deltas;
    if (!d && counts_locally(t)) d = t.site_deltas = static_cast<SiteDeltas*>(os_alloc(sizeof(SiteDeltas)));
    if (!d || !counts_locally(t)) {   // no table (out of memory, or the thread is exiting): at once
        site_count(stack, bytes, blocks);
        return;
    }
    SiteDelta& e = d->entry[stack & (kSiteDeltas - 1)];
    flush_site_delta(e);
    e.stack = stack;
    e.bytes = bytes;
    e.blocks = blocks;
}
// The thread's pending change for `stack`, when its table holds one (the common case); else null.
LEAKSCOPE_HOT_INLINE SiteDelta* site_delta_of(ThreadState& t, u32 stack) noexcept {
    SiteDeltas* d = t.site_deltas;
    SiteDelta* e = d ? &d->entry[stack & (kSiteDeltas - 1)] : nullptr;
    return LEAKSCOPE_LIKELY(e && e->stack == stack) ? e : nullptr;
}
LEAKSCOPE_HOT_INLINE void site_change(ThreadState& t, u32 stack, i64 bytes, i64 blocks) noexcept {
    if (SiteDelta* e = site_delta_of(t, stack)) {
        e->bytes += bytes;
        e->blocks += blocks;
        return;
    }
    site_change_slow(t, stack, bytes, blocks);
}

// ---- sampling (sample_bytes=N) -----------------------------------------------------------------
// tcmalloc's scheme: sample points fall on the stream of allocated bytes as a Poisson process of
// mean spacing N; a block holding one is sampled. A block of s bytes is sampled with probability
// p = 1 - exp(-s/N), so it stands for 1/p blocks and s/p bytes (an unbiased estimate; the
// variance of the bytes' estimate is the sum of s^2 (1-p) / p^2 over the sampled blocks).
// `every` 0: a block tracked exactly stands for itself.
struct Weight { u64 bytes; i64 blocks; double variance; };
LEAKSCOPE_NOINLINE Weight sampled_weight(u64 size, u64 every) noexcept {
    double s = double(size ? size : 1);
    double p = -std::expm1(-s / double(every));
    if (!(p > 0)) p = 1e-300;
    double bytes = double(size) / p, blocks = 1 / p;
    auto whole = [](double x) { return x < 9e18 ? i64(std::llround(x)) : i64(9e18); };
    return Weight{u64(whole(bytes)), std::max<i64>(1, whole(blocks)), double(size) * double(size) * (1 - p) / (p * p)};
}
LEAKSCOPE_HOT_INLINE Weight sample_weight(u64 size, u64 every) noexcept {
    return every == 0 ? Weight{size, 1, 0} : sampled_weight(size, every);
}
// The bytes to the next sample point: exponential with mean `every` (xorshift64* underneath).
inline i64 next_sample_distance(ThreadState& t, u64 every) noexcept {
    u64 x = t.sample_rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    t.sample_rng = x;
    double u = double((x * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0);   // [0, 1)
    double d = -std::log1p(-u) * double(every);
    return d < 1 ? 1 : d > 4e18 ? i64(4e18) : i64(d);
}

// Copies the totals when `now` (published live bytes) passed the margin; `force`: regardless
// (reset_peak). Never waits: a thread finding another copying goes on.
LEAKSCOPE_NOINLINE void copy_peak_sites(i64 now, bool force) noexcept {
    if (!site_totals.copy_lock.try_lock()) return;
    if (force || now >= site_totals.next_copy.load(relaxed)) {
        site_totals.copy.size = 0;
        u32 high = site_totals.high.load(relaxed);
        for (u32 c = 0; c <= (high >> kSiteChunkBits) && c < kSiteChunks; ++c) {
            const SiteLive* chunk = site_totals.chunks[c].load(acquire);
            if (!chunk) continue;
            for (u32 i = 0; i < (1u << kSiteChunkBits); ++i) {
                i64 bytes = chunk[i].bytes.load(relaxed), blocks = chunk[i].blocks.load(relaxed);
                if (bytes > 0 && blocks > 0) site_totals.copy.push(PeakSite{(c << kSiteChunkBits) | i, 0, bytes, blocks});
            }
        }
        site_totals.copied_bytes = now;
        site_totals.next_copy.store(now + std::max<i64>(now / 64, LEAKSCOPE_PEAK_GRANULARITY), relaxed);
    }
    site_totals.copy_lock.unlock();
}

inline void publish_bytes(ThreadState& t) noexcept {
    flush_site_deltas(t);   // first: a copy of the sites this publication triggers sees them
    i64 now = g.live_bytes_published.fetch_add(t.pending_bytes, acq_rel) + t.pending_bytes;
    t.pending_bytes = 0;
    i64 peak = g.peak_bytes.load(relaxed);
    while (now > peak && !g.peak_bytes.compare_exchange_weak(peak, now, relaxed)) {
    }
    if (now >= site_totals.next_copy.load(relaxed) && (g.mode.load(relaxed) & kTrackAll)) copy_peak_sites(now, false);
}

// A birth on a thread known to count locally (counts_locally(t)).
LEAKSCOPE_HOT_INLINE void count_birth_here(ThreadState& t, u64 size, i64 blocks = 1) noexcept {
    t.born_bytes.store(t.born_bytes.load(relaxed) + size, relaxed);
    t.live_blocks.store(t.live_blocks.load(relaxed) + blocks, relaxed);
    t.live_bytes.store(t.live_bytes.load(relaxed) + i64(size), relaxed);
    t.pending_bytes += i64(size);
    if (t.pending_bytes >= LEAKSCOPE_PEAK_GRANULARITY) publish_bytes(t);
}
// `blocks`: 1, or what a sampled block stands for (its size is then the estimate's bytes too).
LEAKSCOPE_HOT_INLINE void count_birth(ThreadState& t, u64 size, i64 blocks = 1) noexcept {
    if (!counts_locally(t)) {
        g.retired_live_blocks.fetch_add(blocks, relaxed);
        g.retired_live_bytes.fetch_add(i64(size), relaxed);
        g.retired_born_bytes.fetch_add(size, relaxed);
        return;
    }
    count_birth_here(t, size, blocks);
}
// A death on a thread known to count locally, without the publish check (see count_death).
LEAKSCOPE_HOT_INLINE void count_death_unpublished(ThreadState& t, u64 size, i64 blocks = 1) noexcept {
    t.live_blocks.store(t.live_blocks.load(relaxed) - blocks, relaxed);
    t.live_bytes.store(t.live_bytes.load(relaxed) - i64(size), relaxed);
    t.pending_bytes -= i64(size);
}
LEAKSCOPE_HOT_INLINE void count_death(ThreadState& t, u64 size, i64 blocks = 1) noexcept {
    if (!counts_locally(t)) {
        g.retired_live_blocks.fetch_sub(blocks, relaxed);
        g.retired_live_bytes.fetch_sub(i64(size), relaxed);
        return;
    }
    count_death_unpublished(t, size, blocks);
    if (t.pending_bytes <= -LEAKSCOPE_PEAK_GRANULARITY) publish_bytes(t);
}

// ---- the registry ---------------------------------------------------------------------------
inline void write_record(Record& slot, const Record& rec) noexcept {
    slot.size = rec.size;
    slot.scope = rec.scope;
    slot.seq = rec.seq;
    slot.stack = rec.stack;
    slot.flags = rec.flags;
    store_addr(slot, rec.addr);
}

inline bool shard_rehash(Shard& sh, u32 new_log2) noexcept {
    std::size_t new_cap = std::size_t(1) << new_log2;
    Record* fresh = sh.spare[new_log2];   // emptied by MADV_DONTNEED: reads as zeros
    if (fresh) {
        sh.spare[new_log2] = nullptr;
        os_bytes().fetch_add(new_cap * sizeof(Record), relaxed);
    } else {
        fresh = static_cast<Record*>(os_alloc(new_cap * sizeof(Record)));
        if (!fresh) return false;
    }
    std::size_t mask = new_cap - 1;
    u32 live = 0;
    u32 version = sh.version.load(relaxed);
    sh.version.store(version + 1, std::memory_order_seq_cst);   // rare: the cost does not matter
    Record* old = sh.table.load(relaxed);
    u32 old_log2 = sh.capacity_log2.load(relaxed);
    if (old) {
        std::size_t old_cap = std::size_t(1) << old_log2;
        for (std::size_t i = 0; i < old_cap; ++i) {
            const Record& r = old[i];
            if (r.addr <= kTombstone) continue;
            std::size_t j = home_index(hash_address(r.addr), new_log2);
            while (load_addr(fresh[j]) != kEmpty) j = (j + 1) & mask;
            write_record(fresh[j], r);
            ++live;
        }
    }
    sh.table.store(fresh, relaxed);
    sh.capacity_log2.store(new_log2, relaxed);
    sh.version.store(version + 2, std::memory_order_seq_cst);
    if (old) {
        // Keep the old table mapped (a lock-free reader may still be in it), but give its pages
        // back; one emptied table per size is kept for the next rehash, the rest only cost
        // address space.
        std::size_t old_bytes = (std::size_t(1) << old_log2) * sizeof(Record);
        ::madvise(old, old_bytes, MADV_DONTNEED);
        os_bytes().fetch_sub(old_bytes, relaxed);
        if (!sh.spare[old_log2]) sh.spare[old_log2] = old;
    }
    sh.used = live;
    return true;
}

// Inserts a record; if the address is already present (its block was freed behind our back,
// e.g. with free()), the stale record is returned in `stale` so its scope can be released.
LEAKSCOPE_HOT_INLINE bool registry_insert(const Record& rec, Record& stale, bool& had_stale) noexcept {
    had_stale = false;
    u64 h = hash_address(rec.addr);
    Shard& sh = g.shards[shard_of(rec.addr)];
    SpinGuard guard(sh.lock);
    Record* table = sh.table.load(relaxed);
    u32 log2 = sh.capacity_log2.load(relaxed);
    if (table == nullptr || (std::size_t(sh.used) + 1) * 4 > (std::size_t(3) << log2)) {
        u32 want = 7;   // 128 records: one 4 KiB page
        while ((std::size_t(sh.count) + 1) * 2 > (std::size_t(1) << want)) ++want;
        if (!shard_rehash(sh, want)) return false;
        table = sh.table.load(relaxed);
        log2 = want;
    }
    std::size_t mask = (std::size_t(1) << log2) - 1;
    std::size_t first_free = ~std::size_t(0);
    for (std::size_t i = home_index(h, log2);; i = (i + 1) & mask) {
        Record& r = table[i];
        if (r.addr == rec.addr) {
            stale = r;
            had_stale = true;
            write_record(r, rec);
            return true;
        }
        if (r.addr == kTombstone) {
            if (first_free == ~std::size_t(0)) first_free = i;
            continue;
        }
        if (r.addr == kEmpty) {
            if (first_free == ~std::size_t(0)) {
                first_free = i;
                ++sh.used;
            }
            break;
        }
    }
    write_record(table[first_free], rec);
    ++sh.count;
    filter_add(sh, h, +1);
    if (LEAKSCOPE_UNLIKELY((g.mode.load(relaxed) & kSideTable) == 0)) g.mode.fetch_or(kSideTable, relaxed);
    return true;
}

// Is `addr` possibly registered? Lock-free; false is definite (see Shard).
inline bool registry_may_contain(std::uintptr_t addr, u64 h) noexcept {
    const Shard& sh = g.shards[shard_of(addr)];
    if (sh.filter[filter_of(h)].load(relaxed) == 0) return false;
    for (int attempt = 0; attempt < 4; ++attempt) {
        u32 version = sh.version.load(acquire);
        if (version & 1) continue;
        const Record* table = sh.table.load(relaxed);
        u32 log2 = sh.capacity_log2.load(relaxed);
        bool found = false;
        if (table) {
            std::size_t mask = (std::size_t(1) << log2) - 1;
            std::size_t i = home_index(h, log2);
            for (std::size_t probes = 0; probes <= mask; ++probes, i = (i + 1) & mask) {
                std::uintptr_t a = load_addr(table[i]);
                if (a == addr) {
                    found = true;
                    break;
                }
                if (a == kEmpty) break;
            }
        }
        if (sh.version.load(acquire) == version) return found;
    }
    return true;   // a rehash storm: let the locked path decide
}

enum class Edit { none, erase, unscope };

// Finds the record of `addr` under its shard's lock, copies it to `out` and applies `edit`:
// erase removes it; unscope (ignore()) detaches it from its scope but keeps it registered, so
// its free is still recognised. Returns false for a pointer never recorded.
// `probe_first`: settle "not here" without the lock when the bucket filter cannot (worth it
// where most lookups miss; a thread inside a scope mostly frees blocks it just tracked).
LEAKSCOPE_HOT_INLINE bool registry_find(std::uintptr_t addr, Record& out, Edit edit, bool probe_first = true) noexcept {
    u64 h = hash_address(addr);
    Shard& sh = g.shards[shard_of(addr)];
    if (probe_first ? !registry_may_contain(addr, h) : sh.filter[filter_of(h)].load(relaxed) == 0) return false;
    SpinGuard guard(sh.lock);
    Record* table = sh.table.load(relaxed);
    if (table == nullptr) return false;
    u32 log2 = sh.capacity_log2.load(relaxed);
    std::size_t mask = (std::size_t(1) << log2) - 1;
    for (std::size_t i = home_index(h, log2);; i = (i + 1) & mask) {
        Record& r = table[i];
        if (r.addr == kEmpty) return false;
        if (r.addr != addr) continue;
        out = r;
        if (edit == Edit::erase) {
            store_addr(r, kTombstone);
            --sh.count;
            filter_add(sh, h, -1);
        } else if (edit == Edit::unscope) {
            r.scope = 0;
            r.seq = 0;
            r.flags |= kNoScope;
        }
        return true;
    }
}

// ---- scope slots ------------------------------------------------------------------------------
inline Slot* slot_at(u32 index) noexcept {
    if (index == 0 || index / kSlotsPerChunk >= kSlotChunks) return nullptr;
    Slot* chunk = g.slot_chunks[index / kSlotsPerChunk].load(acquire);
    return chunk ? chunk + index % kSlotsPerChunk : nullptr;
}
// For indices known to be live (held by a record, a child or the caller): no checks.
LEAKSCOPE_HOT_INLINE Slot& slot_ref(u32 index) noexcept {
    return g.slot_chunks[index / kSlotsPerChunk].load(acquire)[index % kSlotsPerChunk];
}

inline u32 slot_allocate(ThreadState& t) noexcept {
    if (t.slot_cache_size) return t.slot_cache[--t.slot_cache_size];
    SpinGuard guard(g.slot_lock);
    if (g.slot_free_head) {
        u32 index = g.slot_free_head;
        g.slot_free_head = slot_ref(index).next_free;
        return index;
    }
    u32 index = g.slot_count + 1;
    if (index / kSlotsPerChunk >= kSlotChunks || index >= kMaxScopeSlots) return 0;
    auto& chunk = g.slot_chunks[index / kSlotsPerChunk];
    if (chunk.load(relaxed) == nullptr) {
        void* mem = os_alloc(sizeof(Slot) * kSlotsPerChunk);   // zero-filled by the kernel
        if (!mem) return 0;
        chunk.store(static_cast<Slot*>(mem), release);
    }
    g.slot_count = index;
    return index;
}

inline std::uintptr_t* log_chunk_allocate() noexcept {
    {
        SpinGuard guard(g.log_lock);
        if (std::uintptr_t* c = g.log_free) {
            g.log_free = reinterpret_cast<std::uintptr_t*>(__atomic_load_n(&c[0], __ATOMIC_RELAXED));
            // Atomic word stores, not memset: a snapshot may still be reading this chunk through
            // a pointer it took before the chunk was recycled (it re-checks what it read).
            for (u32 i = 0; i < kLogChunk; ++i) __atomic_store_n(&c[i], std::uintptr_t(0), __ATOMIC_RELAXED);
            return c;
        }
    }
    return static_cast<std::uintptr_t*>(os_alloc(kLogChunk * sizeof(std::uintptr_t)));
}
// A released chunk stays mapped (on the free list, or another slot's): a thread that read an
// old pointer to it reads harmless values, never unmapped memory.
inline void log_chunk_release(std::uintptr_t* c) noexcept {
    SpinGuard guard(g.log_lock);
    __atomic_store_n(&c[0], reinterpret_cast<std::uintptr_t>(g.log_free), __ATOMIC_RELAXED);
    g.log_free = c;
}

// The owner log's chunk `ci`, or null. Any thread may ask; only the owner makes (`make`).
LEAKSCOPE_HOT_INLINE LogChunkRef* log_chunk_ref(Slot& s, u32 ci, bool make) noexcept {
    if (ci < kLogInlineChunks) return &s.log_inline[ci];
    ci -= kLogInlineChunks;
    u32 di = ci / kLogDirChunks;
    if (di >= kLogDirs) return nullptr;
    LogDir* dir = s.log_dirs[di].load(acquire);
    if (!dir) {
        if (!make) return nullptr;
        dir = static_cast<LogDir*>(os_alloc(sizeof(LogDir)));   // zero-filled by the kernel
        if (!dir) return nullptr;
        s.log_dirs[di].store(dir, release);
    }
    return &dir->chunks[ci % kLogDirChunks];
}

void release_ref(ThreadState& t, u32 scope, u32 seq) noexcept;

// An empty log: the next birth takes chunk 0 (kept with the slot) or a new one.
inline void reset_log_cursor(Slot& s) noexcept { s.log_size = s.log_end = s.free_chunks = s.reclaim_in = 0; }

inline void slot_free(ThreadState& t, u32 index) noexcept {
    Slot& s = slot_ref(index);
    u32 parent = s.parent;
    {
        SpinGuard guard(s.lock);
        s.generation.store(s.generation.load(relaxed) + 1, release);
        // Every birth logged here has died, so every entry is 0. Keep the directories and the
        // first chunk for the slot's next scope (a scope per request must not cost an mmap);
        // the other chunks go back to the shared list.
        for (u32 ci = 0; ci < s.log_chunks.load(relaxed); ++ci) {
            LogChunkRef* c = log_chunk_ref(s, ci, false);
            if (!c) continue;
            std::uintptr_t* entries = c->entries.load(relaxed);
            if (entries && ci != 0) {
                c->entries.store(nullptr, release);
                log_chunk_release(entries);
            }
            c->live = 0;
        }
        s.log_chunks.store(0, relaxed);
        s.shared.size = 0;
        reset_log_cursor(s);
        s.parent = 0;
    }
    if (t.slot_cache_size < 8) {
        t.slot_cache[t.slot_cache_size++] = index;
    } else {
        SpinGuard guard(g.slot_lock);
        s.next_free = g.slot_free_head;
        g.slot_free_head = index;
    }
    if (parent) release_ref(t, parent, kNoSeq);
}

inline void drop_ref(ThreadState& t, u32 index) noexcept {
    if (slot_ref(index).refs.fetch_sub(1, acq_rel) == 1) slot_free(t, index);
}

// A scope handle packs a slot with the generation it had when the handle was made, so a handle
// that outlives its scope (a token, a stale thread state) never reaches the slot's next user.
inline u64 handle_of(u32 slot, u32 generation) noexcept { return u64(generation) << 32 | slot; }
inline u32 slot_of(u64 handle) noexcept { return u32(handle); }
inline u32 generation_of(u64 handle) noexcept { return u32(handle >> 32); }

LEAKSCOPE_HOT_INLINE bool owned_here(const Slot& s, const ThreadState& t) noexcept {
    return s.owner.load(relaxed) == t.serial && s.closed.load(relaxed) == 0;
}

// The chunk the owner's births go to now; the chunks before it in use are full.
inline bool is_current_chunk(const Slot& s, u32 ci) noexcept { return s.log_end == (ci + 1) * kLogChunk; }

// Every birth logged in chunk `ci` died (owner thread only).
inline void retire_log_chunk(Slot& s, LogChunkRef* c, u32 ci) noexcept {
    if (is_current_chunk(s, ci)) {
        // The current chunk: its positions are handed out again, so a long scope with churn
        // reuses one chunk.
        s.log_size = ci * kLogChunk;
    } else {
        // Another: its memory goes back, its index to the slot's list for the next full chunk.
        std::uintptr_t* entries = c->entries.load(relaxed);
        c->entries.store(nullptr, release);
        log_chunk_release(entries);
        c->next_free = s.free_chunks;
        s.free_chunks = ci + 1;
    }
}

// Chunks whose births died on other threads (which clear entries but leave the owner's `live`
// count alone) are found by looking: all entries 0. Done when no emptied chunk is left and an
// eighth as many chunks as were in use at the last look have been taken since, so it costs O(1)
// reads per birth and the log stays within about 9/8 of the chunks that hold live births. Under
// the lock: a death on another thread is then not comparing against a chunk being given back.
LEAKSCOPE_NOINLINE void reclaim_log_chunks(Slot& s) noexcept {
    SpinGuard guard(s.lock);
    u32 chunks = s.log_chunks.load(relaxed), in_use = 0;
    for (u32 ci = 0; ci < chunks; ++ci) {
        LogChunkRef* c = log_chunk_ref(s, ci, false);
        const std::uintptr_t* entries = c ? c->entries.load(relaxed) : nullptr;
        if (!entries || is_current_chunk(s, ci)) {
            in_use += entries != nullptr;
            continue;
        }
        u32 i = 0;
        while (i < kLogChunk && __atomic_load_n(&entries[i], __ATOMIC_RELAXED) == 0) ++i;
        if (i < kLogChunk) {
            ++in_use;
        } else {
            c->live = 0;
            retire_log_chunk(s, c, ci);
        }
    }
    s.reclaim_in = std::max<u32>(in_use / 8, 1);
}

// The current chunk is full: births continue in an emptied chunk, else in a new one. False when
// neither can be had (out of memory, or 2^28 positions holding live births).
LEAKSCOPE_NOINLINE bool next_log_chunk(Slot& s) noexcept {
    if (s.free_chunks == 0 && s.reclaim_in == 0) reclaim_log_chunks(s);
    if (s.reclaim_in) --s.reclaim_in;
    u32 ci = s.free_chunks ? s.free_chunks - 1 : s.log_chunks.load(relaxed);
    LogChunkRef* c = log_chunk_ref(s, ci, true);
    if (!c) return false;
    if (!c->entries.load(relaxed)) {
        std::uintptr_t* entries = log_chunk_allocate();
        if (!entries) return false;
        c->live = 0;
        c->entries.store(entries, release);
    }
    if (s.free_chunks)
        s.free_chunks = c->next_free;
    else
        s.log_chunks.store(ci + 1, release);
    s.log_current = c;
    s.log_size = ci * kLogChunk;
    s.log_end = s.log_size + kLogChunk;
    return true;
}

// A slot taken for a scope owned by thread t (a LeakScope, or t's heap slot): counts at zero and
// the open bias as its only reference. The caller sets `parent`, then publishes with `closed` 0.
inline void slot_open(Slot& s, const ThreadState& t, bool threads_all, bool stacks) noexcept {
    s.owner_live.store(0, relaxed);
    s.owner_released_blocks.store(0, relaxed);
    s.owner_released_bytes.store(0, relaxed);
    s.remote_released_blocks.store(0, relaxed);
    s.remote_released_bytes.store(0, relaxed);
    s.owner.store(t.serial, relaxed);
    s.threads_all = threads_all;
    s.stacks = stacks;
    s.site_totals = (g.mode.load(relaxed) & kTrackAll) != 0;
    s.sample_bytes.store(0, relaxed);
    if (s.pending) s.pending->count = s.pending->used = 0;   // a scope closed elsewhere left some
    reset_log_cursor(s);
    s.holds.store(0, relaxed);
    s.refs.store(kOpenBias, relaxed);
    s.parent = 0;
}

// After a scope's slot is closed: every reference goes through `refs` from now on, so the
// owner's count is folded in and the open bias dropped (freeing the slot if nothing is left).
inline void slot_drop_open_bias(ThreadState& t, u32 index) noexcept {
    Slot& s = slot_ref(index);
    i64 delta = s.owner_live.load(relaxed) - kOpenBias;
    s.owner_live.store(0, relaxed);
    if (s.refs.fetch_add(delta, acq_rel) + delta == 0) slot_free(t, index);
}

// A reference on `scope` goes away: a block born in it died (its log entry is already cleared),
// or a child scope's slot was freed.
void release_ref(ThreadState& t, u32 scope, u32 seq) noexcept {
    Slot& s = slot_ref(scope);
    if (owned_here(s, t)) {
        s.owner_live.store(s.owner_live.load(relaxed) - 1, relaxed);
        if (seq == kNoSeq || (seq & kSharedSeq)) return;
        u32 ci = seq / kLogChunk;
        LogChunkRef* c = log_chunk_ref(s, ci, false);
        if (c && c->entries.load(relaxed) && --c->live == 0) retire_log_chunk(s, c, ci);
        return;
    }
    drop_ref(t, scope);
}

// Logs an owner birth in the current chunk, which has room (owner thread only); its seq.
LEAKSCOPE_HOT_INLINE u32 owner_log_append(Slot& s, std::uintptr_t value) noexcept {
    u32 seq = s.log_size;
    LogChunkRef* c = s.log_current;
    __atomic_store_n(&c->entries.load(relaxed)[seq % kLogChunk], value, __ATOMIC_RELAXED);
    ++c->live;
    s.log_size = seq + 1;
    return seq;
}
// Takes a reference on `scope` for a birth logged as `value` (0: a child scope) on thread t.
// Returns the seq to store with the block, or false when the scope no longer accepts births.
// `s`: the handle's slot, when the caller has it already.
LEAKSCOPE_HOT_INLINE bool take_ref(ThreadState& t, u64 handle, std::uintptr_t value, u32& seq, Slot& s) noexcept {
    u32 scope = slot_of(handle);
    if (owned_here(s, t) && s.generation.load(relaxed) == generation_of(handle)) {
        if (value == 0) {
            seq = kNoSeq;
        } else {
            if (LEAKSCOPE_UNLIKELY(s.log_size == s.log_end) && !next_log_chunk(s)) return false;
            seq = owner_log_append(s, value);
        }
        s.owner_live.store(s.owner_live.load(relaxed) + 1, relaxed);
        return true;
    }
    // Another thread's scope: serialise with its close, so a birth is either seen by the
    // close or not attributed at all.
    SpinGuard guard(s.lock);
    if (s.closed.load(relaxed) || s.generation.load(relaxed) != generation_of(handle)) return false;
    if (value == 0) {
        seq = kNoSeq;
    } else {
        if (s.shared.size >= kSharedSeq) return false;
        seq = u32(s.shared.size) | kSharedSeq;
        if (!s.shared.push(SharedEntry{value, scope, seq, generation_of(handle), 0})) return false;
    }
    s.refs.fetch_add(1, relaxed);
    return true;
}
LEAKSCOPE_HOT_INLINE bool take_ref(ThreadState& t, u64 handle, std::uintptr_t value, u32& seq) noexcept {
    return take_ref(t, handle, value, seq, slot_ref(slot_of(handle)));
}

// Clears the log entry of a birth (`value` at `seq` of `scope`) if it is there, which proves the
// block is that birth: entries are cleared when their block dies, so a live entry equal to a
// block's address can only be that block's. A false answer means "not this birth".
inline bool clear_birth(ThreadState& t, Slot& s, u32 seq, std::uintptr_t value) noexcept {
    if (seq & kSharedSeq) {
        SpinGuard guard(s.lock);
        std::size_t i = seq & ~kSharedSeq;
        if (i >= s.shared.size || s.shared.data[i].addr != value) return false;
        s.shared.data[i].addr = 0;
        return true;
    }
    auto clear_owner_entry = [&]() noexcept {
        LogChunkRef* c = log_chunk_ref(s, seq / kLogChunk, false);
        std::uintptr_t* entries = c ? c->entries.load(acquire) : nullptr;
        if (!entries || __atomic_load_n(&entries[seq % kLogChunk], __ATOMIC_RELAXED) != value) return false;
        __atomic_store_n(&entries[seq % kLogChunk], std::uintptr_t(0), __ATOMIC_RELAXED);
        return true;
    };
    if (owned_here(s, t)) return clear_owner_entry();
    // Not the owner: the lock keeps a report that is reading this scope's blocks from seeing one
    // freed under it.
    SpinGuard guard(s.lock);
    return clear_owner_entry();
}

// ---- call stacks ------------------------------------------------------------------------------
// The fast unwinder reads the call-frame information every x86-64 ELF object carries for
// exceptions (.eh_frame, indexed by .eh_frame_hdr), reduces the row for a return address to a
// compact rule (where the caller's frame starts, where the return address and rbp were saved) and
// caches the rule by address. A capture then costs, per frame, one cache probe and one or two loads
// from the thread's own stack, and every load is bounds-checked against that stack, so a corrupt
// return address ends the stack instead of the process. What a rule cannot express (DWARF
// expressions, a frame address in another register, an unusual encoding) sends the whole capture
// to libgcc's _Unwind_Backtrace, as does a stack the thread does not own (a coroutine, an
// alternate signal stack).
enum class StackMode : u32 { on = 0, off = 1, demand = 2 };   // 0 is the default: zero-initialised
constexpr u32 kDefaultStackDepth = 32, kMaxStackDepth = 256;
constexpr u32 kRuleCacheBits = 14;
constexpr u32 kStackChunkBits = 12;                 // interned stacks per chunk: 4096
constexpr u32 kStackChunks = 1u << 16;              // so up to 2^28 distinct stacks
constexpr u32 kWantedNames = 1024;                  // scope names that leaked (stacks=demand)

// A cached rule is two words written without a lock: `check` is key ^ rule ^ salt, so a torn
// pair (one word from each of two writers) or a rule from before the last dlclose fails the check
// and is simply a miss.
struct RuleCacheEntry { std::atomic<u64> check, rule; };
struct StackEntry { const std::uintptr_t* frames; u64 hash; u32 depth, unused; };
struct StackIndex { u32 log2, unused; std::atomic<u64> slots[1]; };   // slot: tag << 32 | id

struct StackGlobals {
    std::atomic<u32> mode, unwinder, depth;          // StackMode, Unwinder, 0: default depth
    std::atomic<u32> test_stacks;                    // TestStacks (the test adapters' option)
    std::atomic<u64> loader_generation;              // bumped before and after each dlclose
    std::atomic<u32> unloading;                      // dlcloses in flight
    std::atomic<u64> anchor_breaks;                  // scopes closed out of order or by another
                                                     // thread: every anchor set before is void
    RuleCacheEntry rules[1u << kRuleCacheBits];
    SpinLock intern_lock;                            // taken only to add a stack never seen
    std::atomic<StackIndex*> index;
    u32 count;                                       // stacks interned; ids are 1..count
    std::atomic<StackEntry*> chunks[kStackChunks];
    std::uintptr_t* arena;                           // frames of interned stacks
    std::size_t arena_used, arena_capacity;          // in words
    std::atomic<u64> wanted[kWantedNames];           // name hashes; 0: empty
    std::atomic<u64> settled;                        // deferred captures walked later (for tests)
};
LEAKSCOPE_CONSTINIT static StackGlobals st{};

// -- reading .eh_frame_hdr / .eh_frame ---------------------------------------------------------
// A bounded reader of ELF and DWARF data (.eh_frame for the unwinder, .debug_* for names): a
// corrupt offset or length reads zeros and stops at the end, never past it.
struct ByteReader {
    const u8* p;
    const u8* end;
    bool ok = true;
    bool has(std::size_t n) const noexcept { return std::size_t(end - p) >= n; }
    template <class T> T fixed() noexcept {
        T v{};
        if (!has(sizeof v)) { ok = false; p = end; return v; }
        std::memcpy(&v, p, sizeof v);
        p += sizeof v;
        return v;
    }
    u8 byte() noexcept { return fixed<u8>(); }
    u64 uleb() noexcept {
        u64 v = 0;
        for (unsigned shift = 0;; shift += 7) {
            u8 b = byte();
            if (shift < 64) v |= u64(b & 0x7f) << shift;
            if (!(b & 0x80) || !ok) return v;
        }
    }
    i64 sleb() noexcept {
        u64 v = 0;
        unsigned shift = 0;
        u8 b;
        do {
            b = byte();
            if (shift < 64) v |= u64(b & 0x7f) << shift;
            shift += 7;
        } while ((b & 0x80) && ok);
        if (shift < 64 && (b & 0x40)) v |= ~u64(0) << shift;
        return i64(v);
    }
    u64 sized(unsigned n) noexcept {   // 1, 2, 3, 4 or 8 bytes, little-endian
        u64 v = 0;
        // n comes from the file (an address size): more than 8 is corrupt, and would shift past 64.
        if (n > 8 || !has(n)) { ok = false; p = end; return 0; }
        for (unsigned i = 0; i < n; ++i) v |= u64(p[i]) << (8 * i);
        p += n;
        return v;
    }
    const char* cstr() noexcept {
        const char* s = reinterpret_cast<const char*>(p);
        while (p < end && *p) ++p;
        if (p == end) { ok = false; return ""; }
        ++p;
        return s;
    }
    void skip(u64 n) noexcept {
        if (!has(std::size_t(n))) { ok = false; p = end; return; }
        p += n;
    }
    // A DW_EH_PE_* encoded pointer. Only the applications x86-64 linkers emit are accepted.
    bool pointer(u8 encoding, std::uintptr_t& out, std::uintptr_t data_base) noexcept {
        if (encoding == 0xff) { out = 0; return true; }   // DW_EH_PE_omit
        std::uintptr_t at = reinterpret_cast<std::uintptr_t>(p);
        u64 v = 0;
        switch (encoding & 0x0f) {
            case 0x00: case 0x04: case 0x0c: v = fixed<u64>(); break;
            case 0x01: v = uleb(); break;
            case 0x02: v = fixed<std::uint16_t>(); break;
            case 0x03: v = fixed<u32>(); break;
            case 0x09: v = u64(sleb()); break;
            case 0x0a: v = u64(i64(fixed<std::int16_t>())); break;
            case 0x0b: v = u64(i64(fixed<std::int32_t>())); break;
            default: return false;
        }
        switch (encoding & 0x70) {
            case 0x00: break;
            case 0x10: v += at; break;                            // pcrel
            case 0x30: if (!data_base) return false; v += data_base; break;   // datarel
            default: return false;
        }
        if (encoding & 0x80) return false;                        // indirect: never for FDE ranges
        out = std::uintptr_t(v);
        return ok;
    }
};

// The unwinding state of one frame row, for the registers an x86-64 walk needs.
enum : u8 { kRegRbp = 6, kRegRsp = 7, kRegRa = 16 };
enum : u8 { kSame = 0, kAtCfa = 1, kUndefined = 2, kUnsupported = 3 };
struct CfiRow {
    u8 cfa_reg, fp_how, ra_how, cfa_expression;
    i64 cfa_offset, fp_offset, ra_offset;
};
struct Cie {
    u64 code_align;
    i64 data_align;
    u64 ra_register;
    u8 fde_encoding;
    bool has_augmentation_data, signal_frame;
    const u8* instructions;
    const u8* end;
};

inline void set_register_rule(CfiRow& row, u64 reg, u8 how, i64 offset) noexcept {
    if (reg == kRegRbp) { row.fp_how = how; row.fp_offset = offset; }
    else if (reg == kRegRa) { row.ra_how = how; row.ra_offset = offset; }
}

// Runs call-frame instructions until the row for `target` is reached. false: not expressible.
inline bool run_cfa_program(const u8* p, const u8* end, const Cie& cie, std::uintptr_t loc,
                            std::uintptr_t target, const CfiRow& initial, CfiRow& row) noexcept {
    ByteReader r{p, end, true};
    CfiRow saved[8];
    unsigned depth = 0;
    while (r.ok && r.p < r.end) {
        u8 op = r.byte();
        u8 low = op & 0x3f;
        switch (op >> 6) {
            case 1:   // DW_CFA_advance_loc
                loc += low * cie.code_align;
                if (loc > target) return true;
                continue;
            case 2: set_register_rule(row, low, kAtCfa, i64(r.uleb()) * cie.data_align); continue;   // offset
            case 3:   // DW_CFA_restore
                if (low == kRegRbp) { row.fp_how = initial.fp_how; row.fp_offset = initial.fp_offset; }
                if (low == kRegRa) { row.ra_how = initial.ra_how; row.ra_offset = initial.ra_offset; }
                continue;
            default: break;
        }
        switch (op) {
            case 0x00: break;                                              // nop
            case 0x01: {                                                   // set_loc
                std::uintptr_t to = 0;
                if (!r.pointer(cie.fde_encoding, to, 0)) return false;
                loc = to;
                if (loc > target) return true;
                break;
            }
            case 0x02: loc += r.byte() * cie.code_align; if (loc > target) return true; break;
            case 0x03: loc += r.fixed<std::uint16_t>() * cie.code_align; if (loc > target) return true; break;
            case 0x04: loc += r.fixed<u32>() * cie.code_align; if (loc > target) return true; break;
            case 0x05: { u64 reg = r.uleb(); set_register_rule(row, reg, kAtCfa, i64(r.uleb()) * cie.data_align); break; }
            case 0x06: {                                                   // restore_extended
                u64 reg = r.uleb();
                if (reg == kRegRbp) { row.fp_how = initial.fp_how; row.fp_offset = initial.fp_offset; }
                if (reg == kRegRa) { row.ra_how = initial.ra_how; row.ra_offset = initial.ra_offset; }
                break;
            }
            case 0x07: set_register_rule(row, r.uleb(), kUndefined, 0); break;
            case 0x08: set_register_rule(row, r.uleb(), kSame, 0); break;
            case 0x09: { u64 reg = r.uleb(); r.uleb(); set_register_rule(row, reg, kUnsupported, 0); break; }
            case 0x0a: if (depth == 8) return false; saved[depth++] = row; break;
            case 0x0b:   // restore_state: the CFA rule too, as libgcc does and compilers expect
                if (depth == 0) return false;
                row = saved[--depth];
                break;
            case 0x0c: row.cfa_reg = u8(r.uleb()); row.cfa_offset = i64(r.uleb()); row.cfa_expression = 0; break;
            case 0x0d: row.cfa_reg = u8(r.uleb()); row.cfa_expression = 0; break;
            case 0x0e: row.cfa_offset = i64(r.uleb()); break;
            case 0x0f: { u64 n = r.uleb(); r.p += std::min<u64>(n, u64(r.end - r.p)); row.cfa_expression = 1; break; }
            case 0x10: case 0x16: {                                        // (val_)expression
                u64 reg = r.uleb();
                u64 n = r.uleb();
                r.p += std::min<u64>(n, u64(r.end - r.p));
                set_register_rule(row, reg, kUnsupported, 0);
                break;
            }
            case 0x11: { u64 reg = r.uleb(); set_register_rule(row, reg, kAtCfa, r.sleb() * cie.data_align); break; }
            case 0x12: row.cfa_reg = u8(r.uleb()); row.cfa_offset = r.sleb() * cie.data_align; row.cfa_expression = 0; break;
            case 0x13: row.cfa_offset = r.sleb() * cie.data_align; break;
            case 0x14: { u64 reg = r.uleb(); r.uleb(); set_register_rule(row, reg, kUnsupported, 0); break; }
            case 0x15: { u64 reg = r.uleb(); r.sleb(); set_register_rule(row, reg, kUnsupported, 0); break; }
            case 0x2e: r.uleb(); break;                                    // GNU_args_size
            case 0x2f: { u64 reg = r.uleb(); set_register_rule(row, reg, kAtCfa, -i64(r.uleb()) * cie.data_align); break; }
            default: return false;
        }
    }
    return r.ok;
}

inline bool parse_cie(const u8* at, Cie& cie) noexcept {
    ByteReader r{at, at + 16, true};
    u64 length = r.fixed<u32>();
    if (length == 0xffffffffu) return false;   // 64-bit DWARF: never in .eh_frame on Linux
    r.end = at + 4 + length;
    if (r.fixed<u32>() != 0) return false;     // CIE id
    u8 version = r.byte();
    if (version != 1 && version != 3) return false;
    const char* augmentation = reinterpret_cast<const char*>(r.p);
    while (r.ok && r.byte() != 0) {
    }
    cie.code_align = r.uleb();
    cie.data_align = r.sleb();
    cie.ra_register = version == 1 ? r.byte() : r.uleb();
    cie.fde_encoding = 0;
    cie.signal_frame = false;
    cie.has_augmentation_data = augmentation[0] == 'z';
    const u8* data_end = nullptr;
    for (const char* a = augmentation; *a && r.ok; ++a) {
        switch (*a) {
            case 'z': { u64 n = r.uleb(); data_end = r.p + n; break; }
            case 'R': cie.fde_encoding = r.byte(); break;
            case 'L': r.byte(); break;
            case 'P': {
                u8 enc = r.byte();
                std::uintptr_t ignored;
                if (!r.pointer(u8(enc & 0x7f), ignored, 0)) return false;
                break;
            }
            case 'S': cie.signal_frame = true; break;
            case 'B': break;
            default:
                if (!data_end) return false;   // unknown augmentation without a length: give up
                r.p = data_end;                // skip the rest of the augmentation data
                a = " ";                       // (ends the loop after this round)
                break;
        }
    }
    if (data_end) r.p = data_end;
    if (cie.ra_register != kRegRa) return false;
    cie.instructions = r.p;
    cie.end = r.end;
    return r.ok && r.p <= r.end;
}

// Most FDEs of an object share one or two CIEs: each is parsed, and its initial instructions run,
// once per loader generation (a dlclose may put another object's CIE at the same address), not
// once per rule. Behind a try-lock: a rule may be computed in a signal handler that interrupted
// the holder, and then goes without the memo.
struct CieMemo {
    const u8* at;
    u64 generation;
    Cie cie;
    CfiRow row;   // after the CIE's initial instructions
    bool ok;
};
struct CieMemos {
    SpinLock lock;
    u32 next;
    CieMemo entry[8];
};
LEAKSCOPE_CONSTINIT static CieMemos cie_memos{};

inline bool cie_and_initial_row(const u8* at, Cie& cie, CfiRow& row) noexcept {
    u64 generation = st.loader_generation.load(acquire);
    bool memo = (generation & 1) == 0 && st.unloading.load(acquire) == 0;
    if (memo && cie_memos.lock.try_lock()) {
        for (const CieMemo& m : cie_memos.entry) {
            if (m.at == at && m.generation == generation) {
                cie = m.cie;
                row = m.row;
                bool ok = m.ok;
                cie_memos.lock.unlock();
                return ok;
            }
        }
        cie_memos.lock.unlock();
    }
    row = CfiRow{kRegRsp, kSame, kSame, 0, 0, 0, 0};
    // The initial instructions hold no location: their row is the same for every FDE.
    bool ok = parse_cie(at, cie) && run_cfa_program(cie.instructions, cie.end, cie, 0, ~std::uintptr_t(0), row, row);
    if (memo && cie_memos.lock.try_lock()) {
        cie_memos.entry[cie_memos.next++ % 8] = CieMemo{at, generation, cie, row, ok};
        cie_memos.lock.unlock();
    }
    return ok;
}

// Rules, packed in one word: bits 0-2 kind, 3 CFA is rbp-based (else rsp), 4 rbp saved,
// 8-19 return-address offset from the CFA, 20-31 rbp offset, 32-63 CFA offset.
enum RuleKind : u32 { kRuleNone = 0, kRuleStep = 1, kRuleStop = 2, kRuleSignal = 3, kRuleFallback = 4 };
inline u64 make_rule(RuleKind kind, bool cfa_fp = false, bool fp_saved = false, i64 ra_off = 0,
                     i64 fp_off = 0, i64 cfa_off = 0) noexcept {
    return u64(kind) | (u64(cfa_fp) << 3) | (u64(fp_saved) << 4) | ((u64(ra_off) & 0xfff) << 8) |
           ((u64(fp_off) & 0xfff) << 20) | (u64(cfa_off) << 32);
}
inline RuleKind rule_kind(u64 rule) noexcept { return RuleKind(rule & 7); }
inline i64 rule_ra_offset(u64 rule) noexcept { return i64(rule << 44) >> 52; }
inline i64 rule_fp_offset(u64 rule) noexcept { return i64(rule << 32) >> 52; }
inline i64 rule_cfa_offset(u64 rule) noexcept { return i64(rule) >> 32; }
inline bool fits12(i64 v) noexcept { return v >= -2048 && v < 2048; }

// x86-64 Linux's signal return trampoline: mov $15, %rax; syscall.
inline bool is_sigreturn(std::uintptr_t pc) noexcept {
    static const u8 code[9] = {0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};
    return std::memcmp(reinterpret_cast<const void*>(pc), code, sizeof code) == 0;
}

// Where the unwind tables of the object containing `pc` are. glibc >= 2.35 answers without a lock.
inline const u8* eh_frame_hdr_of(std::uintptr_t pc) noexcept {
#if defined(DLFO_STRUCT_HAS_EH_DBASE)
    dl_find_object found;
    if (_dl_find_object(reinterpret_cast<void*>(pc), &found) != 0) return nullptr;
    return static_cast<const u8*>(found.dlfo_eh_frame);
#else
    struct Search { std::uintptr_t pc; const u8* hdr; } search{pc, nullptr};
    dl_iterate_phdr([](dl_phdr_info* info, std::size_t, void* arg) -> int {
        auto& s = *static_cast<Search*>(arg);
        const ElfW(Phdr)* eh = nullptr;
        bool inside = false;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
            const ElfW(Phdr)& ph = info->dlpi_phdr[i];
            std::uintptr_t start = info->dlpi_addr + ph.p_vaddr;
            if (ph.p_type == PT_LOAD && s.pc >= start && s.pc < start + ph.p_memsz) inside = true;
            if (ph.p_type == PT_GNU_EH_FRAME) eh = &ph;
        }
        if (!inside) return 0;
        if (eh) s.hdr = reinterpret_cast<const u8*>(info->dlpi_addr + eh->p_vaddr);
        return 1;
    }, &search);
    return search.hdr;
#endif
}

// Whether the bytes before `pc` end in a call instruction (E8 rel32, or FF /2 in its 2- to 7-byte
// forms): a genuine return address does, a corrupt one almost never. `from` bounds the look-back
// to the function's own code.
inline bool follows_call(std::uintptr_t pc, std::uintptr_t from) noexcept {
    auto byte = [](std::uintptr_t at) { return *reinterpret_cast<const u8*>(at); };
    if (pc >= from + 5 && byte(pc - 5) == 0xE8) return true;
    for (std::uintptr_t k = 2; k <= 7 && pc >= from + k; ++k)
        if (byte(pc - k) == 0xFF && ((byte(pc - k + 1) >> 3) & 7) == 2) return true;
    return false;
}

// The rule from the CFI alone; `begin` learns where the function starts (when its FDE was found).
inline u64 compute_rule_from_cfi(std::uintptr_t lookup, std::uintptr_t pc, std::uintptr_t& begin) noexcept {
    const u8* hdr = eh_frame_hdr_of(lookup);
    if (!hdr) return make_rule(kRuleStop);   // no unwind tables (JIT code, garbage): stack ends
    if (hdr[0] != 1) return make_rule(kRuleFallback);
    ByteReader r{hdr + 4, hdr + 64, true};
    std::uintptr_t eh_frame = 0, count = 0, base = reinterpret_cast<std::uintptr_t>(hdr);
    if (!r.pointer(hdr[1], eh_frame, base) || !r.pointer(hdr[2], count, base)) return make_rule(kRuleFallback);
    if (hdr[3] != 0x3b || count == 0) return make_rule(kRuleFallback);   // datarel sdata4: what linkers write
    const u8* table = r.p;
    auto entry = [&](std::size_t i, unsigned half) {
        std::int32_t v;
        std::memcpy(&v, table + i * 8 + half * 4, 4);
        return base + std::uintptr_t(std::intptr_t(v));
    };
    std::size_t lo = 0, hi = count;   // first entry whose start is above `lookup`
    while (lo < hi) {
        std::size_t mid = lo + (hi - lo) / 2;
        if (entry(mid, 0) <= lookup) lo = mid + 1; else hi = mid;
    }
    if (lo == 0) return make_rule(kRuleStop);
    const u8* fde = reinterpret_cast<const u8*>(entry(lo - 1, 1));
    ByteReader f{fde, fde + 8, true};
    u32 length = f.fixed<u32>();
    if (length == 0 || length == 0xffffffffu) return make_rule(kRuleFallback);
    f.end = fde + 4 + length;
    const u8* cie_pointer_at = f.p;
    u32 cie_offset = f.fixed<u32>();
    Cie cie;
    CfiRow row;
    if (cie_offset == 0 || !cie_and_initial_row(cie_pointer_at - cie_offset, cie, row)) return make_rule(kRuleFallback);
    std::uintptr_t start = 0, range = 0;
    if (!f.pointer(cie.fde_encoding, start, 0) || !f.pointer(u8(cie.fde_encoding & 0x0f), range, 0))
        return make_rule(kRuleFallback);
    if (lookup < start || lookup >= start + range) return make_rule(kRuleStop);   // in no function
    begin = start;
    if (cie.has_augmentation_data) {
        u64 n = f.uleb();
        f.p += std::min<u64>(n, u64(f.end - f.p));
    }
    CfiRow initial = row;
    if (!run_cfa_program(f.p, f.end, cie, start, lookup, initial, row)) return make_rule(kRuleFallback);
    if (cie.signal_frame) return is_sigreturn(pc) ? make_rule(kRuleSignal) : make_rule(kRuleFallback);
    if (row.ra_how == kUndefined) return make_rule(kRuleStop);   // the outermost frame (_start, clone)
    if (row.cfa_expression || (row.cfa_reg != kRegRsp && row.cfa_reg != kRegRbp) || row.ra_how != kAtCfa ||
        row.fp_how == kUnsupported || !fits12(row.ra_offset) || !fits12(row.fp_offset) ||
        row.cfa_offset != i64(std::int32_t(row.cfa_offset)))
        return make_rule(kRuleFallback);
    return make_rule(kRuleStep, row.cfa_reg == kRegRbp, row.fp_how == kAtCfa, row.ra_offset, row.fp_offset,
                     row.cfa_offset);
}

// Computes the rule for the frame whose code address is `lookup` (a return address minus one, or
// an exact pc). `pc` is the address itself, for the signal-trampoline check.
// The rule cache is 256 KiB of .bss that lookups touch at random: page by page, each first touch
// is a page fault (~2 µs on a VM), up to 64 of them in a process's first walks — a fifth of what
// stacks cost a short test suite. One madvise maps it all at once.
inline void populate_rule_cache() noexcept {
    static std::atomic<u32> done{0};
    if (done.load(relaxed) || done.exchange(1, relaxed)) return;
    populate(&st.rules[0], sizeof st.rules);
}

LEAKSCOPE_NOINLINE u64 compute_rule(std::uintptr_t lookup, std::uintptr_t pc) noexcept {
    populate_rule_cache();
    std::uintptr_t begin = pc;   // (unknown: no look-back)
    u64 rule = compute_rule_from_cfi(lookup, pc, begin);
    // libgcc re-walks the whole stack without bounds checks: hand it only stacks whose frame that
    // needs it is a genuine return address. A corrupt one ends the stack here instead.
    if (rule_kind(rule) == kRuleFallback && lookup != pc && !follows_call(pc, begin))
        return make_rule(kRuleStop);
    return rule;
}

inline u64 rule_salt(u64 generation) noexcept { return (generation + 1) * 0x9E3779B97F4A7C15ull; }

LEAKSCOPE_HOT_INLINE u64 rule_for(std::uintptr_t lookup, std::uintptr_t pc, u64 salt) noexcept {
    RuleCacheEntry& e = st.rules[(u64(lookup) * 0xD6E8FEB86659FD93ull) >> (64 - kRuleCacheBits)];
    u64 rule = e.rule.load(relaxed);
    if (LEAKSCOPE_LIKELY((e.check.load(relaxed) ^ rule ^ salt) == lookup && rule != 0)) return rule;
    rule = compute_rule(lookup, pc);
    // A frame outside every object is not cached: a module loaded there later must be seen.
    if (rule_kind(rule) != kRuleStop || eh_frame_hdr_of(lookup)) {
        e.rule.store(rule, relaxed);
        e.check.store(lookup ^ rule ^ salt, relaxed);
    }
    return rule;
}

#if defined(__clang__) || defined(__GNUC__)
#define LEAKSCOPE_NO_SANITIZE_ADDRESS __attribute__((no_sanitize_address))
#else
#define LEAKSCOPE_NO_SANITIZE_ADDRESS
#endif
#if defined(__SANITIZE_ADDRESS__)
#define LEAKSCOPE_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LEAKSCOPE_UNDER_ASAN 1
#endif
#endif
#ifndef LEAKSCOPE_UNDER_ASAN
#define LEAKSCOPE_UNDER_ASAN 0
#endif

// Reads a word of the thread's own stack: possibly inside another frame's ASan redzone, which is
// not a bug here, so never instrumented.
LEAKSCOPE_NO_SANITIZE_ADDRESS LEAKSCOPE_HOT_INLINE std::uintptr_t load_word(std::uintptr_t at) noexcept {
    std::uintptr_t v;
    std::memcpy(&v, reinterpret_cast<const void*>(at), sizeof v);
    return v;
}

// One step of the walk: from a frame's registers to its caller's. `ra_at`/`fp_at` name the stack
// slots it read (0: none), so that a later walk can check they still hold the same values.
enum StepResult { kStepped, kEnded, kNeedLibgcc };
struct WalkRegs { std::uintptr_t pc, sp, fp; bool exact; };
LEAKSCOPE_NO_SANITIZE_ADDRESS LEAKSCOPE_HOT_INLINE StepResult step_frame(WalkRegs& r, std::uintptr_t lo, std::uintptr_t hi, u64 salt,
                                                           std::uintptr_t& ra_at, std::uintptr_t& fp_at,
                                                           bool& uses_fp, bool& signal,
                                                           std::intptr_t shift = 0) noexcept {
    // shift: where the stack words are read, relative to where they lay (a deferred capture's copy).
    if (r.sp < lo || r.sp >= hi) return kEnded;
    u64 rule = rule_for(r.exact ? r.pc : r.pc - 1, r.pc, salt);
    RuleKind kind = rule_kind(rule);
    if (LEAKSCOPE_UNLIKELY(kind != kRuleStep)) {
        if (kind == kRuleFallback) return kNeedLibgcc;
        if (kind != kRuleSignal || r.sp + 176 > hi) return kEnded;
        // sp is the kernel's ucontext_t: its mcontext gregs start at byte 40; rbp, rsp and rip are
        // gregs 10, 15 and 16. The interrupted pc is exact, not a return address.
        std::uintptr_t next_sp = load_word(r.sp + 160 + shift);
        if (next_sp <= r.sp) return kEnded;
        r.pc = load_word(r.sp + 168 + shift);
        r.fp = load_word(r.sp + 120 + shift);
        r.sp = next_sp;
        r.exact = true;
        signal = true;
        return kStepped;
    }
    uses_fp = (rule & 8) != 0;
    std::uintptr_t cfa = (uses_fp ? r.fp : r.sp) + std::uintptr_t(rule_cfa_offset(rule));
    if (cfa <= r.sp || cfa > hi) return kEnded;
    ra_at = cfa + std::uintptr_t(rule_ra_offset(rule));
    if (ra_at < lo || ra_at + 8 > hi) return kEnded;
    if (rule & 16) {
        fp_at = cfa + std::uintptr_t(rule_fp_offset(rule));
        if (fp_at < lo || fp_at + 8 > hi) return kEnded;
        r.fp = load_word(fp_at + shift);
    }
    r.pc = load_word(ra_at + shift);
    r.sp = cfa;
    r.exact = false;
    return r.pc ? kStepped : kEnded;
}

// A plain walk from a register state: out[0] = pc, then each caller's return address.
inline std::size_t walk_cfi(WalkRegs r, std::uintptr_t lo, std::uintptr_t hi, std::uintptr_t* out, std::size_t max,
                            u64 salt, bool& fallback) noexcept {
    std::size_t n = 0;
    while (r.pc && n < max) {
        out[n++] = r.pc;
        std::uintptr_t ra_at = 0, fp_at = 0;
        bool uses_fp = false, signal = false;
        StepResult s = step_frame(r, lo, hi, salt, ra_at, fp_at, uses_fp, signal);
        if (s == kNeedLibgcc) fallback = true;
        if (s != kStepped) break;
    }
    return n;
}

// The walk a deferred capture stands for (see defer_capture), over its copy of the stack: the
// same frames the walk from the same registers gave then, from `first` outward.
LEAKSCOPE_NO_SANITIZE_ADDRESS inline std::size_t walk_pending(const PendingStack& p, const std::uintptr_t* copy,
                                                              std::uintptr_t* out, std::size_t max, u64 salt) noexcept {
    WalkRegs r{p.pc, p.sp, p.fp, true};
    std::uintptr_t lo = p.sp, hi = p.sp + 8 * std::uintptr_t(p.words);
    auto shift = std::intptr_t(reinterpret_cast<std::uintptr_t>(copy) - p.sp);
    std::size_t n = 0;
    u32 skipped = 0;
    bool found = p.first == 0;
    while (r.pc && n < max) {
        if (!found && r.pc == p.first) found = true;
        if (found) out[n++] = r.pc;
        else if (++skipped > 64) return 0;
        std::uintptr_t ra_at = 0, fp_at = 0;
        bool uses_fp = false, signal = false;
        if (step_frame(r, lo, hi, salt, ra_at, fp_at, uses_fp, signal, shift) != kStepped) break;
    }
    return found ? n : 0;
}

// The walk the hook uses. Successive allocations on a thread mostly share their outer frames
// (main, the server loop, the handler), and a few allocation sites repeat, so each thread keeps
// its last few complete walks: every frame's registers and the stack slots read to leave it.
// When the new walk reaches a frame with the same registers as a remembered one, the rest is the
// same stack if those slots still hold the same values; checking them is a run of independent
// loads instead of a chain of rule lookups. A walk identical from its first frame is the stack
// interned last time: its id is reused without hashing.
constexpr u32 kRawFrames = kMaxStackDepth + 64;   // frames walked at most: depth plus skipped ones
struct WalkResult {
    u32 known_id;            // the whole stack was remembered with this interned id
    WalkMemory* stored;      // where this walk is remembered (to record its id), or null
};
inline WalkMemories* walk_memories(ThreadState& t) noexcept {
    if (LEAKSCOPE_LIKELY(t.walks != nullptr)) return t.walks;
    // Only registered threads: their exit hook gives the memory back.
    if (!counts_locally(t)) return nullptr;
    t.walks = static_cast<WalkMemories*>(os_alloc(sizeof(WalkMemories)));
    return t.walks;
}
// Whether the frames [0, from] of a remembered walk are still this thread's stack above frame
// `from`: the slots each step read still hold what they held.
constexpr u32 kUnchanged = ~0u;
LEAKSCOPE_NO_SANITIZE_ADDRESS inline u32 first_changed(const WalkMemory& m, u32 from, std::uintptr_t lo) noexcept {
    for (u32 k = from; k > 0; --k) {
        const WalkFrame& f = m.frames[k];
        const WalkFrame& caller = m.frames[k - 1];
        bool same = f.ra_at >= lo && load_word(f.ra_at) == caller.pc &&
                    (f.fp_at == 0 || !caller.fp_matters || (f.fp_at >= lo && load_word(f.fp_at) == caller.fp));
        if (!same) return k;
    }
    // The outermost frame ended the walk; if by a zero return address, that slot must still be 0.
    const WalkFrame& last = m.frames[0];
    if (last.ra_at && (last.ra_at < lo || load_word(last.ra_at) != 0)) return 0;
    return kUnchanged;
}
// Checked innermost first, four independent loads at a time: another allocation site at the same
// depth (the same start frame) differs a few frames in, and is told apart after one or two rounds
// rather than a pass over every slot. `checks` is a multiple of 4 (see pad_checks): no tail loop.
LEAKSCOPE_NO_SANITIZE_ADDRESS LEAKSCOPE_HOT_INLINE bool unchanged(const WalkMemory& m, u32 checks) noexcept {
    for (u32 i = 0; i < checks; i += 4) {
        std::uintptr_t diff = (load_word(m.check_at[i]) ^ m.check_value[i]) |
                              (load_word(m.check_at[i + 1]) ^ m.check_value[i + 1]) |
                              (load_word(m.check_at[i + 2]) ^ m.check_value[i + 2]) |
                              (load_word(m.check_at[i + 3]) ^ m.check_value[i + 3]);
        if (diff) return false;
    }
    return true;
}
// A count of checks rounded up to unchanged's step of 4 (the last check repeated; 0 stays 0).
inline u32 pad_checks(WalkMemory& m, u32 n) noexcept {
    for (; n % 4 != 0; ++n) {
        m.check_at[n] = m.check_at[n - 1];
        m.check_value[n] = m.check_value[n - 1];
    }
    return n;
}

// The anchor. While a LeakScope this thread opened is its current scope, the object lives in some
// frame F of this stack at address A: frames called from F lie below A, so every saved slot a walk
// reads at or above A (a return address, a saved rbp) is F's or a caller's, and none of those
// change while F runs, which it does until the scope closes. A remembered walk whose checks all
// passed (or which was stored) during one opening needs, for the rest of that opening, only the
// checks below A; the opening's epoch names it. The epoch is in force only while
//  - t.current is the anchor's scope: not under an Adopt (which changes t.current alone),
//  - no scope was closed out of order or by another thread since the anchor was set (either can
//    leave a thread's anchor naming a scope whose frame may return: see LeakScope::close).
// Openings nest: close() restores the enclosing scope's anchor, and an epoch, once closed, is in
// force never again.
constexpr u64 kNoAnchor = ~u64(0);   // never an epoch, never a memory's tag
LEAKSCOPE_HOT_INLINE u64 anchor_key(const ThreadState& t) noexcept {
    bool holds = t.anchor_scope == t.current && t.anchor_mark == st.anchor_breaks.load(relaxed) + 1;
    return holds ? t.anchor_epoch : kNoAnchor;
}
// Tags a remembered walk whose checks all hold now, under anchor epoch `key`. Only for a walk
// that starts below the anchor (a stack elsewhere: another context's, is not F's callee).
// The count is written before the tag: a signal handler's capture in between sees the old tag.
inline void tag_walk(WalkMemory& m, u64 key, std::uintptr_t anchor, std::uintptr_t start_sp) noexcept {
    if (key == kNoAnchor || start_sp >= anchor) return;
    u32 inner = 0;
    for (u32 i = 0; i < m.checks; ++i)
        if (m.check_at[i] < anchor) inner = i + 1;   // slots ascend, but not strictly (ra, then fp)
    m.inner_checks = (inner + 3) & ~3u;   // within m.checks, itself a multiple of 4: the extra checks
                                          // are slots of the anchor's frames, which hold
    std::atomic_signal_fence(std::memory_order_seq_cst);
    m.verified_under = key;
}
// The checks to run for a remembered walk under anchor epoch `key`.
LEAKSCOPE_HOT_INLINE u32 checks_under(const WalkMemory& m, u64 key) noexcept {
    return m.verified_under == key ? m.inner_checks : m.checks;
}
// Derives a stored walk's flat checks and its start key from its frames.
inline void remember_checks(WalkMemories& all, WalkMemory& m, u64 salt, u64 key, std::uintptr_t anchor) noexcept {
    m.verified_under = 0;   // the checks change
    std::atomic_signal_fence(std::memory_order_seq_cst);
    u32 n = 0;
    for (u32 k = m.count - 1; k > 0; --k) {
        const WalkFrame& f = m.frames[k];
        const WalkFrame& caller = m.frames[k - 1];
        m.check_at[n] = f.ra_at;
        m.check_value[n++] = caller.pc;
        if (f.fp_at && caller.fp_matters) {
            m.check_at[n] = f.fp_at;
            m.check_value[n++] = caller.fp;
        }
    }
    if (m.frames[0].ra_at) {   // the walk ended on a zero return address: it must stay zero
        m.check_at[n] = m.frames[0].ra_at;
        m.check_value[n++] = 0;
    }
    m.checks = pad_checks(m, n);
    const WalkFrame& start = m.frames[m.count - 1];
    WalkStart& s = all.start[&m - all.entry];
    s = WalkStart{start.pc, start.sp, start.fp, (salt & ~u64(1)) | (start.fp_matters ? 1 : 0), s.last_use, s.first};
    tag_walk(m, key, anchor, start.sp);   // just walked: every slot holds what it read
}

// fp is compared only where the rest of the walk reads it: in code without frame pointers rbp is
// an ordinary register whose value changes from call to call.
inline bool same_frame(const WalkFrame& m, const WalkRegs& r) noexcept {
    return m.sp == r.sp && m.pc == r.pc && (!m.fp_matters || m.fp == r.fp);
}

// Whether remembered walk i began with this very frame (the same allocation site at the same
// depth: `first`, the hooked call's return address, compared in the start record too, so that
// another site at this depth is told apart without reading the entry) and its stack is unchanged:
// then it is this entire stack.
LEAKSCOPE_NO_SANITIZE_ADDRESS LEAKSCOPE_HOT_INLINE bool starts_walk(const WalkMemories& all, u32 i, const WalkRegs& r, u64 salt,
                                                                  u64 key, std::uintptr_t first) noexcept {
    const WalkStart& s = all.start[i];
    return s.sp == r.sp && s.pc == r.pc && s.first == first && (s.salt_and_fp | 1) == (salt | 1) &&
           (!(s.salt_and_fp & 1) || s.fp == r.fp) && unchanged(all.entry[i], checks_under(all.entry[i], key));
}
// With the hooked call's return address: every allocation site at one depth starts from the same
// frame, and two ways would not hold them all.
inline u32 walk_hint(const WalkRegs& r, std::uintptr_t first) noexcept {
    return u32(((r.pc ^ (r.sp >> 3) ^ first) * 0x9E3779B97F4A7C15ull) >> 58) & (kWalkHints - 1);
}
// The remembered walk one of the start frame's two hints names that starts here, or kWalkMemories.
LEAKSCOPE_NO_SANITIZE_ADDRESS LEAKSCOPE_HOT_INLINE u32 hinted_walk(const WalkMemories& all, const u8* hint,
                                                                  const WalkRegs& r, u64 salt, u64 key,
                                                                  std::uintptr_t first) noexcept {
    if (starts_walk(all, hint[0], r, salt, key, first)) return hint[0];
    if (starts_walk(all, hint[1], r, salt, key, first)) return hint[1];
    return kWalkMemories;
}
// Most recent first: the other way keeps the site that shared the hint.
inline void promote_hint(u8* hint, u32 index) noexcept {
    if (hint[0] == index) return;
    hint[1] = hint[0];
    hint[0] = u8(index);
}

// The common capture, without the walk's machinery: the same site at the same depth as a
// remembered walk whose stack is unchanged and which interned as asked. 0: not that.
LEAKSCOPE_NO_SANITIZE_ADDRESS LEAKSCOPE_HOT_INLINE u32 known_walk(ThreadState& t, const WalkRegs& r, u64 salt,
                                                                 std::uintptr_t first, std::size_t max) noexcept {
    WalkMemories* all = t.walks;
    if (!all) return 0;
    u64 key = anchor_key(t);
    u32 i = hinted_walk(*all, all->hint[walk_hint(r, first)], r, salt, key, first);
    if (i == kWalkMemories) return 0;
    WalkMemory& m = all->entry[i];
    if (m.stack_id == 0 || m.id_max != max) return 0;   // (hinted_walk matched start[i].first)
    all->start[i].last_use = ++all->clock;
    if (key != kNoAnchor && LEAKSCOPE_UNLIKELY(m.verified_under != key)) tag_walk(m, key, t.anchor, r.sp);   // all checks ran
    return m.stack_id;
}

LEAKSCOPE_NO_SANITIZE_ADDRESS inline std::size_t walk_remembered(ThreadState& t, WalkRegs r, std::uintptr_t lo,
                                                                 std::uintptr_t hi, u64 salt, std::uintptr_t first,
                                                                 std::uintptr_t* out, std::size_t max,
                                                                 bool& fallback, WalkResult& result) noexcept {
    static WalkMemory none;   // zero-initialised, never written: "nothing remembered"
    WalkMemories* memories = walk_memories(t);
    // The source to splice from: a walk that began with this very frame and whose stack is
    // unchanged (the same allocation site again), else the latest walk (outer frames in common).
    WalkMemory* source = &none;
    WalkMemory* victim = nullptr;
    bool whole = false;   // source is this entire stack
    u8* hint = nullptr;   // the start frame's hints: every remembered walk is reachable by its own
    if (memories) {
        hint = memories->hint[walk_hint(r, first)];
        u32 hit = hinted_walk(*memories, hint, r, salt, kNoAnchor, first);   // every check: rare enough
        if (hit == kWalkMemories) {
            // Not remembered (or its hint lost to two other sites): splice from the latest walk,
            // which most likely shares the outer frames, into an entry the clock picks among
            // those not used during the last kWalkMemories captures. No scan of every entry: a
            // first capture from new code (a test suite's) pays for its own frames only.
            if (u32 latest = memories->latest) {
                const WalkStart& s = memories->start[latest - 1];
                if (s.sp != 0 && (s.salt_and_fp | 1) == (salt | 1)) source = &memories->entry[latest - 1];
            }
            for (u32 tries = 0; tries < kWalkMemories; ++tries) {
                u32 i = memories->hand;
                memories->hand = (i + 1) % kWalkMemories;
                victim = &memories->entry[i];
                const WalkStart& s = memories->start[i];
                if (s.sp == 0 || memories->clock - u32(s.last_use) >= kWalkMemories) break;
            }
        }
        if (hit != kWalkMemories) {
            promote_hint(hint, hit);
            source = victim = &memories->entry[hit];
            whole = true;
            if (source->stack_id && source->id_max == max) {   // (hinted_walk matched `first`)
                memories->start[hit].last_use = ++memories->clock;
                result.known_id = source->stack_id;   // the very stack interned last time
                return 0;
            }
        }
        memories->start[victim - memories->entry].last_use = ++memories->clock;
        memories->latest = u32(victim - memories->entry) + 1;
    }
    const WalkMemory& memory = *source;
    WalkFrame fresh[kWalkMemory];            // this walk's own frames, innermost first
    std::uintptr_t raw[kRawFrames];          // every pc walked, innermost first
    std::size_t walked = 0;                  // frames in raw
    std::size_t own = 0;                     // of which this walk stepped itself (not spliced)
    std::size_t first_at = first ? kRawFrames : 0;   // raw index of `first`
    bool remember = memories != nullptr, ended = false;
    u32 cursor = memory.count;               // remembered frames are outermost first
    std::size_t outer = 0;                   // remembered frames reused: [0, outer)
    for (;;) {
        // A frame the remembered walk passed through? Its sp orders it among the frames.
        while (cursor > 0 && memory.frames[cursor - 1].sp < r.sp) --cursor;
        if (cursor > 0 && same_frame(memory.frames[cursor - 1], r)) {
            u32 changed = whole ? kUnchanged : first_changed(memory, cursor - 1, lo);
            if (changed == kUnchanged) {
                own = walked;
                for (u32 k = cursor; k-- > 0 && walked < kRawFrames; ++walked) {
                    if (first_at != kRawFrames && walked - first_at >= max) break;   // enough
                    raw[walked] = memory.frames[k].pc;
                    if (raw[walked] == first && first_at == kRawFrames) first_at = walked;
                }
                outer = cursor;
                ended = true;
                break;
            }
            cursor = changed;   // frames inside the change differ; outer ones may match again
        }
        own = walked;
        if (walked == kRawFrames) break;
        if (r.pc == first && first_at == kRawFrames) first_at = walked;
        raw[walked] = r.pc;
        if (walked < kWalkMemory) fresh[walked] = WalkFrame{r.pc, r.sp, r.fp, 0, 0, 0, 1};
        else remember = false;
        ++walked;
        // Not remembering any more: stop as soon as the caller's frames are complete.
        if (!remember && (first_at == kRawFrames ? walked > 64 : walked - first_at >= max)) break;
        std::uintptr_t ra_at = 0, fp_at = 0;
        bool uses_fp = false, signal = false;
        StepResult s = step_frame(r, lo, hi, salt, ra_at, fp_at, uses_fp, signal);
        if (s == kNeedLibgcc) {
            fallback = true;
            return 0;
        }
        if (walked - 1 < kWalkMemory) {   // (also for the last frame: whether its end read fp)
            fresh[walked - 1].ra_at = ra_at;
            fresh[walked - 1].fp_at = fp_at;
            fresh[walked - 1].cfa_uses_fp = uses_fp;
        }
        if (s == kEnded) {
            // The last frame keeps ra_at only if the walk ended on a zero return address there.
            if (walked - 1 < kWalkMemory && r.pc != 0) fresh[walked - 1].ra_at = 0;
            ended = true;
            own = walked;
            break;
        }
        if (signal) remember = false;   // its slots are not the ones recorded: never reuse it
    }
    // Remember this walk (outermost first) if it reached the end of the stack: the reused outer
    // frames, then this walk's own.
    std::size_t inner = own;
    if (whole) {   // remembered exactly as it is: only what it interned as is not known yet
        victim->stack_id = 0;
        memories->start[victim - memories->entry].first = first;
        victim->id_max = u32(max);
        result.stored = victim;
    } else if (remember && ended && victim && outer + inner <= kWalkMemory) {
        if (victim != source && outer) std::memcpy(victim->frames, memory.frames, outer * sizeof(WalkFrame));
        // A frame's fp matters if its own step uses it (the outermost frame's last step too: an
        // rbp-based frame address out of bounds ended the walk), or passes it on unsaved to a
        // caller whose fp matters.
        for (std::size_t i = 0; i < inner; ++i) {
            WalkFrame& f = victim->frames[outer + i];
            f = fresh[inner - 1 - i];
            bool caller_matters = outer + i != 0 && victim->frames[outer + i - 1].fp_matters;
            f.fp_matters = f.cfa_uses_fp || (f.fp_at == 0 && caller_matters);
        }
        victim->count = u32(outer + inner);
        victim->salt = salt;
        remember_checks(*memories, *victim, salt, anchor_key(t), t.anchor);
        promote_hint(hint, u32(victim - memories->entry));
        victim->stack_id = 0;
        memories->start[victim - memories->entry].first = first;
        victim->id_max = u32(max);
        result.stored = victim;
    }
    if (first_at == kRawFrames) return 0;   // never reached the caller asked for
    std::size_t n = std::min(max, walked - first_at);
    std::memcpy(out, raw + first_at, n * sizeof *out);
    return n;
}

#if defined(__GLIBC__)
inline bool on_main_thread() noexcept { return ::getpid() == static_cast<pid_t>(::syscall(SYS_gettid)); }
#endif
// This thread's stack: learnt when the thread registers (pthread_getattr_np allocates and is not
// async-signal-safe, so never during a capture, which may run in a signal handler).
inline void learn_thread_stack(ThreadState& t) noexcept {
    if (t.stack_high != 0) return;
#if defined(__GLIBC__)
    // The main thread: glibc's answer reads /proc/self/maps (~80 µs at every program's start, most
    // of what the hook alone costs a short test suite). Its top is what glibc would say (the page
    // above __libc_stack_end); its bottom, as far as the stack may grow (nothing is mapped there:
    // the kernel keeps that room below the stack). Unlimited: ask glibc.
    struct rlimit limit{};
    if (on_main_thread() && ::getrlimit(RLIMIT_STACK, &limit) == 0 &&
        limit.rlim_cur != RLIM_INFINITY) {
        const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
        std::uintptr_t top = (reinterpret_cast<std::uintptr_t>(__libc_stack_end) & ~(page - 1)) + page;
        if (top > limit.rlim_cur) {
            t.stack_low = top - limit.rlim_cur;
            t.stack_high = top;
            return;
        }
    }
#endif
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return;
    void* addr = nullptr;
    std::size_t size = 0;
    if (pthread_attr_getstack(&attr, &addr, &size) == 0 && addr) {
        t.stack_low = reinterpret_cast<std::uintptr_t>(addr);
        t.stack_high = t.stack_low + size;
    }
    pthread_attr_destroy(&attr);
}
// Before that, an async-signal-safe upper bound: glibc puts a thread's descriptor at the top of
// its stack block, and the main thread's stack ends at __libc_stack_end (argv and the environment
// lie above it). Only the top matters: a walk never reads below the sp it starts from.
inline bool thread_stack(const ThreadState& t, std::uintptr_t& lo, std::uintptr_t& hi) noexcept {
    lo = t.stack_low;
    hi = t.stack_high;
    if (LEAKSCOPE_LIKELY(hi != 0)) return true;
#if defined(__GLIBC__)
    lo = 0;
    hi = on_main_thread() ? reinterpret_cast<std::uintptr_t>(__libc_stack_end) : static_cast<std::uintptr_t>(pthread_self());
    return hi != 0;
#else
    return false;
#endif
}

struct LibgccWalk {
    std::uintptr_t* out;
    std::size_t max, n;
    std::uintptr_t first;
    unsigned skipped;
    std::uintptr_t lo, hi;   // the stack's top, if known, and the last frame's CFA: a frame above the
                             // top or below its callee ends the walk
};
inline _Unwind_Reason_Code libgcc_step(_Unwind_Context* context, void* arg) {
    auto& w = *static_cast<LibgccWalk*>(arg);
    std::uintptr_t ip = _Unwind_GetIP(context);
    if (ip == 0) return _URC_END_OF_STACK;
    if (w.hi) {   // frames move up the stack, and stay on it
        std::uintptr_t cfa = _Unwind_GetCFA(context);
        if (cfa < w.lo || cfa > w.hi) return _URC_END_OF_STACK;
        w.lo = cfa;
    }
    if (w.first) {
        if (ip != w.first) return ++w.skipped > 64 ? _URC_END_OF_STACK : _URC_NO_REASON;
        w.first = 0;
    }
    w.out[w.n++] = ip;
    return w.n >= w.max ? _URC_END_OF_STACK : _URC_NO_REASON;
}
LEAKSCOPE_NOINLINE std::size_t capture_libgcc(std::uintptr_t first, std::uintptr_t* out, std::size_t max,
                                              std::uintptr_t lo = 0, std::uintptr_t hi = 0) noexcept {
    if (max == 0) return 0;
    LibgccWalk w{out, max, 0, first, 0, lo, hi};
    _Unwind_Backtrace(libgcc_step, &w);
    return w.first ? 0 : w.n;
}

LEAKSCOPE_NO_SANITIZE_ADDRESS LEAKSCOPE_NOINLINE std::size_t capture_fp(ThreadState& t, std::uintptr_t first,
                                                                        std::uintptr_t* out,
                                                                        std::size_t max) noexcept {
    std::uintptr_t lo, hi;
    auto fp = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
    if (max == 0 || !thread_stack(t, lo, hi) || fp < lo || fp >= hi) return 0;
    lo = fp;
    std::size_t n = 0;
    unsigned skipped = 0;
    while (fp >= lo && fp + 16 <= hi && (fp & 7) == 0) {
        std::uintptr_t ra = load_word(fp + 8), next = load_word(fp);
        if (ra == 0) break;
        if (first) {
            if (ra == first) first = 0;
            else if (++skipped > 64) return 0;
        }
        if (!first) {
            out[n++] = ra;
            if (n >= max) break;
        }
        if (next <= fp) break;
        fp = next;
    }
    if (first) {
        // leakscope's own frames have no frame pointers (a build without them): the chain never
        // showed `first`, and what it did show cannot be placed. Keep the one frame that is known.
        out[0] = first;
        return 1;
    }
    return n;
}

#if defined(__x86_64__) && defined(__linux__)
#define LEAKSCOPE_FAST_UNWINDER 1
#else
#define LEAKSCOPE_FAST_UNWINDER 0   // elsewhere `fast` means libgcc
#endif

// A LeakScope opening at `at` as scope `scope` (t.current already): the thread's anchor, if the
// object is on this thread's stack. Each field is written while the pair cannot hold (anchor_scope
// is not yet, or no longer, t.current), so a signal handler's capture never sees half of one.
inline void set_anchor(ThreadState& t, std::uintptr_t at, u64 scope) noexcept {
    std::uintptr_t lo, hi;
    bool on_stack = thread_stack(t, lo, hi) && at >= lo && at < hi;
    t.anchor_scope = 0;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t.anchor = at;
    t.anchor_epoch = ++t.anchor_openings;
    t.anchor_mark = on_stack ? st.anchor_breaks.load(acquire) + 1 : 0;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t.anchor_scope = scope;
}
// Its close, in order on its own thread (t.current restored already): the enclosing opening's.
inline void restore_anchor(ThreadState& t, std::uintptr_t at, u64 scope, u64 epoch, u64 mark) noexcept {
    t.anchor_scope = 0;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t.anchor = at;
    t.anchor_epoch = epoch;
    t.anchor_mark = mark;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t.anchor_scope = scope;
}

// The registers of the frame this is inlined into, as the walk's start. One asm block: the three
// values describe the same instruction's frame row.
#if LEAKSCOPE_FAST_UNWINDER
#define LEAKSCOPE_WALK_REGS_HERE(regs)                                                                     \
    std::uintptr_t regs##_pc, regs##_sp, regs##_fp;                                                      \
    asm volatile("leaq 0(%%rip), %0\n\tmovq %%rsp, %1\n\tmovq %%rbp, %2"                                \
                 : "=r"(regs##_pc), "=r"(regs##_sp), "=r"(regs##_fp));                                   \
    const WalkRegs regs { regs##_pc, regs##_sp, regs##_fp, true }
#else
#define LEAKSCOPE_WALK_REGS_HERE(regs) const WalkRegs regs { 0, 0, 0, true }
#endif

// A capture from `regs`, the registers of a frame that is still live (its caller's or its own):
// its saved slots and its callers' are what the walk reads, and they stay put while it runs.
// try_known: first ask known_walk (a caller that already did says false).
LEAKSCOPE_NO_SANITIZE_ADDRESS LEAKSCOPE_HOT_INLINE std::size_t capture_fast_from(ThreadState& t, const WalkRegs& regs,
                                                                                std::uintptr_t first, std::uintptr_t* out,
                                                                                std::size_t max, WalkResult& result,
                                                                                bool try_known) noexcept {
#if LEAKSCOPE_FAST_UNWINDER
    std::uintptr_t lo, hi;
    if (max == 0) return 0;
    u64 generation = st.loader_generation.load(acquire);
    bool on_thread_stack = thread_stack(t, lo, hi) && regs.sp >= lo && regs.sp < hi;
    if (on_thread_stack && st.unloading.load(acquire) == 0) {
        bool fallback = false;
        u64 salt = rule_salt(generation);
        std::size_t n = 0;
        if (u32 id = try_known ? known_walk(t, regs, salt, first, max) : 0)
            result.known_id = id;
        else
            n = walk_remembered(t, regs, regs.sp, hi, salt, first, out, max, fallback, result);
        // A dlclose meanwhile may have turned cached rules stale: trust nothing from this walk.
        if (!fallback && st.loader_generation.load(acquire) == generation) return n;
        result = WalkResult{0, nullptr};
    }
    // libgcc: for a frame the rules cannot express, or a stack this thread does not own (a
    // coroutine, an alternate signal stack), where no bounds are known.
    return on_thread_stack ? capture_libgcc(first, out, max, 0, hi) : capture_libgcc(first, out, max);
#else
    (void)t;
    (void)regs;
    (void)result;
    (void)try_known;
    return capture_libgcc(first, out, max);
#endif
}
// Inline in its callers: the walk starts at the frame of the function it is inlined into (the
// registers are read there), so a caller that captures often saves a call level per capture.
LEAKSCOPE_NO_SANITIZE_ADDRESS LEAKSCOPE_HOT_INLINE std::size_t capture_fast_here(ThreadState& t, std::uintptr_t first,
                                                                                std::uintptr_t* out, std::size_t max,
                                                                                WalkResult& result) noexcept {
    LEAKSCOPE_WALK_REGS_HERE(regs);
    return capture_fast_from(t, regs, first, out, max, result, true);
}
LEAKSCOPE_NO_SANITIZE_ADDRESS LEAKSCOPE_NOINLINE std::size_t capture_fast(ThreadState& t, std::uintptr_t first,
                                                                          std::uintptr_t* out, std::size_t max,
                                                                          WalkResult& result) noexcept {
    return capture_fast_here(t, first, out, max, result);
}

LEAKSCOPE_NOINLINE std::size_t capture(ThreadState& t, Unwinder how, std::uintptr_t first, std::uintptr_t* out,
                                       std::size_t max, WalkResult& result) noexcept {
    max = std::min<std::size_t>(max, kMaxStackDepth);   // the same limit for every unwinder
    switch (how) {
        case Unwinder::fp: return capture_fp(t, first, out, max);
        case Unwinder::libgcc: return capture_libgcc(first, out, max);
        default: return capture_fast(t, first, out, max, result);
    }
}

// For tests that feed the walk fake register states: out[0] = pc, then the callers.
std::size_t unwind_fast(std::uintptr_t pc, std::uintptr_t sp, std::uintptr_t fp, std::uintptr_t stack_lo,
                        std::uintptr_t stack_hi, std::uintptr_t* out, std::size_t max) noexcept {
    if (max == 0 || stack_lo >= stack_hi) return 0;
    bool fallback = false;
    return walk_cfi(WalkRegs{pc, sp, fp, false}, stack_lo, stack_hi, out, std::min<std::size_t>(max, kMaxStackDepth),
                    rule_salt(st.loader_generation.load(acquire)), fallback);
}

// -- interning: each distinct stack is stored once and named by a 32-bit id (0: none) -----------
inline u64 hash_frames(const std::uintptr_t* frames, std::size_t n) noexcept {
    u64 h = 0x9E3779B97F4A7C15ull ^ n;
    for (std::size_t i = 0; i < n; ++i) {
        h = (h ^ frames[i]) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    return h;
}
inline const StackEntry* stack_entry(u32 id) noexcept {
    if (id == 0) return nullptr;
    StackEntry* chunk = st.chunks[id >> kStackChunkBits].load(acquire);
    return chunk ? &chunk[id & ((1u << kStackChunkBits) - 1)] : nullptr;
}
inline u32 find_stack(const StackIndex* index, u64 h, const std::uintptr_t* frames, std::size_t n) noexcept {
    if (!index) return 0;
    std::size_t mask = (std::size_t(1) << index->log2) - 1;
    u32 tag = u32(h >> 32) | 1u;
    for (std::size_t i = std::size_t(h) & mask;; i = (i + 1) & mask) {
        u64 slot = index->slots[i].load(acquire);
        if (slot == 0) return 0;
        if (u32(slot >> 32) != tag) continue;
        const StackEntry* e = stack_entry(u32(slot));
        if (e && e->depth == n && std::memcmp(e->frames, frames, n * sizeof *frames) == 0) return u32(slot);
    }
}
inline StackIndex* new_stack_index(u32 log2) noexcept {
    std::size_t bytes = sizeof(StackIndex) + ((std::size_t(1) << log2) - 1) * sizeof(std::atomic<u64>);
    auto* index = static_cast<StackIndex*>(os_alloc(bytes));
    if (index) populate(index, bytes);   // probed at random, like the rule cache
    if (index) index->log2 = log2;
    return index;
}
inline void index_insert(StackIndex* index, u64 h, u32 id) noexcept {
    std::size_t mask = (std::size_t(1) << index->log2) - 1;
    std::size_t i = std::size_t(h) & mask;
    while (index->slots[i].load(relaxed) != 0) i = (i + 1) & mask;
    index->slots[i].store((u64(u32(h >> 32) | 1u) << 32) | id, release);
}
LEAKSCOPE_NOINLINE u32 add_stack(u64 h, const std::uintptr_t* frames, std::size_t n) noexcept {
    SpinGuard guard(st.intern_lock);
    StackIndex* index = st.index.load(relaxed);
    if (u32 id = find_stack(index, h, frames, n)) return id;
    u32 id = st.count + 1;
    if ((id >> kStackChunkBits) >= kStackChunks) return 0;   // 2^28 distinct stacks: stop interning
    StackEntry* chunk = st.chunks[id >> kStackChunkBits].load(relaxed);
    if (!chunk) {
        chunk = static_cast<StackEntry*>(os_alloc(sizeof(StackEntry) << kStackChunkBits));
        if (!chunk) return 0;
        st.chunks[id >> kStackChunkBits].store(chunk, release);
    }
    if (st.arena_capacity - st.arena_used < n) {
        std::size_t words = std::max<std::size_t>(std::size_t(1) << 17, n);
        auto* arena = static_cast<std::uintptr_t*>(os_alloc(words * sizeof(std::uintptr_t)));
        if (!arena) return 0;
        st.arena = arena;   // the old arena stays: its stacks live forever
        st.arena_used = 0;
        st.arena_capacity = words;
    }
    std::uintptr_t* stored = st.arena + st.arena_used;
    std::memcpy(stored, frames, n * sizeof *frames);
    st.arena_used += n;
    chunk[id & ((1u << kStackChunkBits) - 1)] = StackEntry{stored, h, u32(n), 0};
    if (!index || u64(id) * 2 > (u64(1) << index->log2)) {
        // Grow: readers still probing the old index find nothing new there and come here.
        StackIndex* bigger = new_stack_index(index ? index->log2 + 1 : 12);
        if (!bigger) return 0;
        for (u32 old = 1; old < id; ++old) index_insert(bigger, stack_entry(old)->hash, old);
        st.index.store(bigger, release);
        index = bigger;
    }
    st.count = id;
    index_insert(index, h, id);
    return id;
}
inline u32 intern_stack(const std::uintptr_t* frames, std::size_t n) noexcept {
    if (n == 0) return 0;
    u64 h = hash_frames(frames, n);
    if (u32 id = find_stack(st.index.load(acquire), h, frames, n)) return id;
    return add_stack(h, frames, n);
}

inline std::size_t stack_depth_setting() noexcept {
    u32 d = st.depth.load(relaxed);
    return d ? d : kDefaultStackDepth;
}
inline std::size_t capture_depth() noexcept { return std::min<std::size_t>(stack_depth_setting(), kMaxStackDepth); }
// ---- deferred captures ---------------------------------------------------------------------------
// A capture that is no remembered walk walks frames the thread has not seen, reading their rules
// from .eh_frame (~4,000 instructions in a test suite, where every test is new code), yet most
// blocks die before anyone asks for their stack. So an owner birth in a scope that keeps no
// per-site totals may copy the stack words such a walk reads instead — from the capture's frame
// up to the thread's outermost frame, where every walk of the thread ends; the walk from the same
// registers over the copy gives the same frames — and its header names the copy (kPendingBase +
// its index in the slot's area). settle_pending walks the copies of the births still alive: when
// the scope closes, when its leftovers are asked for, when the area is full. A site deferred once
// is walked the next time (and remembered: its captures after that are remembered walks), unless
// that was done and the site missed again (its callers vary: a test fixture's constructor, called
// from every test's).
LEAKSCOPE_NO_SANITIZE_ADDRESS inline void copy_stack_words(std::uintptr_t* to, std::uintptr_t from, std::size_t words) noexcept {
#if LEAKSCOPE_UNDER_ASAN
    // Word by word, unvectorised: a memcpy here would be ASan's, which checks the redzones of
    // the frames it copies.
    for (std::size_t i = 0; i < words; ++i) {
        to[i] = load_word(from + 8 * i);
        asm volatile("" ::: "memory");
    }
#else
    std::memcpy(to, reinterpret_cast<const void*>(from), words * sizeof *to);
#endif
}

// Where every walk of this thread ends: the sp of the outermost frame a walk from `start` reaches
// (_start's, or the thread entry's). 1: no walk ends cleanly here (a frame the rules cannot
// express, a stack out of bounds), so this thread never defers.
LEAKSCOPE_NO_SANITIZE_ADDRESS LEAKSCOPE_NOINLINE std::uintptr_t learn_walk_top(WalkRegs r, std::uintptr_t hi,
                                                                              u64 salt) noexcept {
    std::uintptr_t lo = r.sp;
    for (u32 n = 0; n < 4 * kRawFrames; ++n) {
        std::uintptr_t ra_at = 0, fp_at = 0, sp = r.sp;
        bool uses_fp = false, signal = false;
        StepResult s = step_frame(r, lo, hi, salt, ra_at, fp_at, uses_fp, signal);
        if (s == kStepped) continue;
        if (s == kNeedLibgcc) return 1;
        if (r.pc == 0) return r.sp;   // ended on a zero return address, read just below r.sp
        bool outermost = r.sp == sp && r.sp < hi && rule_kind(rule_for(r.exact ? r.pc : r.pc - 1, r.pc, salt)) == kRuleStop;
        return outermost ? r.sp : 1;
    }
    return 1;
}

void settle_pending(ThreadState& t, Slot& s, bool in_birth) noexcept;

// The deferred capture of an owner birth in s from `regs` (capture_for_block's, whose frame is
// live): kPendingBase + its index, or 0 to capture at once.
LEAKSCOPE_NO_SANITIZE_ADDRESS LEAKSCOPE_NOINLINE u32 defer_capture(ThreadState& t, Slot& s, std::uintptr_t first,
                                                                   const WalkRegs& regs, std::size_t max,
                                                                   u64 salt) noexcept {
    WalkMemories* memories = t.walks;   // none yet: the first capture walks (and makes them)
    if (t.deferring || !memories || st.unloading.load(acquire) != 0) return 0;
    u64 key = ((regs.pc ^ (regs.sp << 17) ^ first) * 0x9E3779B97F4A7C15ull) & ~u64(1);
    u64& seen = memories->deferred_site[key >> 55];   // (kDeferredSites: 9 bits)
    if (seen == key) {   // deferred before: walk it this time, so that it is remembered
        seen = key | 1;
        return 0;
    }
    std::uintptr_t lo, hi;
    if (!thread_stack(t, lo, hi) || regs.sp < lo || regs.sp >= hi) return 0;
    if (t.walk_top == 0) t.walk_top = learn_walk_top(regs, hi, salt);
    std::uintptr_t top = t.walk_top;
    if (top <= regs.sp || top > hi || top - regs.sp > kDeferMaxWords * 8) return 0;
    std::size_t words = (top - regs.sp + 7) / 8;
    PendingStacks* area = s.pending;
    if (!area) {
        area = static_cast<PendingStacks*>(os_alloc(sizeof(PendingStacks)));
        if (!area) return 0;
        s.pending = area;
    }
    if (area->count == kPendingStacks) {
        settle_pending(t, s, true);
        if (area->count != 0) return 0;
    }
    ++t.deferring;   // a signal handler's birth meanwhile captures at once
    std::atomic_signal_fence(std::memory_order_seq_cst);
    u32 index = area->count;
    area->record[index] = PendingStack{0, regs.pc, regs.sp, regs.fp, first, 0, u32(max), area->used, u32(words)};
    copy_stack_words(area->words + area->used, regs.sp, words);
    area->used += u32(words);
    area->count = index + 1;
    if ((seen & ~u64(1)) != key) seen = key;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    --t.deferring;
    ++t.deferred;   // (for tests)
    return kPendingBase + index;
}

// capture_for_block's walk and interning: what a capture that is not a remembered walk needs
// (the frame buffer, the bounds, the unwinders). `regs` are capture_for_block's, whose frame is
// live while this runs: passing their address also keeps the call from being a tail call, which
// would pop the very frame they describe.
LEAKSCOPE_NO_SANITIZE_ADDRESS LEAKSCOPE_NOINLINE u32 capture_walked(ThreadState& t, std::uintptr_t first,
                                                                    const WalkRegs& regs) noexcept {
    std::uintptr_t frames[kMaxStackDepth];
    WalkResult walk{0, nullptr};
    std::size_t max = capture_depth();
    auto how = Unwinder(st.unwinder.load(relaxed));
    std::size_t n = how == Unwinder::fast ? capture_fast_from(t, regs, first, frames, max, walk, false)
                                          : capture(t, how, first, frames, max, walk);
    if (walk.known_id) return walk.known_id;
    u32 id = intern_stack(frames, n);
    if (id >= kPendingBase) id = 0;   // a header could not tell it from a deferred capture
    if (walk.stored) walk.stored->stack_id = id;   // the next identical walk reuses it
    return id;
}
// A capture that is no remembered walk: deferred (see defer_capture) or walked.
LEAKSCOPE_NO_SANITIZE_ADDRESS LEAKSCOPE_NOINLINE u32 capture_missed(ThreadState& t, std::uintptr_t first, const WalkRegs& regs,
                                                                    Slot* defer_to) noexcept {
#if LEAKSCOPE_FAST_UNWINDER
    if (defer_to && Unwinder(st.unwinder.load(relaxed)) == Unwinder::fast)
        if (u32 deferred = defer_capture(t, *defer_to, first, regs, capture_depth(), rule_salt(st.loader_generation.load(acquire))))
            return deferred;
#else
    (void)defer_to;
#endif
    return capture_walked(t, first, regs);
}
// The hook's capture: the stack above the hooked call, `first` being its return address. Most
// captures are a remembered walk (known_walk), tried here with nothing else on the frame; the
// rest goes to capture_walked. What the lean path leaves out, and why that is safe:
//  - the thread's stack bounds: a remembered walk starts on this thread's stack (walks elsewhere
//    are never remembered), so a start frame equal to one is on it again;
//  - dlcloses in flight, and the generation read again afterwards: a walk reads rules, which a
//    dlclose may turn stale while it runs; this path reads only the thread's own memory and its
//    own stack. Its one shared read is the generation: equal to the one the walk was stored
//    under (which was stored only if no dlclose began or ended while it ran), so no object was
//    unloaded since, and the answer is the stack as of that read. An unload after it cannot
//    change the frames of a live stack (their code is running).
// What a block's header keeps: an interned id below kPendingBase (0: none), or, for a birth in
// defer_to (an owner birth in a scope that may defer, see defer_capture), its deferred capture's.
LEAKSCOPE_NO_SANITIZE_ADDRESS LEAKSCOPE_NOINLINE u32 capture_for_block(ThreadState& t, std::uintptr_t first,
                                                                       Slot* defer_to = nullptr) noexcept {
    LEAKSCOPE_WALK_REGS_HERE(regs);
#if LEAKSCOPE_FAST_UNWINDER
    if (LEAKSCOPE_LIKELY(Unwinder(st.unwinder.load(relaxed)) == Unwinder::fast)) {
        u64 salt = rule_salt(st.loader_generation.load(acquire));
        u32 depth = st.depth.load(relaxed);   // unclamped: a depth over the limit never matches
        if (u32 id = known_walk(t, regs, salt, first, depth ? depth : kDefaultStackDepth)) return id;
    }
#endif
    // A copy whose address escapes, made only here: `regs` itself can then stay in registers on
    // the remembered walk's path (this frame is live for the call either way).
    const WalkRegs missed = regs;
    return capture_missed(t, first, missed, defer_to);
}

// -- stacks on demand: names of scopes that leaked --------------------------------------------------
inline u64 name_hash(const char* name) noexcept {
    u64 h = 0xcbf29ce484222325ull;
    for (; *name; ++name) h = (h ^ u8(*name)) * 0x100000001b3ull;
    return h | 1;
}
inline bool name_wanted(u64 h) noexcept {
    for (u32 i = u32(h) & (kWantedNames - 1), probes = 0; probes < kWantedNames; i = (i + 1) & (kWantedNames - 1), ++probes) {
        u64 v = st.wanted[i].load(acquire);
        if (v == h) return true;
        if (v == 0) return false;
    }
    return false;
}
inline void want_name(u64 h) noexcept {
    for (u32 i = u32(h) & (kWantedNames - 1), probes = 0; probes < kWantedNames; i = (i + 1) & (kWantedNames - 1), ++probes) {
        u64 v = st.wanted[i].load(acquire);
        if (v == h) return;
        if (v == 0 && st.wanted[i].compare_exchange_strong(v, h, acq_rel)) return;
        if (v == h) return;
    }
}
// Whether a scope opening now with this name captures stacks for its births.
inline bool scope_wants_stacks(const char* name) noexcept {
    switch (StackMode(st.mode.load(relaxed))) {
        case StackMode::on: return true;
        case StackMode::off: return false;
        default: return name_wanted(name_hash(name));
    }
}

// ---- the hook's slow paths ------------------------------------------------------------------
// The scope this thread's births count for: its own (or adopted) one, else an open all-scope.
LEAKSCOPE_HOT_INLINE u64 counting_scope(const ThreadState& t) noexcept {
    return t.current ? t.current : g.all_scope.load(acquire);
}
inline bool counting_frees(const ThreadState& t, u32 mode) noexcept {
    return (t.current != 0 || (mode & kAllScopeOpen)) && !t.internal;
}

inline bool is_ancestor_or_self(u32 ancestor, u32 scope) noexcept {
    for (u32 x = scope; x; x = slot_ref(x).parent)
        if (x == ancestor) return true;
    return false;
}

// The minus side: an older block (not born in the scope or below it) freed by a counted thread.
inline void count_released(ThreadState& t, u32 born_in, u64 bytes) noexcept {
    u64 handle = counting_scope(t);
    u32 scope = slot_of(handle);
    // Only the first hop can be stale; every parent is held by its child.
    if (scope == 0 || slot_ref(scope).generation.load(relaxed) != generation_of(handle)) return;
    for (u32 a = scope; a; a = slot_ref(a).parent) {
        if (born_in && is_ancestor_or_self(a, born_in)) break;
        Slot& s = slot_ref(a);
        if (owned_here(s, t)) {
            s.owner_released_blocks.store(s.owner_released_blocks.load(relaxed) + 1, relaxed);
            s.owner_released_bytes.store(s.owner_released_bytes.load(relaxed) + bytes, relaxed);
        } else {
            s.remote_released_blocks.fetch_add(1, relaxed);
            s.remote_released_bytes.fetch_add(bytes, relaxed);
        }
    }
}

// ---- block headers: how a tracked block is recognised ----------------------------------------
// A block born in a scope is allocated 16 bytes larger; the 16 bytes in front of it say where it
// was born (scope, position in the scope's log) and what it is (size, stack). delete reads them
// for every block once any exists. A block with no header (born outside every scope, before the
// hook, by malloc) has glibc's chunk header or a neighbour's bytes there, so the header is only a
// claim: the birth's log entry decides. Entries are cleared when their block dies, so a live entry
// equal to the block's address proves the block is that birth. This costs no lookup table (no
// shared write on the hot path: the owner's log is its own) and 24 bytes per block (16 + the
// 8-byte entry). Blocks whose header cannot be placed (alignment of a page or more, 1 TiB) go to
// the address-keyed side table, as do blocks reported by record_allocation.
struct BlockHeader { u64 where, what; };
constexpr std::size_t kHeaderBytes = 16;
constexpr u32 kDetachedScope = kMaxScopeSlots;           // ignore()d: logged in g.detached
constexpr u64 kMaxHeaderSize = (u64(1) << 40) - 1;
constexpr u64 kUncounted = u64(1) << 62;                 // what: leakscope's own, never in stats
constexpr u64 kRawBelow = u64(1) << 63;                  // what: malloc's pointer is at block - 24
constexpr std::uintptr_t kExternal = std::uintptr_t(1) << 63;   // log value of a side-table block

// An 8-bit tag of the address, so most headerless blocks are told apart without a log lookup.
// Seeded by where the tracker's globals were loaded (ASLR): constant for the process lifetime.
inline u64 header_tag(std::uintptr_t p) noexcept {
    u64 seed = reinterpret_cast<std::uintptr_t>(&g);
    return (((u64(p) >> 4) ^ seed) * 0x9E3779B97F4A7C15ull) >> 56;
}
inline u64 header_where(u32 scope, u32 seq, std::uintptr_t p) noexcept {
    return u64(seq) << 32 | u64(scope) << 8 | header_tag(p);
}
inline u32 where_scope(u64 where) noexcept { return u32(where >> 8) & 0xffffffu; }
inline u32 where_seq(u64 where) noexcept { return u32(where >> 32); }
inline bool header_tag_matches(std::uintptr_t p, u64 where) noexcept { return (where & 0xff) == header_tag(p); }

// The 16 bytes in front of any block given to delete. They belong to the block's malloc chunk
// header or to a neighbour that another thread may be writing: reading them is not a bug the
// sanitizers should report, and cannot fault, since they are on the block's own page (a block
// starting a page is never given a header, and its header is never read).
#if defined(__clang__) || defined(__GNUC__)
#define LEAKSCOPE_FOREIGN_READ __attribute__((no_sanitize_address, no_sanitize("thread")))
#else
#define LEAKSCOPE_FOREIGN_READ
#endif
using u64_alias = u64 __attribute__((may_alias));
LEAKSCOPE_FOREIGN_READ inline BlockHeader read_header(std::uintptr_t p) noexcept {
    const volatile u64_alias* w = reinterpret_cast<const volatile u64_alias*>(p - kHeaderBytes);
    return BlockHeader{w[0], w[1]};
}
inline bool may_have_header(std::uintptr_t p) noexcept { return (p & 4095u) != 0; }
// A chunk whose block would start a page, so can carry no header. Freed, it would be the next
// chunk malloc hands out for its size (tcache and fastbins are last in, first out), and every
// later birth of that size would be moved again: 10 % of the births in bench/tools/churn.cpp.
// So a registered thread keeps such chunks (up to 64 KiB each) until it exits or the program
// does; each takes a page start out of circulation for good, so a heap needs at most one per page
// it spans. The budget grows with the thread's tracked births (1/64 of their bytes, at least
// kParkedBytes): a fixed one ran out under a big tracked heap (~1,400 page starts: ~120,000 blocks
// of 32 bytes), and from then on a freed page-start chunk came back at every birth of its size,
// each taking the slow path and three mallocs (2,700 instructions a pair instead of 400).
constexpr u64 kParkedBytes = 64 * 1024;
inline u64 parked_budget(const ThreadState& t) noexcept {
    return std::max<u64>(kParkedBytes, t.born_bytes.load(relaxed) / 64);
}
inline void park_chunk(ThreadState& t, void* raw, std::size_t bytes) noexcept {
    if (bytes > kParkedBytes || t.parked_bytes + bytes > parked_budget(t) || !counts_locally(t)) {
        std::free(raw);
        return;
    }
    *static_cast<void**>(raw) = t.parked;
    t.parked = raw;
    t.parked_bytes += bytes;
}
inline void free_parked_chunks(ThreadState& t) noexcept {
    while (void* raw = t.parked) {
        t.parked = *static_cast<void**>(raw);
        std::free(raw);
    }
    t.parked_bytes = 0;
}
inline void write_header_what(std::uintptr_t p, u64 what) noexcept { reinterpret_cast<u64_alias*>(p - 8)[0] = what; }
inline void write_header_where(std::uintptr_t p, u64 where) noexcept { reinterpret_cast<u64_alias*>(p - 16)[0] = where; }
inline void* raw_of(std::uintptr_t p, u64 what) noexcept {
    if (what & kRawBelow) return reinterpret_cast<void*>(reinterpret_cast<const u64_alias*>(p - 24)[0]);
    return reinterpret_cast<void*>(p - kHeaderBytes);
}
// The interned stack a header names (0: none, or a deferred capture not settled yet).
inline u32 header_stack(u64 what) noexcept {
    u32 id = u32(what >> 40) & kMaxHeaderStack;
    return id < kPendingBase ? id : 0;
}
// A deferred capture's birth took place: its block and log position (an owner birth).
inline void bind_pending(Slot& s, u32 stack, std::uintptr_t p, u32 seq) noexcept {
    PendingStack& r = s.pending->record[stack - kPendingBase];
    r.seq = seq;
    r.block = p;
}
// Walks the copies of s's deferred captures whose blocks are still alive and writes what they
// interned as into their headers; the area is empty afterwards. Only on the owner thread (its
// births write the area without a lock; elsewhere a no-op), under the slot's lock: a death on
// another thread waits, so no header is written after its block was freed. in_birth: inside a birth, which must not
// wait for the lock (a signal handler's birth may interrupt this thread holding it): the area
// stays as it is if the lock is taken.
LEAKSCOPE_NOINLINE void settle_pending(ThreadState& t, Slot& s, bool in_birth) noexcept {
    PendingStacks* area = s.pending;
    if (!area || area->count == 0 || s.owner.load(relaxed) != t.serial) return;   // (another thread's copies)
    if (in_birth ? !s.lock.try_lock() : (s.lock.lock(), false)) return;
    ++t.deferring;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    u64 salt = rule_salt(st.loader_generation.load(acquire));
    for (u32 i = 0; i < area->count; ++i) {
        const PendingStack& r = area->record[i];
        if (!r.block) continue;   // its birth did not happen
        // Alive and still that birth: its log entry is the block, its header names this record.
        LogChunkRef* c = log_chunk_ref(s, r.seq / kLogChunk, false);
        const std::uintptr_t* entries = c ? c->entries.load(acquire) : nullptr;
        if (!entries || __atomic_load_n(&entries[r.seq % kLogChunk], __ATOMIC_RELAXED) != r.block) continue;
        u64 what = read_header(r.block).what;
        if ((u32(what >> 40) & kMaxHeaderStack) != kPendingBase + i) continue;
        std::uintptr_t frames[kMaxStackDepth];
        std::size_t n = walk_pending(r, area->words + r.offset, frames, r.max, salt);
        u32 id = intern_stack(frames, n);
        if (id >= kPendingBase) id = 0;
        u64 settled = (what & ~(u64(kMaxHeaderStack) << 40)) | u64(id) << 40;
        __atomic_store_n(reinterpret_cast<u64_alias*>(r.block - 8), settled, __ATOMIC_RELAXED);
        st.settled.fetch_add(1, relaxed);
    }
    area->count = 0;
    area->used = 0;
    s.lock.unlock();
    std::atomic_signal_fence(std::memory_order_seq_cst);
    --t.deferring;
}

inline void site_death(ThreadState& t, u64 what) noexcept {
    if (u32 stack = header_stack(what)) site_change(t, stack, -i64(what & kMaxHeaderSize), -1);
}
// What an owner death does once its log entry is cleared: counts, per-site totals, the chunk, free.
LEAKSCOPE_NOINLINE void owner_death_counted(ThreadState& t, Slot& s, LogChunkRef* c, u32 ci, std::uintptr_t p, u64 what) noexcept {
    count_death(t, what & kMaxHeaderSize);
    if (LEAKSCOPE_UNLIKELY(s.site_totals)) site_death(t, what);
    s.owner_live.store(s.owner_live.load(relaxed) - 1, relaxed);
    if (--c->live == 0) {
        if (is_current_chunk(s, ci))
            s.log_size = ci * kLogChunk;   // (what retire_log_chunk does for it, inline)
        else
            retire_log_chunk(s, c, ci);
    }
    std::free(raw_of(p, what));
}
// An owner death on the owner thread: true, with its entry cleared, its counts moved and the block
// freed, when entry `seq` of s's owner log is `p` (the proof the block is that birth). The common
// case — counted locally, its site's change already pending, no peak to publish, its chunk not
// retired — is done here with free() as the only call, so that the caller needs few saved
// registers; the rest goes to owner_death_counted.
LEAKSCOPE_HOT_INLINE bool owner_log_death(ThreadState& t, Slot& s, u32 seq, std::uintptr_t p, const BlockHeader& h) noexcept {
    u32 ci = seq / kLogChunk;
    LogChunkRef* c = log_chunk_ref(s, ci, false);
    std::uintptr_t* entries = c ? c->entries.load(relaxed) : nullptr;
    if (LEAKSCOPE_UNLIKELY(!entries || entries[seq % kLogChunk] != p)) return false;
    __atomic_store_n(&entries[seq % kLogChunk], std::uintptr_t(0), __ATOMIC_RELAXED);
    i64 size = i64(h.what & kMaxHeaderSize);
    u32 stack = s.site_totals ? header_stack(h.what) : 0;
    SiteDelta* site = stack ? site_delta_of(t, stack) : nullptr;
    if (LEAKSCOPE_UNLIKELY(!counts_locally(t) || (stack && !site) || t.pending_bytes - size <= -LEAKSCOPE_PEAK_GRANULARITY ||
                           (c->live == 1 && !is_current_chunk(s, ci)))) {
        owner_death_counted(t, s, c, ci, p, h.what);
        return true;
    }
    count_death_unpublished(t, u64(size));   // (the publish ruled out above)
    if (site) {   // site_death's common case
        site->bytes -= size;
        site->blocks -= 1;
    }
    s.owner_live.store(s.owner_live.load(relaxed) - 1, relaxed);
    if (--c->live == 0) s.log_size = ci * kLogChunk;   // the current chunk, emptied: births start it again
    std::free(raw_of(p, h.what));
    return true;
}
inline Record record_of_header(std::uintptr_t p, u32 scope, u32 seq) noexcept {
    u64 what = read_header(p).what;
    return Record{p, what & kMaxHeaderSize, scope, seq, header_stack(what), 0};
}

// A block was born in slot s: stats, and the per-site totals when s keeps them; a sampled block
// counts as the blocks and bytes it stands for. (The site first: counting the birth may publish
// a new peak and copy the sites.)
LEAKSCOPE_HOT_INLINE void count_born(ThreadState& t, const Slot& s, u32 stack, u64 size) noexcept {
    if (LEAKSCOPE_LIKELY(!s.site_totals)) {
        count_birth(t, size);
        return;
    }
    Weight w = sample_weight(size, s.sample_bytes.load(relaxed));
    if (stack) site_change(t, stack, i64(w.bytes), w.blocks);
    count_birth(t, w.bytes, w.blocks);
}

// A block died (its log entry already cleared): stats, the minus side of the scope this thread
// counts for, and the reference it held on the scope it was born in.
inline void finish_death(ThreadState& t, u32 scope, u32 seq, u64 size, u32 stack, u32 mode) noexcept {
    const Slot& s = slot_ref(scope);
    if (LEAKSCOPE_UNLIKELY(s.site_totals)) {
        Weight w = sample_weight(size, s.sample_bytes.load(relaxed));
        if (stack) site_change(t, stack, -i64(w.bytes), -w.blocks);
        count_death(t, w.bytes, w.blocks);
    } else {
        count_death(t, size);
    }
    // Born in the scope this thread counts for (the common case): not an older block.
    if (counting_frees(t, mode) && scope != slot_of(t.current)) count_released(t, scope, size);
    release_ref(t, scope, seq);
}

// ---- the side table: blocks without a header ---------------------------------------------------
inline void side_birth(ThreadState& t, u64 handle, std::uintptr_t addr, u64 size, std::uintptr_t caller) noexcept {
    u32 seq = 0;
    if (!take_ref(t, handle, addr | kExternal, seq)) return;
    u32 scope = slot_of(handle);
    Record rec{addr, size, scope, seq, slot_ref(scope).stacks ? capture_for_block(t, caller) : 0, 0};
    Record stale;   // written only when had_stale
    bool had_stale = false;
    if (!registry_insert(rec, stale, had_stale)) {
        // Out of tracker memory: the block goes untracked, its scope reference is undone.
        clear_birth(t, slot_ref(scope), seq, addr | kExternal);
        release_ref(t, scope, seq);
        return;
    }
    count_born(t, slot_ref(scope), rec.stack, size);
    if (had_stale && clear_birth(t, slot_ref(stale.scope), stale.seq, addr | kExternal))   // freed behind our back
        finish_death(t, stale.scope, stale.seq, stale.size, stale.stack, 0);
}
inline bool side_death(ThreadState& t, std::uintptr_t addr, u32 mode) noexcept {
    Record rec;   // read only when found
    if (!registry_find(addr, rec, Edit::erase)) return false;
    if (clear_birth(t, slot_ref(rec.scope), rec.seq, addr | kExternal))
        finish_death(t, rec.scope, rec.seq, rec.size, rec.stack, mode);
    return true;
}

// ---- the detached log: blocks that never count --------------------------------------------------
// Blocks born under Ignore or inside leakscope itself while a scope counts the thread, and blocks
// given to ignore(): they carry a header like any counted block (so their delete is recognised,
// and never counted on anyone's minus side) but are logged here, in no scope.
// Logs `p` and writes its header's `where`; false when out of tracker memory.
inline bool detach(std::uintptr_t p) noexcept {
    SpinGuard guard(g.detached_lock);
    if (g.detached.size == g.detached.capacity && g.detached_live < g.detached.size / 2) {
        // Full, and mostly of dead entries: compact rather than grow (so the log stays within
        // twice its live blocks), telling each moved block its new place.
        std::size_t kept = 0;
        for (std::size_t i = 0; i < g.detached.size; ++i) {
            std::uintptr_t a = g.detached.data[i];
            if (!a) continue;
            write_header_where(a, header_where(kDetachedScope, u32(kept), a));
            g.detached.data[kept++] = a;
        }
        g.detached.size = kept;
    }
    u32 index = u32(g.detached.size);
    if (!g.detached.push(p)) return false;
    ++g.detached_live;
    write_header_where(p, header_where(kDetachedScope, index, p));
    return true;
}

// ---- track=all: every thread's births outside every scope go to its heap slot ------------------
// A heap slot is a scope that is never reported: it opens at the thread's first birth outside a
// scope and closes at the thread's exit (its blocks then die as any closed scope's do). The whole
// heap is then every slot's births, so one mechanism serves scopes, snapshots and the exit report.
inline u64 open_heap_slot(ThreadState& t, u64 sample_every) noexcept {
    ensure_registered(t);
    if (!counts_locally(t)) return 0;   // the thread is exiting: its births go untracked
    u32 index = slot_allocate(t);
    if (index == 0) return 0;
    Slot& s = slot_ref(index);
    slot_open(s, t, false, scope_wants_stacks(""));
    s.sample_bytes.store(sample_every, relaxed);
    s.closed.store(0, release);
    return handle_of(index, s.generation.load(relaxed));
}
// A heap slot closes like a scope: its live blocks stay known until they die.
inline void close_heap_slot(ThreadState& t, u64 handle) noexcept {
    u32 heap = slot_of(handle);
    Slot& s = slot_ref(heap);
    {
        SpinGuard closing(s.lock);
        s.closed.store(1, relaxed);
    }
    slot_drop_open_bias(t, heap);
}
// Whether a heap slot (or sample slot) was opened under the stacks= setting in force now. A heap
// slot lives as long as its thread, so when the setting changes (which also ends every lane) the
// thread's next birth outside a scope closes it and opens another: blocks born from then on carry
// stacks, or do not, as asked.
inline bool heap_slot_current(u64 handle) noexcept { return slot_ref(slot_of(handle)).stacks == scope_wants_stacks(""); }
LEAKSCOPE_NOINLINE u64 next_heap_slot(ThreadState& t) noexcept {
    if (t.heap) close_heap_slot(t, t.heap);
    t.heap = open_heap_slot(t, 0);
    return t.heap;
}
LEAKSCOPE_HOT_INLINE u64 heap_slot(ThreadState& t) noexcept {
    return t.heap && heap_slot_current(t.heap) ? t.heap : next_heap_slot(t);
}
// sample_bytes: the allocation reached a sample point. Its block goes to the thread's sample slot,
// which records the interval its blocks were sampled with (a new interval: a new slot).
LEAKSCOPE_NOINLINE u64 sampled_slot(ThreadState& t, std::size_t size) noexcept {
    u64 every = g.sample_bytes.load(relaxed);
    if (every == 0) return 0;
    if (t.sample_rng == 0) {
        // First sample point of this thread: the countdown starts here, from a per-thread seed.
        struct timespec now{};
        ::clock_gettime(CLOCK_MONOTONIC, &now);
        t.sample_rng = (u64(reinterpret_cast<std::uintptr_t>(&t)) * 0x9E3779B97F4A7C15ull) ^ u64(now.tv_nsec) ^
                       (u64(now.tv_sec) << 32) ^ 1;
        t.sample_countdown += next_sample_distance(t, every);
        if (t.sample_countdown > 0) return 0;
    }
    (void)size;
    t.sample_countdown = next_sample_distance(t, every);   // memoryless: the next point from here
    if (t.sample_heap && (slot_ref(slot_of(t.sample_heap)).sample_bytes.load(relaxed) != every || !heap_slot_current(t.sample_heap))) {
        close_heap_slot(t, t.sample_heap);
        t.sample_heap = 0;
    }
    if (!t.sample_heap) t.sample_heap = open_heap_slot(t, every);
    return t.sample_heap;
}
// Outside every scope with sample_bytes on: most allocations only count down.
LEAKSCOPE_HOT_INLINE u64 sample_point(ThreadState& t, std::size_t size) noexcept {
    t.sample_countdown -= i64(size ? size : 1);
    if (LEAKSCOPE_LIKELY(t.sample_countdown > 0)) return 0;
    return sampled_slot(t, size);
}

// ---- births -------------------------------------------------------------------------------------
LEAKSCOPE_NOINLINE void count_allocation_slow(ThreadState& t) noexcept {
    if (t.registry_index == 0) register_thread(t);
    if (counts_locally(t))
        t.allocations.store(t.allocations.load(relaxed) + 1, relaxed);
    else
        g.retired_allocations.fetch_add(1, relaxed);
}

// malloc, or posix_memalign for extended alignment, with operator new's failure semantics: the
// new-handler loop, then bad_alloc or null.
LEAKSCOPE_NOINLINE void* raw_allocate(std::size_t request, std::size_t alignment, bool nothrow) {
    if (alignment & (alignment - 1)) {   // not a power of two: no allocation can satisfy it
        if (nothrow) return nullptr;
        throw std::bad_alloc();
    }
    for (;;) {
        void* p = nullptr;
        if (alignment <= __STDCPP_DEFAULT_NEW_ALIGNMENT__) {
            p = std::malloc(request);
        } else if (::posix_memalign(&p, std::max(alignment, sizeof(void*)), request) != 0) {
            p = nullptr;
        }
        if (LEAKSCOPE_LIKELY(p != nullptr)) return p;
        std::new_handler handler = std::get_new_handler();
        if (!handler) {
            if (nothrow) return nullptr;
            throw std::bad_alloc();
        }
        if (nothrow) {
            try {
                handler();
            } catch (...) {
                return nullptr;
            }
        } else {
            handler();
        }
    }
}

// A block may carry a header from now on: every delete looks in front of its block.
inline void mark_ever_tracked() noexcept {
    if (LEAKSCOPE_UNLIKELY((g.mode.load(relaxed) & kEverTracked) == 0)) g.mode.fetch_or(kEverTracked, relaxed);
}

// Points the thread's lane at slot s (index `scope`), for t.current and g.mode as they are now.
// The lane is off while its fields change: a signal handler's birth meanwhile goes the slow way.
inline void set_lane(ThreadState& t, Slot& s, u32 scope, u32 generation) noexcept {
    t.lane = nullptr;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t.lane_current = t.current;
    t.lane_mode = g.mode.load(relaxed);
    t.lane_scope = scope;
    t.lane_generation = generation;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t.lane = &s;
}

// A birth while a scope counts this thread: a block with a header (see above) or, where none
// fits, a side-table record. `handle` 0: the birth counts for no one (Ignore, leakscope's own)
// and goes to the detached log. `caller`: the return address of the replaced operator, where
// the block's stack starts. (Inline in allocate_slow, its one caller: one call less per birth.)
LEAKSCOPE_HOT_INLINE void* allocate_counted(ThreadState& t, u64 handle, std::size_t size, std::size_t alignment,
                                            bool nothrow, std::uintptr_t caller) {
    u32 scope = slot_of(handle);
    if (alignment < 4096 && size <= kMaxHeaderSize) {
        std::size_t pad = alignment > kHeaderBytes ? alignment : kHeaderBytes;
        auto raw = static_cast<char*>(alignment <= __STDCPP_DEFAULT_NEW_ALIGNMENT__ ? std::malloc(size + pad) : nullptr);
        if (LEAKSCOPE_UNLIKELY(!raw)) raw = static_cast<char*>(raw_allocate(size + pad, alignment, nothrow));
        if (!raw) return nullptr;
        char* block = raw + pad;
        if (!may_have_header(reinterpret_cast<std::uintptr_t>(block))) {
            // The block would start a page: move it one pad further (two pads cannot both start
            // a page, as pad < 4096).
            park_chunk(t, raw, size + pad);
            raw = static_cast<char*>(raw_allocate(size + 2 * pad, alignment, nothrow));
            if (!raw) return nullptr;
            block = raw + pad;
            if (!may_have_header(reinterpret_cast<std::uintptr_t>(block))) block += pad;
        }
        auto p = reinterpret_cast<std::uintptr_t>(block);
        bool raw_below = block != raw + kHeaderBytes;
        if (raw_below) reinterpret_cast<u64_alias*>(p - 24)[0] = reinterpret_cast<std::uintptr_t>(raw);
        if (handle == 0) {
            write_header_what(p, size | (t.internal ? kUncounted : 0) | (raw_below ? kRawBelow : 0));
            if (LEAKSCOPE_UNLIKELY(!detach(p))) {
                std::free(raw);
                return raw_allocate(size ? size : 1, alignment, nothrow);
            }
            if (!t.internal) count_birth(t, size);
        } else {
            Slot& born_in = slot_ref(scope);
            // (never allocates; an owner birth in a scope without per-site totals may defer it)
            Slot* defer_to = !born_in.site_totals && handle == t.current && owned_here(born_in, t) ? &born_in : nullptr;
            u32 stack = born_in.stacks ? capture_for_block(t, caller, defer_to) : 0;
            // `what` first: a report may read it as soon as the birth is logged.
            write_header_what(p, size | u64(stack) << 40 | (raw_below ? kRawBelow : 0));
            u32 seq = 0;
            if (LEAKSCOPE_UNLIKELY(!take_ref(t, handle, p, seq, born_in))) {
                std::free(raw);   // the scope closed meanwhile: an ordinary block
                return raw_allocate(size ? size : 1, alignment, nothrow);
            }
            write_header_where(p, header_where(scope, seq, p));
            if (LEAKSCOPE_UNLIKELY(stack >= kPendingBase) && !(seq & kSharedSeq)) bind_pending(born_in, stack, p, seq);
            count_born(t, born_in, stack, size);
            mark_ever_tracked();
            // An owner birth in the scope counting this thread (or its heap slot): the next ones
            // take the lane while nothing that decided this changes.
            if (!(seq & kSharedSeq) && (handle == t.current || (t.current == 0 && handle == t.heap))) {
                set_lane(t, born_in, scope, generation_of(handle));
            }
            return block;
        }
        mark_ever_tracked();
        return block;
    }
    void* p = raw_allocate(size ? size : 1, alignment, nothrow);
    if (p && handle) side_birth(t, handle, reinterpret_cast<std::uintptr_t>(p), size, caller);
    return p;
}

// ---- deaths -------------------------------------------------------------------------------------
// ignore()d blocks keep their header (their memory starts below them) in one global log.
inline bool detached_death(ThreadState& t, std::uintptr_t p) noexcept {
    u64 size = 0;
    {
        SpinGuard guard(g.detached_lock);
        u32 i = where_seq(read_header(p).where);   // re-read: compaction may have moved it
        if (i >= g.detached.size || g.detached.data[i] != p) return false;
        g.detached.data[i] = 0;
        --g.detached_live;
        size = read_header(p).what;
    }
    if (!(size & kUncounted)) count_death(t, size & kMaxHeaderSize);
    return true;
}

// Frees a block given to delete once anything has been tracked. `claimed`: a header of ours is in
// front of it (a claim only: its birth's log entry decides).
LEAKSCOPE_NOINLINE void deallocate_watched(ThreadState& t, void* block, std::size_t size_hint, u32 mode, bool claimed) noexcept {
    auto p = reinterpret_cast<std::uintptr_t>(block);
    {
        BlockHeader h = claimed ? read_header(p) : BlockHeader{};
        if (claimed) {
            u32 scope = where_scope(h.where), seq = where_seq(h.where);
            // The common case first: a block born in this thread's own open scope dies there (or,
            // with track=all, in its heap slot while no scope counts this thread's frees).
            // (scope 0 is no slot: bytes in front of an untracked block may read as it, while this
            // thread has no scope or heap slot, i.e. slot 0 too.)
            if (scope != 0 && (scope == slot_of(t.current) || (scope == slot_of(t.heap) && !counting_frees(t, mode))) &&
                !(seq & kSharedSeq)) {
                Slot& s = slot_ref(scope);
                if (owned_here(s, t) && owner_log_death(t, s, seq, p, h)) return;
            }
            bool ours = false;
            if (scope == kDetachedScope) {
                ours = detached_death(t, p);
            } else if (Slot* s = slot_at(scope)) {
                ours = clear_birth(t, *s, seq, p);
                if (ours) finish_death(t, scope, seq, h.what & kMaxHeaderSize, header_stack(h.what), mode);
            }
            if (ours) {
                std::free(raw_of(p, h.what));
                return;
            }
        }
    }
    if ((mode & kSideTable) && side_death(t, p, mode)) {
        std::free(block);
        return;
    }
    if (counting_frees(t, mode)) count_released(t, 0, size_hint ? size_hint : ::malloc_usable_size(block));
    std::free(block);
}

// ---- enumerating a scope's leftovers: from its own birth logs, never a heap scan ---------------
// Collects under the scope's lock (a death on another thread waits, so no header is read from a
// block freed meanwhile) into tracker memory, then visits without it.
// `generation`: for a child, the incarnation its parent logged (checked under the child's lock:
// a child whose leftovers all died meanwhile may have been freed and reused).
inline void collect_leftovers(u32 scope, OsVector<Record>& out, const u32* generation = nullptr) noexcept {
    Slot& s = slot_ref(scope);
    SpinGuard guard(s.lock);
    if (generation && s.generation.load(relaxed) != *generation) return;
    for (u32 ci = 0; ci < s.log_chunks.load(relaxed); ++ci) {
        LogChunkRef* c = log_chunk_ref(s, ci, false);
        const std::uintptr_t* entries = c ? c->entries.load(acquire) : nullptr;
        if (!entries) continue;
        // Chunks before the current one are full; the current one is used up to log_size.
        u32 used = is_current_chunk(s, ci) ? s.log_size - ci * kLogChunk : kLogChunk;
        for (u32 i = 0; i < used; ++i) {
            u32 seq = ci * kLogChunk + i;
            std::uintptr_t v = __atomic_load_n(&entries[i], __ATOMIC_RELAXED);
            if (v == 0) continue;
            Record rec{};
            if (!(v & kExternal))
                out.push(record_of_header(v, scope, seq));
            else if (registry_find(v & ~kExternal, rec, Edit::none) && rec.scope == scope && rec.seq == seq)
                out.push(rec);
        }
    }
    for (std::size_t i = 0; i < s.shared.size; ++i) {
        const SharedEntry& e = s.shared.data[i];
        Record rec{};
        if (e.addr == 0 && e.seq == kNoSeq) {
            // A child scope that closed with leftovers; its slot is reused only after they died.
            collect_leftovers(e.scope, out, &e.generation);
        } else if (e.addr && !(e.addr & kExternal)) {
            out.push(record_of_header(e.addr, scope, e.seq));
        } else if (e.addr && registry_find(e.addr & ~kExternal, rec, Edit::none) && rec.scope == scope && rec.seq == e.seq) {
            out.push(rec);
        }
    }
}
template <class F>
void for_each_leftover(u32 scope, F&& visit) noexcept {
    // The thread's scratch is kept: a scope per request that leaks must not cost an mmap.
    ThreadState& t = tls;
    OsVector<Record> local{};
    bool own = t.leftovers_busy == 0;
    OsVector<Record>& found = own ? t.leftovers : local;
    ++t.leftovers_busy;
    found.size = 0;
    collect_leftovers(scope, found);
    for (std::size_t i = 0; i < found.size; ++i) visit(static_cast<const Record&>(found.data[i]));
    found.size = 0;
    --t.leftovers_busy;
    if (!own || found.capacity > (std::size_t(1) << 16)) found.release();   // a huge one goes back
}

// A closed child's leftovers, seen by its parent: the parent logs the child itself.
inline SharedEntry child_entry(u32 child, u32 generation) noexcept { return SharedEntry{0, child, kNoSeq, generation, 0}; }

// ---- the whole heap: every slot's births (track=all makes that every block) --------------------
// Reads the 8-byte `what` word of each header without faulting: a slot's owner frees without a
// lock, so a block listed a moment ago may be gone (and its memory unmapped) by the time its
// header is read. process_vm_readv on ourselves reports a bad address instead of faulting;
// where a sandbox forbids it, /proc/self/mem does the same one word at a time.
inline std::atomic<int> vm_readv_forbidden{0};   // 1: process_vm_readv is not allowed here (learnt once)
inline bool forbids_vm_readv(int error) noexcept { return error == EPERM || error == ENOSYS || error == EACCES; }

// One word at a time: process_vm_readv, one iovec per word (a word it cannot read stops the call
// there and is skipped), or /proc/self/mem where that call is not allowed.
inline void read_words_one_by_one(const std::uintptr_t* at, u64* out, bool* ok, std::size_t n) noexcept {
    std::size_t i = 0;
    while (i < n && !vm_readv_forbidden.load(relaxed)) {
        constexpr std::size_t kBatch = 512;
        struct iovec local[kBatch], remote[kBatch];
        std::size_t k = std::min(kBatch, n - i);
        for (std::size_t j = 0; j < k; ++j) {
            local[j] = iovec{&out[i + j], sizeof(u64)};
            remote[j] = iovec{reinterpret_cast<void*>(at[i + j]), sizeof(u64)};
        }
        ssize_t got = ::process_vm_readv(::getpid(), local, k, remote, k, 0);
        if (got < 0 && forbids_vm_readv(errno)) {
            vm_readv_forbidden.store(1, relaxed);
            break;
        }
        std::size_t whole = got < 0 ? 0 : std::size_t(got) / sizeof(u64);
        for (std::size_t j = 0; j < whole; ++j) ok[i + j] = true;
        if (whole < k) ok[i + whole] = false;   // it stopped at an unreadable word: skip that one
        i += whole < k ? whole + 1 : k;
    }
    if (i >= n) return;
    static std::atomic<int> mem_fd{-1};
    int fd = mem_fd.load(acquire);
    if (fd < 0) {
        int opened = ::open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
        int expected = -1;
        if (opened >= 0 && !mem_fd.compare_exchange_strong(expected, opened, acq_rel)) ::close(opened);
        fd = mem_fd.load(acquire);
    }
    for (; i < n; ++i)
        ok[i] = fd >= 0 && ::pread(fd, &out[i], sizeof(u64), off_t(at[i])) == ssize_t(sizeof(u64));
}

// Reads the words at at[0..n) into out (ok: whether each could be read) without faulting on
// memory freed and unmapped meanwhile. A snapshot reads one header per block: a million words,
// mostly in ascending runs (a log lists a heap's blocks in the order they were born), and the
// kernel's cost is per iovec. So words in ascending order at most kRunGap bytes apart are read as
// one range into a scratch buffer. A range the kernel cannot read whole is never split (a transfer
// stops before such an iovec), so its words are then read one by one.
inline void read_words_safely(const std::uintptr_t* at, u64* out, bool* ok, std::size_t n) noexcept {
    constexpr std::uintptr_t kRunGap = 256;         // bytes from one word to the next of a run, at most
    constexpr std::size_t kRunBytes = 16 * 1024;    // a run's span, at most
    constexpr std::size_t kRuns = 128;              // runs per call (their iovecs are on the stack: 6 KiB)
    constexpr std::size_t kScratch = 256 * 1024;    // bytes read per call, at most
    if (vm_readv_forbidden.load(relaxed)) return read_words_one_by_one(at, out, ok, n);
    auto scratch = static_cast<unsigned char*>(n >= 64 ? os_alloc(kScratch) : nullptr);
    if (!scratch) return read_words_one_by_one(at, out, ok, n);
    struct Run {
        std::size_t first, count;   // words at[first .. first + count)
    };
    Run runs[kRuns];
    struct iovec local[kRuns], remote[kRuns];
    std::size_t i = 0;
    while (i < n) {
        // A batch of runs, within kRuns and kScratch.
        std::size_t r = 0, used = 0;
        while (i < n && r < kRuns) {
            std::size_t j = i + 1;
            while (j < n && at[j] > at[j - 1] && at[j] - at[j - 1] <= kRunGap && at[j] + 8 - at[i] <= kRunBytes) ++j;
            std::size_t span = at[j - 1] + 8 - at[i];
            if (used + span > kScratch) break;
            runs[r] = Run{i, j - i};
            local[r] = iovec{scratch + used, span};
            remote[r] = iovec{reinterpret_cast<void*>(at[i]), span};
            used += span;
            ++r;
            i = j;
        }
        std::size_t done = 0;   // runs of the batch handled
        while (done < r) {
            ssize_t got = ::process_vm_readv(::getpid(), local + done, r - done, remote + done, r - done, 0);
            if (got < 0 && forbids_vm_readv(errno)) {   // not allowed here: /proc/self/mem from now on
                vm_readv_forbidden.store(1, relaxed);
                std::size_t from = runs[done].first;
                read_words_one_by_one(at + from, out + from, ok + from, n - from);
                os_free(scratch, kScratch);
                return;
            }
            std::size_t bytes = got < 0 ? 0 : std::size_t(got);
            // Whole runs read: their words from the scratch buffer.
            for (; done < r && bytes >= local[done].iov_len; ++done) {
                bytes -= local[done].iov_len;
                const Run& run = runs[done];
                auto base = static_cast<const unsigned char*>(local[done].iov_base);
                for (std::size_t k = run.first; k < run.first + run.count; ++k) {
                    std::memcpy(&out[k], base + (at[k] - at[run.first]), sizeof(u64));
                    ok[k] = true;
                }
            }
            if (done < r) {   // a run the kernel would not read whole (or no call at all here)
                read_words_one_by_one(at + runs[done].first, out + runs[done].first, ok + runs[done].first,
                                      runs[done].count);
                ++done;
            }
        }
    }
    os_free(scratch, kScratch);
}

// Every live block of every slot (scopes, closed scopes' leftovers, heap slots), from their logs.
// Blocks dying meanwhile may or may not be listed; none is listed twice.
inline void collect_heap(OsVector<Record>& out) noexcept {
    u32 slots;
    {
        SpinGuard guard(g.slot_lock);
        slots = g.slot_count;
    }
    OsVector<std::uintptr_t> at{};
    OsVector<u64> what{};
    OsVector<bool> ok{};
    for (u32 index = 1; index <= slots; ++index) {
        Slot& s = slot_ref(index);
        std::size_t first = out.size;
        {
            SpinGuard guard(s.lock);   // remote deaths wait; the owner's do not (see above)
            for (u32 ci = 0; ci < s.log_chunks.load(acquire); ++ci) {
                LogChunkRef* c = log_chunk_ref(s, ci, false);
                const std::uintptr_t* entries = c ? c->entries.load(acquire) : nullptr;
                if (!entries) continue;
                for (u32 i = 0; i < kLogChunk; ++i) {
                    std::uintptr_t v = __atomic_load_n(&entries[i], __ATOMIC_RELAXED);
                    if (v) out.push(Record{v, 0, index, ci * kLogChunk + i, 0, kNeedsHeader});
                }
            }
            for (std::size_t i = 0; i < s.shared.size; ++i) {
                const SharedEntry& e = s.shared.data[i];
                if (e.addr) out.push(Record{e.addr, 0, index, e.seq, 0, kNeedsHeader});   // (children: own slots)
            }
        }
        // Sizes and stacks: side-table blocks from the table, header blocks from their headers.
        at.size = what.size = ok.size = 0;
        for (std::size_t i = first; i < out.size; ++i) {
            Record& r = out.data[i];
            if (r.addr & kExternal) {
                Record side{};
                if (registry_find(r.addr & ~kExternal, side, Edit::none) && side.scope == index && side.seq == r.seq) {
                    r = side;
                    r.flags = 0;
                } else {
                    r.addr = 0;
                    r.flags = 0;
                }
            } else {
                at.push(r.addr - 8);
                what.push(0);
                ok.push(false);
            }
        }
        if (at.size) read_words_safely(at.data, what.data, ok.data, at.size);
        // Still that birth after the read? Then the block was live while its header was read (its
        // entry is cleared before it is freed), and the entry was not read twice through a log
        // chunk its owner recycled meanwhile.
        auto still_there = [&](const Record& r) noexcept {
            if (r.seq & kSharedSeq) {
                std::size_t k = r.seq & ~kSharedSeq;
                return k < s.shared.size && s.shared.data[k].addr == r.addr;
            }
            LogChunkRef* c = log_chunk_ref(s, r.seq / kLogChunk, false);
            const std::uintptr_t* entries = c ? c->entries.load(acquire) : nullptr;
            return entries && __atomic_load_n(&entries[r.seq % kLogChunk], __ATOMIC_ACQUIRE) == r.addr;
        };
        SpinGuard guard(s.lock);
        // A collected record's flags say how it was tracked: its slot's sample interval (0: exact).
        u32 sampled = u32(s.sample_bytes.load(relaxed));
        std::size_t w = 0, kept = first;
        for (std::size_t i = first; i < out.size; ++i) {
            Record r = out.data[i];
            if (r.flags & kNeedsHeader) {
                // A header block: its `what`, if the block was still there to read.
                bool readable = ok.data[w];
                u64 word = what.data[w++];
                if (!readable || !still_there(r)) continue;
                r.size = word & kMaxHeaderSize;
                r.stack = header_stack(word);
            }
            r.flags = sampled;
            if (r.addr) out.data[kept++] = r;
        }
        out.size = kept;
    }
    at.release();
    what.release();
    ok.release();
}

inline i64 live_count(const Slot& s) noexcept {
    return s.owner_live.load(relaxed) + s.refs.load(acquire) - kOpenBias - i64(s.holds.load(acquire));
}

void dispatch(const Report& report) noexcept;
void build_leftovers(u32 index, Report& out);
bool suppressions_may_apply() noexcept;
// One block, or a sampled block's estimate (`blocks` it stands for, `size` their bytes), or a
// stack's total (peak): what build_sites groups.
struct SiteItem {
    u32 stack;
    u64 size;
    u64 blocks = 1;
    u64 samples = 0;
};
void build_sites(std::vector<SiteItem>& items, Report& out, bool suppress = true);
inline Report leftovers_header(const char* name, const char* file, unsigned line, bool by_exception) {
    Report r;
    r.kind = "leftovers";
    r.scope = name;
    r.file = file ? file : "";
    r.line = line;
    r.by_exception = by_exception;
    return r;
}

// Builds the report of a scope's leftovers (what is live now) and hands it to the writers.
inline void write_leftovers_report(u32 slot, const char* name, const char* file, unsigned line, bool thrown) noexcept {
    InternalGuard internal;
    try {
        Report rep = leftovers_header(name, file, line, thrown);
        build_leftovers(slot, rep);
        if (rep.blocks > 0) dispatch(rep);
    } catch (...) {
        diagnostic("could not build a report (out of memory?)");
    }
}
// A parked report (deferred past an exception, or settling): the scope's identity is in its
// slot, which a hold keeps until the report is written; the hold goes after.
inline void write_parked_report(ThreadState& t, u64 handle) noexcept {
    const Slot& s = slot_ref(slot_of(handle));
    write_leftovers_report(slot_of(handle), s.deferred_name, s.deferred_file, s.deferred_line, s.deferred_thrown != 0);
    drop_ref(t, slot_of(handle));
}

// A scope ended by an exception is reported only once that exception has been handled: while it
// unwinds, the exception object's own allocations (its message string) are still live and would
// be blamed on the scope. The check runs at this thread's next scope, at thread exit and at exit.
// Writes the deferred reports of thread t that are due (all of them with `force`), or with
// `everyone`, every pending one in the process (at exit).
inline void flush_deferred(ThreadState& t, bool force, bool everyone = false) noexcept {
    if (LEAKSCOPE_LIKELY(t.deferred_count == 0) && !everyone) return;
    int uncaught = std::uncaught_exceptions();
    bool handling = std::current_exception() != nullptr;
    for (auto& entry : g.deferred) {
        u64 handle = entry.handle.load(acquire);
        if (handle == 0 || (!everyone && entry.owner.load(relaxed) != t.serial)) continue;
        Slot& s = slot_ref(slot_of(handle));
        if (!force && (handling || uncaught > s.deferred_uncaught)) continue;
        if (entry.handle.exchange(0, acq_rel) != handle) continue;   // claimed elsewhere
        if (entry.owner.load(relaxed) == t.serial && t.deferred_count) --t.deferred_count;
        write_parked_report(t, handle);
    }
}

// Parks a report until the exception has been handled; false when every entry is taken.
inline bool defer_report(ThreadState& t, u64 handle) noexcept {
    for (auto& entry : g.deferred) {
        u64 expected = 0;
        if (entry.handle.load(relaxed) != 0) continue;
        entry.owner.store(t.serial, relaxed);
        if (entry.handle.compare_exchange_strong(expected, handle, acq_rel)) {
            ++t.deferred_count;
            return true;
        }
    }
    return false;
}

// A leakscope thread: every signal blocked (a signal meant for the program, the dump's included,
// goes to one of its threads), named for top and gdb. Its allocations are leakscope's own.
inline bool start_thread(pthread_t& out, void* (*body)(void*), void* arg, const char* name) noexcept {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&out, nullptr, body, arg);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (rc == 0) pthread_setname_np(out, name);
    return rc == 0;
}

// ---- settle_ms: leftovers confirmed off the request thread -------------------------------------
// A scope that ends with leftovers keeps its slot (a hold, as for a deferred report) and parks
// here with a due time; the settler thread reports at that time what is still live (blocks freed
// meanwhile on other threads were hand-offs, not leaks). A queue in tracker memory: any number of
// scopes may wait. At exit every parked report is written at once; each exactly once.
struct Settling { u64 handle, due_ns; };
struct Settler {
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    OsVector<Settling> queue;
    bool started, exiting;
};
LEAKSCOPE_CONSTINIT static Settler settler{PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {}, false, false};

inline u64 monotonic_ns() noexcept {
    struct timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return u64(ts.tv_sec) * 1000000000ull + u64(ts.tv_nsec);
}
// Takes the parked entries due by `now` (all with now = ~0) out of the queue; the caller holds the
// mutex.
inline void take_due(u64 now, OsVector<Settling>& due) noexcept {
    std::size_t kept = 0;
    for (std::size_t i = 0; i < settler.queue.size; ++i) {
        Settling e = settler.queue.data[i];
        if (e.due_ns <= now && due.push(e)) continue;
        settler.queue.data[kept++] = e;
    }
    settler.queue.size = kept;
}
inline void* settler_main(void*) noexcept {
    ThreadState& t = tls;
    ensure_registered(t);
    ++t.internal;   // the reports' allocations are leakscope's own
    OsVector<Settling> due{};
    pthread_mutex_lock(&settler.mutex);
    while (!settler.exiting) {
        u64 now = monotonic_ns(), next = ~u64(0);
        for (std::size_t i = 0; i < settler.queue.size; ++i) next = std::min(next, settler.queue.data[i].due_ns);
        if (next > now) {
            if (next == ~u64(0)) {
                pthread_cond_wait(&settler.wake, &settler.mutex);
            } else {
                // The condition's clock is the real-time one: wait the remaining monotonic time.
                struct timespec until{};
                ::clock_gettime(CLOCK_REALTIME, &until);
                u64 wait = next - now;
                until.tv_sec += time_t(wait / 1000000000ull);
                until.tv_nsec += long(wait % 1000000000ull);
                if (until.tv_nsec >= 1000000000L) {
                    until.tv_sec += 1;
                    until.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&settler.wake, &settler.mutex, &until);
            }
            continue;
        }
        due.size = 0;
        take_due(now, due);
        pthread_mutex_unlock(&settler.mutex);
        for (std::size_t i = 0; i < due.size; ++i) write_parked_report(t, due.data[i].handle);
        pthread_mutex_lock(&settler.mutex);
    }
    pthread_mutex_unlock(&settler.mutex);
    due.release();
    --t.internal;
    return nullptr;
}
// Parks the report of a scope that just closed with leftovers; false: report it now (out of
// tracker memory, no thread, or exiting).
inline bool settle_later(u64 handle, u32 settle_ms) noexcept {
    pthread_mutex_lock(&settler.mutex);
    bool parked = false;
    if (!settler.exiting) {
        if (!settler.started) {
            InternalGuard internal;   // the thread's creation may allocate
            pthread_t thread;
            settler.started = start_thread(thread, settler_main, nullptr, "leakscope-settle");
            if (settler.started) pthread_detach(thread);
        }
        parked = settler.started && settler.queue.push(Settling{handle, monotonic_ns() + u64(settle_ms) * 1000000ull});
        if (parked) pthread_cond_signal(&settler.wake);
    }
    pthread_mutex_unlock(&settler.mutex);
    return parked;
}
// At exit: every parked report now, whatever its due time.
inline void settle_all_now() noexcept {
    OsVector<Settling> due{};
    pthread_mutex_lock(&settler.mutex);
    settler.exiting = true;
    take_due(~u64(0), due);
    pthread_cond_signal(&settler.wake);
    pthread_mutex_unlock(&settler.mutex);
    for (std::size_t i = 0; i < due.size; ++i) write_parked_report(tls, due.data[i].handle);
    due.release();
}

}  // namespace detail

// ============================================================================================
// Public API definitions
// ============================================================================================
using namespace detail;

LeakScope::LeakScope(std::string_view name, Threads threads, const char* file, unsigned line) noexcept
    : file_(file), line_(line) {
    std::size_t n = std::min(name.size(), sizeof name_ - 1);
    if (n) std::memcpy(name_, name.data(), n);   // an empty view may hold a null pointer
    name_[n] = '\0';
    ThreadState& t = tls;
    ensure_registered(t);
    flush_deferred(t, false);
    u32 index = slot_allocate(t);
    if (index == 0) return;   // out of tracker memory: an inert scope
    Slot& s = slot_ref(index);
    slot_open(s, t, threads == Threads::all, t.scopes_without_stacks == 0 && scope_wants_stacks(name_));
    // The enclosing scope sees this one's leftovers: this slot is a reference on it, like a block.
    u64 parent = counting_scope(t);
    u32 seq = 0;
    if (parent && take_ref(t, parent, 0, seq)) s.parent = slot_of(parent);
    s.closed.store(0, release);
    slot_ = index;
    generation_ = s.generation.load(relaxed);
    saved_current_ = t.current;
    t.current = handle_of(index, generation_);
    saved_anchor_ = t.anchor;
    saved_anchor_scope_ = t.anchor_scope;
    saved_anchor_epoch_ = t.anchor_epoch;
    saved_anchor_mark_ = t.anchor_mark;
    set_anchor(t, reinterpret_cast<std::uintptr_t>(this), t.current);
    uncaught_at_open_ = std::uncaught_exceptions();
    open_ = true;
    // From the first birth on, the lane (allocate_counted would set both at that birth; lane_birth
    // leaves kEverTracked alone, and a delete must look for headers once a block may have one).
    mark_ever_tracked();
    set_lane(t, s, index, generation_);
    if (s.threads_all) {
        SpinGuard guard(g.all_lock);
        s.prev_all = u32(g.all_scope.load(relaxed));
        g.all_scope.store(handle_of(index, generation_), release);
        g.mode.fetch_or(kAllScopeOpen, relaxed);
    }
}

LeakScope::~LeakScope() { close(true); }

void LeakScope::dismiss() noexcept { close(false); }

Token LeakScope::token() const noexcept { return open_ ? Token(slot_, generation_) : Token(); }

bool LeakScope::clean() const noexcept {
    if (!open_) return true;
    if (live_count(slot_ref(slot_)) <= 0) return true;
    // Counted references that are not leftovers (a child scope kept alive only by an Adopt)
    // are rare: settle them by looking.
    bool any = false;
    for_each_leftover(slot_, [&](const Record&) { any = true; });
    if (!any || !suppressions_may_apply()) return !any;
    // Suppression rules may hide every leftover: then the scope is as clean as its report says.
    InternalGuard internal;
    try {
        Report report;
        build_leftovers(slot_, report);
        return report.blocks == 0;
    } catch (...) {
        return false;
    }
}

// ---- symbolization: ELF symbols and DWARF, read in-process at report time ----------------------
// Runs only while a report is built (it allocates and takes a mutex, never in the hook). Each
// loaded object's file is mapped read-only once; its symbol table, line tables and the ranges of
// its functions and inlined calls are indexed on first use; answers are cached per address.
namespace detail {

struct Section { const u8* data = nullptr; std::size_t size = 0; };

inline const char* section_string(const Section& s, u64 offset) noexcept {
    if (!s.data || offset >= s.size) return "";
    const char* str = reinterpret_cast<const char*>(s.data + offset);
    return std::memchr(str, 0, s.size - offset) ? str : "";
}

// One compilation unit: what reading its DIEs and its line table needs.
struct DwarfUnit {
    u64 offset, end;            // in .debug_info
    u64 abbrev_offset;
    u8 version, address_size, offset_size;
    u64 str_offsets_base, addr_base, rnglists_base;
    u64 stmt_list;
    bool has_lines;
    u32 files_begin, files_count;   // its line table's files in Module::files, by their index
    std::string comp_dir, name;
};

// A function or an inlined call: an address range, its nesting, where its name comes from.
struct DwarfRange {
    u64 low, high;              // file addresses
    u32 node;                   // index into nodes
};
struct DwarfNode {
    u64 name_die;               // DIE to take the name from (following origins lazily)
    u32 parent;                 // enclosing function or inlined call (~0u: none)
    u32 unit;
    u32 call_file, call_line;   // for an inlined call: where it was called from
    bool inlined;
};

struct AbbrevAttr { u32 name, form; i64 implicit; };
struct Abbrev { u32 tag; bool children; std::vector<AbbrevAttr> attrs; };
using AbbrevTable = std::unordered_map<u64, Abbrev>;
struct LineRow { u64 address; u32 file, line; bool end; };

struct SymbolEntry { u64 address, size; const char* name; };

struct Module {
    std::string path;           // what reports show
    std::uintptr_t base = 0;    // load bias: runtime address = file address + base
    std::uintptr_t start = 0, end = 0;
    bool indexed = false;
    const u8* image = nullptr;  // the file, mapped read-only
    std::size_t image_size = 0;
    Section info, abbrev, line, str, line_str, str_offsets, addr, ranges, rnglists;
    std::vector<SymbolEntry> symbols;
    std::vector<DwarfUnit> units;
    std::vector<DwarfNode> nodes;
    std::vector<DwarfRange> ranges_sorted;
    std::vector<LineRow> rows;
    std::vector<std::string> files;   // line-table file names, made absolute; rows index them
    bool lines_indexed = false;
    std::unordered_map<u64, AbbrevTable> abbrevs;   // by offset, for naming DIEs at report time
};

struct Symbolizer {
    std::mutex mutex;
    std::vector<std::unique_ptr<Module>> modules;
    std::vector<std::unique_ptr<Module>> unloaded;   // objects dlclose'd, read from their files
    std::unordered_map<std::uintptr_t, std::vector<Frame>> cache;
    unsigned long long unloads = 0;   // the loader's count of unloaded objects when last looked
};

// Objects the dlclose wrapper saw unloading: path and address range, so that a stack captured
// while one was loaded still names it (module + offset, and what its file on disk says). Plain
// POD written without allocating; the newest kUnloadedSlots are kept.
struct UnloadedRecord { std::uintptr_t base, start, end; char path[512]; };
constexpr unsigned kUnloadedSlots = 64;
struct UnloadedTable {
    SpinLock lock;
    u32 count;   // records ever written; slot = count % kUnloadedSlots
    UnloadedRecord records[kUnloadedSlots];
};
inline UnloadedTable& unloaded_table() noexcept {
    static UnloadedTable table;   // zero-initialised
    return table;
}
// Called by the dlclose wrapper before the real dlclose: remembers the object behind `handle`.
// No allocation (dlinfo and dl_iterate_phdr do not allocate); an object still referenced elsewhere
// stays loaded, and loaded objects are always looked up first, so a record too many is harmless.
inline void remember_unloading(void* handle) noexcept {
    link_map* map = nullptr;
    if (!handle || ::dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || !map || !map->l_name || !map->l_name[0]) return;
    UnloadedRecord rec{};
    rec.base = map->l_addr;
    std::snprintf(rec.path, sizeof rec.path, "%s", map->l_name);
    dl_iterate_phdr([](dl_phdr_info* info, std::size_t, void* arg) -> int {
        auto& r = *static_cast<UnloadedRecord*>(arg);
        if (info->dlpi_addr != r.base || !info->dlpi_name || std::strcmp(info->dlpi_name, r.path) != 0) return 0;
        std::uintptr_t lo = ~std::uintptr_t(0), hi = 0;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
            const ElfW(Phdr)& ph = info->dlpi_phdr[i];
            if (ph.p_type != PT_LOAD) continue;
            lo = std::min<std::uintptr_t>(lo, info->dlpi_addr + ph.p_vaddr);
            hi = std::max<std::uintptr_t>(hi, info->dlpi_addr + ph.p_vaddr + ph.p_memsz);
        }
        r.start = lo;
        r.end = hi;
        return 1;
    }, &rec);
    if (rec.end <= rec.start) return;
    UnloadedTable& t = unloaded_table();
    SpinGuard guard(t.lock);
    t.records[t.count % kUnloadedSlots] = rec;
    ++t.count;
}
inline Symbolizer& symbolizer() {
    // Never destroyed (reports at exit use it), and leakscope's own: never a user scope's birth.
    static Symbolizer* instance = [] {
        InternalGuard internal;
        return new Symbolizer();
    }();
    return *instance;
}

inline std::string demangled(const char* name) {
    if (!name || !*name) return std::string();
    int status = -1;
    char* readable = abi::__cxa_demangle(name, nullptr, nullptr, &status);
    std::string out = status == 0 && readable ? readable : name;
    std::free(readable);
    return out;
}

// -- ELF ------------------------------------------------------------------------------------------
inline void map_file(Module& m, const char* path) {
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat info;
    if (::fstat(fd, &info) == 0 && info.st_size > 0) {
        void* p = ::mmap(nullptr, std::size_t(info.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
        if (p != MAP_FAILED) {
            m.image = static_cast<const u8*>(p);
            m.image_size = std::size_t(info.st_size);
        }
    }
    ::close(fd);
}

inline void read_elf(Module& m) {
    if (m.image_size < sizeof(ElfW(Ehdr))) return;
    ElfW(Ehdr) eh;
    std::memcpy(&eh, m.image, sizeof eh);
    if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64) return;
    // Offsets and sizes come from the file: compared without overflow (a corrupt one is skipped).
    auto fits = [&](u64 offset, u64 size) { return offset <= m.image_size && size <= m.image_size - offset; };
    if (eh.e_shoff == 0 || eh.e_shentsize != sizeof(ElfW(Shdr)) ||
        !fits(eh.e_shoff, u64(eh.e_shnum) * sizeof(ElfW(Shdr))) || eh.e_shstrndx >= eh.e_shnum)
        return;
    auto header = [&](unsigned i) {
        ElfW(Shdr) sh;
        std::memcpy(&sh, m.image + eh.e_shoff + u64(i) * sizeof sh, sizeof sh);
        return sh;
    };
    ElfW(Shdr) names = header(eh.e_shstrndx);
    if (!fits(names.sh_offset, names.sh_size)) return;
    Section shstr{m.image + names.sh_offset, std::size_t(names.sh_size)};
    ElfW(Shdr) symtab{}, dynsym{};
    bool have_symtab = false, have_dynsym = false;
    for (unsigned i = 0; i < eh.e_shnum; ++i) {
        ElfW(Shdr) sh = header(i);
        if (sh.sh_type == SHT_NOBITS || !fits(sh.sh_offset, sh.sh_size)) continue;
        Section s{m.image + sh.sh_offset, std::size_t(sh.sh_size)};
        std::string_view name = section_string(shstr, sh.sh_name);
        if (sh.sh_type == SHT_SYMTAB) { symtab = sh; have_symtab = true; }
        if (sh.sh_type == SHT_DYNSYM) { dynsym = sh; have_dynsym = true; }
        if (sh.sh_flags & SHF_COMPRESSED) continue;   // zlib/zstd: not without a library; names only
        if (name == ".debug_info") m.info = s;
        else if (name == ".debug_abbrev") m.abbrev = s;
        else if (name == ".debug_line") m.line = s;
        else if (name == ".debug_str") m.str = s;
        else if (name == ".debug_line_str") m.line_str = s;
        else if (name == ".debug_str_offsets") m.str_offsets = s;
        else if (name == ".debug_addr") m.addr = s;
        else if (name == ".debug_ranges") m.ranges = s;
        else if (name == ".debug_rnglists") m.rnglists = s;
    }
    // Functions from the full symbol table (static ones too: no -rdynamic needed), else the dynamic one.
    const ElfW(Shdr)& table = have_symtab ? symtab : dynsym;
    if ((have_symtab || have_dynsym) && table.sh_link < eh.e_shnum && table.sh_entsize == sizeof(ElfW(Sym))) {
        ElfW(Shdr) strings = header(table.sh_link);
        if (fits(strings.sh_offset, strings.sh_size) && fits(table.sh_offset, table.sh_size)) {
            Section strs{m.image + strings.sh_offset, std::size_t(strings.sh_size)};
            std::size_t count = table.sh_size / sizeof(ElfW(Sym));
            for (std::size_t i = 0; i < count; ++i) {
                ElfW(Sym) sym;
                std::memcpy(&sym, m.image + table.sh_offset + i * sizeof sym, sizeof sym);
                unsigned type = ELF64_ST_TYPE(sym.st_info);
                if ((type != STT_FUNC && type != STT_GNU_IFUNC) || sym.st_shndx == SHN_UNDEF || sym.st_value == 0)
                    continue;
                m.symbols.push_back(SymbolEntry{sym.st_value, sym.st_size, section_string(strs, sym.st_name)});
            }
            std::sort(m.symbols.begin(), m.symbols.end(), [](const SymbolEntry& a, const SymbolEntry& b) {
                return a.address < b.address || (a.address == b.address && a.size > b.size);
            });
        }
    }
}

inline const SymbolEntry* symbol_at(const Module& m, u64 address) {
    auto it = std::upper_bound(m.symbols.begin(), m.symbols.end(), address,
                               [](u64 a, const SymbolEntry& s) { return a < s.address; });
    while (it != m.symbols.begin()) {
        --it;
        if (address < it->address + std::max<u64>(it->size, 1)) return &*it;
        if (it->size == 0) return &*it;   // unknown size: the closest symbol below
        // An enclosing symbol may start earlier (rare): keep looking a little.
        if (address - it->address > (u64(1) << 20)) break;
    }
    return nullptr;
}

// -- DWARF: attribute values -----------------------------------------------------------------------
enum : u32 {
    kTagCompileUnit = 0x11, kTagSubprogram = 0x2e, kTagInlined = 0x1d, kTagPartialUnit = 0x3c,
    kTagSkeletonUnit = 0x4a,
    kAtName = 0x03, kAtStmtList = 0x10, kAtLowPc = 0x11, kAtHighPc = 0x12, kAtCompDir = 0x1b,
    kAtAbstractOrigin = 0x31, kAtSpecification = 0x47, kAtRanges = 0x55, kAtCallFile = 0x58,
    kAtCallLine = 0x59, kAtLinkageName = 0x6e, kAtMipsLinkageName = 0x2007, kAtStrOffsetsBase = 0x72,
    kAtAddrBase = 0x73, kAtRnglistsBase = 0x74,
};
struct AttrValue {
    u32 form;
    u64 value;            // constants, offsets, indices, references (section offsets after resolving)
    const char* string;   // for string forms, once resolved
    bool is_ref, is_string;
};

inline void read_abbrevs(const Module& m, u64 offset, AbbrevTable& out) {
    if (offset >= m.abbrev.size) return;
    ByteReader r{m.abbrev.data + offset, m.abbrev.data + m.abbrev.size};
    for (;;) {
        u64 code = r.uleb();
        if (!r.ok || code == 0) return;
        Abbrev a;
        a.tag = u32(r.uleb());
        a.children = r.byte() != 0;
        for (;;) {
            u32 name = u32(r.uleb()), form = u32(r.uleb());
            if (!r.ok || (name == 0 && form == 0)) break;
            i64 implicit = form == 0x21 ? r.sleb() : 0;
            a.attrs.push_back(AbbrevAttr{name, form, implicit});
        }
        out[code] = std::move(a);
    }
}

inline const char* indexed_string(const Module& m, const DwarfUnit& u, u64 index) {
    u64 at = u.str_offsets_base + index * u.offset_size;
    if (!m.str_offsets.data || at + u.offset_size > m.str_offsets.size) return "";
    ByteReader r{m.str_offsets.data + at, m.str_offsets.data + m.str_offsets.size};
    return section_string(m.str, r.sized(u.offset_size));
}
inline u64 indexed_address(const Module& m, const DwarfUnit& u, u64 index) {
    u64 at = u.addr_base + index * u.address_size;
    if (!m.addr.data || at + u.address_size > m.addr.size) return 0;
    ByteReader r{m.addr.data + at, m.addr.data + m.addr.size};
    return r.sized(u.address_size);
}

// Reads one attribute value of `form`; false for a form it cannot size (the unit is abandoned).
inline bool read_attr(ByteReader& r, const Module& m, const DwarfUnit& u, u32 form, i64 implicit, AttrValue& v) {
    v = AttrValue{form, 0, nullptr, false, false};
    switch (form) {
        case 0x01: v.value = r.sized(u.address_size); break;                       // addr
        case 0x03: r.skip(r.fixed<std::uint16_t>()); break;                        // block2
        case 0x04: r.skip(r.fixed<u32>()); break;                                  // block4
        case 0x05: v.value = r.fixed<std::uint16_t>(); break;
        case 0x06: v.value = r.fixed<u32>(); break;
        case 0x07: v.value = r.fixed<u64>(); break;
        case 0x08: v.string = r.cstr(); v.is_string = true; break;                 // string
        case 0x09: case 0x18: r.skip(r.uleb()); break;                             // block, exprloc
        case 0x0a: r.skip(r.byte()); break;                                        // block1
        case 0x0b: case 0x0c: v.value = r.byte(); break;                           // data1, flag
        case 0x0d: v.value = u64(r.sleb()); break;                                 // sdata
        case 0x0e: v.string = section_string(m.str, r.sized(u.offset_size)); v.is_string = true; break;
        case 0x0f: v.value = r.uleb(); break;                                      // udata
        case 0x10: v.value = r.sized(u.version <= 2 ? u.address_size : u.offset_size); v.is_ref = true; break;
        case 0x11: v.value = u.offset + r.byte(); v.is_ref = true; break;          // ref1..ref_udata:
        case 0x12: v.value = u.offset + r.fixed<std::uint16_t>(); v.is_ref = true; break;   // unit-relative
        case 0x13: v.value = u.offset + r.fixed<u32>(); v.is_ref = true; break;
        case 0x14: v.value = u.offset + r.fixed<u64>(); v.is_ref = true; break;
        case 0x15: v.value = u.offset + r.uleb(); v.is_ref = true; break;
        case 0x16: return read_attr(r, m, u, u32(r.uleb()), 0, v);                 // indirect
        case 0x17: v.value = r.sized(u.offset_size); break;                        // sec_offset
        case 0x19: v.value = 1; break;                                             // flag_present
        case 0x1a: v.string = indexed_string(m, u, r.uleb()); v.is_string = true; break;   // strx
        case 0x1b: v.value = indexed_address(m, u, r.uleb()); break;               // addrx
        case 0x1c: r.skip(4); break;                                               // ref_sup4
        case 0x1d: case 0x1f20: case 0x1f21: r.skip(u.offset_size); break;         // strp_sup, GNU alt
        case 0x1e: r.skip(16); break;                                              // data16
        case 0x1f: v.string = section_string(m.line_str, r.sized(u.offset_size)); v.is_string = true; break;
        case 0x20: r.skip(8); break;                                               // ref_sig8
        case 0x21: v.value = u64(implicit); break;                                 // implicit_const
        case 0x22: case 0x23: v.value = r.uleb(); break;                           // loclistx, rnglistx
        case 0x24: r.skip(8); break;                                               // ref_sup8
        case 0x25: v.string = indexed_string(m, u, r.byte()); v.is_string = true; break;
        case 0x26: v.string = indexed_string(m, u, r.fixed<std::uint16_t>()); v.is_string = true; break;
        case 0x27: v.string = indexed_string(m, u, r.sized(3)); v.is_string = true; break;
        case 0x28: v.string = indexed_string(m, u, r.fixed<u32>()); v.is_string = true; break;
        case 0x29: v.value = indexed_address(m, u, r.byte()); break;
        case 0x2a: v.value = indexed_address(m, u, r.fixed<std::uint16_t>()); break;
        case 0x2b: v.value = indexed_address(m, u, r.sized(3)); break;
        case 0x2c: v.value = indexed_address(m, u, r.fixed<u32>()); break;
        case 0x1f01: v.value = indexed_address(m, u, r.uleb()); break;             // GNU_addr_index
        case 0x1f02: v.string = indexed_string(m, u, r.uleb()); v.is_string = true; break;
        default: return false;
    }
    return r.ok;
}

// The address ranges of a DIE: low/high, or DW_AT_ranges (.debug_ranges before v5, .debug_rnglists).
inline void die_ranges(const Module& m, const DwarfUnit& u, u64 low, u64 high, bool high_is_size, bool have_low,
                       bool have_high, bool have_ranges, u32 ranges_form, u64 ranges, u64 unit_low,
                       std::vector<std::pair<u64, u64>>& out) {
    out.clear();
    if (have_low && have_high) {
        u64 end = high_is_size ? low + high : high;
        if (end > low) out.emplace_back(low, end);
        return;
    }
    if (!have_ranges) return;
    if (u.version < 5) {
        if (!m.ranges.data || ranges >= m.ranges.size) return;
        ByteReader r{m.ranges.data + ranges, m.ranges.data + m.ranges.size};
        u64 base = unit_low;
        for (int guard = 0; guard < 100000 && r.ok; ++guard) {
            u64 a = r.sized(u.address_size), b = r.sized(u.address_size);
            if (!r.ok || (a == 0 && b == 0)) break;
            if (a == ~u64(0) >> (64 - 8 * u.address_size)) { base = b; continue; }
            if (b > a) out.emplace_back(base + a, base + b);
        }
        return;
    }
    u64 at = ranges;
    if (ranges_form == 0x23) {   // rnglistx: an index into the offsets table after rnglists_base
        u64 slot = u.rnglists_base + ranges * u.offset_size;
        if (!m.rnglists.data || slot + u.offset_size > m.rnglists.size) return;
        ByteReader r{m.rnglists.data + slot, m.rnglists.data + m.rnglists.size};
        at = u.rnglists_base + r.sized(u.offset_size);
    }
    if (!m.rnglists.data || at >= m.rnglists.size) return;
    ByteReader r{m.rnglists.data + at, m.rnglists.data + m.rnglists.size};
    u64 base = unit_low;
    for (int guard = 0; guard < 100000 && r.ok; ++guard) {
        u8 kind = r.byte();
        if (kind == 0) break;   // end_of_list
        u64 a = 0, b = 0;
        switch (kind) {
            case 1: base = indexed_address(m, u, r.uleb()); continue;                        // base_addressx
            case 2: a = indexed_address(m, u, r.uleb()); b = indexed_address(m, u, r.uleb()); break;
            case 3: a = indexed_address(m, u, r.uleb()); b = a + r.uleb(); break;            // startx_length
            case 4: a = base + r.uleb(); b = base + r.uleb(); break;                         // offset_pair
            case 5: base = r.sized(u.address_size); continue;                               // base_address
            case 6: a = r.sized(u.address_size); b = r.sized(u.address_size); break;        // start_end
            case 7: a = r.sized(u.address_size); b = a + r.uleb(); break;                   // start_length
            default: return;
        }
        if (b > a) out.emplace_back(a, b);
    }
}

// Walks every unit's DIEs once: records units, and every subprogram and inlined call with ranges.
inline void index_dwarf(Module& m) {
    if (!m.info.data || !m.abbrev.data) return;
    std::unordered_map<u64, AbbrevTable> abbrev_cache;
    std::vector<std::pair<u64, u64>> ranges;
    ByteReader top{m.info.data, m.info.data + m.info.size};
    while (top.ok && top.has(11)) {
        DwarfUnit u{};
        u.offset = u64(top.p - m.info.data);
        u64 length = top.fixed<u32>();
        u.offset_size = 4;
        if (length == 0xffffffffu) { length = top.fixed<u64>(); u.offset_size = 8; }
        if (length == 0 || !top.has(std::size_t(length))) break;
        const u8* unit_end = top.p + length;
        u.end = u64(unit_end - m.info.data);
        ByteReader r{top.p, unit_end};
        top.p = unit_end;
        u.version = u8(r.fixed<std::uint16_t>());
        u8 unit_type = 1;
        if (u.version >= 5) {
            unit_type = r.byte();
            u.address_size = r.byte();
            u.abbrev_offset = r.sized(u.offset_size);
            if (unit_type == 4 || unit_type == 5) r.skip(8);                               // skeleton, split
            if (unit_type == 2 || unit_type == 6) { r.skip(8); r.skip(u.offset_size); }    // type units
        } else if (u.version >= 2) {
            u.abbrev_offset = r.sized(u.offset_size);
            u.address_size = r.byte();
        } else {
            continue;
        }
        if (!r.ok || u.address_size != 8) continue;
        if (unit_type != 1 && unit_type != 3) continue;   // compile and partial units only
        AbbrevTable& abbrevs = abbrev_cache[u.abbrev_offset];
        if (abbrevs.empty()) read_abbrevs(m, u.abbrev_offset, abbrevs);
        u32 unit_index = u32(m.units.size());
        // DW_FORM_strx and addrx need the unit's bases, which its root DIE holds: read the root
        // twice, first for the bases only.
        const u8* root = r.p;
        for (int pass = 0; pass < 2; ++pass) {
            r.p = root;
            u64 code = r.uleb();
            auto it = abbrevs.find(code);
            if (it == abbrevs.end()) { r.ok = false; break; }
            for (const AbbrevAttr& a : it->second.attrs) {
                AttrValue v;
                if (!read_attr(r, m, u, a.form, a.implicit, v)) { r.ok = false; break; }
                if (pass == 0) {
                    if (a.name == kAtStrOffsetsBase) u.str_offsets_base = v.value;
                    if (a.name == kAtAddrBase) u.addr_base = v.value;
                    if (a.name == kAtRnglistsBase) u.rnglists_base = v.value;
                } else {
                    if (a.name == kAtStmtList) { u.stmt_list = v.value; u.has_lines = true; }
                    if (a.name == kAtCompDir && v.string) u.comp_dir = v.string;
                    if (a.name == kAtName && v.string) u.name = v.string;
                }
            }
            if (!r.ok) break;
        }
        if (!r.ok) continue;
        if (u.version >= 5 && u.str_offsets_base == 0 && m.str_offsets.data) u.str_offsets_base = 8;
        m.units.push_back(u);
        // The DIE tree below the root: a stack of the enclosing function/inlined-call nodes.
        r.p = root;
        std::vector<u32> stack_nodes;   // node index per depth (~0u where the DIE is no function)
        u64 unit_low = 0;
        int depth = 0;
        while (r.ok && r.p < unit_end) {
            u64 die = u64(r.p - m.info.data);
            u64 code = r.uleb();
            if (code == 0) {   // end of siblings
                if (--depth <= 0) break;
                stack_nodes.pop_back();
                continue;
            }
            auto it = abbrevs.find(code);
            if (it == abbrevs.end()) break;
            const Abbrev& ab = it->second;
            u64 low = 0, high = 0, range_value = 0, call_file = 0, call_line = 0;
            bool have_low = false, have_high = false, high_is_size = false, have_ranges = false;
            u32 ranges_form = 0;
            for (const AbbrevAttr& a : ab.attrs) {
                AttrValue v;
                if (!read_attr(r, m, u, a.form, a.implicit, v)) { r.ok = false; break; }
                switch (a.name) {
                    case kAtLowPc: low = v.value; have_low = true; break;
                    case kAtHighPc: high = v.value; have_high = true; high_is_size = a.form != 0x01 && a.form != 0x1b &&
                                                                       (a.form < 0x29 || a.form > 0x2c) && a.form != 0x1f01; break;
                    case kAtRanges: range_value = v.value; have_ranges = true; ranges_form = a.form; break;
                    case kAtCallFile: call_file = v.value; break;
                    case kAtCallLine: call_line = v.value; break;
                    default: break;
                }
            }
            if (!r.ok) break;
            if (depth == 0 && have_low) unit_low = low;
            u32 parent = ~0u;
            for (std::size_t i = stack_nodes.size(); i-- > 0;)
                if (stack_nodes[i] != ~0u) { parent = stack_nodes[i]; break; }
            u32 node = ~0u;
            if (ab.tag == kTagSubprogram || ab.tag == kTagInlined) {
                die_ranges(m, u, low, high, high_is_size, have_low, have_high, have_ranges, ranges_form, range_value,
                           unit_low, ranges);
                if (!ranges.empty()) {
                    node = u32(m.nodes.size());
                    m.nodes.push_back(DwarfNode{die, parent, unit_index, u32(call_file), u32(call_line),
                                                ab.tag == kTagInlined});
                    for (auto& range : ranges) m.ranges_sorted.push_back(DwarfRange{range.first, range.second, node});
                }
            }
            if (ab.children) {
                ++depth;
                stack_nodes.push_back(node);
            } else if (depth == 0) {
                break;   // a root without children
            }
        }
    }
    std::sort(m.ranges_sorted.begin(), m.ranges_sorted.end(), [](const DwarfRange& a, const DwarfRange& b) {
        return a.low < b.low || (a.low == b.low && a.high > b.high);
    });
}

// The name of a function DIE, following abstract_origin and specification, preferring the
// linkage name (demangled later), as addr2line does.
inline std::string die_name(Module& m, u64 die, int hops = 0, bool* from_linkage = nullptr) {
    if (hops > 8 || die >= m.info.size) return std::string();
    // The unit holding the DIE: units are in section order.
    auto it = std::upper_bound(m.units.begin(), m.units.end(), die,
                               [](u64 d, const DwarfUnit& u) { return d < u.offset; });
    if (it == m.units.begin()) return std::string();
    const DwarfUnit& u = *(it - 1);
    if (die >= u.end) return std::string();
    auto cached = m.abbrevs.find(u.abbrev_offset);
    if (cached == m.abbrevs.end()) {
        cached = m.abbrevs.emplace(u.abbrev_offset, AbbrevTable()).first;
        read_abbrevs(m, u.abbrev_offset, cached->second);
    }
    const AbbrevTable& abbrevs = cached->second;
    ByteReader r{m.info.data + die, m.info.data + u.end};
    auto ab = abbrevs.find(r.uleb());
    if (ab == abbrevs.end()) return std::string();
    const char* name = nullptr;
    const char* linkage = nullptr;
    u64 origin = 0;
    for (const AbbrevAttr& a : ab->second.attrs) {
        AttrValue v;
        if (!read_attr(r, m, u, a.form, a.implicit, v)) break;
        if (a.name == kAtName && v.string) name = v.string;
        if ((a.name == kAtLinkageName || a.name == kAtMipsLinkageName) && v.string) linkage = v.string;
        if ((a.name == kAtAbstractOrigin || a.name == kAtSpecification) && v.is_ref) origin = v.value;
    }
    if (linkage && *linkage) {
        if (from_linkage) *from_linkage = true;
        return demangled(linkage);
    }
    if (origin) {
        std::string from_origin = die_name(m, origin, hops + 1, from_linkage);
        if (!from_origin.empty()) return from_origin;
    }
    return name ? std::string(name) : std::string();
}

// -- DWARF: line tables ---------------------------------------------------------------------------
inline std::string join_path(const std::string& dir, const char* name) {
    if (!name || !*name) return std::string();
    if (name[0] == '/' || dir.empty()) return name;
    return dir.back() == '/' ? dir + name : dir + "/" + name;
}

// Reads one unit's line program, appending rows (file indices into m.files).
inline void read_line_program(Module& m, DwarfUnit& unit) {
    if (!m.line.data || unit.stmt_list >= m.line.size) return;
    ByteReader r{m.line.data + unit.stmt_list, m.line.data + m.line.size};
    u64 length = r.fixed<u32>();
    unsigned offset_size = 4;
    if (length == 0xffffffffu) { length = r.fixed<u64>(); offset_size = 8; }
    if (!r.has(std::size_t(length))) return;
    const u8* end = r.p + length;
    r.end = end;
    unsigned version = r.fixed<std::uint16_t>();
    if (version < 2 || version > 5) return;
    unsigned address_size = 8;
    if (version >= 5) {
        address_size = r.byte();
        r.byte();   // segment selector size
    }
    u64 header_length = r.sized(offset_size);
    const u8* program = r.p + header_length;
    unsigned min_inst = r.byte();
    if (version >= 4) r.byte();   // maximum operations per instruction (VLIW only)
    bool default_is_stmt = r.byte() != 0;
    (void)default_is_stmt;
    i64 line_base = std::int8_t(r.byte());
    unsigned line_range = r.byte();
    unsigned opcode_base = r.byte();
    if (!r.ok || line_range == 0 || opcode_base == 0) return;
    u8 opcode_lengths[256] = {};
    for (unsigned i = 1; i < opcode_base; ++i) opcode_lengths[i] = r.byte();
    std::vector<std::string> dirs;
    std::vector<u32> file_ids;   // this program's file index -> m.files index
    auto add_file = [&](const char* name, u64 dir) {
        std::string d = dir < dirs.size() ? dirs[dir] : std::string();
        std::string path = join_path(d, name);
        file_ids.push_back(u32(m.files.size()));
        m.files.push_back(std::move(path));
    };
    if (version < 5) {
        dirs.push_back(unit.comp_dir);
        for (;;) {
            const char* dir = r.cstr();
            if (!r.ok || !*dir) break;
            dirs.push_back(join_path(unit.comp_dir, dir));
        }
        file_ids.push_back(u32(m.files.size()));   // index 0 is not a file before DWARF 5
        m.files.push_back(std::string());
        for (;;) {
            const char* name = r.cstr();
            if (!r.ok || !*name) break;
            u64 dir = r.uleb();
            r.uleb();
            r.uleb();
            add_file(name, dir);
        }
    } else {
        DwarfUnit fake = unit;   // the forms of entries: strings resolve through the unit's sections
        fake.offset_size = u8(offset_size);
        auto read_entries = [&](bool files) {
            unsigned format_count = r.byte();
            std::vector<std::pair<u64, u64>> format;
            for (unsigned i = 0; i < format_count; ++i) {
                u64 type = r.uleb(), form = r.uleb();
                format.emplace_back(type, form);
            }
            u64 count = r.uleb();
            // Each entry must consume bytes, or a corrupt count would loop (and grow) for ever.
            if (format.empty() && count) r.ok = false;
            for (u64 i = 0; i < count && r.ok; ++i) {
                const char* path = "";
                u64 dir = 0;
                for (auto& f : format) {
                    AttrValue v;
                    if (!read_attr(r, m, fake, u32(f.second), 0, v)) { r.ok = false; break; }
                    if (f.first == 1 && v.string) path = v.string;   // DW_LNCT_path
                    if (f.first == 2) dir = v.value;                 // DW_LNCT_directory_index
                }
                if (!r.ok) return;
                if (files) add_file(path, dir);
                else dirs.push_back(dirs.empty() ? std::string(path) : join_path(dirs[0], path));
            }
        };
        read_entries(false);
        read_entries(true);
    }
    unit.files_begin = file_ids.empty() ? 0 : file_ids[0];
    unit.files_count = u32(file_ids.size());
    if (!r.ok || program > end) return;
    r.p = program;
    u64 address = 0;
    u32 file = 1, line = 1;
    bool sequence_ok = true;
    std::size_t sequence_start = m.rows.size();
    auto emit = [&](bool end_sequence) {
        u32 id = file < file_ids.size() ? file_ids[file] : ~0u;
        m.rows.push_back(LineRow{address, id, line, end_sequence});
    };
    while (r.ok && r.p < end) {
        u8 op = r.byte();
        if (op >= opcode_base) {
            unsigned adjusted = op - opcode_base;
            address += u64(adjusted / line_range) * min_inst;
            line = u32(i64(line) + line_base + i64(adjusted % line_range));
            emit(false);
            continue;
        }
        switch (op) {
            case 0: {   // extended
                u64 n = r.uleb();
                const u8* next = r.p + std::min<u64>(n, u64(end - r.p));
                u8 sub = n ? r.byte() : 0;
                if (sub == 1) {   // end_sequence
                    emit(true);
                    // A sequence of a discarded function (address 0 / -1 tombstones) is dropped.
                    if (!sequence_ok) m.rows.resize(sequence_start);
                    address = 0;
                    file = 1;
                    line = 1;
                    sequence_ok = true;
                    sequence_start = m.rows.size();
                } else if (sub == 2) {
                    address = r.sized(address_size);
                    if (address == 0 || address == ~u64(0)) sequence_ok = false;
                }
                r.p = next;
                break;
            }
            case 1: emit(false); break;                                            // copy
            case 2: address += r.uleb() * min_inst; break;                          // advance_pc
            case 3: line = u32(i64(line) + r.sleb()); break;                        // advance_line
            case 4: file = u32(r.uleb()); break;                                    // set_file
            case 5: r.uleb(); break;                                                // set_column
            case 8: address += u64((255 - opcode_base) / line_range) * min_inst; break;   // const_add_pc
            case 9: address += r.fixed<std::uint16_t>(); break;                     // fixed_advance_pc
            case 6: case 7: case 10: case 11: break;
            default:
                for (unsigned i = 0; i < opcode_lengths[op]; ++i) r.uleb();
                break;
        }
    }
}

inline void index_lines(Module& m) {
    if (m.lines_indexed) return;
    m.lines_indexed = true;
    for (DwarfUnit& u : m.units)
        if (u.has_lines) read_line_program(m, u);
    std::stable_sort(m.rows.begin(), m.rows.end(), [](const LineRow& a, const LineRow& b) { return a.address < b.address; });
}

inline const LineRow* line_at(const Module& m, u64 address) {
    auto it = std::upper_bound(m.rows.begin(), m.rows.end(), address,
                               [](u64 a, const LineRow& row) { return a < row.address; });
    if (it == m.rows.begin()) return nullptr;
    const LineRow& row = *(it - 1);
    if (row.end || row.file == ~0u) return nullptr;
    return &row;
}

// An inlined call's DW_AT_call_file: an index into its unit's line-table files.
inline std::string call_file_name(const Module& m, const DwarfNode& d) {
    const DwarfUnit& u = m.units[d.unit];
    return d.call_file < u.files_count ? m.files[u.files_begin + d.call_file] : std::string();
}

// -- modules ----------------------------------------------------------------------------------------
inline std::string self_path() {
    char buffer[4096];
    ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof buffer - 1);
    return n > 0 ? std::string(buffer, std::size_t(n)) : std::string();
}

// An address no loaded object covers: an object unloaded since (the newest record covering it).
inline Module* unloaded_module_of(Symbolizer& s, std::uintptr_t address) {
    UnloadedRecord rec{};
    {
        UnloadedTable& t = unloaded_table();
        SpinGuard guard(t.lock);
        for (u32 i = 0; i < std::min(t.count, kUnloadedSlots); ++i) {
            const UnloadedRecord& r = t.records[(t.count - 1 - i) % kUnloadedSlots];
            if (address >= r.start && address < r.end) {
                rec = r;
                break;
            }
        }
    }
    if (rec.end == 0) return nullptr;
    for (auto& m : s.unloaded)
        if (m->base == rec.base && m->start == rec.start && m->path == rec.path) return m.get();
    auto m = std::make_unique<Module>();
    m->path = rec.path;
    m->base = rec.base;
    m->start = rec.start;
    m->end = rec.end;
    s.unloaded.push_back(std::move(m));
    return s.unloaded.back().get();
}

// The module holding a runtime address, found (and added) through the loader's list.
inline Module* module_of(Symbolizer& s, std::uintptr_t address) {
    for (auto& m : s.modules)
        if (address >= m->start && address < m->end) return m.get();
    struct Found { std::uintptr_t address; std::string path; std::uintptr_t base, start, end; bool ok; } found{address, {}, 0, 0, 0, false};
    dl_iterate_phdr([](dl_phdr_info* info, std::size_t, void* arg) -> int {
        auto& f = *static_cast<Found*>(arg);
        std::uintptr_t lo = ~std::uintptr_t(0), hi = 0;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
            const ElfW(Phdr)& ph = info->dlpi_phdr[i];
            if (ph.p_type != PT_LOAD) continue;
            lo = std::min<std::uintptr_t>(lo, info->dlpi_addr + ph.p_vaddr);
            hi = std::max<std::uintptr_t>(hi, info->dlpi_addr + ph.p_vaddr + ph.p_memsz);
        }
        if (f.address < lo || f.address >= hi) return 0;
        f.path = info->dlpi_name ? info->dlpi_name : "";
        f.base = info->dlpi_addr;
        f.start = lo;
        f.end = hi;
        f.ok = true;
        return 1;
    }, &found);
    if (!found.ok) return unloaded_module_of(s, address);
    auto m = std::make_unique<Module>();
    m->path = found.path.empty() ? self_path() : found.path;
    m->base = found.base;
    m->start = found.start;
    m->end = found.end;
    s.modules.push_back(std::move(m));
    return s.modules.back().get();
}

inline void ensure_indexed(Module& m) {
    if (m.indexed) return;
    m.indexed = true;
    if (m.path.empty() || m.path.compare(0, 10, "linux-vdso") == 0) return;
    map_file(m, m.path.c_str());
    if (!m.image) return;
    read_elf(m);
    index_dwarf(m);
}

inline std::vector<Frame> frames_in(Module& module, u64 address, const Frame& base_frame);

inline std::vector<Frame> symbolize_uncached(Symbolizer& s, std::uintptr_t return_address) {
    std::vector<Frame> frames;
    Frame base_frame;
    base_frame.address = return_address;
    Module* m = module_of(s, return_address - 1);
    if (!m) {
        frames.push_back(base_frame);
        return frames;
    }
    base_frame.module = m->path;
    base_frame.offset = return_address - m->base;
    ensure_indexed(*m);
    // the call instruction, as a file address
    return frames_in(*m, u64(return_address - 1 - m->base), base_frame);
}

// The frames of one file address of a module (indexed): its inlined chain, innermost first.
inline std::vector<Frame> frames_in(Module& module, u64 address, const Frame& base_frame) {
    Module* m = &module;
    std::vector<Frame> frames;
    const LineRow* row = nullptr;
    if (!m->ranges_sorted.empty() || !m->units.empty()) {
        index_lines(*m);
        row = line_at(*m, address);
    }
    // The innermost function or inlined call containing the address.
    u32 node = ~0u;
    {
        auto it = std::upper_bound(m->ranges_sorted.begin(), m->ranges_sorted.end(), address,
                                   [](u64 a, const DwarfRange& r) { return a < r.low; });
        u32 best_depth = 0;
        for (int scanned = 0; it != m->ranges_sorted.begin() && scanned < 4096; ++scanned) {
            --it;
            if (address < it->high) {
                u32 depth = 0;
                for (u32 n = it->node; n != ~0u && depth < 256; n = m->nodes[n].parent) ++depth;
                if (node == ~0u || depth > best_depth) {
                    node = it->node;
                    best_depth = depth;
                }
            }
        }
    }
    if (node == ~0u) {   // no DWARF for it: the symbol table
        Frame f = base_frame;
        if (const SymbolEntry* sym = symbol_at(*m, address)) f.function = demangled(sym->name);
        if (row) {
            f.file = m->files[row->file];
            f.line = row->line;
        }
        frames.push_back(std::move(f));
        return frames;
    }
    // Innermost first: each frame's line is where the next inner call happened.
    std::string file = row ? m->files[row->file] : std::string();
    unsigned line = row ? row->line : 0;
    for (u32 n = node, guard = 0; n != ~0u && guard < 256; n = m->nodes[n].parent, ++guard) {
        const DwarfNode& d = m->nodes[n];
        Frame f = base_frame;
        bool from_linkage = false;
        f.function = die_name(*m, d.name_die, 0, &from_linkage);
        // An address in no inlined call, in a function DWARF gives only a short name (GCC:
        // static functions, lambdas, clones): its ELF symbol says more, and addr2line shows that.
        // (For the outer frames of an inlined chain addr2line keeps DWARF's name: so do we.)
        if (!d.inlined && !from_linkage && n == node)
            if (const SymbolEntry* sym = symbol_at(*m, address)) f.function = demangled(sym->name);
        f.file = file;
        f.line = line;
        f.inlined = d.inlined && d.parent != ~0u;
        frames.push_back(std::move(f));
        if (!d.inlined) break;
        // The caller's line is this inlined call's call site.
        line = d.call_line;
        file = call_file_name(*m, d);
    }
    return frames;
}

// The frames of `file_address` in the ELF file at `path`, read afresh and uncached (for tests on
// crafted files: corrupt, truncated, stripped, compressed).
inline std::vector<Frame> symbolize_file(const std::string& path, u64 file_address) {
    InternalGuard internal;
    Module m;
    m.path = path;
    m.end = ~std::uintptr_t(0);
    ensure_indexed(m);
    Frame base_frame;
    base_frame.address = std::uintptr_t(file_address);
    base_frame.offset = std::uintptr_t(file_address);
    base_frame.module = path;
    std::vector<Frame> frames = frames_in(m, file_address, base_frame);
    if (m.image) ::munmap(const_cast<u8*>(m.image), m.image_size);
    return frames;
}

}  // namespace detail

namespace detail {
// Answers for one address, the symbolizer's mutex held.
inline const std::vector<Frame>& symbolize_locked(Symbolizer& s, std::uintptr_t return_address) {
    auto it = s.cache.find(return_address);
    if (it != s.cache.end()) return it->second;
    return s.cache.emplace(return_address, symbolize_uncached(s, return_address)).first->second;
}

// An object unloaded since the last look: its addresses may now be another's. Start afresh (what
// was unloaded is still named through the dlclose wrapper's table, see unloaded_module_of).
inline void forget_if_unloaded(Symbolizer& s) {
    unsigned long long unloads = 0;
    dl_iterate_phdr([](dl_phdr_info* info, std::size_t, void* arg) -> int {
        *static_cast<unsigned long long*>(arg) = info->dlpi_subs;
        return 1;
    }, &unloads);
    if (unloads == s.unloads) return;
    s.unloads = unloads;
    s.cache.clear();
    for (auto* list : {&s.modules, &s.unloaded})
        for (auto& m : *list)
            if (m->image) ::munmap(const_cast<u8*>(m->image), m->image_size);
    s.modules.clear();
    s.unloaded.clear();
}
}  // namespace detail

namespace detail {
// Forgets cached answers; with `keep_modules` the modules' indexes stay (a warm symbolizer),
// without, everything goes (the next answer pays for mapping and indexing: cold). Benchmarks.
inline void symbolizer_reset(bool keep_modules) {
    InternalGuard internal;
    Symbolizer& s = symbolizer();
    std::lock_guard<std::mutex> lock(s.mutex);
    s.cache.clear();
    if (keep_modules) return;
    for (auto* list : {&s.modules, &s.unloaded})
        for (auto& m : *list)
            if (m->image) ::munmap(const_cast<u8*>(m->image), m->image_size);
    s.modules.clear();
    s.unloaded.clear();
}
}  // namespace detail

std::vector<Frame> symbolize(std::uintptr_t return_address) {
    InternalGuard internal;
    Symbolizer& s = symbolizer();
    std::lock_guard<std::mutex> lock(s.mutex);
    forget_if_unloaded(s);
    return symbolize_locked(s, return_address);
}

// ---- attribution: trimming, type inference, grouping, suppressions (report time only) ----------
namespace detail {

inline bool starts_with(std::string_view s, std::string_view prefix) noexcept {
    return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}
inline bool ends_with(std::string_view s, std::string_view suffix) noexcept {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
inline std::string_view trimmed(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
    return s;
}
inline bool identifier_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// The qualified name in a demangled signature: no return type ("std::shared_ptr<T> std::make_shared<T>()"
// names std::make_shared<T>), no parameters, no " const" or " [clone .isra.0]".
inline std::string_view qualified_name(std::string_view s) noexcept {
    int depth = 0;
    std::size_t start = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (c == '(' && s.compare(i, 21, "(anonymous namespace)") == 0) {
            i += 20;
            continue;
        }
        if (depth == 0 && c == 'o' && s.compare(i, 8, "operator") == 0 && (i == 0 || !identifier_char(s[i - 1])) &&
            (i + 8 == s.size() || !identifier_char(s[i + 8]))) {
            // operator(), operator<<, operator new[], conversions: the token ends at the parameters.
            std::size_t j = i + 8;
            if (s.compare(j, 2, "()") == 0) j += 2;
            while (j < s.size() && s[j] != '(') ++j;
            i = j - 1;
            continue;
        }
        if (c == '<' || c == '[' || c == '{') {
            ++depth;
        } else if (c == '>' || c == ']' || c == '}' || c == ')') {
            if (depth > 0) --depth;
        } else if (c == '(') {
            if (depth == 0) return s.substr(start, i - start);
            ++depth;
        } else if (c == ' ' && depth == 0) {
            start = i + 1;
        }
    }
    return s.substr(start);
}

// "a::b<c::d>::e" -> {"a", "b<c::d>", "e"}: splits at "::" outside brackets.
inline std::vector<std::string_view> scope_parts(std::string_view q) {
    std::vector<std::string_view> parts;
    int depth = 0;
    std::size_t start = 0;
    for (std::size_t i = 0; i < q.size(); ++i) {
        char c = q[i];
        if (c == '<' || c == '(' || c == '[' || c == '{') ++depth;
        else if ((c == '>' || c == ')' || c == ']' || c == '}') && depth > 0) --depth;
        else if (c == ':' && depth == 0 && i + 1 < q.size() && q[i + 1] == ':') {
            parts.push_back(q.substr(start, i - start));
            start = i + 2;
            ++i;
        }
    }
    parts.push_back(q.substr(start));
    return parts;
}
inline std::string_view template_name(std::string_view part) noexcept { return part.substr(0, part.find('<')); }
// The first template argument of "name<arg, ...>" (empty when there is none).
inline std::string_view first_template_arg(std::string_view part) noexcept {
    std::size_t open = part.find('<');
    if (open == std::string_view::npos) return {};
    int depth = 0;
    for (std::size_t i = open + 1; i < part.size(); ++i) {
        char c = part[i];
        if (c == '<' || c == '(' || c == '[' || c == '{') ++depth;
        else if ((c == ')' || c == ']' || c == '}') && depth > 0) --depth;
        else if (c == '>' && depth > 0) --depth;
        else if ((c == ',' || c == '>') && depth == 0) return trimmed(part.substr(open + 1, i - open - 1));
    }
    return {};
}
template <std::size_t N>
inline bool one_of(std::string_view s, const char* const (&names)[N]) noexcept {
    for (const char* n : names)
        if (s == n) return true;
    return false;
}

// A frame of leakscope itself or of the standard library's machinery between the user's line
// and operator new (allocators, allocator_traits, make_shared's control block, containers' node
// makers, string growth): trimmed from the front of a site's stack, so frames[0] is the user's.
// Any standard-library frame counts (a std::to_string or an ostream growing a buffer is
// allocation plumbing as far as the user's line is concerned); trimming stops at the first other.
inline bool is_allocation_plumbing(const Frame& f) {
    std::string_view q = qualified_name(f.function);
    if (starts_with(q, "leakscope::") || starts_with(q, "operator new")) return true;
    if (starts_with(q, "std::") || starts_with(q, "__gnu_cxx::") || starts_with(q, "__cxxabiv1::")) return true;
    // DWARF may name an inlined library function shortly ("allocate"): its file says where it is.
    if (f.file.find("/include/c++/") != std::string::npos || ends_with(f.file, "/leakscope.hpp")) return true;
    // Unnamed code inside the standard library's shared object (a hidden helper).
    std::string_view module = f.module;
    module = module.substr(module.rfind('/') == std::string_view::npos ? 0 : module.rfind('/') + 1);
    return f.function.empty() && (starts_with(module, "libstdc++.so") || starts_with(module, "libc++.so"));
}

// A standard-library type that only wraps the one the user allocated: unwrap it.
inline std::string element_type(std::string_view t) {
    static const char* const wrappers[] = {"allocator", "__new_allocator", "new_allocator", "allocator_traits",
                                           "_Rb_tree_node", "_Hash_node", "_List_node", "_Fwd_list_node",
                                           "_Sp_counted_ptr_inplace", "__allocated_ptr"};
    for (int guard = 0; guard < 8; ++guard) {
        t = trimmed(t);
        if (!starts_with(t, "std::") && !starts_with(t, "__gnu_cxx::")) break;
        std::vector<std::string_view> parts = scope_parts(t);
        if (!one_of(template_name(parts.back()), wrappers)) break;
        t = first_template_arg(parts.back());
    }
    // The library's private types (bucket arrays, deque maps) are nobody's element type.
    if (t.empty() || starts_with(t, "std::__detail::") ||
        (starts_with(t, "std::_") && t.size() > 6 && t[6] >= 'A' && t[6] <= 'Z'))
        return std::string();
    if (t == "std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >") return "std::string";
    return std::string(t);
}

// The type a plumbing frame allocates for, where its name says so; empty otherwise.
inline std::string type_of_frame(const Frame& f) {
    std::string_view q = qualified_name(f.function);
    std::vector<std::string_view> parts = scope_parts(q);
    if (parts.size() < 2) return std::string();
    // leakscope::tagged<Tag>::...: the explicit tag, as the user wrote it.
    if (parts[0] == "leakscope")
        return template_name(parts[1]) == "tagged" ? std::string(first_template_arg(parts[1])) : std::string();
    if (parts[0] != "std" && parts[0] != "__gnu_cxx") return std::string();
    static const char* const factories[] = {"make_shared", "allocate_shared", "make_unique", "__make_shared",
                                            "__allocate_shared", "make_shared_for_overwrite",
                                            "make_unique_for_overwrite"};
    static const char* const allocators[] = {"allocator", "__new_allocator", "new_allocator", "allocator_traits",
                                             "_Sp_counted_ptr_inplace", "_Hashtable_alloc", "basic_string",
                                             "__allocated_ptr"};
    if (one_of(template_name(parts.back()), factories)) return element_type(first_template_arg(parts.back()));
    std::string_view owner = parts[parts.size() - 2];
    if (one_of(template_name(owner), allocators)) {
        // basic_string<C>'s blocks hold C; the others' first argument is (or wraps) the type.
        if (template_name(owner) == "basic_string") return std::string(first_template_arg(owner));
        return element_type(first_template_arg(owner));
    }
    return std::string();
}

// The first type named by the trimmed frames, innermost first.
inline std::string infer_type(const std::vector<Frame>& plumbing) {
    for (const Frame& f : plumbing) {
        std::string t = type_of_frame(f);
        if (!t.empty()) return t;
    }
    return std::string();
}

// Options of this part (group_depth=, suppressions=), set by the options parser without
// allocating (it may run inside the hook); a suppressions file is read at report time.
struct AttributionOptions {
    std::atomic<u32> group_depth;          // top frames of the trimmed stack deciding a site; 0: all
    std::atomic<u32> suppressions_set;     // bumped by each suppressions= entry
    SpinLock path_lock;
    char suppressions_path[4096];
};
inline AttributionOptions& attribution_options() noexcept {
    static AttributionOptions options;   // zero-initialised: usable before main
    return options;
}

// ---- suppressions ----
// Rules, one per line ('#' starts a comment line):
//   leak:PATTERN              LSan's form: any frame of the whole stack matches PATTERN
//   stack:P1;P2;...           consecutive frames of the trimmed stack match P1, P2, ... anywhere
//   top:P1;P2;...             the same, anchored: frames[0] matches P1
// A frame matches a pattern when its function, file or module does: a substring, with '*' for any
// run of characters, a leading '^' anchoring at the start and a trailing '$' at the end (LSan's).
// A rule may end with a budget, max_blocks=N and/or max_bytes=N[K|M|G]: a site larger than that is
// reported again (and the next rules are tried).
struct SuppressionRule {
    enum Kind { leak, stack, top } kind;
    std::string text;                     // as written, for Report::suppressed
    std::vector<std::string> patterns;
    u64 max_blocks = ~u64(0), max_bytes = ~u64(0);
};
struct Suppressions {
    std::mutex mutex;
    std::vector<SuppressionRule> from_file, from_code;
    u32 loaded = 0;                       // the suppressions_set value from_file was read for
};
inline Suppressions& suppression_rules() {
    // Never destroyed (reports at exit use it), and leakscope's own: clean() reaches here from a
    // user's scope, whose leftovers it would otherwise join.
    static Suppressions* rules = [] {
        InternalGuard internal;
        return new Suppressions();
    }();
    return *rules;
}
// Are there rules (or a file named, not read yet)? Lets clean() stay cheap without them.
bool suppressions_may_apply() noexcept {
    if (attribution_options().suppressions_set.load(acquire) != 0) return true;
    Suppressions& s = suppression_rules();
    std::lock_guard<std::mutex> lock(s.mutex);
    return !s.from_code.empty() || !s.from_file.empty();
}

// LSan's TemplateMatch: '*' wildcards, '^' and '$' anchors, otherwise a substring.
inline bool template_match(std::string_view pattern, std::string_view text) {
    if (pattern.empty() || text.empty()) return false;
    bool at_start = pattern.front() == '^';
    if (at_start) pattern.remove_prefix(1);
    bool at_end = !pattern.empty() && pattern.back() == '$';
    if (at_end) pattern.remove_suffix(1);
    std::size_t pos = 0;
    bool first = true;
    for (;;) {
        std::size_t star = pattern.find('*');
        std::string_view piece = pattern.substr(0, star);
        bool last = star == std::string_view::npos;
        if (last && at_end) {   // the last piece ends the text, after what matched so far
            if (text.size() < pos + piece.size() || !ends_with(text, piece)) return false;
            return !(first && at_start) || text.size() == piece.size();
        }
        if (first && at_start) {
            if (!starts_with(text, piece)) return false;
            pos = piece.size();
        } else if (!piece.empty()) {
            std::size_t found = text.find(piece, pos);
            if (found == std::string_view::npos) return false;
            pos = found + piece.size();
        }
        if (last) return true;
        pattern.remove_prefix(star + 1);
        first = false;
    }
}
inline bool frame_matches(const std::string& pattern, const Frame& f) {
    return template_match(pattern, f.function) || template_match(pattern, f.file) || template_match(pattern, f.module);
}
inline bool sequence_at(const SuppressionRule& rule, const std::vector<Frame>& frames, std::size_t at) {
    if (frames.size() - at < rule.patterns.size()) return false;
    for (std::size_t k = 0; k < rule.patterns.size(); ++k)
        if (!frame_matches(rule.patterns[k], frames[at + k])) return false;
    return true;
}
inline bool rule_matches(const SuppressionRule& rule, const Site& site) {
    switch (rule.kind) {
        case SuppressionRule::leak:
            for (const auto* list : {&site.allocator_frames, &site.frames})
                for (const Frame& f : *list)
                    if (frame_matches(rule.patterns[0], f)) return true;
            return false;
        case SuppressionRule::top:
            return !site.frames.empty() && sequence_at(rule, site.frames, 0);
        case SuppressionRule::stack:
            for (std::size_t at = 0; at < site.frames.size(); ++at)
                if (sequence_at(rule, site.frames, at)) return true;
            return false;
    }
    return false;
}

// A number with an optional K/M/G suffix (bytes); false when it is not one.
inline bool parse_count(std::string_view s, bool suffix, u64& out) {
    u64 scale = 1;
    if (suffix && !s.empty()) {
        char c = s.back();
        if (c == 'K' || c == 'k') scale = u64(1) << 10;
        if (c == 'M' || c == 'm') scale = u64(1) << 20;
        if (c == 'G' || c == 'g') scale = u64(1) << 30;
        if (scale != 1) s.remove_suffix(1);
    }
    if (s.empty() || s.size() > 15) return false;
    u64 v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + u64(c - '0');
    }
    out = v * scale;
    return true;
}

// Parses one line; returns false with `error` set for a malformed one (blank and comment lines
// are fine and give no rule: `rule.patterns` stays empty).
inline bool parse_suppression(std::string_view line, SuppressionRule& rule, const char*& error) {
    line = trimmed(line);
    if (line.empty() || line.front() == '#') return true;
    std::size_t colon = line.find(':');
    std::string_view kind = colon == std::string_view::npos ? line : trimmed(line.substr(0, colon));
    if (kind == "leak") rule.kind = SuppressionRule::leak;
    else if (kind == "stack") rule.kind = SuppressionRule::stack;
    else if (kind == "top") rule.kind = SuppressionRule::top;
    else {
        error = colon == std::string_view::npos ? "expected kind:pattern (leak:, stack: or top:)"
                                                : "unknown rule kind (leak:, stack: or top:)";
        return false;
    }
    std::string_view rest = trimmed(line.substr(colon + 1));
    // Budget tokens, from the end.
    for (;;) {
        std::size_t space = rest.find_last_of(" \t");
        std::string_view token = space == std::string_view::npos ? rest : rest.substr(space + 1);
        bool blocks = starts_with(token, "max_blocks="), bytes = starts_with(token, "max_bytes=");
        if (!blocks && !bytes) break;
        std::string_view number = token.substr(token.find('=') + 1);
        if (!parse_count(number, bytes, blocks ? rule.max_blocks : rule.max_bytes)) {
            error = blocks ? "max_blocks needs a number" : "max_bytes needs a number (K, M, G allowed)";
            return false;
        }
        rest = space == std::string_view::npos ? std::string_view() : trimmed(rest.substr(0, space));
    }
    if (rest.empty()) {
        error = "empty pattern";
        return false;
    }
    if (rule.kind == SuppressionRule::leak) {
        rule.patterns.emplace_back(rest);
    } else {
        for (std::size_t start = 0;;) {
            std::size_t semi = rest.find(';', start);
            std::string_view piece = trimmed(rest.substr(start, semi == std::string_view::npos ? semi : semi - start));
            if (piece.empty()) {
                rule.patterns.clear();
                error = "empty frame pattern in the sequence";
                return false;
            }
            rule.patterns.emplace_back(piece);
            if (semi == std::string_view::npos) break;
            start = semi + 1;
        }
    }
    rule.text = std::string(line);
    return true;
}

// Parses rules text; a malformed line gets one stderr line naming `source` and its line number,
// the others still apply.
inline void parse_suppressions(std::string_view text, const char* source, std::vector<SuppressionRule>& out) {
    unsigned number = 0;
    for (std::size_t start = 0; start <= text.size();) {
        std::size_t end = text.find('\n', start);
        if (end == std::string_view::npos) end = text.size();
        ++number;
        std::string_view line = text.substr(start, end - start);
        SuppressionRule rule{};
        const char* error = nullptr;
        if (!parse_suppression(line, rule, error)) {
            char message[400];
            std::snprintf(message, sizeof message, "suppressions %s:%u: %s in '%.*s'; line ignored", source, number,
                          error, int(std::min<std::size_t>(trimmed(line).size(), 120)), trimmed(line).data());
            diagnostic(message);
        } else if (!rule.patterns.empty()) {
            out.push_back(std::move(rule));
        }
        start = end + 1;
    }
}

// (Re)reads the suppressions= file when that option changed since the last look.
inline void refresh_suppressions(Suppressions& rules) {
    AttributionOptions& o = attribution_options();
    u32 set = o.suppressions_set.load(acquire);
    if (set == rules.loaded) return;
    rules.loaded = set;
    rules.from_file.clear();
    std::string path;
    {
        SpinGuard guard(o.path_lock);
        path = o.suppressions_path;
    }
    if (path.empty()) return;
    // A regular file of sane size only: /dev/zero would grow `text` until memory ran out, a FIFO
    // would block the report (O_NONBLOCK: opening one does not wait for a writer).
    constexpr std::size_t kMaxBytes = std::size_t(16) << 20;
    std::string text;
    const char* why = nullptr;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat info;
    if (fd < 0) {
        why = "cannot read";
    } else if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
        why = "not a regular file:";
    } else if (std::size_t(info.st_size) > kMaxBytes) {
        why = "larger than 16 MiB:";
    } else {
        char buffer[4096];
        ssize_t n = 0;
        while (text.size() <= kMaxBytes && ((n = ::read(fd, buffer, sizeof buffer)) > 0 || (n < 0 && errno == EINTR)))
            if (n > 0) text.append(buffer, std::size_t(n));
        if (n < 0) why = "cannot read";
    }
    if (fd >= 0) ::close(fd);
    if (why) {
        char message[300];
        std::snprintf(message, sizeof message, "suppressions: %s '%.200s'; no rules from it", why, path.c_str());
        diagnostic(message);
        return;
    }
    parse_suppressions(text, path.c_str(), rules.from_file);
}

// Hides the sites a rule covers (within its budget), accounting for each rule in the report.
inline void apply_suppressions(Report& out) {
    Suppressions& rules = suppression_rules();
    std::lock_guard<std::mutex> lock(rules.mutex);
    refresh_suppressions(rules);
    if (rules.from_file.empty() && rules.from_code.empty()) return;
    std::vector<const SuppressionRule*> all;
    for (const auto* list : {&rules.from_file, &rules.from_code})
        for (const SuppressionRule& r : *list) all.push_back(&r);
    std::vector<Suppression> hid(all.size());
    std::vector<Site> kept;
    for (Site& site : out.sites) {
        bool hidden = false;
        for (std::size_t i = 0; i < all.size() && !hidden; ++i) {
            const SuppressionRule& r = *all[i];
            if (site.blocks > r.max_blocks || site.bytes > r.max_bytes || !rule_matches(r, site)) continue;
            hid[i].blocks += site.blocks;
            hid[i].bytes += site.bytes;
            hidden = true;
        }
        if (hidden) {
            out.blocks -= site.blocks;
            out.bytes -= site.bytes;
        } else {
            kept.push_back(std::move(site));
        }
    }
    out.sites.swap(kept);
    for (std::size_t i = 0; i < all.size(); ++i)
        if (hid[i].blocks) {
            hid[i].rule = all[i]->text;
            out.suppressed.push_back(std::move(hid[i]));
        }
}

// ---- sites ----
// A site's frames from its interned stack, split into plumbing (allocator_frames) and the user's
// (frames), and its type. Inlined chains are split frame by frame: at -O2 the user's line is
// usually an inlined-into frame of the same address as the allocator's.
inline void fill_frames(Symbolizer& s, u32 stack, Site& site) {
    const StackEntry* e = stack_entry(stack);
    if (!e) return;
    std::vector<Frame> all;
    all.reserve(e->depth * 2);
    for (u32 i = 0; i < e->depth; ++i)
        for (const Frame& f : symbolize_locked(s, e->frames[i])) all.push_back(f);
    std::size_t trim = 0;
    while (trim < all.size() && is_allocation_plumbing(all[trim])) ++trim;
    site.type = infer_type(std::vector<Frame>(all.begin(), all.begin() + std::ptrdiff_t(trim)));
    if (trim == all.size()) trim = 0;   // nothing but library frames: keep the whole stack in `frames`
    site.allocator_frames.assign(std::make_move_iterator(all.begin()), std::make_move_iterator(all.begin() + std::ptrdiff_t(trim)));
    site.frames.assign(std::make_move_iterator(all.begin() + std::ptrdiff_t(trim)), std::make_move_iterator(all.end()));
}

// What decides a site: its type and its first `depth` frames (0: all) — by source line where
// there is one (an unrolled loop's call sites on one line are one site), else by address.
inline std::string site_key(const Site& site, u32 depth) {
    std::string key = site.type;
    std::size_t n = depth ? std::min<std::size_t>(depth, site.frames.size()) : site.frames.size();
    char number[48];
    for (std::size_t i = 0; i < n; ++i) {
        const Frame& f = site.frames[i];
        key += '\x1f';
        if (f.line && !f.file.empty()) {
            std::snprintf(number, sizeof number, ":%u%s", f.line, f.inlined ? "i" : "");
            key += f.function;
            key += '\x1e';
            key += f.file;
            key += number;
        } else {
            std::snprintf(number, sizeof number, "@%llx", static_cast<unsigned long long>(f.address));
            key += f.module;
            key += number;
        }
    }
    return key;
}

// Builds the report of a scope's current leftovers (leakscope's own allocations inside).
// Groups blocks (their stack ids and sizes) into the report's sites and totals: by whole stack,
// then suppressions, then group_depth; largest bytes first.
void build_sites(std::vector<SiteItem>& items, Report& out, bool suppress) {
    using Item = SiteItem;
    std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.stack < b.stack; });
    // Sites by whole stack first (by source line: an unrolled loop's call sites are one stack):
    // suppression rules and their budgets see whole stacks. Then group_depth merges what remains.
    {
        Symbolizer& s = symbolizer();
        std::lock_guard<std::mutex> lock(s.mutex);
        forget_if_unloaded(s);
        std::unordered_map<std::string, std::size_t> stacks;   // key -> index in out.sites
        for (std::size_t i = 0; i < items.size();) {
            Site site;
            std::size_t j = i;
            for (; j < items.size() && items[j].stack == items[i].stack; ++j) {
                site.blocks += items[j].blocks;
                site.bytes += items[j].size;
                site.samples += items[j].samples;
            }
            out.blocks += site.blocks;
            out.bytes += site.bytes;
            fill_frames(s, items[i].stack, site);
            auto found = stacks.emplace(site_key(site, 0), out.sites.size());
            if (found.second) {
                out.sites.push_back(std::move(site));
            } else {
                out.sites[found.first->second].blocks += site.blocks;
                out.sites[found.first->second].bytes += site.bytes;
                out.sites[found.first->second].samples += site.samples;
            }
            i = j;
        }
    }
    if (suppress) apply_suppressions(out);
    if (u32 depth = attribution_options().group_depth.load(relaxed)) {
        // A site is its deciding frames (what lies beyond differs between its stacks); its
        // allocator frames are those of its largest stack.
        std::stable_sort(out.sites.begin(), out.sites.end(),
                         [](const Site& a, const Site& b) { return a.bytes > b.bytes; });
        std::unordered_map<std::string, std::size_t> groups;
        std::vector<Site> merged;
        for (Site& site : out.sites) {
            auto found = groups.emplace(site_key(site, depth), merged.size());
            if (found.second) {
                if (site.frames.size() > depth) site.frames.resize(depth);
                merged.push_back(std::move(site));
            } else {
                merged[found.first->second].blocks += site.blocks;
                merged[found.first->second].bytes += site.bytes;
                merged[found.first->second].samples += site.samples;
            }
        }
        out.sites.swap(merged);
    }
    std::stable_sort(out.sites.begin(), out.sites.end(),
                     [](const Site& a, const Site& b) { return a.bytes > b.bytes; });
}

void build_leftovers(u32 index, Report& out) {
    // Stacks deferred so far, walked on the thread whose births wrote them (a closed scope's were
    // walked when it closed).
    ThreadState& t = tls;
    Slot& slot = slot_ref(index);
    settle_pending(t, slot, false);
    std::vector<SiteItem> items;
    for_each_leftover(index, [&](const Record& r) { items.push_back(SiteItem{r.stack, r.size}); });
    build_sites(items, out);
    const Slot& s = slot_ref(index);
    out.released_blocks = s.owner_released_blocks.load(relaxed) + s.remote_released_blocks.load(relaxed);
    out.released_bytes = s.owner_released_bytes.load(relaxed) + s.remote_released_bytes.load(relaxed);
}
}  // namespace detail

void suppress(std::string_view rules, std::string_view source) {
    InternalGuard internal;
    Suppressions& s = suppression_rules();
    std::string name(source.empty() ? std::string_view("suppress()") : source);
    std::lock_guard<std::mutex> lock(s.mutex);
    parse_suppressions(rules, name.c_str(), s.from_code);
}

void clear_suppressions() {
    InternalGuard internal;
    Suppressions& s = suppression_rules();
    std::lock_guard<std::mutex> lock(s.mutex);
    s.from_code.clear();
}

Report LeakScope::leftovers() const {
    InternalGuard internal;
    Report report = leftovers_header(name_, file_, line_, false);
    if (open_) build_leftovers(slot_, report);
    return report;
}

void LeakScope::close(bool report) noexcept {
    if (!open_) return;
    open_ = false;
    ThreadState& t = tls;
    Slot& s = slot_ref(slot_);
    // Restore the thread's scope first: what the report allocates belongs to no one.
    t.current = saved_current_;
    u64 self_handle = handle_of(slot_, generation_);
    if (t.anchor == reinterpret_cast<std::uintptr_t>(this) && t.anchor_scope == self_handle)
        restore_anchor(t, saved_anchor_, saved_anchor_scope_, saved_anchor_epoch_, saved_anchor_mark_);
    else   // closed out of order, or on another thread: anchors set before may outlive their frames
        st.anchor_breaks.fetch_add(1, acq_rel);
    if (s.threads_all) {
        SpinGuard guard(g.all_lock);
        u64 self = handle_of(slot_, generation_);
        u64 top = g.all_scope.load(relaxed);
        if (top == self) {
            u32 prev = s.prev_all;
            g.all_scope.store(prev ? handle_of(prev, slot_ref(prev).generation.load(relaxed)) : 0, release);
            if (!prev) g.mode.fetch_and(~u32(kAllScopeOpen), relaxed);
        } else {
            for (u32 x = u32(top); x; x = slot_ref(x).prev_all)
                if (slot_ref(x).prev_all == slot_) {
                    slot_ref(x).prev_all = s.prev_all;
                    break;
                }
        }
    }
    if (s.owner.load(relaxed) != t.serial && g.warned_cross_thread_close.exchange(1, relaxed) == 0)
        diagnostic("a LeakScope was destroyed on another thread than the one that opened it; "
                   "its counts are approximate (a scope belongs to the thread that opens it)");
    flush_deferred(t, false);
    i64 live;
    {
        SpinGuard guard(s.lock);
        s.closed.store(1, relaxed);
        live = live_count(s);
    }
    // Deferred stacks: walked for the leftovers (on the owner thread, whose births wrote them),
    // forgotten for a clean scope.
    if (s.pending && s.owner.load(relaxed) == t.serial) {
        if (live > 0) settle_pending(t, s, false);
        else s.pending->count = s.pending->used = 0;
    }
    if (live > 0) {
        // stacks=demand: this name leaked, so its next runs capture stacks.
        if (StackMode(st.mode.load(relaxed)) == StackMode::demand) want_name(name_hash(name_));
        bool by_exception = std::uncaught_exceptions() > uncaught_at_open_;
        u32 settle_ms = g.settle_ms.load(relaxed);
        bool deferred = false;
        if (report && (settle_ms || by_exception)) {
            // Parked: the slot keeps the scope's identity, and a hold, until the report is written.
            // settle_ms: confirmed later, off this thread (an exception is long handled by then);
            // otherwise once the exception has been handled.
            std::size_t n = std::strlen(name_);
            std::memcpy(s.deferred_name, name_, n + 1);
            s.deferred_file = file_;
            s.deferred_line = line_;
            s.deferred_thrown = by_exception;
            s.deferred_uncaught = uncaught_at_open_;
            s.refs.fetch_add(1, relaxed);
            u64 self = handle_of(slot_, generation_);
            deferred = (settle_ms && settle_later(self, settle_ms)) || (by_exception && defer_report(t, self));
            if (!deferred) s.refs.fetch_sub(1, relaxed);   // no room: report now
        }
        if (report && !deferred) write_leftovers_report(slot_, name_, file_, line_, by_exception);
        // The enclosing scope sees these leftovers too: it logs this scope, whose slot its
        // leftovers keep (and which holds a reference on the parent meanwhile).
        if (s.parent) {
            Slot& p = slot_ref(s.parent);
            SpinGuard guard(p.lock);
            if (!p.closed.load(relaxed)) p.shared.push(child_entry(slot_, generation_));
        }
    }
    slot_drop_open_bias(t, slot_);
}

Adopt::Adopt(Token token) noexcept {
    if (token.empty()) return;
    Slot* s = slot_at(token.slot_);
    if (!s) return;
    ThreadState& t = tls;
    ensure_registered(t);
    {
        SpinGuard guard(s->lock);
        if (s->generation.load(relaxed) != token.generation_ || s->closed.load(relaxed)) return;
        s->holds.fetch_add(1, relaxed);
        s->refs.fetch_add(1, relaxed);
    }
    slot_ = token.slot_;
    saved_current_ = t.current;
    t.current = handle_of(slot_, token.generation_);
}

Adopt::~Adopt() {
    if (!slot_) return;
    ThreadState& t = tls;
    t.current = saved_current_;
    Slot& s = slot_ref(slot_);
    {
        SpinGuard guard(s.lock);
        s.holds.fetch_sub(1, relaxed);
    }
    drop_ref(t, slot_);
}

Ignore::Ignore() noexcept { ++tls.ignore_depth; }
Ignore::~Ignore() { --tls.ignore_depth; }

void ignore(const void* block) noexcept {
    if (!block) return;
    ThreadState& t = tls;
    auto p = reinterpret_cast<std::uintptr_t>(block);
    u32 mode = g.mode.load(acquire);
    if ((mode & kEverTracked) && may_have_header(p)) {
        BlockHeader h = read_header(p);
        u32 scope = where_scope(h.where), seq = where_seq(h.where);
        Slot* s = header_tag_matches(p, h.where) && scope != kDetachedScope ? slot_at(scope) : nullptr;
        if (s && clear_birth(t, *s, seq, p)) {
            // It keeps its header (its memory starts below it) and moves to the detached log,
            // where its delete will find it; its scope forgets it.
            if (!detach(p)) {
                // No tracker memory: it stays a birth of its scope after all.
                if (seq & kSharedSeq) {
                    SpinGuard scope_guard(s->lock);
                    s->shared.data[seq & ~kSharedSeq].addr = p;
                } else {
                    LogChunkRef* c = log_chunk_ref(*s, seq / kLogChunk, false);
                    __atomic_store_n(&c->entries.load(acquire)[seq % kLogChunk], p, __ATOMIC_RELAXED);
                }
                return;
            }
            release_ref(t, scope, seq);
            return;
        }
    }
    if (mode & kSideTable) {
        Record before{};
        if (!registry_find(p, before, Edit::unscope)) return;
        if (before.scope && clear_birth(t, slot_ref(before.scope), before.seq, p | kExternal))
            release_ref(t, before.scope, before.seq);
    }
}

LEAKSCOPE_NOINLINE void record_allocation(const void* block, std::size_t size) noexcept {
    if (!block) return;
    ThreadState& t = tls;
    ensure_registered(t);
    if (counts_locally(t))
        t.allocations.store(t.allocations.load(relaxed) + 1, relaxed);
    else
        g.retired_allocations.fetch_add(1, relaxed);
    u64 handle = (t.internal | t.ignore_depth) ? 0 : counting_scope(t);
    if (handle)
        side_birth(t, handle, reinterpret_cast<std::uintptr_t>(block), size,
                   reinterpret_cast<std::uintptr_t>(__builtin_return_address(0)));
}
void record_deallocation(const void* block, std::size_t size) noexcept {
    if (!block) return;
    ThreadState& t = tls;
    u32 mode = g.mode.load(acquire);
    if ((mode & kSideTable) && side_death(t, reinterpret_cast<std::uintptr_t>(block), mode)) return;
    if (counting_frees(t, mode)) count_released(t, 0, size);   // size 0: unknown, and not malloc's to ask
}

// ---- call stacks and options ------------------------------------------------------------------
LEAKSCOPE_NOINLINE std::size_t current_stack(std::uintptr_t* out, std::size_t max, Unwinder how) noexcept {
    if (!out || max == 0) return 0;
    // No registration here (it is not async-signal-safe): a thread leakscope has not met yet walks
    // with libgcc and without remembering.
    ThreadState& t = tls;
    WalkResult ignored{0, nullptr};
    return capture(t, how, reinterpret_cast<std::uintptr_t>(__builtin_return_address(0)), out, max, ignored);
}

namespace detail {
inline bool option_separator(char c) noexcept { return c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// True when `text` starts like an entry, "name=" with a name of lower-case letters, digits and
// '_' (every option key's form; no destination of report= is one: they hold '.', '/' or ',').
inline bool starts_option_entry(std::string_view text) noexcept {
    std::size_t i = 0;
    while (i < text.size() && ((text[i] >= 'a' && text[i] <= 'z') || (text[i] >= '0' && text[i] <= '9') || text[i] == '_')) ++i;
    return i > 0 && i < text.size() && text[i] == '=';
}

inline void option_error(const char* source, const char* what, std::string_view entry) noexcept {
    char line[256];
    std::snprintf(line, sizeof line, "%s: %s '%.*s'; ignored", source, what, int(std::min<std::size_t>(entry.size(), 80)),
                  entry.data());
    diagnostic(line);
}

// report=: checked now, the writers built at the next report (see the writers section).
bool accept_report_option(std::string_view value, std::string_view entry, const char* source) noexcept;

// signal= and monitor*= (the monitor and signal dump section).
void apply_monitor_option(std::string_view key, std::string_view value, std::string_view entry, const char* source) noexcept;
void apply_monitor_changes() noexcept;   // starts/stops their threads: only at safe points

// Applies one key=value entry; `entry` is the whole text, for messages.
inline void apply_option(std::string_view key, std::string_view value, std::string_view entry, const char* source) noexcept {
    auto pick = [&](std::initializer_list<std::string_view> names, std::atomic<u32>& into) {
        u32 i = 0;
        for (std::string_view name : names) {
            if (value == name) {
                into.store(i, relaxed);
                return;
            }
            ++i;
        }
        option_error(source, "bad value in", entry);
    };
    if (key == "stacks") {
        u32 before = st.mode.load(relaxed);
        pick({"on", "off", "demand"}, st.mode);   // the order of StackMode
        if (st.mode.load(relaxed) != before) g.mode.fetch_add(kStacksChange, relaxed);
    } else if (key == "test_stacks") {
        pick({"auto", "rerun", "inline"}, st.test_stacks);   // the order of TestStacks
    } else if (key == "unwinder") {
        pick({"fast", "fp", "libgcc"}, st.unwinder);   // the order of Unwinder
    } else if (key == "stack_depth") {
        u32 depth = 0;
        bool digits = !value.empty() && value.size() <= 3;
        for (char c : value) {
            digits = digits && c >= '0' && c <= '9';
            depth = depth * 10 + u32(c - '0');
        }
        if (digits && depth >= 1 && depth <= kMaxStackDepth)
            st.depth.store(depth, relaxed);
        else
            option_error(source, "stack_depth must be 1..256 in", entry);
    } else if (key == "group_depth") {
        u32 depth = 0;
        bool digits = !value.empty() && value.size() <= 3;
        for (char c : value) {
            digits = digits && c >= '0' && c <= '9';
            depth = depth * 10 + u32(c - '0');
        }
        if (digits && depth <= kMaxStackDepth)
            attribution_options().group_depth.store(depth, relaxed);
        else
            option_error(source, "group_depth must be 0..256 in", entry);
    } else if (key == "suppressions") {
        AttributionOptions& o = attribution_options();
        if (value.size() >= sizeof o.suppressions_path) {
            option_error(source, "suppressions path too long in", entry);
        } else {
            SpinGuard guard(o.path_lock);
            std::memcpy(o.suppressions_path, value.data(), value.size());
            o.suppressions_path[value.size()] = '\0';
            o.suppressions_set.fetch_add(1, release);   // read at the next report (reading allocates)
        }
    } else if (key == "report") {
        accept_report_option(value, entry, source);
    } else if (key == "track") {
        if (value == "all") {
            g.mode.fetch_or(kTrackAll, relaxed);
        } else if (value == "sample") {
            // The design's default interval unless sample_bytes= chose one.
            u64 none = 0;
            g.sample_bytes.compare_exchange_strong(none, kDefaultSampleBytes, relaxed);
            g.mode.fetch_or(kTrackAll | kSampled, relaxed);
        } else if (value == "scopes") {
            g.exit_report.load(relaxed) ? option_error(source, "exit_report=1 needs track=all; ignored", entry)
                                        : void(g.mode.fetch_and(~u32(kTrackAll | kSampled), relaxed));
        } else {
            option_error(source, "track must be scopes, all or sample in", entry);
        }
    } else if (key == "exit_report") {
        if (value == "1") {
            g.exit_report.store(1, relaxed);
            g.mode.fetch_or(kTrackAll, relaxed);   // every block must be known to report it at exit
        } else if (value == "0") {
            g.exit_report.store(0, relaxed);
        } else {
            option_error(source, "exit_report must be 0 or 1 in", entry);
        }
    } else if (key == "sample_bytes") {
        u64 every = 0;
        if (!parse_count(value, true, every) || every > 0xffffffffu) {
            option_error(source, "sample_bytes must be 0..4G (K, M, G allowed) in", entry);
        } else {
            g.sample_bytes.store(every, relaxed);
            if (every)
                g.mode.fetch_or(kTrackAll | kSampled, relaxed);
            else
                g.mode.fetch_and(~u32(kSampled), relaxed);   // track=all stays: every block from now
        }
    } else if (key == "settle_ms") {
        u64 ms = 0;
        if (parse_count(value, false, ms) && ms <= 3600000)
            g.settle_ms.store(u32(ms), relaxed);
        else
            option_error(source, "settle_ms must be 0..3600000 in", entry);
    } else if (key == "signal" || key.substr(0, 7) == "monitor") {
        apply_monitor_option(key, value, entry, source);
    } else {
        option_error(source, "unknown option", entry);
    }
}

// The LEAKSCOPE_OPTIONS syntax: key=value entries separated by ':' or white space; a value in
// '...' or "..." may hold either. Never allocates: usable before main and inside the hook.
inline void apply_options(std::string_view text, const char* source) noexcept {
    std::size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && option_separator(text[i])) ++i;
        if (i == text.size()) break;
        std::size_t start = i;
        while (i < text.size() && text[i] != '=' && !option_separator(text[i])) ++i;
        std::string_view key = text.substr(start, i - start);
        if (i == text.size() || text[i] != '=') {
            option_error(source, "expected key=value, got", key);
            continue;
        }
        ++i;   // '='
        std::string_view value;
        if (i < text.size() && (text[i] == '\'' || text[i] == '"')) {
            char quote = text[i++];
            std::size_t close = text.find(quote, i);
            if (close == std::string_view::npos) {
                option_error(source, "unterminated quote in", text.substr(start));
                return;
            }
            value = text.substr(i, close - i);
            i = close + 1;
        } else {
            // report='s destinations may be written kind:destination unquoted
            // (report=text:stderr,json:leaks-%p.json): there a ':' ends the value only when
            // another option's key= follows it.
            std::size_t value_start = i;
            for (;; ++i) {
                while (i < text.size() && !option_separator(text[i])) ++i;
                if (!(key == "report" && i < text.size() && text[i] == ':' && !starts_option_entry(text.substr(i + 1))))
                    break;
            }
            value = text.substr(value_start, i - value_start);
        }
        apply_option(key, value, text.substr(start, i - start), source);
    }
}

void apply_environment_options() noexcept {
    if (const char* env = std::getenv("LEAKSCOPE_OPTIONS")) apply_options(env, "LEAKSCOPE_OPTIONS");
}
}  // namespace detail

void configure(std::string_view options) noexcept {
    ensure_init();   // LEAKSCOPE_OPTIONS first, so that what code sets wins
    apply_options(options, "configure()");
    apply_monitor_changes();   // signal= and monitor*=: their threads start here, never in the hook
    // A suppressions file named here is read now, so that its malformed lines show at once.
    InternalGuard internal;
    try {
        Suppressions& rules = suppression_rules();
        std::lock_guard<std::mutex> lock(rules.mutex);
        refresh_suppressions(rules);
    } catch (...) {
        diagnostic("could not read the suppressions (out of memory?)");
    }
}

Stats stats() noexcept {
    Stats out;
    i64 blocks, bytes;
    u64 allocations, born;
    {
        SpinGuard guard(g.thread_lock);
        blocks = g.retired_live_blocks.load(relaxed);
        bytes = g.retired_live_bytes.load(relaxed);
        allocations = g.retired_allocations.load(relaxed);
        born = g.retired_born_bytes.load(relaxed);
        for (u32 i = 1; i <= g.thread_high; ++i) {
            ThreadState* t = g.threads[i].load(acquire);
            if (!t) continue;
            blocks += t->live_blocks.load(relaxed);
            bytes += t->live_bytes.load(relaxed);
            allocations += t->allocations.load(relaxed);
            born += t->born_bytes.load(relaxed);
        }
    }
    out.live_blocks = std::size_t(std::max<i64>(blocks, 0));
    out.live_bytes = std::size_t(std::max<i64>(bytes, 0));
    out.peak_bytes = std::size_t(std::max<i64>(g.peak_bytes.load(relaxed), bytes));
    out.total_allocations = std::size_t(allocations);
    out.tracked_bytes_total = std::size_t(born);
    out.tracker_bytes = os_bytes().load(relaxed);
    return out;
}

std::size_t reset_peak() noexcept {
    Stats now = stats();
    g.peak_bytes.store(i64(now.live_bytes), relaxed);
    detail::flush_site_deltas(detail::tls);
    // The sites of the new mark start from now, not from the old peak's copy.
    if (g.mode.load(relaxed) & kTrackAll) copy_peak_sites(g.live_bytes_published.load(acquire), true);
    return now.peak_bytes;
}

// ---- whole heap ----------------------------------------------------------------------------------
namespace detail {
struct SnapshotData {
    std::vector<Record> blocks;   // by (addr, scope, seq): what identifies one birth
    std::size_t count = 0, bytes = 0;   // sampled blocks as the estimate they stand for
};
inline bool birth_before(const Record& a, const Record& b) noexcept {
    if (a.addr != b.addr) return a.addr < b.addr;
    if (a.scope != b.scope) return a.scope < b.scope;
    return a.seq < b.seq;
}
inline bool same_birth(const Record& a, const Record& b) noexcept {
    // (A stack may be 0 in one view and known in the next: a deferred capture walked in between.)
    return a.addr == b.addr && a.scope == b.scope && a.seq == b.seq && a.size == b.size &&
           (a.stack == b.stack || a.stack == 0 || b.stack == 0);
}
// Sorts `n` records at `from` by birth_before into `to` (n records of room), `from` serving as
// the scratch space. A snapshot of a big heap is mostly this sort: a radix sort on the address
// (11 bits a pass over what varies among the addresses, stable) costs a few passes over the
// records where a comparison sort took log2(n) (~20 for a million); equal addresses, rare, are
// put in (scope, seq) order afterwards, each run of them by a comparison sort.
inline void sort_by_birth(Record* from, Record* to, std::size_t n) {
    if (n < 512) {
        std::copy(from, from + n, to);
        std::sort(to, to + n, birth_before);
        return;
    }
    std::uintptr_t lo = from[0].addr, varying = 0;
    for (std::size_t i = 1; i < n; ++i) lo = std::min(lo, from[i].addr);
    for (std::size_t i = 0; i < n; ++i) varying |= from[i].addr - lo;
    constexpr unsigned kDigitBits = 11;
    constexpr std::size_t kBuckets = std::size_t(1) << kDigitBits;
    unsigned shift = varying ? unsigned(__builtin_ctzll(varying)) : 0;
    unsigned top = varying ? 64u - unsigned(__builtin_clzll(varying)) : 0;
    unsigned passes = top > shift ? (top - shift + kDigitBits - 1) / kDigitBits : 0;
    std::vector<u32> counts(kBuckets);
    Record* buffers[2] = {from, to};
    unsigned at = 0;   // buffers[at] holds the records (an even number of passes: `from`, copied)
    for (unsigned pass = 0; pass < passes; ++pass) {
        unsigned digit_shift = shift + pass * kDigitBits;
        std::fill(counts.begin(), counts.end(), 0u);
        const Record* src = buffers[at];
        Record* dst = buffers[at ^ 1];
        for (std::size_t i = 0; i < n; ++i) ++counts[((src[i].addr - lo) >> digit_shift) & (kBuckets - 1)];
        u32 sum = 0;
        for (u32& c : counts) {
            u32 here = c;
            c = sum;
            sum += here;
        }
        for (std::size_t i = 0; i < n; ++i) dst[counts[((src[i].addr - lo) >> digit_shift) & (kBuckets - 1)]++] = src[i];
        at ^= 1;
    }
    if (buffers[at] != to) std::copy(buffers[at], buffers[at] + n, to);
    for (std::size_t i = 0; i < n;) {   // equal addresses: by (scope, seq)
        std::size_t end = i + 1;
        while (end < n && to[end].addr == to[i].addr) ++end;
        if (end - i > 1) std::sort(to + i, to + end, birth_before);
        i = end;
    }
}

inline std::shared_ptr<SnapshotData> heap_now() {
    InternalGuard internal;
    // The stacks this thread deferred in its open scopes are walked first (other threads' wait for
    // their scopes to close: until then their blocks show no stack).
    ThreadState& t = tls;
    for (u32 x = slot_of(t.current); x; x = slot_ref(x).parent) {
        Slot& s = slot_ref(x);
        settle_pending(t, s, false);
    }
    auto data = std::make_shared<SnapshotData>();
    OsVector<Record> found{};
    collect_heap(found);
    // Blocks are logged with a relaxed store after their stacks were interned under this lock:
    // taking it orders those entries before the reports' reads (a monitor or dumper thread).
    { SpinGuard ordered(st.intern_lock); }
    try {
        data->blocks.resize(found.size);
        sort_by_birth(found.data, data->blocks.data(), found.size);
    } catch (...) {
        found.release();
        throw;
    }
    found.release();
    for (const Record& r : data->blocks) {
        Weight w = sample_weight(r.size, r.flags);
        data->count += std::size_t(w.blocks);
        data->bytes += std::size_t(w.bytes);
    }
    return data;
}
// The process's resident set (/proc/self/statm), 0 where it cannot be read.
inline std::size_t resident_bytes() noexcept {
    int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char text[128];
    ssize_t n = ::read(fd, text, sizeof text - 1);
    ::close(fd);
    if (n <= 0) return 0;
    text[n] = '\0';
    unsigned long long size = 0, resident = 0;
    if (std::sscanf(text, "%llu %llu", &size, &resident) != 2) return 0;
    return std::size_t(resident) * std::size_t(::sysconf(_SC_PAGESIZE));
}
// The process's high-water resident set (VmHWM in /proc/self/status), 0 where unknown.
inline std::size_t peak_resident_bytes() noexcept {
    int fd = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char text[4096];
    ssize_t n = ::read(fd, text, sizeof text - 1);
    ::close(fd);
    if (n <= 0) return 0;
    text[n] = '\0';
    const char* at = std::strstr(text, "VmHWM:");
    unsigned long long kib = 0;
    if (!at || std::sscanf(at + 6, "%llu", &kib) != 1) return 0;
    return std::size_t(kib) * 1024;
}
// Collected blocks as report items: each itself, or a sampled block as the estimate it stands for;
// the report then says so, with the estimate's relative standard error.
struct HeapItems {
    std::vector<SiteItem> items;
    double variance = 0;
    u64 sample_bytes = 0;
    void add(const Record& r) {
        if (!r.flags) {
            items.push_back(SiteItem{r.stack, r.size});
            return;
        }
        Weight w = sample_weight(r.size, r.flags);
        items.push_back(SiteItem{r.stack, w.bytes, u64(w.blocks), 1});
        variance += w.variance;
        sample_bytes = std::max<u64>(sample_bytes, r.flags);
    }
    void state_error(Report& report) const {
        if (!sample_bytes) return;
        report.sample_bytes = std::size_t(sample_bytes);
        report.error = report.bytes ? std::sqrt(variance) / double(report.bytes) : 0;
    }
};
// The exit report: every tracked block still live (what Valgrind calls "in use at exit").
inline void write_exit_report() noexcept {
    InternalGuard internal;
    try {
        std::shared_ptr<SnapshotData> heap = heap_now();
        Report report;
        report.kind = "exit";
        report.scope = "in use at exit";
        HeapItems items;
        items.items.reserve(heap->blocks.size());
        for (const Record& r : heap->blocks) items.add(r);
        build_sites(items.items, report);
        items.state_error(report);
        dispatch(report);
    } catch (...) {
        diagnostic("could not build the exit report (out of memory?)");
    }
}
}  // namespace detail

Report heap() {
    InternalGuard internal;
    std::shared_ptr<SnapshotData> now = heap_now();
    Report report;
    report.kind = "heap";
    report.scope = "live heap";
    HeapItems items;
    items.items.reserve(now->blocks.size());
    for (const Record& r : now->blocks) items.add(r);
    build_sites(items.items, report);
    items.state_error(report);
    report.rss_bytes = resident_bytes();
    return report;
}

void write(const Report& report) noexcept { dispatch(report); }

Report peak() {
    InternalGuard internal;
    Report report;
    report.kind = "peak";
    report.scope = "peak";
    std::vector<SiteItem> items;
    for (;;) {
        // Sized outside the lock: the copy is taken by allocating threads, and one that finds
        // the lock held goes on without copying (it never waits on us).
        std::size_t want = 0;
        {
            SpinGuard guard(site_totals.copy_lock);
            want = site_totals.copy.size;
        }
        items.reserve(want);
        SpinGuard guard(site_totals.copy_lock);
        if (site_totals.copy.size > items.capacity()) continue;
        for (std::size_t i = 0; i < site_totals.copy.size; ++i) {
            const PeakSite& e = site_totals.copy.data[i];
            items.push_back(SiteItem{e.stack, u64(e.bytes), u64(e.blocks)});
        }
        break;
    }
    build_sites(items, report);
    report.bytes = std::max(report.bytes, stats().peak_bytes);   // the mark; its sites sum to less
    report.rss_bytes = peak_resident_bytes();
    return report;
}

Snapshot Snapshot::take() {
    Snapshot s;
    s.data_ = heap_now();
    return s;
}
std::size_t Snapshot::blocks() const noexcept { return data_ ? data_->count : 0; }
std::size_t Snapshot::bytes() const noexcept { return data_ ? data_->bytes : 0; }

Report operator-(const Snapshot& after, const Snapshot& before) {
    InternalGuard internal;
    Report report;
    report.kind = "diff";
    static const std::vector<Record> none;
    const std::vector<Record>& a = after.data_ ? after.data_->blocks : none;
    const std::vector<Record>& b = before.data_ ? before.data_->blocks : none;
    HeapItems born, gone;
    std::size_t i = 0, j = 0;
    while (i < a.size() || j < b.size()) {
        if (j == b.size() || (i < a.size() && birth_before(a[i], b[j]))) {
            born.add(a[i]);
            ++i;
        } else if (i == a.size() || birth_before(b[j], a[i])) {
            gone.add(b[j]);
            ++j;
        } else {
            if (!same_birth(a[i], b[j])) {   // the same place, another block
                born.add(a[i]);
                gone.add(b[j]);
            }
            ++i;
            ++j;
        }
    }
    build_sites(born.items, report);
    born.state_error(report);
    // The minus side by site too (what was freed is never suppressed: rules hide leaks).
    Report minus;
    build_sites(gone.items, minus, false);
    report.released_blocks = minus.blocks;
    report.released_bytes = minus.bytes;
    report.released_sites = std::move(minus.sites);
    return report;
}

// ---- the monitor and the signal dump ----------------------------------------------------------
// Threads are started only at safe points: Monitor's constructor, configure() (after all its
// entries), and a constructor function of this unit for LEAKSCOPE_OPTIONS. Never in the hook
// (the environment is read inside the first operator new, maybe under a caller's lock) and never
// in the signal handler, which only posts a semaphore.
namespace detail {

inline timespec monotonic_now() noexcept {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return now;
}
inline timespec add_ms(timespec t, u64 ms) noexcept {
    t.tv_sec += time_t(ms / 1000);
    t.tv_nsec += long(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_nsec -= 1000000000L;
        ++t.tv_sec;
    }
    return t;
}
inline bool not_after(const timespec& a, const timespec& b) noexcept {
    return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec <= b.tv_nsec);
}


// ---- Monitor's state ----
// Shared by the Monitor and its thread (the thread holds a reference while it runs, so a Monitor
// destroyed from its own writer is safe). The mutex and condition variable are plain pthread ones
// with CLOCK_MONOTONIC: in a fork child the thread is gone but may have been waiting on them, and
// glibc's pthread_cond_destroy then waits for that waiter forever, so a child's copy is never
// destroyed (see `forked`).
struct MonitorState : std::enable_shared_from_this<MonitorState> {
    Monitor::Options options;
    pthread_mutex_t mutex;
    pthread_cond_t wake;                  // stop requests, and joins finished
    std::atomic<bool> stopping{false};    // written under mutex
    bool join_claimed = false, joined = false;   // under mutex
    std::atomic<bool> started{false};     // a thread was created for it
    std::atomic<pthread_t> thread{};
    std::atomic<u32> forked{0};           // a fork child's copy: no thread here
    std::atomic<unsigned> intervals{0};
    SpinLock report_lock{};               // guards `latest` (pointer swaps only; fork: see atfork)
    std::shared_ptr<const Report> latest;
    std::shared_ptr<MonitorState> thread_ref;   // handed to the thread when it starts
    MonitorState* prev = nullptr;         // the registry of states (monitor_registry().lock)
    MonitorState* next = nullptr;
    bool registered = false;
    bool exit_seen = false;

    explicit MonitorState(const Monitor::Options& o) noexcept : options(o) {
        if (options.interval_ms == 0) options.interval_ms = 1;   // never a busy loop
        pthread_mutex_init(&mutex, nullptr);
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&wake, &attr);
        pthread_condattr_destroy(&attr);
    }
    ~MonitorState();
    MonitorState(const MonitorState&) = delete;
    MonitorState& operator=(const MonitorState&) = delete;

    // Waits until `deadline`; false when stopped meanwhile.
    bool wait_until(const timespec& deadline) noexcept {
        pthread_mutex_lock(&mutex);
        while (!stopping.load(relaxed) && pthread_cond_timedwait(&wake, &mutex, &deadline) != ETIMEDOUT) {
        }
        bool go = !stopping.load(relaxed);
        pthread_mutex_unlock(&mutex);
        return go;
    }
    void stop() noexcept;
    void run();
    void publish(std::shared_ptr<const Report> report) noexcept {
        {
            SpinGuard guard(report_lock);
            latest.swap(report);
        }
        // the previous report is freed here, outside the lock
    }
};

// Every MonitorState whose thread was started, for exit and fork.
struct MonitorRegistry {
    SpinLock lock;
    MonitorState* head;
    std::atomic<u32> hooks;      // pthread_atfork registered
    std::atomic<u32> exit_registrations;
    std::atomic<u32> no_new_threads;   // set by the exit handler (and the options fuzzer)
};
inline void register_exit_handler() noexcept;
inline MonitorRegistry& monitor_registry() noexcept {
    static MonitorRegistry registry;   // zero-initialised POD
    return registry;
}

MonitorState::~MonitorState() {
    if (registered) {
        MonitorRegistry& r = monitor_registry();
        SpinGuard guard(r.lock);
        (prev ? prev->next : r.head) = next;
        if (next) next->prev = prev;
    }
    if (!forked.load(relaxed)) {
        pthread_cond_destroy(&wake);
        pthread_mutex_destroy(&mutex);
    }
}

// Stops the thread and joins it; from the thread itself (a writer stopping its own monitor) it
// detaches instead. A second caller waits for the first one's join. A fork child's copy has no
// thread: nothing to do.
void MonitorState::stop() noexcept {
    if (forked.load(acquire)) return;
    pthread_mutex_lock(&mutex);
    stopping.store(true, relaxed);
    pthread_cond_broadcast(&wake);
    if (!started.load(relaxed) || joined) {
        pthread_mutex_unlock(&mutex);
        return;
    }
    pthread_t th = thread.load(relaxed);
    if (pthread_equal(th, pthread_self())) {
        if (!join_claimed) pthread_detach(th);
        join_claimed = joined = true;   // nobody can wait for this thread now
        pthread_mutex_unlock(&mutex);
        return;
    }
    if (join_claimed) {
        while (!joined) pthread_cond_wait(&wake, &mutex);
        pthread_mutex_unlock(&mutex);
        return;
    }
    join_claimed = true;
    pthread_mutex_unlock(&mutex);
    pthread_join(th, nullptr);
    pthread_mutex_lock(&mutex);
    joined = true;
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&mutex);
}

// A site's growth so far: its live bytes at the last interval and how many intervals in a row
// they rose strictly (a site absent from an interval has 0 bytes, as if never seen).
struct SiteGrowth {
    std::size_t bytes;
    unsigned rises;
};

void MonitorState::run() {
    const unsigned k = options.growth_intervals;
    if (!wait_until(add_ms(monotonic_now(), options.warmup_ms))) return;
    Snapshot baseline;
    try {
        baseline = Snapshot::take();
    } catch (...) {
        diagnostic("monitor: could not take the baseline (out of memory?); it is empty");
    }
    std::unordered_map<std::string, SiteGrowth> history;   // by site_key: frames and type
    bool written_once = false;
    timespec deadline = add_ms(monotonic_now(), options.interval_ms);
    for (unsigned n = 1;; ++n) {
        if (!wait_until(deadline)) return;
        try {
            Snapshot now = Snapshot::take();
            if (stopping.load(relaxed)) return;   // stop() waits for this interval: keep it short
            auto report = std::make_shared<Report>(now - baseline);
            report->kind = "monitor";
            report->scope = "heap growth since the baseline";
            report->interval = n;
            report->rss_bytes = resident_bytes();
            report->growth_intervals = k;
            std::unordered_map<std::string, SiteGrowth> seen;
            std::vector<std::string> keys;
            keys.reserve(report->sites.size());
            for (const Site& site : report->sites) {
                keys.push_back(site_key(site, 0));
                seen[keys.back()].bytes += site.bytes;   // one key per site, but never count twice
            }
            for (auto& entry : seen) {
                auto before = history.find(entry.first);
                SiteGrowth was = before == history.end() ? SiteGrowth{0, 0} : before->second;
                entry.second.rises = entry.second.bytes > was.bytes ? was.rises + 1 : 0;
            }
            for (std::size_t i = 0; i < keys.size(); ++i) report->sites[i].growing = k > 0 && seen[keys[i]].rises >= k;
            history.swap(seen);
            if (stopping.load(relaxed)) return;
            if (report->bytes >= options.threshold_bytes) {
                if (!written_once) register_exit_handler();   // after the statics built so far
                written_once = true;
                dispatch(*report);
            }
            publish(std::move(report));
        } catch (...) {
            diagnostic("monitor: could not build an interval's report (out of memory?)");
        }
        intervals.store(n, release);   // after the report was written: intervals() == n means it was
        timespec now = monotonic_now();
        deadline = add_ms(deadline, options.interval_ms);
        while (not_after(deadline, now)) deadline = add_ms(deadline, options.interval_ms);   // skip missed ticks
    }
}

void* monitor_thread(void* arg) {
    InternalGuard internal;   // everything this thread allocates is leakscope's own
    std::shared_ptr<MonitorState> self = std::move(static_cast<MonitorState*>(arg)->thread_ref);
    try {
        self->run();
    } catch (...) {
        diagnostic("monitor: stopped by an exception");
    }
    return nullptr;
}

// ---- the signal dump ----
// POD, zero-initialised: the handler and the option parser use it before main and in the hook.
struct SignalDump {
    SpinLock lock;                    // arming and disarming (sigaction) and the fields below
    std::atomic<int> armed;           // the signal our handler is on; 0: none
    std::atomic<u32> sem_ready;
    sem_t wake;                       // the handler posts; the dumper waits
    std::atomic<u32> running;         // a dumper thread exists in this process (lifecycle lock)
    std::atomic<u32> generation;      // a dumper runs while this equals the value it started with
    std::atomic<pthread_t> thread;
    struct sigaction previous[_NSIG]; // what each signal had before ours: restored, and chained
};
inline SignalDump& signal_dump() noexcept {
    static SignalDump dump;   // zero-initialised POD
    return dump;
}

// Async-signal-safe: an atomic load and sem_post, errno kept. A handler the program had on the
// signal before (a function, not SIG_DFL or SIG_IGN) is called after, so it keeps working.
void dump_signal_handler(int signo, siginfo_t* info, void* context) {
    int saved = errno;
    SignalDump& d = signal_dump();
    if (d.sem_ready.load(acquire)) sem_post(&d.wake);
    errno = saved;
    if (signo <= 0 || signo >= _NSIG) return;
    const struct sigaction& prev = d.previous[signo];
    if (prev.sa_flags & SA_SIGINFO) {
        if (prev.sa_sigaction) prev.sa_sigaction(signo, info, context);
    } else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN && prev.sa_handler) {
        prev.sa_handler(signo);
    }
}
inline bool handler_is_ours(const struct sigaction& a) noexcept {
    return (a.sa_flags & SA_SIGINFO) && a.sa_sigaction == dump_signal_handler;
}

void* dumper_thread(void* arg) {
    InternalGuard internal;
    SignalDump& d = signal_dump();
    const u32 mine = u32(reinterpret_cast<std::uintptr_t>(arg));
    bool dumped_once = false;
    for (;;) {
        while (sem_wait(&d.wake) != 0 && errno == EINTR) {
        }
        if (d.generation.load(acquire) != mine) break;
        while (sem_trywait(&d.wake) == 0) {   // a burst of signals: one dump
        }
        if (!dumped_once) register_exit_handler();   // after the statics built so far
        dumped_once = true;
        try {
            dispatch(heap());
        } catch (...) {
            diagnostic("signal dump: could not build the heap report (out of memory?)");
        }
        try {
            dispatch(peak());
        } catch (...) {
            diagnostic("signal dump: could not build the peak report (out of memory?)");
        }
        if (d.generation.load(acquire) != mine) break;
    }
    return nullptr;
}

// signal=: installs the handler now (sigaction is safe anywhere, also in the hook); the dumper
// thread starts at the next safe point. Requests that arrive before it runs wait in the semaphore.
inline void arm_signal(int signo, std::string_view entry, const char* source) noexcept {
    SignalDump& d = signal_dump();
    SpinGuard guard(d.lock);
    int old = d.armed.load(relaxed);
    if (old == signo) return;
    if (old) {
        // Restore what was there, unless the program has put its own handler in since.
        struct sigaction now;
        if (::sigaction(old, nullptr, &now) == 0 && handler_is_ours(now)) ::sigaction(old, &d.previous[old], nullptr);
        d.armed.store(0, release);
    }
    if (signo == 0) return;
    if (!d.sem_ready.load(relaxed)) {
        sem_init(&d.wake, 0, 0);
        d.sem_ready.store(1, release);
    }
    struct sigaction before;
    if (::sigaction(signo, nullptr, &before) != 0) {
        option_error(source, "cannot install a handler for", entry);
        return;
    }
    if (!handler_is_ours(before)) d.previous[signo] = before;   // (ours: a fork child re-arming)
    struct sigaction ours;
    std::memset(&ours, 0, sizeof ours);
    ours.sa_sigaction = dump_signal_handler;
    ours.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&ours.sa_mask);
    if (::sigaction(signo, &ours, nullptr) != 0) {
        option_error(source, "cannot install a handler for", entry);
        return;
    }
    d.armed.store(signo, release);
}

// A signal's number from NAME, SIGNAME (either case), RTMIN+n, RTMAX-n or a number; -1 when it
// is none, -2 when it is one that cannot carry the dump.
inline int parse_signal(std::string_view v) noexcept {
    if (v == "0") return 0;
    char name[16];
    if (v.empty() || v.size() >= sizeof name) return -1;
    for (std::size_t i = 0; i < v.size(); ++i) name[i] = char(v[i] >= 'a' && v[i] <= 'z' ? v[i] - 'a' + 'A' : v[i]);
    std::string_view n(name, v.size());
    if (n.size() > 3 && n.substr(0, 3) == "SIG") n.remove_prefix(3);
    int signo = -1;
    auto number = [](std::string_view digits, int& out) {
        if (digits.empty() || digits.size() > 3) return false;
        out = 0;
        for (char c : digits) {
            if (c < '0' || c > '9') return false;
            out = out * 10 + (c - '0');
        }
        return true;
    };
    static constexpr struct { const char* name; int signo; } names[] = {
        {"HUP", SIGHUP},       {"INT", SIGINT},       {"QUIT", SIGQUIT},   {"ILL", SIGILL},     {"TRAP", SIGTRAP},
        {"ABRT", SIGABRT},     {"IOT", SIGABRT},      {"BUS", SIGBUS},     {"FPE", SIGFPE},     {"KILL", SIGKILL},
        {"USR1", SIGUSR1},     {"SEGV", SIGSEGV},     {"USR2", SIGUSR2},   {"PIPE", SIGPIPE},   {"ALRM", SIGALRM},
        {"TERM", SIGTERM},     {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD},   {"CONT", SIGCONT},   {"STOP", SIGSTOP},
        {"TSTP", SIGTSTP},     {"TTIN", SIGTTIN},     {"TTOU", SIGTTOU},   {"URG", SIGURG},     {"XCPU", SIGXCPU},
        {"XFSZ", SIGXFSZ},     {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},   {"WINCH", SIGWINCH}, {"IO", SIGIO},
        {"POLL", SIGPOLL},     {"PWR", SIGPWR},       {"SYS", SIGSYS},
    };
    for (const auto& e : names)
        if (n == e.name) signo = e.signo;
    int offset = 0;
    if (signo < 0 && n == "RTMIN") signo = SIGRTMIN;
    if (signo < 0 && n == "RTMAX") signo = SIGRTMAX;
    if (signo < 0 && n.size() > 6 && n.substr(0, 6) == "RTMIN+" && number(n.substr(6), offset)) signo = SIGRTMIN + offset;
    if (signo < 0 && n.size() > 6 && n.substr(0, 6) == "RTMAX-" && number(n.substr(6), offset)) signo = SIGRTMAX - offset;
    if (signo < 0 && !number(n, signo)) return -1;
    if (signo <= 0 || signo > SIGRTMAX) return -1;
    // Fault signals (the handler returns, the fault repeats), abort, the uncatchable two, and
    // the numbers glibc keeps for its threads (32, 33) cannot carry the dump.
    switch (signo) {
        case SIGILL: case SIGTRAP: case SIGABRT: case SIGBUS: case SIGFPE: case SIGSEGV: case SIGSYS:
        case SIGKILL: case SIGSTOP:
            return -2;
        default:
            break;
    }
    if (signo > SIGSYS && signo < SIGRTMIN) return -2;
    return signo;
}

// ---- the options' monitor (monitor=1) ----
struct MonitorOptions {
    std::atomic<u32> on;
    std::atomic<u32> set;                      // which of the values below were given
    std::atomic<u32> warmup_ms, interval_ms, growth;
    std::atomic<u64> threshold;
    std::atomic<u32> changed;                  // a value changed since the running one started
    std::shared_ptr<MonitorState>* running;    // under the lifecycle lock; never freed at exit
};
enum MonitorOptionBits : u32 { kSetWarmup = 1, kSetInterval = 2, kSetGrowth = 4, kSetThreshold = 8 };
inline MonitorOptions& monitor_options() noexcept {
    static MonitorOptions options;   // zero-initialised POD
    return options;
}
// Starting and stopping threads (the dumper, the options' monitor). A SpinLock, so that a fork
// child can reset it (after_fork_child does the same for slot locks).
inline SpinLock& monitor_lifecycle() noexcept {
    static SpinLock lock;
    return lock;
}

// Is the calling thread one of leakscope's own (a writer called by it may call configure())?
inline bool on_leakscope_thread() noexcept {
    pthread_t self = pthread_self();
    SignalDump& d = signal_dump();
    if (d.running.load(acquire) && pthread_equal(d.thread.load(relaxed), self)) return true;
    MonitorRegistry& r = monitor_registry();
    SpinGuard guard(r.lock);
    for (MonitorState* s = r.head; s; s = s->next)
        if (s->started.load(relaxed) && pthread_equal(s->thread.load(relaxed), self)) return true;
    return false;
}

// fork: a child has none of these threads. The registry's and each state's report lock are held
// across fork (none is ever held while waiting for anything), so the child finds them consistent;
// the child marks every state forked (its Monitor then stops at once and leaves the thread's
// mutex and condition variable alone), forgets the dumper and resets the lifecycle lock. The
// signal handler stays installed in the child (a stray signal must not kill it with the default
// action); its requests wait until the child's next configure() starts a dumper of its own.
void monitor_before_fork() noexcept {
    signal_dump().lock.lock();
    MonitorRegistry& r = monitor_registry();
    r.lock.lock();
    for (MonitorState* s = r.head; s; s = s->next) s->report_lock.lock();
}
void monitor_after_fork_parent() noexcept {
    MonitorRegistry& r = monitor_registry();
    for (MonitorState* s = r.head; s; s = s->next) s->report_lock.unlock();
    r.lock.unlock();
    signal_dump().lock.unlock();
}
void monitor_after_fork_child() noexcept {
    MonitorRegistry& r = monitor_registry();
    for (MonitorState* s = r.head; s; s = s->next) s->forked.store(1, relaxed);
    monitor_after_fork_parent();
    SignalDump& d = signal_dump();
    d.running.store(0, relaxed);
    if (d.sem_ready.load(relaxed)) sem_init(&d.wake, 0, 0);   // the parent's waiter is not here
    monitor_lifecycle().reset_after_fork();
}

void stop_monitor_threads_at_exit() noexcept;
// The exit handler must run before the destructors of the statics our threads' writers may use.
// atexit runs handlers and static destructors in reverse order of registration, so it is
// registered again at each thread start and at each thread's first report (by then a program's
// static initialisation is over), at most 16 times: it is idempotent, and a program that starts
// monitors in a loop must not grow the atexit list without bound.
inline void register_exit_handler() noexcept {
    MonitorRegistry& r = monitor_registry();
    if (r.exit_registrations.fetch_add(1, acq_rel) < 16) std::atexit(stop_monitor_threads_at_exit);
}
// pthread_atfork once, and the exit handler, at a thread start (a safe point).
inline void ensure_monitor_hooks() noexcept {
    MonitorRegistry& r = monitor_registry();
    u32 expected = 0;
    if (r.hooks.compare_exchange_strong(expected, 1, acq_rel))
        pthread_atfork(monitor_before_fork, monitor_after_fork_parent, monitor_after_fork_child);
    register_exit_handler();
}

// Starts the state's thread and registers it; false (with a diagnostic) when it cannot.
inline bool start_monitor(const std::shared_ptr<MonitorState>& s) noexcept {
    MonitorRegistry& r = monitor_registry();
    if (r.no_new_threads.load(acquire)) return false;   // during exit: no new threads
    ensure_monitor_hooks();
    s->thread_ref = s;
    pthread_t th;
    // Under the state's mutex: a stop() from the thread's own writer sees `thread` set.
    pthread_mutex_lock(&s->mutex);
    bool ok = start_thread(th, monitor_thread, s.get(), "leakscope-mon");
    if (ok) {
        s->thread.store(th, relaxed);
        s->started.store(true, release);
    }
    pthread_mutex_unlock(&s->mutex);
    if (!ok) {
        s->thread_ref.reset();
        diagnostic("monitor: could not start its thread");
        return false;
    }
    SpinGuard guard(r.lock);
    s->next = r.head;
    if (r.head) r.head->prev = s.get();
    r.head = s.get();
    s->registered = true;
    return true;
}

inline void start_dumper() noexcept {
    SignalDump& d = signal_dump();
    if (d.running.load(relaxed) || monitor_registry().no_new_threads.load(acquire)) return;
    ensure_monitor_hooks();
    u32 mine = d.generation.fetch_add(1, acq_rel) + 1;
    pthread_t th;
    if (!start_thread(th, dumper_thread, reinterpret_cast<void*>(std::uintptr_t(mine)), "leakscope-dump")) {
        diagnostic("signal dump: could not start its thread");
        return;
    }
    d.thread.store(th, relaxed);
    d.running.store(1, release);
}
inline void stop_dumper() noexcept {
    SignalDump& d = signal_dump();
    if (!d.running.load(relaxed)) return;
    pthread_t th = d.thread.load(relaxed);
    d.running.store(0, release);
    d.generation.fetch_add(1, acq_rel);
    sem_post(&d.wake);
    if (pthread_equal(th, pthread_self())) {
        pthread_detach(th);   // a writer on the dumper thread turned it off: it ends after this dump
        return;
    }
    pthread_join(th, nullptr);
    while (sem_trywait(&d.wake) == 0) {   // requests of the old arming are void
    }
}

// The safe point: makes the threads match the options (configure() calls it after its entries;
// the constructor below after LEAKSCOPE_OPTIONS). On leakscope's own threads (a writer calling
// configure()) it does not wait for the lifecycle lock: a stop may be joining this very thread.
void apply_monitor_changes() noexcept {
    SpinLock& lifecycle = monitor_lifecycle();
    if (on_leakscope_thread()) {
        if (!lifecycle.try_lock()) return;
    } else {
        lifecycle.lock();
    }
    SignalDump& d = signal_dump();
    if (d.armed.load(acquire) != 0)
        start_dumper();
    else
        stop_dumper();
    MonitorOptions& o = monitor_options();
    InternalGuard internal;   // the options' monitor is leakscope's own
    std::shared_ptr<MonitorState>* old = nullptr;
    bool want = o.on.load(acquire) != 0;
    // Stopped by monitor=0, restarted with changed values, or a fork child's copy (no thread).
    if (o.running && (!want || o.changed.load(acquire) || (*o.running)->forked.load(relaxed))) {
        old = o.running;
        o.running = nullptr;
    }
    if (old) {
        (*old)->stop();
        delete old;
    }
    if (want && !o.running && !monitor_registry().no_new_threads.load(acquire)) {
        Monitor::Options options;
        u32 set = o.set.load(acquire);
        if (set & kSetWarmup) options.warmup_ms = o.warmup_ms.load(relaxed);
        if (set & kSetInterval) options.interval_ms = o.interval_ms.load(relaxed);
        if (set & kSetGrowth) options.growth_intervals = o.growth.load(relaxed);
        if (set & kSetThreshold) options.threshold_bytes = std::size_t(o.threshold.load(relaxed));
        o.changed.store(0, release);
        try {
            apply_option("track", "all", "track=all", "monitor=1");
            auto s = std::make_shared<MonitorState>(options);
            if (start_monitor(s)) o.running = new std::shared_ptr<MonitorState>(std::move(s));
        } catch (...) {
            diagnostic("monitor: could not start (out of memory?)");
        }
    }
    lifecycle.unlock();
}

// exit() with monitors or the dumper running: they are stopped and joined before the statics
// they may use (the program's writers among them) are destroyed. A thread calling exit() from a
// writer of its own is left running (it cannot be joined from itself).
void stop_monitor_threads_at_exit() noexcept {
    MonitorRegistry& r = monitor_registry();
    r.no_new_threads.store(1, release);
    {
        SpinLock& lifecycle = monitor_lifecycle();
        bool locked = on_leakscope_thread() ? lifecycle.try_lock() : (lifecycle.lock(), true);
        if (locked) {
            stop_dumper();
            lifecycle.unlock();
        }
    }
    InternalGuard internal;
    for (;;) {
        std::shared_ptr<MonitorState> s;
        {
            SpinGuard guard(r.lock);
            for (MonitorState* p = r.head; p && !s; p = p->next) {
                if (p->exit_seen) continue;
                p->exit_seen = true;
                s = p->weak_from_this().lock();   // never allocates
            }
        }
        if (!s) break;
        s->stop();
    }
}

// LEAKSCOPE_OPTIONS' signal= and monitor=1 get their threads here, before main (or when a shared
// library holding the implementation is loaded), not in the hook where the options are read.
__attribute__((constructor)) void start_option_threads_at_load() noexcept {
    // Initialising here only when the environment asks for these threads: ensure_init() registers
    // the exit flush with atexit, and doing that before the program's statics are built would
    // move it after their destructors.
    if (g.init_state.load(acquire) != 2) {
        const char* env = std::getenv("LEAKSCOPE_OPTIONS");
        if (!env || (!std::strstr(env, "signal") && !std::strstr(env, "monitor"))) return;
        ensure_init();
    }
    SignalDump& d = signal_dump();
    if (d.armed.load(acquire) || monitor_options().on.load(acquire)) apply_monitor_changes();
}

// ---- options ----
inline bool parse_u32(std::string_view s, u32& out) noexcept {
    if (s.empty() || s.size() > 10) return false;
    u64 v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + u64(c - '0');
    }
    if (v > 0xffffffffu) return false;
    out = u32(v);
    return true;
}

// A new value restarts a running options' monitor (at the safe point); the same one does not.
template <class T>
inline void set_monitor_value(std::atomic<T>& into, T value, u32 bit) noexcept {
    MonitorOptions& o = monitor_options();
    if ((o.set.load(acquire) & bit) && into.load(relaxed) == value) return;
    into.store(value, relaxed);
    o.set.fetch_or(bit, release);
    o.changed.store(1, release);
}

void apply_monitor_option(std::string_view key, std::string_view value, std::string_view entry, const char* source) noexcept {
    MonitorOptions& o = monitor_options();
    u32 number = 0;
    if (key == "signal") {
        int signo = parse_signal(value);
        if (signo == -1) {
            option_error(source, "signal must be a signal name or number (USR2, SIGUSR2, 12) or 0 in", entry);
        } else if (signo == -2) {
            option_error(source, "signal cannot be a fault, abort, KILL, STOP or glibc-reserved signal in", entry);
        } else {
            // A dump of the whole heap needs every block known, as the exit report does.
            if (signo) apply_option("track", "all", "track=all", source);
            arm_signal(signo, entry, source);
        }
    } else if (key == "monitor") {
        // 0, 1, or the design's form warmup_s,interval_s (1 with those two values, in seconds).
        std::size_t comma = value.find(',');
        u32 warmup_s = 0, interval_s = 0;
        bool pair = comma != std::string_view::npos && parse_u32(value.substr(0, comma), warmup_s) &&
                    parse_u32(value.substr(comma + 1), interval_s) && interval_s > 0 &&
                    warmup_s <= 4294967u && interval_s <= 4294967u;
        if (value == "1" || value == "0" || pair) {
            if (pair) {
                set_monitor_value(o.warmup_ms, warmup_s * 1000u, kSetWarmup);
                set_monitor_value(o.interval_ms, interval_s * 1000u, kSetInterval);
            }
            if (value != "0") apply_option("track", "all", "track=all", source);
            o.on.store(value != "0", release);
        } else {
            option_error(source, "monitor must be 0, 1 or warmup_s,interval_s (seconds) in", entry);
        }
    } else if (key == "monitor_warmup_ms") {
        if (parse_u32(value, number)) {
            set_monitor_value(o.warmup_ms, number, kSetWarmup);
        } else {
            option_error(source, "monitor_warmup_ms must be 0..4294967295 (milliseconds) in", entry);
        }
    } else if (key == "monitor_interval_ms") {
        if (parse_u32(value, number) && number > 0) {
            set_monitor_value(o.interval_ms, number, kSetInterval);
        } else {
            option_error(source, "monitor_interval_ms must be 1..4294967295 (milliseconds) in", entry);
        }
    } else if (key == "monitor_growth") {
        if (parse_u32(value, number)) {
            set_monitor_value(o.growth, number, kSetGrowth);
        } else {
            option_error(source, "monitor_growth must be 0..4294967295 (intervals; 0: no site marked) in", entry);
        }
    } else if (key == "monitor_threshold") {
        u64 bytes = 0;
        if (parse_count(value, true, bytes)) {
            set_monitor_value(o.threshold, bytes, kSetThreshold);
        } else {
            option_error(source, "monitor_threshold must be a number of bytes (K, M, G allowed) in", entry);
        }
    } else {
        option_error(source, "unknown option", entry);
    }
}
}  // namespace detail

// ---- Monitor ----
Monitor::Monitor() : Monitor(Options()) {}

Monitor::Monitor(Options options) {
    ensure_init();
    InternalGuard internal;   // the state is leakscope's own
    apply_option("track", "all", "track=all", "Monitor");
    state_ = std::make_shared<MonitorState>(options);
    start_monitor(state_);   // a monitor that cannot start stays inert (intervals() stays 0)
}

Monitor::~Monitor() {
    stop();
    InternalGuard internal;
    state_.reset();
}

void Monitor::stop() noexcept {
    if (state_) state_->stop();
}

unsigned Monitor::intervals() const noexcept { return state_ ? state_->intervals.load(acquire) : 0; }

Report Monitor::latest() const {
    InternalGuard internal;   // the copy is leakscope's, as heap()'s report is
    std::shared_ptr<const Report> last;
    if (state_) {
        SpinGuard guard(state_->report_lock);
        last = state_->latest;
    }
    if (last) return *last;
    Report none;
    none.kind = "monitor";
    none.scope = "heap growth since the baseline";
    none.growth_intervals = state_ ? state_->options.growth_intervals : 0;
    return none;
}

// ---- writers ----------------------------------------------------------------------------------
namespace detail {
// The length of the well-formed UTF-8 sequence at p (1..4), or 0 if the bytes there are not one
// (overlong forms, surrogates and code points past U+10FFFF are not).
inline std::size_t utf8_sequence(const unsigned char* p, std::size_t n) noexcept {
    unsigned c = p[0];
    if (c < 0x80) return 1;
    std::size_t length;
    u32 code, least;
    if (c >= 0xC2 && c <= 0xDF) {
        length = 2, code = c & 0x1F, least = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        length = 3, code = c & 0x0F, least = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        length = 4, code = c & 0x07, least = 0x10000;
    } else {
        return 0;
    }
    if (n < length) return 0;
    for (std::size_t i = 1; i < length; ++i) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        code = code << 6 | (p[i] & 0x3F);
    }
    if (code < least || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return 0;
    return length;
}

constexpr const char* kReplacementCharacter = "\xEF\xBF\xBD";   // U+FFFD in UTF-8

// Appends `s` as the inside of a JSON string. Quotes, backslashes and control characters are
// escaped and bytes that are not UTF-8 become U+FFFD, so that any function name or path gives
// valid JSON. `in_html`: '<', '>' and '&' too, so the text can sit inside a <script> element.
inline void append_json_string(std::string& out, std::string_view s, bool in_html = false) {
    static const char hex[] = "0123456789abcdef";
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    for (std::size_t i = 0; i < s.size();) {
        std::size_t plain = i;   // a run that needs no escape goes in at once
        while (plain < s.size() && p[plain] >= 0x20 && p[plain] < 0x7F && p[plain] != '"' && p[plain] != '\\' &&
               !(in_html && (p[plain] == '<' || p[plain] == '>' || p[plain] == '&')))
            ++plain;
        if (plain > i) {
            out.append(s.data() + i, plain - i);
            i = plain;
            continue;
        }
        unsigned char c = p[i];
        if (c >= 0x80) {
            std::size_t length = utf8_sequence(p + i, s.size() - i);
            if (length == 0) {
                out += kReplacementCharacter;
                ++i;
            } else {
                out.append(s.data() + i, length);
                i += length;
            }
            continue;
        }
        ++i;
        switch (c) {
            case '"': out += "\\\""; continue;
            case '\\': out += "\\\\"; continue;
            case '\n': out += "\\n"; continue;
            case '\t': out += "\\t"; continue;
            case '\r': out += "\\r"; continue;
            default: break;
        }
        if (c < 0x20 || c == 0x7F || (in_html && (c == '<' || c == '>' || c == '&'))) {
            out += "\\u00";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += char(c);
        }
    }
}

// Appends `s` as plain text for a terminal, a folded-stack line or a profile: control characters
// become '?' (no escape sequence reaches a terminal), bytes that are not UTF-8 become U+FFFD, and
// each character of `avoid` becomes `instead`.
inline void append_clean(std::string& out, std::string_view s, std::string_view avoid = {}, char instead = '?') {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    for (std::size_t i = 0; i < s.size();) {
        unsigned char c = p[i];
        if (c >= 0x80) {
            std::size_t length = utf8_sequence(p + i, s.size() - i);
            if (length == 0) {
                out += kReplacementCharacter;
                ++i;
            } else {
                out.append(s.data() + i, length);
                i += length;
            }
            continue;
        }
        ++i;
        if (c < 0x20 || c == 0x7F)
            out += '?';
        else if (avoid.find(char(c)) != std::string_view::npos)
            out += instead;
        else
            out += char(c);
    }
}

inline std::string clean(std::string_view s) {
    std::string out;
    append_clean(out, s);
    return out;
}

inline void append_number(std::string& out, unsigned long long v) {
    char digits[24];
    char* end = digits + sizeof digits;
    char* p = end;
    do *--p = char('0' + v % 10);
    while ((v /= 10) != 0);
    out.append(p, std::size_t(end - p));
}

inline void append_hex(std::string& out, unsigned long long v) {
    char digits[24];
    int n = std::snprintf(digits, sizeof digits, "0x%llx", v);
    out.append(digits, std::size_t(n));
}

inline unsigned percent(std::size_t part, std::size_t whole) noexcept {
    if (whole == 0) return 0u;
    double p = double(part) * 100.0 / double(whole) + 0.5;
    return p >= 999.0 ? 999u : unsigned(p);   // a site above its report's total (bad input): no overflowing cast
}

// Sums of counts from a report built by hand may pass SIZE_MAX: they stop there instead of wrapping.
inline std::size_t add_saturated(std::size_t a, std::size_t b) noexcept { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

// `n` (at least `base`) in units[0..5] of powers of `base`, one decimal, left out when it is 0:
// "1.5 KiB", "12 MiB", "18.4E". Digits by hand: printf's radix character is the locale's.
inline void append_scaled(std::string& out, std::size_t n, double base, const char* const (&units)[6]) {
    std::size_t unit = 0;
    double scaled = double(n) / base;
    while (scaled >= base - 0.05 && unit + 1 < 6) scaled /= base, ++unit;
    auto tenths = static_cast<unsigned long long>(scaled * 10 + 0.5);
    append_number(out, tenths / 10);
    if (tenths % 10) out.append(1, '.').append(1, char('0' + tenths % 10));
    out += units[unit];
}

// A size for a reader: "512 bytes", "1.5 KiB", "12 MiB".
inline void append_size(std::string& out, std::size_t bytes) {
    static const char* const units[] = {" KiB", " MiB", " GiB", " TiB", " PiB", " EiB"};
    if (bytes >= 1024) return append_scaled(out, bytes, 1024, units);
    append_number(out, bytes);
    out += bytes == 1 ? " byte" : " bytes";
}

// A relative standard error as "±3.1%" (one decimal below 10%); "±?" when it is not a number
// (NaN, infinite or negative: a sampled report built by hand), "±>999%" past that.
inline void append_error(std::string& out, double error) {
    out += "\xC2\xB1";   // U+00B1 PLUS-MINUS SIGN
    if (!(error >= 0) || !__builtin_isfinite(error)) {
        out += '?';
        return;
    }
    if (error * 100 >= 999.5) {
        out += ">999%";
        return;
    }
    auto tenths = static_cast<unsigned long long>(error * 1000 + 0.5);
    if (tenths >= 100) tenths = (tenths + 5) / 10 * 10;   // 10% and above: whole percents
    append_number(out, tenths / 10);
    if (tenths % 10) out.append(1, '.').append(1, char('0' + tenths % 10));
    out += '%';
}

// A double as a JSON number, or null for NaN and infinities (JSON has neither). printf writes
// the locale's radix character (',' in de_DE, two bytes in some): whatever it wrote between the
// digits becomes '.'.
inline void append_json_double(std::string& out, double v) {
    if (!__builtin_isfinite(v)) {
        out += "null";
        return;
    }
    char text[48];
    int n = std::snprintf(text, sizeof text, "%.6g", v);
    bool radix = false;
    for (int i = 0; i < n && i < int(sizeof text) - 1; ++i) {
        char c = text[i];
        bool part = (c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e';
        if (part || !radix) out += part ? c : '.';
        radix = !part;
    }
}

// Characters (code points) in clean UTF-8 text, for column widths. The text writer's own colour
// sequences ("\x1b[...m") take none (clean text has no ESC of its own: it became '?').
inline std::size_t columns(std::string_view s) noexcept {
    std::size_t n = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\x1b') {
            while (i < s.size() && s[i] != 'm') ++i;
            continue;
        }
        n += (static_cast<unsigned char>(s[i]) & 0xC0) != 0x80;
    }
    return n;
}

// Shortens clean text to `width` columns by cutting its middle ("std::vec...::push_back"): both
// ends of a C++ name or a path say more than its middle.
inline std::string elide(std::string s, std::size_t width) {
    std::size_t have = columns(s);
    if (have <= width || width < 5) return s;
    std::size_t keep = width - 3, head = keep / 2, tail = keep - head;
    auto byte_at = [&](std::size_t column) {   // byte offset of the column-th code point
        std::size_t i = 0;
        for (std::size_t seen = 0; i < s.size(); ++i)
            if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80 && seen++ == column) break;
        return i;
    };
    return s.substr(0, byte_at(head)) + "..." + s.substr(byte_at(have - tail));
}

// Shortens a path to `width` columns by cutting its front ("...adapters/fixture.cpp:101"): a
// file's name and line are what a reader needs from it.
inline std::string elide_front(const std::string& s, std::size_t width) {
    std::size_t have = columns(s);
    if (have <= width || width < 5) return s;
    std::size_t skip = have - (width - 3), i = 0;
    for (std::size_t seen = 0; i < s.size(); ++i)
        if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80 && seen++ == skip) break;
    return "..." + s.substr(i);
}

// A function's name without its parameter list ("Cache::fill(std::map<int, int>&) const" gives
// "Cache::fill"): the partition table's site column is narrow, the frames below say the rest.
inline std::string without_parameters(std::string name) {
    std::size_t end = name.rfind(')');
    if (end == std::string::npos || name.find_first_not_of(" const&volatile", end + 1) != std::string::npos) return name;
    int depth = 0;
    for (std::size_t i = end + 1; i-- > 0;) {
        if (name[i] == ')') ++depth;
        if (name[i] == '(' && --depth == 0) return i ? name.substr(0, i) : name;
    }
    return name;
}

inline const char* plural(std::size_t n) noexcept { return n == 1 ? "" : "s"; }

// A frame's function, or where it is when it has no name: module+offset (sanitizers' form, which
// addr2line -e module takes), ??+address outside any module.
inline std::string frame_function(const Frame& f) {
    if (!f.function.empty()) return clean(f.function);
    std::string out = f.module.empty() ? std::string("??") : clean(f.module);
    out += '+';
    append_hex(out, f.module.empty() ? f.address : f.offset);
    return out;
}

// "file:line", or "" when the frame was not symbolized to a line.
inline std::string frame_place(const Frame& f) {
    if (f.file.empty()) return std::string();
    std::string out = clean(f.file);
    out += ':';
    append_number(out, f.line);
    return out;
}

// Byte strings to dense ids 0, 1, 2, ... in order of first sight. The keys lie back to back in
// one buffer and the table is open addressing: a 100k-site profile interns some 300k strings,
// functions and locations, and a node-based map spent most of the writer's time allocating,
// chasing and freeing its nodes.
class Interner {
   public:
    // The id of `key`; `added` tells whether it is new.
    u64 intern(std::string_view key, bool& added) {
        if ((ends_.size() + 1) * 2 > slots_.size()) grow();
        u64 hash = hash_of(key);
        for (std::size_t i = std::size_t(hash) & (slots_.size() - 1);; i = (i + 1) & (slots_.size() - 1)) {
            u64 id = slots_[i];
            if (id == 0) {
                arena_.append(key.data(), key.size());
                ends_.push_back(arena_.size());
                hashes_.push_back(hash);
                slots_[i] = ends_.size();   // ids are stored plus one: 0 marks a free slot
                added = true;
                return ends_.size() - 1;
            }
            if (hashes_[id - 1] == hash && this->key(id - 1) == key) {
                added = false;
                return id - 1;
            }
        }
    }
    std::size_t size() const noexcept { return ends_.size(); }

   private:
    static u64 hash_of(std::string_view key) noexcept {   // FNV-1a, then a final mix for the low bits
        u64 h = 0xcbf29ce484222325ull;
        for (char c : key) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
        return h ^ (h >> 29);
    }
    std::string_view key(std::size_t index) const noexcept {
        std::size_t begin = index ? std::size_t(ends_[index - 1]) : 0;
        return std::string_view(arena_).substr(begin, std::size_t(ends_[index]) - begin);
    }
    void grow() {
        std::vector<u64> slots(std::max<std::size_t>(64, slots_.size() * 2), 0);
        for (std::size_t index = 0; index < ends_.size(); ++index)
            for (std::size_t i = std::size_t(hashes_[index]) & (slots.size() - 1);; i = (i + 1) & (slots.size() - 1))
                if (slots[i] == 0) {
                    slots[i] = index + 1;
                    break;
                }
        slots_.swap(slots);
    }
    std::string arena_;
    std::vector<u64> ends_, hashes_, slots_;
};

// ---- text -------------------------------------------------------------------------------------
struct TextStyle {
    bool colour;
    const char* on(const char* code) const noexcept { return colour ? code : ""; }
    const char* off() const noexcept { return colour ? "\x1b[0m" : ""; }
};
constexpr std::size_t kTextTableRows = 20, kTextDetailedSites = 10, kTextFrames = 6, kTextWidth = 80,
                      kTextFreedRows = 5;
constexpr const char* kTextPrefix = "leakscope: ";

inline void text_line(std::string& out, const char* format, ...) __attribute__((format(printf, 2, 3)));
inline void text_line(std::string& out, const char* format, ...) {
    char line[1024];
    va_list args;
    va_start(args, format);
    int n = std::vsnprintf(line, sizeof line, format, args);
    va_end(args);
    out += kTextPrefix;
    if (n > 0) out.append(line, std::min<std::size_t>(std::size_t(n), sizeof line - 1));
    out += '\n';
}

// Pieces (each carrying its own punctuation) joined by spaces, a new line started where the next
// would pass 80 columns; continuation lines are indented two more. Totals near SIZE_MAX, which
// a report built by hand may carry, still fit.
inline void text_wrapped(std::string& out, const TextStyle& style, const char* colour, const std::string& indent,
                         const std::vector<std::string>& pieces) {
    const std::size_t width = kTextWidth - std::strlen(kTextPrefix);
    std::string line = indent;
    bool empty = true;
    for (const std::string& piece : pieces) {
        if (!empty && columns(line) + 1 + columns(piece) > width) {
            text_line(out, "%s%s%s", style.on(colour), line.c_str(), style.off());
            line = indent + "  ";
            empty = true;
        }
        if (!empty) line += ' ';
        line += piece;
        empty = false;
    }
    if (!empty) text_line(out, "%s%s%s", style.on(colour), line.c_str(), style.off());
}

// "3", or "~3" for an estimate (a sampled report's counts).
inline std::string text_count(std::size_t n, bool estimate) {
    std::string s = estimate ? "~" : "";
    append_number(s, n);
    return s;
}

// A count in a table column `width` wide: the number, or when it cannot fit (a count near SIZE_MAX
// from a report built by hand), "18.4E" blocks or "16 EiB", so the row stays within 80 columns.
inline std::string text_cell(std::size_t n, bool estimate, bool bytes, std::size_t width) {
    std::string s = text_count(n, estimate);
    if (s.size() <= width) return s;
    static const char* const units[] = {"k", "M", "G", "T", "P", "E"};
    s.resize(estimate ? 1 : 0);
    if (bytes)
        append_size(s, n);
    else
        append_scaled(s, n, 1000, units);
    return s;
}

// "3 blocks"; "~3 blocks" when estimated. "1 byte", "~120 bytes".
inline std::string text_blocks(std::size_t n, bool estimate) { return text_count(n, estimate) + " block" + plural(n); }
inline std::string text_bytes(std::size_t n, bool estimate) { return text_count(n, estimate) + " byte" + plural(n); }

// Exact: "5678901 bytes (5.4 MiB)" ("512 bytes" when the unit adds nothing). Estimated: "~5.4 MiB".
inline std::string text_amount(std::size_t bytes, bool estimate) {
    std::string s;
    if (estimate) {
        s += '~';
        append_size(s, bytes);
        return s;
    }
    s = text_bytes(bytes, false);
    if (bytes >= 1024) {
        s += " (";
        append_size(s, bytes);
        s += ')';
    }
    return s;
}

// "+3.1 MiB", "-~1 KiB": a monitor's two sides in a header.
inline std::string text_signed_size(char sign, std::size_t bytes, bool estimate) {
    std::string s(1, sign);
    if (estimate) s += '~';
    append_size(s, bytes);
    return s;
}

// The partition table's site column: the type, then the allocating function without its
// parameters (the frames below say the rest).
inline std::string text_site_name(const Site& s) {
    std::string what = s.type.empty() ? std::string() : clean(s.type) + "  ";
    what += s.frames.empty() ? std::string("(no stack)") : without_parameters(frame_function(s.frames[0]));
    return what;
}

// Where a site allocated, for a line of its own: file:line, else the module, else "".
inline std::string text_site_place(const Site& s) {
    if (s.frames.empty()) return std::string();
    std::string place = frame_place(s.frames[0]);
    if (place.empty() && !s.frames[0].module.empty()) place = clean(s.frames[0].module);
    return place;
}

inline void render_text(const Report& r, std::string& out, bool colour) {
    TextStyle style{colour};
    const char* bold = style.on("\x1b[1m");
    const char* red = "\x1b[1;31m";
    const bool sampled = r.sample_bytes != 0;   // whole-heap counts are estimates
    const bool leftovers = r.kind.empty() || r.kind == "leftovers";
    const bool monitor = r.kind == "monitor";
    std::string name = r.scope.empty() ? std::string("(unnamed)") : clean(r.scope);
    const std::size_t width = kTextWidth - std::strlen(kTextPrefix);
    // Two lines, so that each fits: what is left, then where the scope was opened.
    std::string totals = text_blocks(r.blocks, sampled) + " (" + text_bytes(r.bytes, sampled) + ")";
    std::string rss;
    if (r.rss_bytes) append_size(rss.assign("RSS "), r.rss_bytes);
    std::string error;
    if (sampled) append_error(error, r.error);
    if (leftovers) {
        // The name is what a reader searches for: cut only if it cannot have a line of its own.
        name = elide(name, width - 8);
        if (columns(name) + totals.size() + 22 <= width) {
            text_line(out, "%sscope \"%s\" left %s behind%s", style.on(red), name.c_str(), totals.c_str(), style.off());
        } else {
            text_line(out, "%sscope \"%s\"%s", style.on(red), name.c_str(), style.off());
            text_line(out, "%s  left %s behind%s", style.on(red), totals.c_str(), style.off());
        }
    } else if (r.kind == "heap" || r.kind == "peak") {
        // "live heap: 1234 blocks, 5678901 bytes (5.4 MiB), RSS 45.6 MiB"; the peak alike. A
        // snapshot of the heap is not in itself a leak: bold, not red.
        std::vector<std::string> pieces{r.kind == "heap" ? "live heap:" : "peak:", text_blocks(r.blocks, sampled) + ","};
        pieces.push_back(text_amount(r.bytes, sampled) + (sampled ? " " + error : std::string()));
        if (!rss.empty()) pieces.back() += ',', pieces.push_back(rss);
        text_wrapped(out, style, "\x1b[1m", "", pieces);
    } else if (monitor) {
        // "interval 12 since baseline: +3.1 MiB / -1.0 MiB, RSS 88.2 MiB", then each side exactly.
        std::string interval = "interval ";
        append_number(interval, r.interval);
        std::vector<std::string> pieces{interval, "since baseline:", text_signed_size('+', r.bytes, sampled), "/",
                                        text_signed_size('-', r.released_bytes, sampled)};
        if (!rss.empty()) pieces.back() += ',', pieces.push_back(rss);
        text_wrapped(out, style, red, "", pieces);
    } else {
        std::string kind = elide(clean(r.kind), 12);
        if (r.scope.empty()) {   // a snapshot diff has no name: "(unnamed)" would say nothing
            text_line(out, "%s%s report: %s live%s", style.on(red), kind.c_str(), totals.c_str(), style.off());
        } else {
            name = elide(name, width - totals.size() - kind.size() - 20);
            text_line(out, "%s%s report \"%s\": %s live%s", style.on(red), kind.c_str(), name.c_str(), totals.c_str(),
                      style.off());
        }
    }
    const char* exception = r.by_exception ? ", ended by an exception" : "";
    char line[16];
    std::snprintf(line, sizeof line, ":%u", r.line);
    std::string where = elide_front(clean(r.file) + line, width - 13 - std::strlen(exception));
    // Whole-heap reports have no place of opening; a diff's minus side is what died meanwhile.
    if (!r.file.empty() || r.line) text_line(out, "  opened at %s%s", where.c_str(), exception);
    if (monitor) {   // each side exactly (the header gave them in units)
        std::string plus = sampled ? text_amount(r.bytes, true) + " " + error : text_bytes(r.bytes, false);
        std::string minus = sampled ? text_amount(r.released_bytes, true) : text_bytes(r.released_bytes, false);
        text_wrapped(out, style, "", "  ", {"born since baseline, still live:", text_blocks(r.blocks, sampled) + ",", plus});
        text_wrapped(out, style, "", "  ", {"freed since baseline:", text_blocks(r.released_blocks, sampled) + ",", minus});
    } else if (r.kind == "diff") {
        text_wrapped(out, style, "", "  ",
                     {"freed meanwhile:", text_blocks(r.released_blocks, sampled),
                      "(" + text_bytes(r.released_bytes, sampled) + ")"});
    } else if (leftovers) {
        text_line(out, "  older blocks freed inside: %s (%s)", text_count(r.released_blocks, sampled).c_str(),
                  text_bytes(r.released_bytes, sampled).c_str());
    }
    if (sampled) {
        std::string every = "1 per ";
        append_size(every, r.sample_bytes);
        text_wrapped(out, style, "", "  ", {"~ estimated from samples,", every, "allocated;", error, "is 1 sigma"});
    }

    // Growing sites (a monitor's likely leaks) come first in the table and the details, so that
    // a small one is never pushed out of view by large steady ones; '*' marks them.
    std::vector<std::size_t> order(r.sites.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::size_t growing = 0, growing_bytes = 0;
    for (const Site& s : r.sites)
        if (s.growing) ++growing, growing_bytes = add_saturated(growing_bytes, s.bytes);
    if (growing) {
        std::stable_partition(order.begin(), order.end(), [&](std::size_t i) { return r.sites[i].growing; });
        std::string sites = "";
        append_number(sites, growing);
        sites += growing == 1 ? " site, " : " sites, ";
        std::string rose = "live bytes rose in each of the last ";
        if (r.growth_intervals) append_number(rose, r.growth_intervals), rose += ' ';
        rose += r.growth_intervals == 1 ? "interval" : "intervals";
        text_wrapped(out, style, red, "  ",
                     {"growing (*, listed first):", sites + (sampled ? text_amount(growing_bytes, true)
                                                                     : text_bytes(growing_bytes, false)) + ";",
                      rose});
    }
    // A table row: the numbers, then the site in what is left of 80 columns.
    auto row = [&](const char* colour_code, const char* numbers, const std::string& site) {
        std::size_t room = width > columns(numbers) + 12 ? width - columns(numbers) : 12;
        text_line(out, "%s%s%s%s", style.on(colour_code), numbers, elide(site, room).c_str(), style.off());
    };
    char numbers[256];
    if (!r.sites.empty()) {
        // The partition table (guppy's): one row per site, largest first, with running totals.
        text_line(out, "%s%6s %7s %3s %11s %3s %5s  %s%s", bold, "rank", "blocks", "%", "bytes", "%", "cum%",
                  "type  site", style.off());
        std::size_t cumulative = 0, rows = std::min(r.sites.size(), kTextTableRows);
        for (std::size_t i = 0; i < rows; ++i) {
            const Site& s = r.sites[order[i]];
            cumulative = add_saturated(cumulative, s.bytes);
            std::snprintf(numbers, sizeof numbers, "%s%5zu %7s %3u %11s %3u %5u  ", s.growing ? "*" : " ", i + 1,
                          text_cell(s.blocks, sampled, false, 7).c_str(), percent(s.blocks, r.blocks),
                          text_cell(s.bytes, sampled, true, 11).c_str(), percent(s.bytes, r.bytes),
                          percent(cumulative, r.bytes));
            row(s.growing ? "\x1b[33m" : "", numbers, text_site_name(s));
        }
        if (r.sites.size() > rows) {
            std::size_t blocks = 0, bytes = 0, more_growing = 0;
            for (std::size_t i = rows; i < r.sites.size(); ++i) {
                const Site& s = r.sites[order[i]];
                blocks = add_saturated(blocks, s.blocks), bytes = add_saturated(bytes, s.bytes);
                more_growing += s.growing;
            }
            std::string more = "... ";
            append_number(more, r.sites.size() - rows);
            more += " more site";
            more += plural(r.sites.size() - rows);
            if (more_growing) more += " (", append_number(more, more_growing), more += " growing)";
            text_wrapped(out, style, "", "  ",
                         {more + ":", text_blocks(blocks, sampled) + ",", text_bytes(bytes, sampled)});
        }
    }
    // Where each of the largest sites allocated: frames as given (report building has already
    // moved the standard library's allocation frames to allocator_frames).
    const std::size_t frame_width = kTextWidth - std::strlen(kTextPrefix) - 10;   // after "       at "
    for (std::size_t i = 0; i < std::min(r.sites.size(), kTextDetailedSites); ++i) {
        const Site& s = r.sites[order[i]];
        // "#1  growing, 3 blocks, 120 bytes, std::string, 4 samples", wrapped if the counts are huge.
        std::vector<std::string> items;
        if (s.growing) items.push_back("growing");
        items.push_back(text_blocks(s.blocks, sampled));
        items.push_back(text_bytes(s.bytes, sampled));
        if (!s.type.empty()) items.push_back(elide(clean(s.type), frame_width - 22));
        if (sampled) items.push_back(std::to_string(s.samples) + (s.samples == 1 ? " sample" : " samples"));
        std::string rank = std::string(bold) + "#" + std::to_string(i + 1) + style.off() + " ";
        std::vector<std::string> pieces{rank};
        for (std::size_t k = 0; k < items.size(); ++k) pieces.push_back(items[k] + (k + 1 < items.size() ? "," : ""));
        text_wrapped(out, style, "", "  ", pieces);
        if (!s.allocator_frames.empty())
            text_line(out, "       (%zu standard-library frame%s above)", s.allocator_frames.size(),
                      plural(s.allocator_frames.size()));
        std::size_t shown = std::min(s.frames.size(), kTextFrames);
        for (std::size_t k = 0; k < shown; ++k) {
            const Frame& f = s.frames[k];
            std::string place = frame_place(f);
            if (place.empty()) place = f.module.empty() ? std::string("?") : clean(f.module);
            std::string function = frame_function(f);
            if (columns(function) + columns(place) + 3 <= frame_width) {
                text_line(out, "       at %s%s%s (%s)", style.on("\x1b[36m"), function.c_str(), style.off(), place.c_str());
            } else {
                // Too long for one line: the function, then where it is on a line of its own,
                // shortened from the front so that the file's name and line survive.
                text_line(out, "       at %s%s%s", style.on("\x1b[36m"), elide(function, frame_width).c_str(), style.off());
                text_line(out, "          %s", elide_front(place, frame_width - 3).c_str());
            }
        }
        if (s.frames.size() > shown)
            text_line(out, "       ... %zu more frame%s", s.frames.size() - shown, plural(s.frames.size() - shown));
        if (s.frames.empty()) text_line(out, "       (no call stack captured)");
    }
    // The minus side by site (diff, monitor): the largest few, each with where it was allocated.
    if (!r.released_sites.empty()) {
        std::size_t rows = std::min(r.released_sites.size(), kTextFreedRows);
        std::vector<std::size_t> largest(r.released_sites.size());
        for (std::size_t i = 0; i < largest.size(); ++i) largest[i] = i;
        std::partial_sort(largest.begin(), largest.begin() + std::ptrdiff_t(rows), largest.end(),
                          [&](std::size_t a, std::size_t b) {   // ties in the report's order: the same text every time
                              const Site &x = r.released_sites[a], &y = r.released_sites[b];
                              return x.bytes != y.bytes ? x.bytes > y.bytes : a < b;
                          });
        text_line(out, "  %slargest sites freed %s:%s", bold,
                  monitor ? "since baseline" : r.kind == "diff" ? "meanwhile" : "inside", style.off());
        text_line(out, "%s%6s %7s %3s %11s %3s  %s%s", bold, "rank", "blocks", "%", "bytes", "%", "type  site",
                  style.off());
        for (std::size_t i = 0; i < rows; ++i) {
            const Site& s = r.released_sites[largest[i]];
            std::snprintf(numbers, sizeof numbers, "%6zu %7s %3u %11s %3u  ", i + 1,
                          text_cell(s.blocks, sampled, false, 7).c_str(), percent(s.blocks, r.released_blocks),
                          text_cell(s.bytes, sampled, true, 11).c_str(), percent(s.bytes, r.released_bytes));
            row("", numbers, text_site_name(s));
            // Its place under the site column, cut from the front if need be: file:line stays whole.
            std::string place = text_site_place(s);
            if (place.empty()) continue;
            std::size_t column = std::min(columns(numbers), width - std::min(columns(place), width - 10));
            text_line(out, "%*s%s", int(column), "", elide_front(place, width - column).c_str());
        }
        if (r.released_sites.size() > rows) {
            std::size_t blocks = 0, bytes = 0;
            for (std::size_t i = rows; i < largest.size(); ++i) {
                const Site& s = r.released_sites[largest[i]];
                blocks = add_saturated(blocks, s.blocks), bytes = add_saturated(bytes, s.bytes);
            }
            std::string more = "... ";
            append_number(more, r.released_sites.size() - rows);
            more += " more site";
            more += plural(r.released_sites.size() - rows);
            text_wrapped(out, style, "", "  ",
                         {more + ":", text_blocks(blocks, sampled) + ",", text_bytes(bytes, sampled)});
        }
    }
    if (!r.suppressed.empty()) {
        std::size_t blocks = 0, bytes = 0;
        for (const Suppression& s : r.suppressed) blocks = add_saturated(blocks, s.blocks), bytes = add_saturated(bytes, s.bytes);
        text_line(out, "  suppressed: %zu block%s (%zu bytes) by %zu rule%s", blocks, plural(blocks), bytes,
                  r.suppressed.size(), plural(r.suppressed.size()));
        for (const Suppression& s : r.suppressed)
            text_line(out, "    %s: %zu block%s, %zu bytes", elide(clean(s.rule), 40).c_str(), s.blocks,
                      plural(s.blocks), s.bytes);
    }
}

// ---- JSON -------------------------------------------------------------------------------------
inline void json_key(std::string& out, const char* key) {
    out += '"';
    out += key;
    out += "\":";
}

inline void json_frames(std::string& out, const std::vector<Frame>& frames) {
    out += '[';
    for (std::size_t i = 0; i < frames.size(); ++i) {
        const Frame& f = frames[i];
        if (i) out += ',';
        out += "{\"function\":\"";
        append_json_string(out, f.function);
        out += "\",\"file\":\"";
        append_json_string(out, f.file);
        out += "\",\"line\":";
        append_number(out, f.line);
        out += ",\"module\":\"";
        append_json_string(out, f.module);
        out += "\",\"address\":\"";
        append_hex(out, f.address);
        out += "\",\"inlined\":";
        out += f.inlined ? "true" : "false";
        out += ",\"offset\":\"";
        append_hex(out, f.offset);
        out += "\"}";
    }
    out += ']';
}

// Sites, + side or - side alike: samples and growing after the members of schema 1's first form.
inline void json_sites(std::string& out, const std::vector<Site>& sites) {
    out += '[';
    for (std::size_t i = 0; i < sites.size(); ++i) {
        const Site& s = sites[i];
        if (i) out += ',';
        out += "{\"blocks\":";
        append_number(out, s.blocks);
        out += ",\"bytes\":";
        append_number(out, s.bytes);
        out += ",\"type\":\"";
        append_json_string(out, s.type);
        out += "\",\"frames\":";
        json_frames(out, s.frames);
        out += ",\"allocator_frames\":";
        json_frames(out, s.allocator_frames);
        out += ",\"samples\":";
        append_number(out, s.samples);
        out += s.growing ? ",\"growing\":true}" : ",\"growing\":false}";
    }
    out += ']';
}

inline void render_json(const Report& r, std::string& out) {
    out += "{\"leakscope\":1,\"kind\":\"";
    append_json_string(out, r.kind);
    out += "\",\"scope\":\"";
    append_json_string(out, r.scope);
    out += "\",\"file\":\"";
    append_json_string(out, r.file);
    out += "\",";
    json_key(out, "line");
    append_number(out, r.line);
    out += r.by_exception ? ",\"by_exception\":true," : ",\"by_exception\":false,";
    json_key(out, "blocks");
    append_number(out, r.blocks);
    out += ',';
    json_key(out, "bytes");
    append_number(out, r.bytes);
    out += ',';
    json_key(out, "released_blocks");
    append_number(out, r.released_blocks);
    out += ',';
    json_key(out, "released_bytes");
    append_number(out, r.released_bytes);
    out += ",\"sites\":";
    json_sites(out, r.sites);
    out += ",\"suppressed\":[";
    for (std::size_t i = 0; i < r.suppressed.size(); ++i) {
        const Suppression& s = r.suppressed[i];
        if (i) out += ',';
        out += "{\"rule\":\"";
        append_json_string(out, s.rule);
        out += "\",\"blocks\":";
        append_number(out, s.blocks);
        out += ",\"bytes\":";
        append_number(out, s.bytes);
        out += '}';
    }
    // The whole-heap members come last, every one in every report: members before them keep their
    // places, so readers that go by position (a sed over "blocks":N,"bytes":N) still work.
    out += "],\"released_sites\":";
    json_sites(out, r.released_sites);
    out += ",\"rss_bytes\":";
    append_number(out, r.rss_bytes);
    out += ",\"sample_bytes\":";
    append_number(out, r.sample_bytes);
    out += ",\"error\":";
    append_json_double(out, r.error);   // null when not finite: a sampled report built by hand
    out += ",\"interval\":";
    append_number(out, r.interval);
    out += ",\"growth_intervals\":";
    append_number(out, r.growth_intervals);
    out += "}\n";
}

// ---- folded stacks ------------------------------------------------------------------------------
inline void render_folded(const Report& r, std::string& out) {
    for (const Site& s : r.sites) {
        if (s.frames.empty()) out += "[no stack]";
        // Root first; ';' separates frames and the last space the count, so ';' in a name
        // becomes ':' (spaces may stay: the count is the last field).
        for (std::size_t i = s.frames.size(); i-- > 0;) {
            append_clean(out, frame_function(s.frames[i]), ";", ':');
            if (i) out += ';';
        }
        out += ' ';
        append_number(out, s.bytes);
        out += '\n';
    }
}

// ---- HTML -------------------------------------------------------------------------------------
constexpr std::size_t kHtmlTableRows = 1000;   // the page's TABLE_ROWS
// The page: the data sits in a JSON <script> element (every '<' escaped), the script builds the
// flame graph from it. Frames are drawn as absolutely placed <div>s, only those at least half a
// pixel wide, so a 100k-site report stays a few thousand elements.
constexpr const char* kHtmlHead = R"html(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>leakscope report</title>
<style>
body{font:13px/1.4 system-ui,sans-serif;margin:16px;color:#222;background:#fff}
h1{font-size:17px;margin:0 0 4px}
#summary{margin:0 0 10px;color:#444}
#flame{position:relative;width:100%;overflow:hidden;border:1px solid #ddd;background:#fafafa}
.frame{position:absolute;height:17px;box-sizing:border-box;border:1px solid #fff;overflow:hidden;
 white-space:nowrap;font:11px/15px ui-monospace,monospace;padding:0 3px;cursor:pointer;color:#000}
.frame:hover{border-color:#000}
.frame.ancestor{opacity:.55}
#tip{position:fixed;display:none;pointer-events:none;background:#ffffe8;border:1px solid #999;
 padding:4px 6px;font:12px ui-monospace,monospace;max-width:640px;word-break:break-all;z-index:2}
#controls{margin:6px 0}
table{border-collapse:collapse;margin-top:14px;font:12px ui-monospace,monospace}
th,td{padding:2px 8px;text-align:right;border-bottom:1px solid #eee}
td.l,th.l{text-align:left}
tr.growing td{background:#fff0e0}
.grow{color:#b00;font-weight:bold;margin-right:6px}
h2{font-size:15px;margin:18px 0 0}
</style></head><body>
<h1 id="title">leakscope report</h1>
<div id="summary"></div>
<div id="controls"><button id="reset" type="button">Reset zoom</button>
<span id="zoomed"></span></div>
<div id="flame"></div>
<div id="tip"></div>
<table id="partition"><thead><tr><th>rank</th><th>blocks</th><th>%</th><th>bytes</th><th>%</th>
<th>cum%</th><th class="l">type</th><th class="l">site</th></tr></thead><tbody></tbody></table>
<p id="more"></p>
<div id="freed" hidden><h2 id="freed-title">Freed</h2>
<table id="released"><thead><tr><th>rank</th><th>blocks</th><th>%</th><th>bytes</th><th>%</th>
<th class="l">type</th><th class="l">site</th></tr></thead><tbody></tbody></table>
<p id="freed-more"></p></div>
<script id="leakscope-data" type="application/json">)html";

constexpr const char* kHtmlTail = R"html(</script>
<script>
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("leakscope-data").textContent);
  const R = D.report, F = D.frames, ROW = 18, TABLE_ROWS = 1000;
  const $ = (id) => document.getElementById(id);
  const plural = (n, w) => n + " " + w + (n === 1 ? "" : "s");
  const pct = (a, b) => (b ? Math.round(100 * a / b) : 0);
  const name = R.scope || "(unnamed)";
  // A sampled report's counts are estimates: "~" marks them, as in the text report.
  const sampled = R.sample_bytes > 0, est = sampled ? "~" : "";
  const size = (n) => {
    if (n < 1024) return n + (n === 1 ? " byte" : " bytes");
    const units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let i = 0; n /= 1024;
    while (n >= 1023.95 && i < 5) { n /= 1024; i++; }
    return Math.round(n * 10) / 10 + " " + units[i];
  };
  const amount = (n) => (sampled ? "~" + size(n) : n + " bytes" + (n >= 1024 ? " (" + size(n) + ")" : ""));
  const blocks = (n) => est + plural(n, "block");
  const error = R.error === null || !(R.error >= 0) ? "\u00b1?" : R.error >= 9.995 ? "\u00b1>999%" :
    "\u00b1" + (R.error < 0.1 ? Math.round(R.error * 1000) / 10 : Math.round(R.error * 100)) + "%";
  const rss = R.rss_bytes ? "RSS " + size(R.rss_bytes) : "";
  const growing = D.sites.filter((s) => s[4]);
  const kinds = { heap: "Live heap", peak: "Peak heap", exit: "In use at exit", diff: "Snapshot diff",
                  monitor: "Monitor, interval " + R.interval + " since baseline" };
  const whole = R.kind in kinds && R.kind !== "diff";   // named by their kind alone (a monitor's scope repeats it)
  const heading = R.kind === "leftovers" ? "Scope \u201c" + name + "\u201d" :
    (kinds[R.kind] || R.kind + " report") + (R.scope && !whole ? " \u201c" + R.scope + "\u201d" : "");
  document.title = "leakscope: " + (R.kind === "leftovers" ? name : heading);
  $("title").textContent = heading + (R.file ? " opened at " + R.file + ":" + R.line : "") + (rss ? ", " + rss : "");
  const parts = [];
  if (R.kind === "leftovers") {
    parts.push(blocks(R.blocks) + " (" + est + R.bytes + " bytes) left behind" +
      (R.by_exception ? ", ended by an exception" : "") + "; older blocks freed inside: " +
      est + R.released_blocks + " (" + est + R.released_bytes + " bytes)");
  } else if (R.kind === "monitor" || R.kind === "diff") {
    const since = R.kind === "monitor" ? " since baseline" : " meanwhile";
    parts.push("+ born" + since + ", still live: " + blocks(R.blocks) + ", " + amount(R.bytes) + (sampled ? " " + error : ""));
    parts.push("\u2212 freed" + since + ": " + blocks(R.released_blocks) + ", " + amount(R.released_bytes));
    parts.push("the flame graph and the first table: the + side");
  } else {
    parts.push(blocks(R.blocks) + ", " + amount(R.bytes) + (sampled ? " " + error : "") +
      (R.kind === "peak" ? " live at the high-water mark" : R.kind === "heap" ? " live" : ""));
  }
  if (growing.length)
    parts.push(plural(growing.length, "site") + " growing (marked, listed first): live bytes rose in each of the last " +
      (R.growth_intervals ? plural(R.growth_intervals, "interval") : "intervals"));
  if (sampled)
    parts.push("~ estimated from samples, 1 per " + size(R.sample_bytes) + " allocated; " + error + " is 1 sigma of the bytes");
  if (D.suppressed) parts.push("suppressed: " + D.suppressed);
  $("summary").textContent = parts.join("; ");

  // The tree: children keyed by frame index, sizes summed over the sites below.
  const root = { f: -1, bytes: 0, blocks: 0, kids: new Map(), parent: null, depth: 0 };
  let maxDepth = 0;
  for (const s of D.sites) {
    let n = root;
    n.bytes += s[1]; n.blocks += s[0];
    for (const f of s[3]) {
      let k = n.kids.get(f);
      if (!k) { k = { f: f, bytes: 0, blocks: 0, kids: new Map(), parent: n, depth: n.depth + 1 }; n.kids.set(f, k); }
      k.bytes += s[1]; k.blocks += s[0];
      n = k;
    }
    if (n.depth > maxDepth) maxDepth = n.depth;
  }
  // Largest child first, and each node's offset (in bytes) from the left edge.
  (function place(n, x) {
    n.x = x;
    n.list = [...n.kids.values()].sort((a, b) => b.bytes - a.bytes);
    for (const k of n.list) { place(k, x); x += k.bytes; }
  })(root, 0);

  const label = (n) => (n.f < 0 ? "all" : F[n.f][0]);
  const where = (n) => (n.f < 0 || !F[n.f][1] ? "" : F[n.f][1] + ":" + F[n.f][2]);
  const hue = (s) => { let h = 0; for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0; return h; };
  const colour = (n) => { if (n.f < 0) return "#ccc"; const h = hue(label(n)); return "hsl(" + (10 + h % 40) + "," + (60 + h % 30) + "%," + (55 + (h >> 8) % 15) + "%)"; };

  const flame = $("flame"), tip = $("tip");
  flame.style.height = ((maxDepth + 1) * ROW + 2) + "px";
  let zoom = root;
  function draw() {
    flame.textContent = "";
    const width = flame.clientWidth || 1000;
    const z0 = zoom.x, zw = zoom.bytes || 1;
    const frag = document.createDocumentFragment();
    (function visit(n) {
      const left = (n.x - z0) / zw * width, w = n.bytes / zw * width;
      const x0 = Math.max(left, 0), x1 = Math.min(left + w, width);
      if (x1 - x0 < 0.5 && n !== root) return;
      const e = document.createElement("div");
      e.className = "frame" + (n.depth < zoom.depth ? " ancestor" : "");
      e.style.left = x0 + "px"; e.style.width = (x1 - x0) + "px"; e.style.top = (n.depth * ROW) + "px";
      e.style.background = colour(n);
      e.textContent = x1 - x0 > 30 ? label(n) : "";
      e.dataset.name = label(n); e.dataset.bytes = n.bytes; e.dataset.depth = n.depth;
      e.leakNode = n;
      frag.appendChild(e);
      for (const k of n.list) if (k.x < z0 + zw && k.x + k.bytes > z0) visit(k);
    })(root);
    flame.appendChild(frag);
    $("zoomed").textContent = zoom === root ? "" : "zoomed on " + label(zoom);
  }
  flame.addEventListener("click", (ev) => {
    const n = ev.target.leakNode; if (!n) return;
    zoom = n === zoom ? (n.parent || root) : n; draw();
  });
  flame.addEventListener("mousemove", (ev) => {
    const n = ev.target.leakNode; if (!n) { tip.style.display = "none"; return; }
    tip.textContent = label(n) + (where(n) ? "\n" + where(n) : "") + "\n" + blocks(n.blocks) + ", " +
      est + n.bytes + " bytes (" + pct(n.bytes, root.bytes) + "%)";
    tip.style.whiteSpace = "pre-wrap"; tip.style.display = "block";
    tip.style.left = Math.min(ev.clientX + 12, window.innerWidth - 320) + "px"; tip.style.top = (ev.clientY + 14) + "px";
  });
  flame.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  $("reset").addEventListener("click", () => { zoom = root; draw(); });
  window.addEventListener("resize", draw);
  draw();

  // The partition table: growing sites first (the likely leaks: never pushed out of view by
  // large steady ones), then the largest, with running totals.
  const cell = (tr, v, cls, title) => {
    const td = document.createElement("td"); td.textContent = v; if (cls) td.className = cls; if (title) td.title = title;
    tr.appendChild(td); return td;
  };
  const ordered = growing.length ? growing.concat(D.sites.filter((s) => !s[4])) : D.sites;
  const body = document.querySelector("#partition tbody");
  let cumulative = 0;
  const rows = Math.min(ordered.length, TABLE_ROWS);
  for (let i = 0; i < rows; i++) {
    const s = ordered[i], leaf = s[3].length ? F[s[3][s[3].length - 1]] : null;
    cumulative += s[1];
    const tr = document.createElement("tr");
    const samples = sampled ? "estimated from " + plural(s[5], "sample") : "";
    for (const [v, cls, title] of [[i + 1], [est + s[0], "", samples], [pct(s[0], R.blocks)], [est + s[1], "", samples],
                                   [pct(s[1], R.bytes)], [pct(cumulative, R.bytes)], [s[2], "l"]])
      cell(tr, v, cls, title);
    const site = cell(tr, leaf ? leaf[0] + (leaf[1] ? " (" + leaf[1] + ":" + leaf[2] + ")" : "") : "(no stack)", "l");
    if (s[4]) {
      tr.className = "growing";
      const badge = document.createElement("span");
      badge.className = "grow"; badge.textContent = "\u25b2 growing";
      site.prepend(badge);
    }
    body.appendChild(tr);
  }
  if (ordered.length > rows) $("more").textContent = "... and " + (ordered.length - rows) + " more sites";

  // The minus side by site (diff, monitor): [blocks, bytes, type, function, file, line], largest first.
  if (D.released_count) {
    $("freed").hidden = false;
    $("freed-title").textContent = "Freed" + (R.kind === "monitor" ? " since baseline" : R.kind === "diff" ? " meanwhile" : "") +
      ": " + blocks(R.released_blocks) + ", " + amount(R.released_bytes);
    const freed = document.querySelector("#released tbody");
    D.released.forEach((s, i) => {
      const tr = document.createElement("tr");
      for (const [v, cls] of [[i + 1], [est + s[0]], [pct(s[0], R.released_blocks)], [est + s[1]],
                              [pct(s[1], R.released_bytes)], [s[2], "l"],
                              [s[3] ? s[3] + (s[4] ? " (" + s[4] + ":" + s[5] + ")" : "") : "(no stack)", "l"]])
        cell(tr, v, cls);
      freed.appendChild(tr);
    });
    if (D.released_count > D.released.length)
      $("freed-more").textContent = "... and " + (D.released_count - D.released.length) + " more sites";
  }
  window.leakscopeReport = { root: root, zoomTo: (n) => { zoom = n; draw(); } };
})();
</script>
</body></html>
)html";

inline void render_html(const Report& r, std::string& out) {
    out += kHtmlHead;
    // Frames once each (function, file, line), sites as [blocks, bytes, type, [frame indices,
    // root first], growing (0 or 1), samples]: the page rebuilds the tree, so a frame shared by
    // many sites is sent once.
    std::string frames = "[";
    Interner index;
    std::string sites = "[";
    std::string key;
    for (std::size_t i = 0; i < r.sites.size(); ++i) {
        const Site& s = r.sites[i];
        if (i) sites += ',';
        sites += '[';
        append_number(sites, s.blocks);
        sites += ',';
        append_number(sites, s.bytes);
        sites += ",\"";
        append_json_string(sites, s.type, true);
        sites += "\",[";
        for (std::size_t k = s.frames.size(); k-- > 0;) {
            const Frame& f = s.frames[k];
            std::string function = frame_function(f);
            key.assign(function).append(1, '\0').append(f.file).append(1, '\0');
            append_number(key, f.line);
            bool added;
            u64 id = index.intern(key, added);
            if (added) {
                if (id) frames += ',';
                frames += "[\"";
                append_json_string(frames, function, true);
                frames += "\",\"";
                append_json_string(frames, f.file, true);
                frames += "\",";
                append_number(frames, f.line);
                frames += ']';
            }
            append_number(sites, id);
            if (k) sites += ',';
        }
        sites += s.growing ? "],1," : "],0,";
        append_number(sites, s.samples);
        sites += ']';
    }
    frames += ']';
    sites += ']';
    // The minus side: only the sites the page's table shows (the 1000 largest), each by its
    // allocating frame; the flame graph is the + side's.
    std::vector<std::size_t> largest(r.released_sites.size());
    for (std::size_t i = 0; i < largest.size(); ++i) largest[i] = i;
    std::size_t released_rows = std::min<std::size_t>(largest.size(), kHtmlTableRows);
    std::partial_sort(largest.begin(), largest.begin() + std::ptrdiff_t(released_rows), largest.end(),
                      [&](std::size_t a, std::size_t b) {   // ties in the report's order
                          const Site &x = r.released_sites[a], &y = r.released_sites[b];
                          return x.bytes != y.bytes ? x.bytes > y.bytes : a < b;
                      });
    std::string released = "[";
    for (std::size_t i = 0; i < released_rows; ++i) {
        const Site& s = r.released_sites[largest[i]];
        if (i) released += ',';
        released += '[';
        append_number(released, s.blocks);
        released += ',';
        append_number(released, s.bytes);
        released += ",\"";
        append_json_string(released, s.type, true);
        released += "\",\"";
        if (!s.frames.empty()) append_json_string(released, frame_function(s.frames[0]), true);
        released += "\",\"";
        if (!s.frames.empty()) append_json_string(released, s.frames[0].file, true);
        released += "\",";
        append_number(released, s.frames.empty() ? 0 : s.frames[0].line);
        released += ']';
    }
    released += ']';
    std::size_t suppressed_blocks = 0;
    for (const Suppression& s : r.suppressed) suppressed_blocks += s.blocks;
    out += "{\"report\":{\"kind\":\"";
    append_json_string(out, r.kind.empty() ? std::string_view("leftovers") : std::string_view(r.kind), true);
    out += "\",\"scope\":\"";
    append_json_string(out, r.scope, true);
    out += "\",\"file\":\"";
    append_json_string(out, r.file, true);
    out += "\",\"line\":";
    append_number(out, r.line);
    out += r.by_exception ? ",\"by_exception\":true" : ",\"by_exception\":false";
    out += ",\"blocks\":";
    append_number(out, r.blocks);
    out += ",\"bytes\":";
    append_number(out, r.bytes);
    out += ",\"released_blocks\":";
    append_number(out, r.released_blocks);
    out += ",\"released_bytes\":";
    append_number(out, r.released_bytes);
    out += ",\"rss_bytes\":";
    append_number(out, r.rss_bytes);
    out += ",\"sample_bytes\":";
    append_number(out, r.sample_bytes);
    out += ",\"error\":";
    append_json_double(out, r.error);
    out += ",\"interval\":";
    append_number(out, r.interval);
    out += ",\"growth_intervals\":";
    append_number(out, r.growth_intervals);
    out += "},\"suppressed\":\"";
    if (!r.suppressed.empty()) {
        std::string summary;
        append_number(summary, suppressed_blocks);
        summary += suppressed_blocks == 1 ? " block by " : " blocks by ";
        append_number(summary, r.suppressed.size());
        summary += r.suppressed.size() == 1 ? " rule" : " rules";
        append_json_string(out, summary, true);
    }
    out += "\",\n\"frames\":";
    out += frames;
    out += ",\n\"sites\":";
    out += sites;
    out += ",\n\"released_count\":";
    append_number(out, r.released_sites.size());
    out += ",\"released\":";
    out += released;
    out += "}\n";
    out += kHtmlTail;
}

// ---- pprof: profile.proto, encoded by hand ------------------------------------------------------
// Protocol buffers' wire format: varints, and length-delimited fields for strings, packed
// repeated numbers and nested messages (encoded apart first, so their length is known).
struct Proto {
    std::string bytes;
    void varint(u64 v) {
        while (v >= 0x80) {
            bytes += char(u8(v) | 0x80);
            v >>= 7;
        }
        bytes += char(u8(v));
    }
    void tag(u32 field, u32 wire_type) { varint(u64(field) << 3 | wire_type); }
    void number(u32 field, u64 v) {   // proto3 leaves zero out
        if (!v) return;
        tag(field, 0);
        varint(v);
    }
    void boolean(u32 field, bool v) { number(field, v ? 1 : 0); }
    void data(u32 field, std::string_view v) {
        tag(field, 2);
        varint(v.size());
        bytes.append(v.data(), v.size());
    }
    void message(u32 field, const Proto& m) { data(field, m.bytes); }
    void packed(u32 field, const std::vector<u64>& values) {
        if (values.empty()) return;
        Proto p;
        for (u64 v : values) p.varint(v);
        data(field, p.bytes);
    }
};

// A loaded module (from dl_iterate_phdr): where it lies, its file and its GNU build id.
struct LoadedModule {
    std::uintptr_t start = 0, limit = 0, file_offset = 0;
    std::string path, build_id;
};

inline std::string build_id_of(const dl_phdr_info* info) {
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr)& ph = info->dlpi_phdr[i];
        if (ph.p_type != PT_NOTE) continue;
        const std::size_t align = ph.p_align == 8 ? 8 : 4;
        auto up = [align](std::size_t n) { return (n + align - 1) & ~(align - 1); };
        const auto* p = reinterpret_cast<const unsigned char*>(info->dlpi_addr + ph.p_vaddr);
        std::size_t at = 0, size = ph.p_memsz;
        while (at + sizeof(ElfW(Nhdr)) <= size) {
            ElfW(Nhdr) note;
            std::memcpy(&note, p + at, sizeof note);
            std::size_t name_at = at + sizeof note, desc_at = name_at + up(note.n_namesz);
            if (desc_at > size || note.n_descsz > size - desc_at) break;
            if (note.n_type == NT_GNU_BUILD_ID && note.n_namesz == 4 && std::memcmp(p + name_at, "GNU", 4) == 0) {
                std::string id;
                for (std::size_t k = 0; k < note.n_descsz; ++k) {
                    id += hex[p[desc_at + k] >> 4];
                    id += hex[p[desc_at + k] & 15];
                }
                return id;
            }
            at = desc_at + up(note.n_descsz);
        }
    }
    return std::string();
}

inline std::vector<LoadedModule> loaded_modules() {
    std::vector<LoadedModule> modules;
    dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t, void* data) -> int {
            LoadedModule m;
            bool any = false;
            for (int i = 0; i < info->dlpi_phnum; ++i) {
                const ElfW(Phdr)& ph = info->dlpi_phdr[i];
                if (ph.p_type != PT_LOAD) continue;
                std::uintptr_t start = info->dlpi_addr + ph.p_vaddr, limit = start + ph.p_memsz;
                if (!any || start < m.start) m.start = start, m.file_offset = ph.p_offset;
                if (!any || limit > m.limit) m.limit = limit;
                any = true;
            }
            if (!any) return 0;
            // Page-align the start as the kernel maps it, keeping start - offset unchanged.
            std::uintptr_t misalign = m.start & 4095;
            m.start -= misalign;
            m.file_offset -= std::min<std::uintptr_t>(misalign, m.file_offset);
            if (info->dlpi_name && info->dlpi_name[0]) {
                m.path = info->dlpi_name;
            } else {   // the executable: the loader leaves its name empty
                char buffer[4096];
                ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof buffer - 1);
                if (n > 0) m.path.assign(buffer, std::size_t(n));
            }
            m.build_id = build_id_of(info);
            static_cast<std::vector<LoadedModule>*>(data)->push_back(std::move(m));
            return 0;
        },
        &modules);
    std::sort(modules.begin(), modules.end(), [](const LoadedModule& a, const LoadedModule& b) { return a.start < b.start; });
    return modules;
}

inline void render_pprof_profile(const Report& r, std::string& out) {
    Interner string_ids;
    Proto strings;
    std::string cleaned;
    auto str = [&](std::string_view s) -> u64 {
        bool added;
        u64 id = string_ids.intern(s, added);
        if (added) {
            cleaned.clear();
            append_clean(cleaned, s);   // valid UTF-8, as protobuf strings must be
            strings.data(6, cleaned);
        }
        return id;
    };
    str("");   // index 0 is the empty string, by the format's rule

    Proto profile;
    for (const char* type_unit : {"inuse_objects\0count", "inuse_space\0bytes"}) {
        Proto value_type;
        value_type.number(1, str(type_unit));
        value_type.number(2, str(type_unit + std::strlen(type_unit) + 1));
        profile.message(1, value_type);
    }

    // Mappings: the loaded module holding each address (with its build id); for an address in
    // none (a module since unloaded, a report built by hand) one per module name, spanning its
    // frames' addresses.
    std::vector<LoadedModule> loaded = loaded_modules();
    std::vector<u64> loaded_ids(loaded.size(), 0);
    struct Unloaded {
        std::uintptr_t low, high;
        u64 id;
    };
    std::unordered_map<std::string, Unloaded> unloaded;
    std::vector<std::pair<std::uintptr_t, std::string>> location_modules;   // filled below
    u64 next_mapping = 1;
    auto mapping_of = [&](const Frame& f) -> u64 {
        if (f.address) {
            auto it = std::upper_bound(loaded.begin(), loaded.end(), f.address,
                                       [](std::uintptr_t a, const LoadedModule& m) { return a < m.start; });
            if (it != loaded.begin() && f.address < (it - 1)->limit) {
                std::size_t i = std::size_t(it - 1 - loaded.begin());
                if (!loaded_ids[i]) loaded_ids[i] = next_mapping++;
                return loaded_ids[i];
            }
        }
        if (f.module.empty()) return 0;
        auto found = unloaded.emplace(f.module, Unloaded{f.address, f.address, 0});
        Unloaded& u = found.first->second;
        if (found.second) u.id = next_mapping++;
        u.low = std::min(u.low, f.address);
        u.high = std::max(u.high, f.address);
        return u.id;
    };

    // Functions by (name, file); locations by (address, mapping, lines): the frames of one
    // return address (the inlined ones and the one they were inlined into) make one location
    // whose lines run innermost first, as profile.proto wants them.
    Interner function_ids, location_ids;   // ids are these plus one (0 means none in pprof)
    Proto functions, locations, samples, lines, line, m;
    std::string key, function_key, unnamed;
    std::vector<u64> stack, values;
    // pprof's values are int64 and it sums them: a count past INT64_MAX / samples (a report built
    // by hand) would turn the total negative, so each stops there.
    const u64 most = u64(INT64_MAX) / std::max<u64>(1, r.sites.size());
    for (const Site& s : r.sites) {
        stack.clear();
        for (std::size_t i = 0; i < s.frames.size();) {
            std::size_t end = i;
            while (end + 1 < s.frames.size() && s.frames[end].inlined) ++end;
            lines.bytes.clear();
            u64 mapping = mapping_of(s.frames[end]);
            key.assign(reinterpret_cast<const char*>(&s.frames[end].address), sizeof(std::uintptr_t));
            key.append(reinterpret_cast<const char*>(&mapping), sizeof mapping);
            for (std::size_t k = i; k <= end; ++k) {
                const Frame& f = s.frames[k];
                if (f.function.empty()) unnamed = frame_function(f);
                const std::string& function = f.function.empty() ? unnamed : f.function;
                function_key.assign(function).append(1, '\0').append(f.file);
                bool added;
                u64 function_id = function_ids.intern(function_key, added) + 1;
                if (added) {
                    m.bytes.clear();
                    m.number(1, function_id);
                    m.number(2, str(function));
                    m.number(3, str(function));
                    m.number(4, str(f.file));
                    functions.message(5, m);
                }
                line.bytes.clear();
                line.number(1, function_id);
                line.number(2, f.line);
                lines.message(4, line);
                key.append(reinterpret_cast<const char*>(&function_id), sizeof function_id);
                key.append(reinterpret_cast<const char*>(&f.line), sizeof f.line);
            }
            bool added;
            u64 location_id = location_ids.intern(key, added) + 1;
            if (added) {
                m.bytes.clear();
                m.number(1, location_id);
                m.number(2, mapping);
                m.number(3, s.frames[end].address);
                m.bytes += lines.bytes;
                locations.message(4, m);
            }
            stack.push_back(location_id);
            i = end + 1;
        }
        Proto sample;
        sample.packed(1, stack);   // leaf first
        values.assign({std::min<u64>(s.blocks, most), std::min<u64>(s.bytes, most)});
        sample.packed(2, values);
        Proto label;
        if (!s.type.empty()) {
            label.number(1, str("type"));
            label.number(2, str(s.type));
            sample.message(3, label);
        }
        if (s.growing) {   // pprof -tagfocus=growing=true: a monitor's likely leaks alone
            label.bytes.clear();
            label.number(1, str("growing"));
            label.number(2, str("true"));
            sample.message(3, label);
        }
        if (r.sample_bytes) {   // the sampled blocks behind an estimate say how far to trust it
            label.bytes.clear();
            label.number(1, str("samples"));
            label.number(3, std::min<u64>(s.samples, most));
            label.number(4, str("count"));
            sample.message(3, label);
        }
        samples.message(2, sample);
    }
    profile.bytes += samples.bytes;
    for (std::size_t i = 0; i < loaded.size(); ++i) {
        if (!loaded_ids[i]) continue;
        Proto m;
        m.number(1, loaded_ids[i]);
        m.number(2, loaded[i].start);
        m.number(3, loaded[i].limit);
        m.number(4, loaded[i].file_offset);
        m.number(5, str(loaded[i].path));
        m.number(6, str(loaded[i].build_id));
        for (u32 field = 7; field <= 10; ++field) m.boolean(field, true);   // has_functions .. has_inline_frames
        profile.message(3, m);
    }
    std::vector<std::pair<const std::string*, const Unloaded*>> by_id;
    for (const auto& u : unloaded) by_id.emplace_back(&u.first, &u.second);
    std::sort(by_id.begin(), by_id.end(), [](const auto& a, const auto& b) { return a.second->id < b.second->id; });
    for (const auto& u : by_id) {
        Proto m;
        m.number(1, u.second->id);
        m.number(2, u.second->low);
        m.number(3, u.second->high + 1);
        m.number(5, str(*u.first));
        for (u32 field = 7; field <= 10; ++field) m.boolean(field, true);
        profile.message(3, m);
    }
    profile.bytes += locations.bytes;
    profile.bytes += functions.bytes;
    // What the profile is: pprof shows these with -comments (and -traces, -raw). A profile holds
    // the + side only (diff, monitor: what was born and is still live); the - side is a comment.
    std::vector<u64> comments;
    const bool leftovers = r.kind.empty() || r.kind == "leftovers";
    std::string text = "leakscope ";
    text += leftovers ? std::string("leftovers") : r.kind;
    text += " report";
    if (leftovers || !r.file.empty() || r.line) {
        text += ": scope \"" + r.scope + "\" opened at " + r.file + ":";
        append_number(text, r.line);
    } else if (!r.scope.empty()) {
        text += ": \"" + r.scope + "\"";
    }
    if (r.kind == "monitor") text += ", interval ", append_number(text, r.interval), text += " since baseline";
    if (r.by_exception) text += ", ended by an exception";
    comments.push_back(str(text));
    auto side = [&](const char* what, std::size_t blocks, std::size_t bytes) {
        text = what;
        append_number(text, blocks);
        text += leftovers ? " (" : blocks == 1 ? " block (" : " blocks (";
        append_number(text, bytes);
        text += bytes == 1 ? " byte)" : " bytes)";
        comments.push_back(str(text));
    };
    if (leftovers) {
        side("older blocks freed inside: ", r.released_blocks, r.released_bytes);
    } else if (r.kind == "diff" || r.kind == "monitor") {
        side("in this profile: the + side, born and still live: ", r.blocks, r.bytes);
        side(r.kind == "diff" ? "not in it: the - side, freed meanwhile: " : "not in it: the - side, freed since baseline: ",
             r.released_blocks, r.released_bytes);
    } else {
        side("live: ", r.blocks, r.bytes);
    }
    if (r.rss_bytes) {
        text = "resident set (RSS): ";
        append_number(text, r.rss_bytes);
        text += " bytes";
        comments.push_back(str(text));
    }
    if (r.sample_bytes) {
        text = "sampled: 1 block per ";
        append_number(text, r.sample_bytes);
        text += " bytes allocated on average; values are estimates, bytes ";
        append_error(text, r.error);
        text += " (1 sigma); the label samples counts the sampled blocks behind each value";
        comments.push_back(str(text));
    }
    std::size_t growing = 0;
    for (const Site& s : r.sites) growing += s.growing;
    if (growing) {
        text = "growing: ";
        append_number(text, growing);
        text += growing == 1 ? " site's" : " sites'";
        text += " live bytes rose in each of the last ";
        if (r.growth_intervals) append_number(text, r.growth_intervals), text += ' ';
        text += "intervals (label growing=true)";
        comments.push_back(str(text));
    }
    for (const Suppression& s : r.suppressed) {
        text = "suppressed by " + s.rule + ": ";
        append_number(text, s.blocks);
        text += s.blocks == 1 ? " block, " : " blocks, ";
        append_number(text, s.bytes);
        text += " bytes";
        comments.push_back(str(text));
    }
    Proto period_type;
    period_type.number(1, str("space"));
    period_type.number(2, str("bytes"));
    u64 default_type = str("inuse_space");
    profile.bytes += strings.bytes;   // every string is interned by now
    profile.message(11, period_type);
    profile.number(12, r.sample_bytes ? std::min<u64>(r.sample_bytes, u64(INT64_MAX)) : 1);   // Go's heap profiles: the rate
    profile.packed(13, comments);
    profile.number(14, default_type);
    out += profile.bytes;
}

// ---- gzip: stored deflate blocks and CRC-32, by hand (no zlib) ---------------------------------
inline u32 crc32(const unsigned char* p, std::size_t n, u32 crc = 0) noexcept {
    static const struct Table {
        u32 entry[256];
        Table() noexcept {
            for (u32 i = 0; i < 256; ++i) {
                u32 c = i;
                for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
                entry[i] = c;
            }
        }
    } table;
    crc = ~crc;
    for (std::size_t i = 0; i < n; ++i) crc = table.entry[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

inline void append_gzip(std::string& out, std::string_view data) {
    auto le32 = [&](u32 v) {
        for (int i = 0; i < 4; ++i) out += char(u8(v >> (8 * i)));
    };
    // Header: magic, deflate, no flags, no time, no extra flags, Unix.
    static const unsigned char header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    out.append(reinterpret_cast<const char*>(header), sizeof header);
    std::size_t at = 0;
    do {   // stored blocks of at most 65535 bytes; an empty input is one empty final block
        std::size_t n = std::min<std::size_t>(data.size() - at, 65535);
        bool final = at + n == data.size();
        out += char(final ? 1 : 0);   // BFINAL, BTYPE 00 (stored); the rest of the byte is padding
        out += char(u8(n)), out += char(u8(n >> 8));
        out += char(u8(~n)), out += char(u8(~n >> 8));
        out.append(data.data() + at, n);
        at += n;
    } while (at < data.size());
    le32(crc32(reinterpret_cast<const unsigned char*>(data.data()), data.size()));
    le32(u32(data.size()));   // ISIZE: the length modulo 2^32
}

inline void render_pprof(const Report& r, std::string& out) {
    std::string profile;
    render_pprof_profile(r, profile);
    append_gzip(out, profile);
}

// ---- delivering the bytes -----------------------------------------------------------------------
// The path for report number `number`: %p the process id, %n the number, %% a '%'.
inline std::string expand_path(const std::string& pattern, unsigned long number) {
    std::string out;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        if (pattern[i] != '%' || i + 1 == pattern.size()) {
            out += pattern[i];
            continue;
        }
        char c = pattern[++i];
        if (c == 'p')
            append_number(out, static_cast<unsigned long long>(::getpid()));
        else if (c == 'n')
            append_number(out, number);
        else if (c == '%')
            out += '%';
        else
            out.append(1, '%').append(1, c);
    }
    return out;
}

inline bool write_all(int fd, const char* p, std::size_t n) noexcept {
    while (n) {
        ssize_t done = ::write(fd, p, n);
        if (done < 0 && errno == EINTR) continue;
        if (done <= 0) return false;
        p += done;
        n -= std::size_t(done);
    }
    return true;
}

// Writes `bytes` to `path`; on failure returns why (and sets errno where it applies).
// replace: a temporary file beside the path (mkstemp: created exclusively, so never through a
// planted link), renamed over it: readers see the old report or the new one, never half. rename
// replaces a symbolic link rather than following it; one found at the path is refused anyway,
// as a sign of someone else's plan. append: O_NOFOLLOW, and a regular file only.
inline const char* write_file(const std::string& path, std::string_view bytes, bool append) {
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0) {
        errno = 0;   // the reasons below are not the system's
        if (S_ISLNK(st.st_mode)) return "it is a symbolic link (not followed)";
        if (!S_ISREG(st.st_mode)) return "it is not a regular file";
    } else if (errno != ENOENT) {
        return "cannot inspect it";
    }
    if (append) {
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
        if (fd < 0) return errno == ELOOP ? "it is a symbolic link (not followed)" : "cannot open it";
        const char* why = nullptr;
        if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
            why = "it is not a regular file", errno = 0;
        else if (!write_all(fd, bytes.data(), bytes.size()))
            why = "cannot write it";
        if (::close(fd) != 0 && !why) why = "cannot write it";
        return why;
    }
    std::string temporary = path + ".leakscope-XXXXXX";
    int fd = ::mkostemp(&temporary[0], O_CLOEXEC);
    if (fd < 0) return "cannot create a file in its directory";
    ::fchmod(fd, 0644);   // mkstemp's 0600 would hide the report from its reader
    bool written = write_all(fd, bytes.data(), bytes.size());
    if (::close(fd) != 0) written = false;
    if (!written || ::rename(temporary.c_str(), path.c_str()) != 0) {
        int saved = errno;
        ::unlink(temporary.c_str());
        errno = saved;
        return written ? "cannot rename the temporary file into place" : "cannot write it";
    }
    return nullptr;
}

inline std::mutex& output_lock() {
    static std::mutex lock;   // constexpr constructor: no static-initialisation order issue
    return lock;
}
}  // namespace detail

OutputWriter::OutputWriter(std::FILE* out) noexcept : file_(out ? out : stderr) {
    int fd = ::fileno(file_);
    const char* no_color = std::getenv("NO_COLOR");   // no-color.org: set and not empty
    terminal_ = fd >= 0 && ::isatty(fd) && !(no_color && *no_color);
    if (const char* term = std::getenv("TERM")) terminal_ = terminal_ && std::strcmp(term, "dumb") != 0;
}

OutputWriter::OutputWriter(std::ostream& out) noexcept : stream_(&out) {}

OutputWriter::OutputWriter(std::string path, Mode mode) : path_(std::move(path)), mode_(mode) {}

std::string OutputWriter::render(const Report& report) const {
    InternalGuard internal;
    std::string out;
    render_to(report, out);
    return out;
}

void OutputWriter::write(const Report& report) {
    InternalGuard internal;   // a user may call write() inside a scope: this is never its leak
    std::string bytes;
    render_to(report, bytes);
    std::lock_guard<std::mutex> lock(output_lock());
    unsigned long number = ++reports_;
    if (stream_) {
        stream_->write(bytes.data(), std::streamsize(bytes.size()));
        stream_->flush();
        return;
    }
    if (file_) {
        std::fwrite(bytes.data(), 1, bytes.size(), file_);
        std::fflush(file_);
        return;
    }
    std::string path = expand_path(path_, number);
    if (const char* why = write_file(path, bytes, mode_ == Mode::append)) {
        int error = errno;
        char line[512];
        std::snprintf(line, sizeof line, "cannot write the report to '%.300s': %s%s%s%s; it follows on stderr",
                      path.c_str(), why, error ? " (" : "", error ? std::strerror(error) : "", error ? ")" : "");
        diagnostic(line);
        std::string text;
        render_text(report, text, false);
        std::fwrite(text.data(), 1, text.size(), stderr);
        std::fflush(stderr);
    }
}

TextWriter::TextWriter(std::FILE* out) noexcept : OutputWriter(out) {}

void TextWriter::render_to(const Report& report, std::string& out) const { render_text(report, out, terminal_); }
void JsonWriter::render_to(const Report& report, std::string& out) const { render_json(report, out); }
void FoldedWriter::render_to(const Report& report, std::string& out) const { render_folded(report, out); }
void HtmlWriter::render_to(const Report& report, std::string& out) const { render_html(report, out); }
void PprofWriter::render_to(const Report& report, std::string& out) const { render_pprof(report, out); }

// ---- choosing writers: code, or the report= option ----------------------------------------------
namespace detail {
// report=kind[=destination|:destination],... — the kinds in the order of kReportKinds.
constexpr std::string_view kReportKinds[] = {"text", "json", "jsonl", "folded", "html", "pprof"};

// Calls each(kind, destination) per item; returns the first malformed item, or an empty view.
// Never allocates (the option parser runs inside the allocation hook).
template <class Each>
std::string_view for_each_report_item(std::string_view value, Each&& each) {
    if (value.empty()) return std::string_view("(empty)");
    std::size_t at = 0;
    while (at <= value.size()) {
        std::size_t comma = std::min(value.find(',', at), value.size());
        std::string_view item = value.substr(at, comma - at);
        std::size_t split = item.find_first_of("=:");
        std::string_view kind = item.substr(0, split);
        std::string_view destination = split == std::string_view::npos ? std::string_view() : item.substr(split + 1);
        std::size_t k = 0;
        while (k < std::size(kReportKinds) && kReportKinds[k] != kind) ++k;
        if (k == std::size(kReportKinds) || (split != std::string_view::npos && destination.empty())) return item.empty() ? value : item;
        each(k, destination);
        at = comma + 1;
    }
    return std::string_view();
}

// A report= option waits here until the next report (or set_writers/add_writer): the option
// parser may run inside the allocation hook, where writers cannot be built.
struct PendingReportOption {
    SpinLock lock;
    bool pending;
    std::size_t size;
    char text[1024];
};
inline PendingReportOption& pending_report_option() noexcept {
    static PendingReportOption pending;   // zero-initialised POD: no constructor, no guard
    return pending;
}

bool accept_report_option(std::string_view value, std::string_view entry, const char* source) noexcept {
    std::string_view bad = for_each_report_item(value, [](std::size_t, std::string_view) {});
    if (!bad.empty()) {
        option_error(source, "report= wants text, json, jsonl, folded, html or pprof, each with an optional =destination, not", bad);
        return false;
    }
    PendingReportOption& p = pending_report_option();
    if (value.size() > sizeof p.text) {
        option_error(source, "report= value too long in", entry);
        return false;
    }
    SpinGuard guard(p.lock);
    std::memcpy(p.text, value.data(), value.size());
    p.size = value.size();
    p.pending = true;
    return true;
}

inline std::shared_ptr<Writer> make_writer(std::size_t kind, std::string_view destination) {
    static const char* const default_paths[] = {nullptr, "leakscope-%p-%n.json", "leakscope-%p.jsonl",
                                                "leakscope-%p-%n.folded", "leakscope-%p-%n.html",
                                                "leakscope-%p-%n.pb.gz"};
    std::FILE* stream = destination == "stderr" ? stderr : destination == "stdout" ? stdout : nullptr;
    std::string path = destination.empty() ? std::string(default_paths[kind] ? default_paths[kind] : "")
                                           : std::string(destination);
    if (kind == 0 && destination.empty()) stream = stderr;
    auto make = [&](auto* tag, OutputWriter::Mode mode) -> std::shared_ptr<Writer> {
        using W = std::remove_pointer_t<decltype(tag)>;
        if (stream) return std::make_shared<W>(stream);
        return std::make_shared<W>(path, mode);
    };
    switch (kind) {
        case 0: return make(static_cast<TextWriter*>(nullptr), OutputWriter::Mode::replace);
        case 1: return make(static_cast<JsonWriter*>(nullptr), OutputWriter::Mode::replace);
        case 2: return make(static_cast<JsonWriter*>(nullptr), OutputWriter::Mode::append);
        case 3: return make(static_cast<FoldedWriter*>(nullptr), OutputWriter::Mode::replace);
        case 4: return make(static_cast<HtmlWriter*>(nullptr), OutputWriter::Mode::replace);
        default: return make(static_cast<PprofWriter*>(nullptr), OutputWriter::Mode::replace);
    }
}

// Builds the writers of a pending report= option; true if there was one (then `out` holds them).
inline bool take_report_option(std::vector<std::shared_ptr<Writer>>& out) {
    PendingReportOption& p = pending_report_option();
    char text[sizeof p.text];
    std::size_t size;
    {
        SpinGuard guard(p.lock);
        if (!p.pending) return false;
        p.pending = false;
        size = p.size;
        std::memcpy(text, p.text, size);
    }
    out.clear();
    for_each_report_item(std::string_view(text, size),
                         [&](std::size_t kind, std::string_view destination) { out.push_back(make_writer(kind, destination)); });
    return true;
}

inline void forget_report_option() noexcept {
    PendingReportOption& p = pending_report_option();
    SpinGuard guard(p.lock);
    p.pending = false;
}
}  // namespace detail

void set_writers(std::vector<std::shared_ptr<Writer>> writers) {
    InternalGuard internal;
    forget_report_option();   // the later choice wins: this one
    std::vector<std::shared_ptr<Writer>> old;
    {
        SpinGuard guard(g.writer_lock);
        if (!g.writers) g.writers = new std::vector<std::shared_ptr<Writer>>();
        old.swap(*g.writers);
        g.writers->swap(writers);
    }
}

void add_writer(std::shared_ptr<Writer> writer) {
    if (!writer) return;
    InternalGuard internal;
    std::vector<std::shared_ptr<Writer>> from_option;
    if (take_report_option(from_option)) set_writers(std::move(from_option));
    SpinGuard guard(g.writer_lock);
    if (!g.writers) g.writers = new std::vector<std::shared_ptr<Writer>>();
    g.writers->push_back(std::move(writer));
}

namespace detail {
TestStacks test_stacks() noexcept {
    ensure_init();   // LEAKSCOPE_OPTIONS read
    if (StackMode(st.mode.load(relaxed)) == StackMode::off) return TestStacks::inline_;
    return TestStacks(st.test_stacks.load(relaxed));
}
ScopesWithoutStacks::ScopesWithoutStacks() noexcept { ++tls.scopes_without_stacks; }
ScopesWithoutStacks::~ScopesWithoutStacks() { --tls.scopes_without_stacks; }
bool writers_configured() noexcept {
    ensure_init();   // LEAKSCOPE_OPTIONS read
    {
        PendingReportOption& p = pending_report_option();
        SpinGuard guard(p.lock);
        if (p.pending) return true;   // a report= option, installed at the next dispatch()
    }
    SpinGuard guard(g.writer_lock);
    return g.writers && !g.writers->empty();
}

void dispatch(const Report& report) noexcept {
    InternalGuard internal;
    try {
        std::vector<std::shared_ptr<Writer>> list;
        if (take_report_option(list)) set_writers(list);
        list.clear();
        {
            SpinGuard guard(g.writer_lock);
            if (g.writers) list = *g.writers;
        }
        if (list.empty()) {
            TextWriter(stderr).write(report);
            return;
        }
        for (auto& w : list) {
            try {
                w->write(report);
            } catch (...) {
                diagnostic("a report writer threw; the report may be incomplete");
            }
        }
    } catch (...) {
        diagnostic("could not dispatch a report (out of memory?)");
    }
}

// ---- process hooks ----------------------------------------------------------------------------
void thread_exit(void* arg) noexcept {
    ThreadState& t = *static_cast<ThreadState*>(arg);
    flush_deferred(t, true);
    publish_bytes(t);   // (its site changes too)
    SpinGuard guard(g.thread_lock);
    g.retired_live_blocks.fetch_add(t.live_blocks.load(relaxed), relaxed);
    g.retired_live_bytes.fetch_add(t.live_bytes.load(relaxed), relaxed);
    g.retired_allocations.fetch_add(t.allocations.load(relaxed), relaxed);
    g.retired_born_bytes.fetch_add(t.born_bytes.load(relaxed), relaxed);
    t.born_bytes.store(0, relaxed);
    t.live_blocks.store(0, relaxed);
    t.live_bytes.store(0, relaxed);
    t.allocations.store(0, relaxed);
    u32 index = t.registry_index;
    if (index && index < kMaxThreads) {
        g.threads[index].store(nullptr, release);
        g.thread_free_next[index] = g.thread_free_head;
        g.thread_free_head = index;
    }
    t.registry_index = kMaxThreads;   // from now on this thread counts into the global totals
    t.lane = nullptr;                 // (its heap slot closes next)
    for (u64* heap : {&t.heap, &t.sample_heap}) {
        if (!*heap) continue;
        u64 handle = *heap;
        *heap = 0;
        close_heap_slot(t, handle);
    }
    if (t.walks) os_free(t.walks, sizeof(WalkMemories));
    free_parked_chunks(t);
    flush_site_deltas(t);             // any since (from now on changes go straight to the totals)
    os_free(t.site_deltas, sizeof(SiteDeltas));
    t.site_deltas = nullptr;
    if (t.leftovers_busy == 0) t.leftovers.release();
    t.walks = nullptr;                // and walks without memory (walk_memories checks that)
    // Cached scope slots go back to the shared list.
    SpinGuard slots(g.slot_lock);
    while (t.slot_cache_size) {
        u32 slot = t.slot_cache[--t.slot_cache_size];
        slot_ref(slot).next_free = g.slot_free_head;
        g.slot_free_head = slot;
    }
}

void flush_at_exit() noexcept {
    free_parked_chunks(tls);   // (not in use at exit: Valgrind's count and the exit report agree)
    flush_deferred(tls, true, true);
    settle_all_now();
}

// The exit report runs from .fini_array, which glibc's exit() runs after every atexit handler and
// so after the program's static destructors (those free what statics own; that is not "in use at
// exit"); priority 101 puts it after the program's other destructor functions too.
#if defined(__GNUC__)
__attribute__((destructor(101)))
#endif
void exit_report_at_fini() noexcept {
    if (g.exit_report.load(relaxed) == 1) write_exit_report();
}

// fork: hold every global lock across it, so the child finds them consistent.
void before_fork() noexcept {
    g.thread_lock.lock();
    g.slot_lock.lock();
    g.log_lock.lock();
    g.all_lock.lock();
    g.detached_lock.lock();
    g.writer_lock.lock();
    st.intern_lock.lock();
    site_totals.copy_lock.lock();
    pthread_mutex_lock(&settler.mutex);
    for (Shard& sh : g.shards) sh.lock.lock();
}
void after_fork_parent() noexcept {
    for (Shard& sh : g.shards) sh.lock.unlock();
    pthread_mutex_unlock(&settler.mutex);
    site_totals.copy_lock.unlock();
    st.intern_lock.unlock();
    g.writer_lock.unlock();
    g.detached_lock.unlock();
    g.all_lock.unlock();
    g.log_lock.unlock();
    g.slot_lock.unlock();
    g.thread_lock.unlock();
}
void after_fork_child() noexcept {
    // The settler thread is the parent's, and so are its parked reports: the child starts a
    // settler of its own when one of its scopes parks a report.
    settler.started = false;
    settler.queue.size = 0;
    after_fork_parent();
    // Per-scope locks held by threads that do not exist in the child would never be released.
    for (u32 c = 0; c < kSlotChunks; ++c) {
        Slot* chunk = g.slot_chunks[c].load(relaxed);
        if (!chunk) break;
        for (u32 i = 0; i < kSlotsPerChunk; ++i) chunk[i].lock.reset_after_fork();
    }
}

// ---- the allocation functions -----------------------------------------------------------------
// g++ >= 11 sees std::free inlined into operator delete and warns of a new/free mismatch; the
// pairing is deliberate here (operator new is malloc underneath).
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#define LEAKSCOPE_MISMATCH_PRAGMA_PUSHED
#endif
// Every allocation the fast path below does not take: a scope or whole-heap tracking counts this
// thread, a sample point, extended alignment, an unregistered or exiting thread.
LEAKSCOPE_NOINLINE void* allocate_slow(std::size_t size, std::size_t alignment, bool nothrow, std::uintptr_t caller) {
    ThreadState& t = tls;
    if (LEAKSCOPE_LIKELY(counts_locally(t)))
        t.allocations.store(t.allocations.load(relaxed) + 1, relaxed);
    else
        count_allocation_slow(t);
    u32 mode = g.mode.load(relaxed);
    if ((t.current | (mode & (kAllScopeOpen | kTrackAll))) != 0) {
        u64 handle = (t.internal | t.ignore_depth) ? 0 : counting_scope(t);
        if (!handle && !(t.internal | t.ignore_depth) && (mode & kTrackAll))
            handle = (mode & kSampled) ? sample_point(t, size) : heap_slot(t);
        if (handle || (t.internal | t.ignore_depth)) return allocate_counted(t, handle, size, alignment, nothrow, caller);
    }
    return raw_allocate(size ? size : 1, alignment, nothrow);   // distinct non-null pointers for size 0
}

// The lane (see ThreadState): a birth in the slot the last tracked birth went to, while what
// decided that still holds — the same t.current and g.mode, no Ignore or leakscope allocation,
// and the slot still this thread's open one. The checks and the work of allocate_counted for that
// one case, in a function small enough to need few saved registers; anything else goes the slow way.
// Only for default alignment (allocate checks it, at compile time for the unaligned forms), and one
// instance per nothrow: two fewer values to keep across malloc.
template <bool Nothrow>
LEAKSCOPE_NOINLINE void* lane_birth(ThreadState& t, std::size_t size, std::uintptr_t caller) {
    Slot& s = *t.lane;
    if (LEAKSCOPE_LIKELY(t.lane_current == t.current && t.lane_mode == g.mode.load(relaxed) &&
                         (t.internal | t.ignore_depth) == 0 && size <= kMaxHeaderSize && counts_locally(t) && owned_here(s, t) &&
                         s.generation.load(relaxed) == t.lane_generation &&
                         (s.log_size != s.log_end || next_log_chunk(s)))) {
        auto raw = static_cast<char*>(std::malloc(size + kHeaderBytes));
        if (LEAKSCOPE_LIKELY(raw != nullptr)) {
            auto p = reinterpret_cast<std::uintptr_t>(raw + kHeaderBytes);
            if (LEAKSCOPE_LIKELY(may_have_header(p))) {
                t.allocations.store(t.allocations.load(relaxed) + 1, relaxed);
                // (never allocates; a scope without per-site totals may defer it)
                u32 stack = s.stacks ? capture_for_block(t, caller, s.site_totals ? nullptr : &s) : 0;
                write_header_what(p, size | u64(stack) << 40);
                u32 seq = owner_log_append(s, p);
                if (LEAKSCOPE_UNLIKELY(stack >= kPendingBase)) bind_pending(s, stack, p, seq);
                s.owner_live.store(s.owner_live.load(relaxed) + 1, relaxed);
                write_header_where(p, header_where(t.lane_scope, seq, p));
                // count_born for a lane's slot, never a sample slot: its blocks stand for themselves.
                if (stack && s.site_totals) site_change(t, stack, i64(size), 1);
                count_birth_here(t, size);   // (counts_locally checked above)
                return raw + kHeaderBytes;
            }
            park_chunk(t, raw, size + kHeaderBytes);   // the block would start a page: the slow path moves it
        }
    }
    return allocate_slow(size, 0, Nothrow, caller);   // (0: any alignment up to the default)
}

// The lane's death: a block born in the lane's slot, in its owner log, dying on the owner thread
// while the lane holds (so the slot is the scope counting this thread, or its heap slot while no
// scope counts its frees: deallocate_watched's common case).
LEAKSCOPE_NOINLINE void lane_death(ThreadState& t, void* block, std::size_t size_hint, u32 mode) noexcept {
    auto p = reinterpret_cast<std::uintptr_t>(block);
    BlockHeader h = read_header(p);
    u32 seq = where_seq(h.where);
    Slot& s = *t.lane;
    if (LEAKSCOPE_LIKELY(where_scope(h.where) == t.lane_scope && t.lane_current == t.current && t.lane_mode == mode &&
                         !(seq & kSharedSeq) && owned_here(s, t) && owner_log_death(t, s, seq, p, h)))
        return;
    deallocate_watched(t, block, size_hint, mode, true);
}

// True when this allocation needs nothing but malloc: nothing tracks it, or sampling counts it down
// without reaching a sample point (the slow path counts down the allocation that reaches one).
LEAKSCOPE_HOT_INLINE bool untracked_birth(ThreadState& t, u32 mode, std::size_t size) noexcept {
    if (LEAKSCOPE_LIKELY((t.current | (mode & (kAllScopeOpen | kTrackAll))) == 0)) return true;
    if ((mode & (kAllScopeOpen | kTrackAll | kSampled)) != (kTrackAll | kSampled) || (t.internal | t.ignore_depth) != 0 ||
        t.current != 0)
        return false;
    i64 left = t.sample_countdown - i64(size ? size : 1);
    if (left <= 0) return false;
    t.sample_countdown = left;
    return true;
}

// The common case inline, and small enough to need no saved registers: a thread counted
// locally, an untracked birth, default alignment, malloc succeeds. `caller` is the return address
// of the replaced operator: the allocating stack starts there.
LEAKSCOPE_HOT_INLINE void* allocate(std::size_t size, std::size_t alignment, bool nothrow, void* caller) {
    ThreadState& t = tls;
    u32 mode = g.mode.load(relaxed);
    if (LEAKSCOPE_LIKELY(alignment <= __STDCPP_DEFAULT_NEW_ALIGNMENT__ && counts_locally(t) && untracked_birth(t, mode, size))) {
        t.allocations.store(t.allocations.load(relaxed) + 1, relaxed);
        void* p = std::malloc(size);
        if (LEAKSCOPE_LIKELY(p != nullptr)) return p;
        return raw_allocate(size ? size : 1, alignment, nothrow);   // size 0 where malloc gives null, or out of memory
    }
    if (t.lane && alignment <= __STDCPP_DEFAULT_NEW_ALIGNMENT__)
        return nothrow ? lane_birth<true>(t, size, reinterpret_cast<std::uintptr_t>(caller))
                       : lane_birth<false>(t, size, reinterpret_cast<std::uintptr_t>(caller));
    return allocate_slow(size, alignment, nothrow, reinterpret_cast<std::uintptr_t>(caller));
}

LEAKSCOPE_HOT_INLINE void deallocate(void* block, std::size_t size) noexcept {
    if (!block) return;
    ThreadState& t = tls;
    u32 mode = g.mode.load(relaxed);
    if (LEAKSCOPE_LIKELY((t.current | mode) == 0)) {   // nothing was ever tracked
        std::free(block);
        return;
    }
    // Does a header of ours claim the block? (One load, beside malloc's own chunk header.) When
    // none does, no scope counts this thread's frees and nothing is in the side table, the block
    // is not ours: this keeps the frees of untracked blocks cheap while something is tracked
    // (sampling, scopes elsewhere).
    auto p = reinterpret_cast<std::uintptr_t>(block);
    bool claimed = (mode & kEverTracked) && may_have_header(p) && header_tag_matches(p, read_header(p).where);
    if (!claimed && t.current == 0 && !(mode & (kAllScopeOpen | kSideTable))) {
        std::free(block);
        return;
    }
    if (claimed && t.lane) return lane_death(t, block, size, mode);
    deallocate_watched(t, block, size, mode, claimed);
}
}  // namespace detail
}  // namespace leakscope

#if !defined(LEAKSCOPE_NO_NEW_DELETE)
#define LEAKSCOPE_CALLER __builtin_return_address(0)
// g++'s identical-code folding would merge operator delete[] into operator delete (their bodies
// match) and then warn at the user's `delete[]` that a new[] block goes to plain delete.
#if defined(__GNUC__) && !defined(__clang__)
#define LEAKSCOPE_REPLACED __attribute__((no_icf))
#else
#define LEAKSCOPE_REPLACED
#endif
// The 20 replaceable global allocation functions ([new.delete]); the standard requires them to
// be non-inline, which is why they live in exactly one translation unit. The allocating forms are
// never inlined even there: their return address is where a block's call stack starts.
LEAKSCOPE_REPLACED LEAKSCOPE_NOINLINE void* operator new(std::size_t n) {
    return leakscope::detail::allocate(n, 0, false, LEAKSCOPE_CALLER);
}
LEAKSCOPE_REPLACED LEAKSCOPE_NOINLINE void* operator new[](std::size_t n) {
    return leakscope::detail::allocate(n, 0, false, LEAKSCOPE_CALLER);
}
LEAKSCOPE_REPLACED LEAKSCOPE_NOINLINE void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    return leakscope::detail::allocate(n, 0, true, LEAKSCOPE_CALLER);
}
LEAKSCOPE_REPLACED LEAKSCOPE_NOINLINE void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
    return leakscope::detail::allocate(n, 0, true, LEAKSCOPE_CALLER);
}
LEAKSCOPE_REPLACED LEAKSCOPE_NOINLINE void* operator new(std::size_t n, std::align_val_t a) {
    return leakscope::detail::allocate(n, static_cast<std::size_t>(a), false, LEAKSCOPE_CALLER);
}
LEAKSCOPE_REPLACED LEAKSCOPE_NOINLINE void* operator new[](std::size_t n, std::align_val_t a) {
    return leakscope::detail::allocate(n, static_cast<std::size_t>(a), false, LEAKSCOPE_CALLER);
}
LEAKSCOPE_REPLACED LEAKSCOPE_NOINLINE void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return leakscope::detail::allocate(n, static_cast<std::size_t>(a), true, LEAKSCOPE_CALLER);
}
LEAKSCOPE_REPLACED LEAKSCOPE_NOINLINE void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return leakscope::detail::allocate(n, static_cast<std::size_t>(a), true, LEAKSCOPE_CALLER);
}
LEAKSCOPE_REPLACED void operator delete(void* p) noexcept { leakscope::detail::deallocate(p, 0); }
LEAKSCOPE_REPLACED void operator delete[](void* p) noexcept { leakscope::detail::deallocate(p, 0); }
LEAKSCOPE_REPLACED void operator delete(void* p, std::size_t n) noexcept { leakscope::detail::deallocate(p, n); }
LEAKSCOPE_REPLACED void operator delete[](void* p, std::size_t n) noexcept { leakscope::detail::deallocate(p, n); }
LEAKSCOPE_REPLACED void operator delete(void* p, std::align_val_t) noexcept { leakscope::detail::deallocate(p, 0); }
LEAKSCOPE_REPLACED void operator delete[](void* p, std::align_val_t) noexcept { leakscope::detail::deallocate(p, 0); }
LEAKSCOPE_REPLACED void operator delete(void* p, std::size_t n, std::align_val_t) noexcept { leakscope::detail::deallocate(p, n); }
LEAKSCOPE_REPLACED void operator delete[](void* p, std::size_t n, std::align_val_t) noexcept { leakscope::detail::deallocate(p, n); }
LEAKSCOPE_REPLACED void operator delete(void* p, const std::nothrow_t&) noexcept { leakscope::detail::deallocate(p, 0); }
LEAKSCOPE_REPLACED void operator delete[](void* p, const std::nothrow_t&) noexcept { leakscope::detail::deallocate(p, 0); }
LEAKSCOPE_REPLACED void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
    leakscope::detail::deallocate(p, 0);
}
LEAKSCOPE_REPLACED void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
    leakscope::detail::deallocate(p, 0);
}
#undef LEAKSCOPE_REPLACED
#endif  // LEAKSCOPE_NO_NEW_DELETE

#if LEAKSCOPE_FAST_UNWINDER && !defined(LEAKSCOPE_NO_DLCLOSE_HOOK)
// dlclose, wrapped: the fast unwinder's cached rules for an unloaded object must never apply to
// whatever the loader maps at its addresses next. The generation changes before and after the
// real call, which invalidates every cached rule and any capture that overlapped it.
extern "C" int dlclose(void* handle) noexcept {
    using namespace leakscope::detail;
    using Real = int (*)(void*);
    static std::atomic<Real> real;   // constant-initialised
    Real call = real.load(acquire);
    if (!call) {
        void* symbol = ::dlsym(RTLD_NEXT, "dlclose");
        std::memcpy(&call, &symbol, sizeof call);
        if (!call) return -1;
        real.store(call, release);
    }
    remember_unloading(handle);   // its stacks still name it after the unload (the symbolizer)
    st.unloading.fetch_add(1, acq_rel);
    st.loader_generation.fetch_add(1, acq_rel);
    int result = call(handle);
    st.loader_generation.fetch_add(1, acq_rel);
    st.unloading.fetch_sub(1, acq_rel);
    return result;
}
#endif
#if defined(LEAKSCOPE_MISMATCH_PRAGMA_PUSHED)
#pragma GCC diagnostic pop
#undef LEAKSCOPE_MISMATCH_PRAGMA_PUSHED
#endif

#endif  // LEAKSCOPE_IMPLEMENTATION

// MIT License — Copyright (c) 2026 The leakscope authors. See LICENSE.
