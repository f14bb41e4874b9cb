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
//
// Environment: LEAKSCOPE_OPTIONS is reserved for the run-time option string (writers, stacks,
// suppressions, whole-heap modes); it is read by a later version and ignored by this one.
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

// One frame of an allocating call stack (filled once call stacks are captured).
struct Frame {
    std::uintptr_t address = 0;
    std::string function, file, module;
    unsigned line = 0;
};

// Leftovers grouped by allocating stack (and type, where it is known).
struct Site {
    std::vector<Frame> frames;   // innermost first
    std::string type;
    std::size_t blocks = 0, bytes = 0;
};

struct Report {
    std::string kind;                 // "leftovers" | "diff" | "peak" | "exit" | "monitor"
    std::string scope;                // scope name, if any
    std::string file;                 // where the scope was opened
    unsigned line = 0;
    bool by_exception = false;        // the scope ended while an exception unwound it
    std::size_t blocks = 0, bytes = 0;                     // + side: born inside, still live
    std::size_t released_blocks = 0, released_bytes = 0;   // - side: older blocks freed inside
    std::vector<Site> sites;          // largest bytes first
};

// The single extension point for reports.
class Writer {
   public:
    virtual ~Writer() = default;
    virtual void write(const Report& report) = 0;
};

// Human-readable report, the default writer (to stderr unless told otherwise).
class TextWriter : public Writer {
   public:
    explicit TextWriter(std::FILE* out = stderr) noexcept : out_(out) {}
    void write(const Report& report) override;

   private:
    std::FILE* out_;
};

void set_writers(std::vector<std::shared_ptr<Writer>> writers);   // replaces all (empty: default)
void add_writer(std::shared_ptr<Writer> writer);

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
// of this call (an address inside the caller). Writes at most `max`, returns how many. Never
// allocates; a corrupt or foreign stack gives a shorter result, never a crash.
std::size_t current_stack(std::uintptr_t* out, std::size_t max, Unwinder how = Unwinder::fast) noexcept;

// Applies options in the LEAKSCOPE_OPTIONS syntax (`key=value`, separated by ':' or white space,
// values may be quoted). Keys this version knows:
//   stacks=on|off|demand   capture allocating stacks (demand: for a scope name's runs after it
//                          first leaked)                                   default on
//   unwinder=fast|fp|libgcc                                                default fast
//   stack_depth=1..256     frames kept per stack                          default 32
// A malformed entry gets one line on stderr naming it; the other entries still apply.
void configure(std::string_view options) noexcept;

struct Stats {
    std::size_t live_blocks = 0, live_bytes = 0;   // tracked blocks still live
    std::size_t peak_bytes = 0;                    // high-water mark of live_bytes
    std::size_t total_allocations = 0;             // every allocation through the hook
    std::size_t tracker_bytes = 0;                 // memory leakscope holds from the OS (mmap)
};
Stats stats() noexcept;

}  // namespace leakscope

// ============================================================================================
// 3. DETAIL
// ============================================================================================
namespace leakscope {
namespace detail {
// Nothing here yet that other translation units need; the tracker lives entirely in the
// implementation section so that exactly one copy of its state exists in a program.
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
#include <cstdlib>
#include <cstring>
#include <exception>
#include <malloc.h>
#include <mutex>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

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
    std::uintptr_t* entries;   // kLogChunk addresses, 0 where the block already died
    u32 live;
};
// A birth logged by address, with the scope incarnation it was born in: a record matches only
// while that slot still has that generation (a live record keeps its slot alive), so an entry
// for a dead block never matches a new block that a reused slot puts at the same address.
struct SharedEntry { std::uintptr_t addr; u32 scope, seq, generation, unused; };

struct alignas(64) Slot {
    // --- owner-thread line: written only by the thread that opened the scope ---
    std::atomic<i64> owner_live;
    std::atomic<u64> owner_released_blocks, owner_released_bytes;
    std::atomic<u32> owner;        // thread serial of the opener
    std::atomic<u32> closed;
    std::atomic<u32> generation;   // bumped when the slot is freed: stale handles see a mismatch
    u32 parent;                    // enclosing scope slot (holds a reference on it)
    u32 threads_all;
    OsVector<LogChunkRef> log;     // owner births, by seq / kLogChunk
    u32 log_size;                  // next seq for an owner birth
    u32 next_free;
    // --- shared line ---
    alignas(64) SpinLock lock;
    std::atomic<i64> refs;
    std::atomic<u32> holds;        // Adopt holders (also counted in refs)
    std::atomic<u64> remote_released_blocks, remote_released_bytes;
    OsVector<SharedEntry> shared;  // births on other threads and children's leftovers
    u32 prev_all;                  // for Threads::all scopes: the all-scope opened before
    // --- a report deferred until the exception that ended the scope has been handled ---
    const char* deferred_file;
    unsigned deferred_line;
    int deferred_uncaught;
    char deferred_name[96];
};

constexpr u32 kSlotsPerChunk = 256;
constexpr u32 kSlotChunks = 1u << 16;

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
    u32 unused_padding;
    u32 slot_cache[8];
    u32 deferred_count;            // entries of g.deferred this thread owns
    i64 pending_bytes;             // live-bytes drift not yet published to the global counter
    std::atomic<u64> allocations;  // every hooked allocation
    std::atomic<i64> live_blocks, live_bytes;   // tracked births minus deaths done here
};

constexpr u32 kMaxThreads = 1u << 16;

constexpr u32 kSharedSeq = 0x80000000u;      // seq top bit: logged in the scope's shared log

struct Globals {
    Shard shards[kShards];
    std::atomic<u32> mode;                  // kEverTracked | kAllScopeOpen: the hot-path gate
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
    std::atomic<u64> retired_allocations;
    std::atomic<i64> live_bytes_published;
    std::atomic<i64> peak_bytes;
    std::atomic<u32> init_state;            // 0 none, 1 running, 2 done
    pthread_key_t exit_key;
    std::atomic<u32> warned_cross_thread_close;
    SpinLock all_lock;                      // the chain of Threads::all scopes
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
enum ModeBits : u32 { kEverTracked = 1, kAllScopeOpen = 2 };

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

inline void ensure_init() noexcept {
    if (LEAKSCOPE_LIKELY(g.init_state.load(acquire) == 2)) return;
    u32 expected = 0;
    if (g.init_state.compare_exchange_strong(expected, 1, acq_rel)) {
        pthread_key_create(&g.exit_key, thread_exit);
        pthread_atfork(before_fork, after_fork_parent, after_fork_child);
        std::atexit(flush_at_exit);
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
}

inline void ensure_registered(ThreadState& t) noexcept {
    if (LEAKSCOPE_UNLIKELY(t.registry_index == 0)) register_thread(t);
}
// Registered threads keep their counters in thread-local memory; a thread that is not (its exit
// hook already ran, or the registry is full) counts straight into the global totals.
inline bool counts_locally(const ThreadState& t) noexcept { return t.registry_index - 1u < kMaxThreads - 1u; }

inline void publish_bytes(ThreadState& t) noexcept {
    i64 now = g.live_bytes_published.fetch_add(t.pending_bytes, acq_rel) + t.pending_bytes;
    t.pending_bytes = 0;
    i64 peak = g.peak_bytes.load(relaxed);
    while (now > peak && !g.peak_bytes.compare_exchange_weak(peak, now, relaxed)) {
    }
}

inline void count_birth(ThreadState& t, u64 size) noexcept {
    if (!counts_locally(t)) {
        g.retired_live_blocks.fetch_add(1, relaxed);
        g.retired_live_bytes.fetch_add(i64(size), relaxed);
        return;
    }
    t.live_blocks.store(t.live_blocks.load(relaxed) + 1, relaxed);
    t.live_bytes.store(t.live_bytes.load(relaxed) + i64(size), relaxed);
    t.pending_bytes += i64(size);
    if (t.pending_bytes >= LEAKSCOPE_PEAK_GRANULARITY) publish_bytes(t);
}
inline void count_death(ThreadState& t, u64 size) noexcept {
    if (!counts_locally(t)) {
        g.retired_live_blocks.fetch_sub(1, relaxed);
        g.retired_live_bytes.fetch_sub(i64(size), relaxed);
        return;
    }
    t.live_blocks.store(t.live_blocks.load(relaxed) - 1, relaxed);
    t.live_bytes.store(t.live_bytes.load(relaxed) - i64(size), relaxed);
    t.pending_bytes -= i64(size);
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
    if (LEAKSCOPE_UNLIKELY((g.mode.load(relaxed) & kEverTracked) == 0)) g.mode.fetch_or(kEverTracked, relaxed);
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
inline Slot& slot_ref(u32 index) noexcept {
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
    if (index / kSlotsPerChunk >= kSlotChunks) return 0;
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
            g.log_free = reinterpret_cast<std::uintptr_t*>(c[0]);
            std::memset(c, 0, kLogChunk * sizeof(std::uintptr_t));
            return c;
        }
    }
    return static_cast<std::uintptr_t*>(os_alloc(kLogChunk * sizeof(std::uintptr_t)));
}
inline void log_chunk_release(std::uintptr_t* c) noexcept {
    SpinGuard guard(g.log_lock);
    c[0] = reinterpret_cast<std::uintptr_t>(g.log_free);
    g.log_free = c;
}

void release_ref(ThreadState& t, u32 scope, u32 seq) noexcept;

inline void slot_free(ThreadState& t, u32 index) noexcept {
    Slot& s = slot_ref(index);
    u32 parent = s.parent;
    {
        SpinGuard guard(s.lock);
        s.generation.store(s.generation.load(relaxed) + 1, release);
        // Keep the directories (and a first chunk that is already clean) for the slot's next
        // scope: a scope per request must not cost an mmap and a munmap.
        for (std::size_t i = 0; i < s.log.size; ++i) {
            LogChunkRef& c = s.log.data[i];
            if (c.entries && (i != 0 || c.live != 0)) {
                log_chunk_release(c.entries);
                c.entries = nullptr;
            }
            c.live = 0;
        }
        s.log.size = s.log.size && s.log.data[0].entries ? 1 : 0;
        s.shared.size = 0;
        s.log_size = 0;
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

inline bool owned_here(const Slot& s, const ThreadState& t) noexcept {
    return s.owner.load(relaxed) == t.serial && s.closed.load(relaxed) == 0;
}

// A reference on `scope` goes away: a block born in it died, or a child scope's slot was freed.
void release_ref(ThreadState& t, u32 scope, u32 seq) noexcept {
    Slot& s = slot_ref(scope);
    if (owned_here(s, t)) {
        s.owner_live.store(s.owner_live.load(relaxed) - 1, relaxed);
        u32 ci = seq / kLogChunk;
        if (seq != kNoSeq && (seq & kSharedSeq) == 0 && ci < s.log.size && s.log.data[ci].entries) {
            LogChunkRef& c = s.log.data[ci];
            c.entries[seq % kLogChunk] = 0;
            if (--c.live == 0) {
                if (ci == (s.log_size - 1) / kLogChunk) {
                    // Every birth logged in the tail chunk died here: its positions can be
                    // handed out again, so a long scope with churn reuses one chunk.
                    s.log_size = ci * kLogChunk;
                } else {
                    // A dead chunk behind the tail goes back: only chunks with live births stay.
                    log_chunk_release(c.entries);
                    c.entries = nullptr;
                }
            }
        }
        return;
    }
    drop_ref(t, scope);
}

// Takes a reference on `scope` for a birth (or a child scope) on thread t. Returns the seq to
// store in the record, or false when the scope no longer accepts births (it has closed).
LEAKSCOPE_HOT_INLINE bool take_ref(ThreadState& t, u64 handle, std::uintptr_t addr, u32& seq) noexcept {
    u32 scope = slot_of(handle);
    Slot& s = slot_ref(scope);
    if (owned_here(s, t) && s.generation.load(relaxed) == generation_of(handle)) {
        if (addr == 0) {
            seq = kNoSeq;
        } else {
            seq = s.log_size;
            if (seq >= kSharedSeq) return false;
            u32 ci = seq / kLogChunk;
            if (ci >= s.log.size || s.log.data[ci].entries == nullptr) {
                std::uintptr_t* c = log_chunk_allocate();
                if (!c) return false;
                if (ci >= s.log.size) {
                    if (!s.log.push(LogChunkRef{c, 0})) {
                        log_chunk_release(c);
                        return false;
                    }
                } else {
                    s.log.data[ci] = LogChunkRef{c, 0};
                }
            }
            s.log.data[ci].entries[seq % kLogChunk] = addr;
            ++s.log.data[ci].live;
            s.log_size = seq + 1;
        }
        s.owner_live.store(s.owner_live.load(relaxed) + 1, relaxed);
        return true;
    }
    // Another thread's scope: serialise with its close, so a birth is either seen by the
    // close or not attributed at all.
    SpinGuard guard(s.lock);
    if (s.closed.load(relaxed) || s.generation.load(relaxed) != generation_of(handle)) return false;
    if (addr == 0) {
        seq = kNoSeq;
    } else {
        seq = u32(s.shared.size) | kSharedSeq;
        if (!s.shared.push(SharedEntry{addr, scope, seq, generation_of(handle), 0})) return false;
    }
    s.refs.fetch_add(1, relaxed);
    return true;
}

// ---- the hook's slow paths ------------------------------------------------------------------
// The scope this thread's births count for: its own (or adopted) one, else an open all-scope.
inline u64 counting_scope(const ThreadState& t) noexcept {
    return t.current ? t.current : g.all_scope.load(acquire);
}


LEAKSCOPE_HOT_INLINE void insert_record(ThreadState& t, const Record& rec) noexcept;

// Only called from after_allocation, which has registered the thread.
LEAKSCOPE_NOINLINE void on_birth(ThreadState& t, void* block, std::size_t size) noexcept {
    auto addr = reinterpret_cast<std::uintptr_t>(block);
    Record rec{addr, size, 0, 0, 0, 0};
    if (t.internal || t.ignore_depth) {
        // Recorded without a scope only so that its free is not counted as "released".
        rec.flags = kNoScope | (t.internal ? u32(kInternal) : 0u);
        insert_record(t, rec);
        return;
    }
    u64 handle = counting_scope(t);
    if (handle == 0 || !take_ref(t, handle, addr, rec.seq)) return;
    rec.scope = slot_of(handle);
    insert_record(t, rec);
}

LEAKSCOPE_HOT_INLINE void insert_record(ThreadState& t, const Record& rec) noexcept {
    Record stale;   // written only when had_stale
    bool had_stale = false;
    if (!registry_insert(rec, stale, had_stale)) {
        // Out of tracker memory: the block goes untracked, its scope reference is undone.
        if (rec.scope) release_ref(t, rec.scope, rec.seq);
        return;
    }
    if (!(rec.flags & kInternal)) count_birth(t, rec.size);
    if (had_stale) {
        if (!(stale.flags & kInternal)) count_death(t, stale.size);
        if (stale.scope) release_ref(t, stale.scope, stale.seq);
    }
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

LEAKSCOPE_NOINLINE void on_death(ThreadState& t, void* block, std::size_t size_hint) noexcept {
    auto addr = reinterpret_cast<std::uintptr_t>(block);
    bool counting = (t.current != 0 || (g.mode.load(relaxed) & kAllScopeOpen)) && !t.internal;
    Record rec;   // read only when found
    if (registry_find(addr, rec, Edit::erase, !counting)) {
        if (!(rec.flags & kInternal)) count_death(t, rec.size);
        // Born in the scope this thread counts for (the common case): not an older block.
        if (counting && !(rec.flags & kNoScope) && rec.scope != slot_of(t.current))
            count_released(t, rec.scope, rec.size);
        if (rec.scope) release_ref(t, rec.scope, rec.seq);
    } else if (counting) {
        count_released(t, 0, size_hint ? size_hint : ::malloc_usable_size(block));
    }
}

// Hot paths, inlined into the replaced operators.
LEAKSCOPE_NOINLINE void count_allocation_slow(ThreadState& t) noexcept {
    if (t.registry_index == 0) register_thread(t);
    if (counts_locally(t))
        t.allocations.store(t.allocations.load(relaxed) + 1, relaxed);
    else
        g.retired_allocations.fetch_add(1, relaxed);
}

inline void after_allocation(void* block, std::size_t size) noexcept {
    ThreadState& t = tls;
    if (LEAKSCOPE_LIKELY(counts_locally(t)))
        t.allocations.store(t.allocations.load(relaxed) + 1, relaxed);
    else
        count_allocation_slow(t);
    if (LEAKSCOPE_UNLIKELY((t.current | (g.mode.load(relaxed) & kAllScopeOpen)) != 0)) on_birth(t, block, size);
}
inline void before_deallocation(void* block, std::size_t size) noexcept {
    ThreadState& t = tls;
    u32 mode = g.mode.load(relaxed);
    if (LEAKSCOPE_LIKELY((t.current | mode) == 0)) return;   // nothing was ever tracked
    if (t.current == 0 && !(mode & kAllScopeOpen)) {
        // Counting for no scope, the only question is "is it ours?": the bucket filter
        // answers it for most blocks in one load, without a call.
        u64 h = hash_address(reinterpret_cast<std::uintptr_t>(block));
        if (g.shards[shard_of(reinterpret_cast<std::uintptr_t>(block))].filter[filter_of(h)].load(relaxed) == 0)
            return;
    }
    on_death(t, block, size);
}

// ---- enumerating a scope's leftovers: from its own birth logs, never a heap scan ---------------
template <class F>
void for_each_leftover(u32 scope, F&& visit) noexcept {
    Slot& s = slot_ref(scope);
    Record rec{};
    for (std::size_t ci = 0; ci < s.log.size; ++ci) {
        const std::uintptr_t* entries = s.log.data[ci].entries;
        if (!entries) continue;
        for (u32 i = 0; i < kLogChunk; ++i) {
            u32 seq = u32(ci) * kLogChunk + i;
            if (seq >= s.log_size) break;
            if (entries[i] && registry_find(entries[i], rec, Edit::none) && rec.scope == scope && rec.seq == seq)
                visit(rec);
        }
    }
    SpinGuard guard(s.lock);
    for (std::size_t i = 0; i < s.shared.size; ++i) {
        const SharedEntry& e = s.shared.data[i];
        if (registry_find(e.addr, rec, Edit::none) && rec.scope == e.scope && rec.seq == e.seq &&
            slot_ref(e.scope).generation.load(relaxed) == e.generation)
            visit(rec);
    }
}

// A live record's log entry, as handed to the enclosing scope.
inline SharedEntry entry_of(const Record& r) noexcept {
    return SharedEntry{r.addr, r.scope, r.seq, slot_ref(r.scope).generation.load(relaxed), 0};
}

inline i64 live_count(const Slot& s) noexcept {
    return s.owner_live.load(relaxed) + s.refs.load(acquire) - kOpenBias - i64(s.holds.load(acquire));
}

void dispatch(const Report& report) noexcept;
void build_leftovers(u32 index, Report& out, OsVector<SharedEntry>* handoff = nullptr);
inline Report leftovers_header(const char* name, const char* file, unsigned line, bool by_exception) {
    Report r;
    r.kind = "leftovers";
    r.scope = name;
    r.file = file ? file : "";
    r.line = line;
    r.by_exception = by_exception;
    return r;
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
        {
            InternalGuard internal;
            try {
                Report rep = leftovers_header(s.deferred_name, s.deferred_file, s.deferred_line, true);
                build_leftovers(slot_of(handle), rep);
                if (rep.blocks > 0) dispatch(rep);
            } catch (...) {
                diagnostic("could not build a report (out of memory?)");
            }
        }
        drop_ref(t, slot_of(handle));   // the hold taken when the report was deferred
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
    s.owner_live.store(0, relaxed);
    s.owner_released_blocks.store(0, relaxed);
    s.owner_released_bytes.store(0, relaxed);
    s.remote_released_blocks.store(0, relaxed);
    s.remote_released_bytes.store(0, relaxed);
    s.owner.store(t.serial, relaxed);
    s.threads_all = threads == Threads::all;
    s.log_size = 0;
    s.holds.store(0, relaxed);
    s.refs.store(kOpenBias, relaxed);
    s.parent = 0;
    // The enclosing scope sees this one's leftovers: this slot is a reference on it, like a block.
    u64 parent = counting_scope(t);
    u32 seq = 0;
    if (parent && take_ref(t, parent, 0, seq)) s.parent = slot_of(parent);
    s.closed.store(0, release);
    slot_ = index;
    generation_ = s.generation.load(relaxed);
    saved_current_ = t.current;
    t.current = handle_of(index, generation_);
    uncaught_at_open_ = std::uncaught_exceptions();
    open_ = true;
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
    return !any;
}

namespace detail {
// Builds the report of a scope's current leftovers (leakscope's own allocations inside) and,
// with `handoff`, collects their log entries for the enclosing scope in the same pass.
void build_leftovers(u32 index, Report& out, OsVector<SharedEntry>* handoff) {
    struct Item { u32 stack; u64 size; };
    std::vector<Item> items;
    for_each_leftover(index, [&](const Record& r) {
        items.push_back(Item{r.stack, r.size});
        if (handoff)
            handoff->push(entry_of(r));
    });
    std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.stack < b.stack; });
    for (std::size_t i = 0; i < items.size();) {
        Site site;
        std::size_t j = i;
        for (; j < items.size() && items[j].stack == items[i].stack; ++j) {
            ++site.blocks;
            site.bytes += items[j].size;
        }
        out.blocks += site.blocks;
        out.bytes += site.bytes;
        out.sites.push_back(std::move(site));
        i = j;
    }
    std::stable_sort(out.sites.begin(), out.sites.end(),
                     [](const Site& a, const Site& b) { return a.bytes > b.bytes; });
    const Slot& s = slot_ref(index);
    out.released_blocks = s.owner_released_blocks.load(relaxed) + s.remote_released_blocks.load(relaxed);
    out.released_bytes = s.owner_released_bytes.load(relaxed) + s.remote_released_bytes.load(relaxed);
}
}  // namespace detail

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
    if (live > 0) {
        bool by_exception = std::uncaught_exceptions() > uncaught_at_open_;
        bool deferred = false;
        if (report && by_exception) {
            std::size_t n = std::strlen(name_);
            std::memcpy(s.deferred_name, name_, n + 1);
            s.deferred_file = file_;
            s.deferred_line = line_;
            s.deferred_uncaught = uncaught_at_open_;
            s.refs.fetch_add(1, relaxed);   // hold the slot until the deferred report is written
            deferred = defer_report(t, handle_of(slot_, generation_));
            if (!deferred) s.refs.fetch_sub(1, relaxed);   // all entries taken: report now
        }
        // The enclosing scope sees these leftovers too: it gets their log entries, collected
        // in the same pass that builds the report.
        OsVector<SharedEntry> handoff{};
        OsVector<SharedEntry>* want = s.parent ? &handoff : nullptr;
        bool collected = false;
        if (report && !deferred) {
            InternalGuard internal;
            try {
                Report rep = leftovers_header(name_, file_, line_, by_exception);
                build_leftovers(slot_, rep, want);
                collected = true;
                if (rep.blocks > 0) dispatch(rep);
            } catch (...) {
                diagnostic("could not build a report (out of memory?)");
            }
        }
        if (want) {
            if (!collected) {
                handoff.size = 0;   // a failed build may have collected part of them
                for_each_leftover(slot_, [&](const Record& r) {
                    handoff.push(entry_of(r));
                });
            }
            Slot& p = slot_ref(s.parent);
            {
                SpinGuard guard(p.lock);
                if (!p.closed.load(relaxed))
                    for (std::size_t i = 0; i < handoff.size; ++i) p.shared.push(handoff.data[i]);
            }
            handoff.release();
        }
    }
    // From now on every reference goes through `refs`: fold the owner's count in, drop the bias.
    i64 delta = s.owner_live.load(relaxed) - kOpenBias;
    s.owner_live.store(0, relaxed);
    if (s.refs.fetch_add(delta, acq_rel) + delta == 0) slot_free(t, slot_);
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
    Record before{};
    if (!registry_find(reinterpret_cast<std::uintptr_t>(block), before, Edit::unscope)) return;
    if (before.scope) release_ref(tls, before.scope, before.seq);
}

void record_allocation(const void* block, std::size_t size) noexcept {
    if (block) after_allocation(const_cast<void*>(block), size);
}
void record_deallocation(const void* block, std::size_t size) noexcept {
    if (block) before_deallocation(const_cast<void*>(block), size);
}

Stats stats() noexcept {
    Stats out;
    i64 blocks, bytes;
    u64 allocations;
    {
        SpinGuard guard(g.thread_lock);
        blocks = g.retired_live_blocks.load(relaxed);
        bytes = g.retired_live_bytes.load(relaxed);
        allocations = g.retired_allocations.load(relaxed);
        for (u32 i = 1; i <= g.thread_high; ++i) {
            ThreadState* t = g.threads[i].load(acquire);
            if (!t) continue;
            blocks += t->live_blocks.load(relaxed);
            bytes += t->live_bytes.load(relaxed);
            allocations += t->allocations.load(relaxed);
        }
    }
    out.live_blocks = std::size_t(std::max<i64>(blocks, 0));
    out.live_bytes = std::size_t(std::max<i64>(bytes, 0));
    out.peak_bytes = std::size_t(std::max<i64>(g.peak_bytes.load(relaxed), bytes));
    out.total_allocations = std::size_t(allocations);
    out.tracker_bytes = os_bytes().load(relaxed);
    return out;
}

// ---- writers ----------------------------------------------------------------------------------
void TextWriter::write(const Report& r) {
    std::FILE* out = out_ ? out_ : stderr;
    const char* name = r.scope.empty() ? "(unnamed)" : r.scope.c_str();
    std::fprintf(out, "leakscope: scope \"%s\" opened at %s:%u left %zu block%s (%zu bytes) behind%s\n", name,
                 r.file.c_str(), r.line, r.blocks, r.blocks == 1 ? "" : "s", r.bytes,
                 r.by_exception ? " [ended by an exception]" : "");
    std::fprintf(out, "leakscope:   older blocks freed inside: %zu (%zu bytes)\n", r.released_blocks,
                 r.released_bytes);
    std::size_t rank = 0;
    for (const Site& site : r.sites) {
        std::fprintf(out, "leakscope:   #%zu  %zu block%s, %zu bytes%s%s\n", ++rank, site.blocks,
                     site.blocks == 1 ? "" : "s", site.bytes, site.type.empty() ? "" : "  type ",
                     site.type.c_str());
        std::size_t shown = 0;
        for (const Frame& f : site.frames) {
            if (++shown > 8) break;
            std::fprintf(out, "leakscope:        at %s (%s:%u)\n", f.function.empty() ? "??" : f.function.c_str(),
                         f.file.empty() ? "?" : f.file.c_str(), f.line);
        }
        if (site.frames.empty()) std::fprintf(out, "leakscope:        (no call stack captured)\n");
    }
    std::fflush(out);
}

void set_writers(std::vector<std::shared_ptr<Writer>> writers) {
    InternalGuard internal;
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
    SpinGuard guard(g.writer_lock);
    if (!g.writers) g.writers = new std::vector<std::shared_ptr<Writer>>();
    g.writers->push_back(std::move(writer));
}

namespace detail {
void dispatch(const Report& report) noexcept {
    InternalGuard internal;
    try {
        std::vector<std::shared_ptr<Writer>> list;
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
    if (t.pending_bytes) publish_bytes(t);
    SpinGuard guard(g.thread_lock);
    g.retired_live_blocks.fetch_add(t.live_blocks.load(relaxed), relaxed);
    g.retired_live_bytes.fetch_add(t.live_bytes.load(relaxed), relaxed);
    g.retired_allocations.fetch_add(t.allocations.load(relaxed), relaxed);
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
    // Cached scope slots go back to the shared list.
    SpinGuard slots(g.slot_lock);
    while (t.slot_cache_size) {
        u32 slot = t.slot_cache[--t.slot_cache_size];
        slot_ref(slot).next_free = g.slot_free_head;
        g.slot_free_head = slot;
    }
}

void flush_at_exit() noexcept { flush_deferred(tls, true, true); }

// fork: hold every global lock across it, so the child finds them consistent.
void before_fork() noexcept {
    g.thread_lock.lock();
    g.slot_lock.lock();
    g.log_lock.lock();
    g.all_lock.lock();
    g.writer_lock.lock();
    for (Shard& sh : g.shards) sh.lock.lock();
}
void after_fork_parent() noexcept {
    for (Shard& sh : g.shards) sh.lock.unlock();
    g.writer_lock.unlock();
    g.all_lock.unlock();
    g.log_lock.unlock();
    g.slot_lock.unlock();
    g.thread_lock.unlock();
}
void after_fork_child() noexcept {
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
LEAKSCOPE_NOINLINE void* allocate_slow(std::size_t size, std::size_t alignment, bool nothrow);

// The common case inline: default alignment, malloc succeeds.
inline void* allocate(std::size_t size, std::size_t alignment, bool nothrow) {
    if (LEAKSCOPE_LIKELY(alignment <= __STDCPP_DEFAULT_NEW_ALIGNMENT__)) {
        void* p = std::malloc(size ? size : 1);
        if (LEAKSCOPE_LIKELY(p != nullptr)) {
            after_allocation(p, size);
            return p;
        }
    }
    return allocate_slow(size, alignment, nothrow);
}

// Extended alignment, and the failure path: the new-handler loop, bad_alloc or null.
LEAKSCOPE_NOINLINE void* allocate_slow(std::size_t size, std::size_t alignment, bool nothrow) {
    if (alignment & (alignment - 1)) {   // not a power of two: no allocation can satisfy it
        if (nothrow) return nullptr;
        throw std::bad_alloc();
    }
    std::size_t request = size ? size : 1;   // distinct non-null pointers for zero-size requests
    for (;;) {
        void* p = nullptr;
        if (alignment <= __STDCPP_DEFAULT_NEW_ALIGNMENT__) {
            p = std::malloc(request);
        } else if (::posix_memalign(&p, std::max(alignment, sizeof(void*)), request) != 0) {
            p = nullptr;
        }
        if (LEAKSCOPE_LIKELY(p != nullptr)) {
            after_allocation(p, size);
            return p;
        }
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
inline void deallocate(void* p, std::size_t size) noexcept {
    if (!p) return;
    before_deallocation(p, size);
    std::free(p);
}
}  // namespace detail
}  // namespace leakscope

#if !defined(LEAKSCOPE_NO_NEW_DELETE)
// The 20 replaceable global allocation functions ([new.delete]); the standard requires them to
// be non-inline, which is why they live in exactly one translation unit.
void* operator new(std::size_t n) { return leakscope::detail::allocate(n, 0, false); }
void* operator new[](std::size_t n) { return leakscope::detail::allocate(n, 0, false); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    return leakscope::detail::allocate(n, 0, true);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
    return leakscope::detail::allocate(n, 0, true);
}
void* operator new(std::size_t n, std::align_val_t a) {
    return leakscope::detail::allocate(n, static_cast<std::size_t>(a), false);
}
void* operator new[](std::size_t n, std::align_val_t a) {
    return leakscope::detail::allocate(n, static_cast<std::size_t>(a), false);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return leakscope::detail::allocate(n, static_cast<std::size_t>(a), true);
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return leakscope::detail::allocate(n, static_cast<std::size_t>(a), true);
}
void operator delete(void* p) noexcept { leakscope::detail::deallocate(p, 0); }
void operator delete[](void* p) noexcept { leakscope::detail::deallocate(p, 0); }
void operator delete(void* p, std::size_t n) noexcept { leakscope::detail::deallocate(p, n); }
void operator delete[](void* p, std::size_t n) noexcept { leakscope::detail::deallocate(p, n); }
void operator delete(void* p, std::align_val_t) noexcept { leakscope::detail::deallocate(p, 0); }
void operator delete[](void* p, std::align_val_t) noexcept { leakscope::detail::deallocate(p, 0); }
void operator delete(void* p, std::size_t n, std::align_val_t) noexcept { leakscope::detail::deallocate(p, n); }
void operator delete[](void* p, std::size_t n, std::align_val_t) noexcept { leakscope::detail::deallocate(p, n); }
void operator delete(void* p, const std::nothrow_t&) noexcept { leakscope::detail::deallocate(p, 0); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { leakscope::detail::deallocate(p, 0); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
    leakscope::detail::deallocate(p, 0);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
    leakscope::detail::deallocate(p, 0);
}
#endif  // LEAKSCOPE_NO_NEW_DELETE
#if defined(LEAKSCOPE_MISMATCH_PRAGMA_PUSHED)
#pragma GCC diagnostic pop
#undef LEAKSCOPE_MISMATCH_PRAGMA_PUSHED
#endif

#endif  // LEAKSCOPE_IMPLEMENTATION

// MIT License — Copyright (c) 2026 The leakscope authors. See LICENSE.
