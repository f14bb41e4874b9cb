// Threads: blocks freed by other threads, Adopt across a pool, Threads::all, tokens that
// outlive their scope. Nothing may be lost or counted twice, whatever the interleaving.
#include "support.hpp"

#include <atomic>
#include <condition_variable>
#include <functional>
#include <thread>
#include <vector>

using leakscope::LeakScope;
using leakscope::Report;
using test::escape;

namespace {
// A reusable barrier (C++17 has none).
class Barrier {
   public:
    explicit Barrier(int n) : n_(n) {}
    void wait() {
        std::unique_lock<std::mutex> lock(m_);
        int gen = gen_;
        if (++count_ == n_) {
            count_ = 0;
            ++gen_;
            cv_.notify_all();
        } else {
            cv_.wait(lock, [&] { return gen != gen_; });
        }
    }

   private:
    std::mutex m_;
    std::condition_variable cv_;
    int n_, count_ = 0, gen_ = 0;
};

// A minimal thread pool: tasks run on worker threads that have no scope of their own. Its queue
// is reserved up front, so submitting inside a scope leaves no queue growth behind.
class Pool {
   public:
    explicit Pool(int n) {
        tasks_.reserve(256);
        for (int i = 0; i < n; ++i) workers_.emplace_back([this] { run(); });
    }
    ~Pool() {
        {
            std::lock_guard<std::mutex> lock(m_);
            stop_ = true;
        }
        cv_.notify_all();
        for (auto& w : workers_) w.join();
    }
    void submit(std::function<void()> task) {
        {
            std::lock_guard<std::mutex> lock(m_);
            tasks_.push_back(std::move(task));
            ++pending_;
        }
        cv_.notify_one();
    }
    void wait_idle() {
        std::unique_lock<std::mutex> lock(m_);
        idle_.wait(lock, [&] { return pending_ == 0; });
    }

   private:
    void run() {
        for (;;) {
            std::function<void()> task;
            {
                std::unique_lock<std::mutex> lock(m_);
                cv_.wait(lock, [&] { return stop_ || head_ < tasks_.size(); });
                if (head_ == tasks_.size()) return;
                task = std::move(tasks_[head_++]);
                if (head_ == tasks_.size()) {
                    tasks_.clear();   // keeps the capacity
                    head_ = 0;
                }
            }
            task();
            task = nullptr;   // destroy the closure before reporting idle
            std::lock_guard<std::mutex> lock(m_);
            if (--pending_ == 0) idle_.notify_all();
        }
    }
    std::mutex m_;
    std::condition_variable cv_, idle_;
    std::vector<std::function<void()>> tasks_;
    std::size_t head_ = 0;
    std::vector<std::thread> workers_;
    int pending_ = 0;
    bool stop_ = false;
};
}  // namespace

TEST_CASE("four threads freeing each other's blocks: every scope exact to the byte", "[threads]") {
    constexpr int kThreads = 4, kBlocks = 500, kRounds = 40;
    struct Result { std::size_t blocks = 0, bytes = 0, expect_blocks = 0, expect_bytes = 0; };
    for (int round = 0; round < kRounds; ++round) {
        std::vector<std::vector<char*>> blocks(kThreads, std::vector<char*>(kBlocks));
        std::vector<Result> results(kThreads);
        Barrier barrier(kThreads);
        auto size_of = [](int t, int i) { return std::size_t(1 + (t * 131 + i * 17) % 300); };
        std::vector<std::thread> threads;
        for (int t = 0; t < kThreads; ++t) {
            threads.emplace_back([&, t] {
                // Ground truth, computed before the scope so it allocates nothing inside.
                Result& res = results[t];
                for (int i = 0; i < kBlocks; ++i)
                    if (i % 10 == 0) {
                        ++res.expect_blocks;
                        res.expect_bytes += size_of(t, i);
                    }
                {
                    LeakScope scope("worker");
                    for (int i = 0; i < kBlocks; ++i) blocks[t][i] = test::kept(new char[size_of(t, i)]);
                    barrier.wait();
                    // Free the neighbour's blocks (born in the neighbour's scope), all but every 10th.
                    int victim = (t + 1) % kThreads;
                    for (int i = 0; i < kBlocks; ++i)
                        if (i % 10 != 0) delete[] blocks[victim][i];
                    barrier.wait();
                    Report r = scope.leftovers();
                    res.blocks = r.blocks;
                    res.bytes = r.bytes;
                    scope.dismiss();
                }
                barrier.wait();
                for (int i = 0; i < kBlocks; i += 10) delete[] blocks[t][i];
            });
        }
        for (auto& th : threads) th.join();
        for (int t = 0; t < kThreads; ++t) {
            INFO("round " << round << " thread " << t);
            CHECK(results[t].blocks == results[t].expect_blocks);
            CHECK(results[t].bytes == results[t].expect_bytes);
        }
    }
}

TEST_CASE("cross-thread churn leaves the registry and stats exact", "[threads][stats]") {
    leakscope::Stats before = leakscope::stats();
    constexpr int kThreads = 4, kOps = 20000;
    std::atomic<void*> mailbox[kThreads];
    for (auto& m : mailbox) m.store(nullptr);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            LeakScope scope("churn");
            for (int i = 0; i < kOps; ++i) {
                void* mine = ::operator new(std::size_t(8 + i % 64));
                // Swap into a random-ish mailbox, free whatever another thread left there.
                void* theirs = mailbox[(t + i) % kThreads].exchange(mine);
                if (theirs) ::operator delete(theirs);
            }
            scope.dismiss();
        });
    }
    for (auto& th : threads) th.join();
    for (auto& m : mailbox)
        if (void* p = m.exchange(nullptr)) ::operator delete(p);
    leakscope::Stats after = leakscope::stats();
    CHECK(after.live_blocks == before.live_blocks);
    CHECK(after.live_bytes == before.live_bytes);
}

TEST_CASE("Adopt: work handed to a thread pool counts for the scope that handed it", "[threads]") {
    Pool pool(3);
    std::mutex m;
    std::vector<int*> kept;
    kept.reserve(64);   // growing it inside the scope would be a (true) leftover of the scope
    test::Capture capture;
    {
        LeakScope scope("request");
        leakscope::Token token = scope.token();
        for (int i = 0; i < 30; ++i) {
            pool.submit([&, token, i] {
                leakscope::Adopt adopt(token);
                int* tmp = test::kept(new int(i));   // freed: not a leftover
                escape(tmp);
                delete tmp;
                if (i % 3 == 0) {
                    int* keep = test::kept(new int(i));   // a leftover of "request"
                    std::lock_guard<std::mutex> lock(m);
                    kept.push_back(keep);
                }
            });
        }
        pool.wait_idle();
    }
    // Work not adopted does not count.
    pool.submit([&] {
        int* keep = test::kept(new int(99));
        std::lock_guard<std::mutex> lock(m);
        kept.push_back(keep);
    });
    pool.wait_idle();
    REQUIRE(capture.reports().size() == 1);
    CHECK(capture.reports()[0].scope == "request");
    CHECK(capture.reports()[0].blocks == 10);
    CHECK(capture.reports()[0].bytes == 10 * sizeof(int));
    for (int* p : kept) delete p;
}

TEST_CASE("a token outliving its scope adopts nothing; an empty token adopts nothing", "[threads]") {
    leakscope::Token stale;
    {
        LeakScope scope("short");
        stale = scope.token();
        scope.dismiss();
    }
    int* a = nullptr;
    int* b = nullptr;
    Report r = test::leftovers_of([&] {
        std::thread([&] {
            leakscope::Adopt adopt(stale);
            a = test::kept(new int(1));
        }).join();
        std::thread([&] {
            leakscope::Adopt adopt(leakscope::Token{});
            b = test::kept(new int(2));
        }).join();
    });
    CHECK(r.blocks == 0);
    delete a;
    delete b;
}

TEST_CASE("an Adopt alive when its scope ends stops counting, harmlessly", "[threads]") {
    std::mutex m;
    std::condition_variable cv;
    int phase = 0;
    int* late = nullptr;
    int* early = nullptr;
    leakscope::Token shared_token;
    test::Capture capture;
    // The thread starts before the scope: its start-up allocations are not the scope's.
    std::thread worker([&] {
        leakscope::Token token;
        {
            std::unique_lock<std::mutex> lock(m);
            cv.wait(lock, [&] { return phase == 1; });
            token = shared_token;
        }
        leakscope::Adopt adopt(token);
        early = test::kept(new int(1));
        {
            std::unique_lock<std::mutex> lock(m);
            phase = 2;
            cv.notify_all();
            cv.wait(lock, [&] { return phase == 3; });
        }
        late = test::kept(new int(2));   // the scope has ended: counts for nobody
    });
    {
        LeakScope scope("ends first");
        std::unique_lock<std::mutex> lock(m);
        shared_token = scope.token();
        phase = 1;
        cv.notify_all();
        cv.wait(lock, [&] { return phase == 2; });
    }
    {
        std::lock_guard<std::mutex> lock(m);
        phase = 3;
    }
    cv.notify_all();
    worker.join();
    REQUIRE(capture.reports().size() == 1);
    CHECK(capture.reports()[0].blocks == 1);
    delete early;
    delete late;
}

TEST_CASE("Threads::all counts threads that have no scope of their own", "[threads]") {
    std::vector<int*> kept(4);
    Report r = test::leftovers_of(
        [&] {
            std::vector<std::thread> threads;
            for (int i = 0; i < 4; ++i)
                threads.emplace_back([&, i] {
                    kept[i] = test::kept(new int(i));
                    int* tmp = test::kept(new int(i));
                    escape(tmp);
                    delete tmp;
                });
            for (auto& t : threads) t.join();
        },
        leakscope::Threads::all);
    // std::thread's own state is freed by join; the four ints remain.
    CHECK(r.blocks == 4);
    CHECK(r.bytes == 4 * sizeof(int));
    for (int* p : kept) delete p;
}

TEST_CASE("Threads::current ignores other threads", "[threads]") {
    int* other = nullptr;
    Report r = test::leftovers_of([&] { std::thread([&] { other = test::kept(new int(1)); }).join(); });
    CHECK(r.blocks == 0);
    delete other;
}

TEST_CASE("a scope destroyed on another thread does not crash", "[threads][bad-input]") {
    auto* scope = test::kept(new LeakScope("moved"));
    int* p = test::kept(new int(1));
    escape(p);
    std::thread([&] {
        scope->dismiss();
    }).join();
    delete scope;
    delete p;
    SUCCEED();
}

TEST_CASE("four threads adopt each other's scopes and free each other's blocks, nested", "[threads]") {
    // Each round, thread t opens an outer and an inner scope, then:
    //  phase 1: allocates A blocks in its inner scope;
    //  phase 2: adopts the inner scope of thread t+1 and allocates B blocks for it there, and
    //           frees every 3rd block that thread t+2 allocated in phase 1;
    //  phase 3: every scope checks its exact leftovers, then all is freed.
    constexpr int kThreads = 4, A = 120, B = 30, kRounds = 25;
    struct Shared {
        std::vector<std::vector<int*>> phase1{kThreads, std::vector<int*>(A)};
        std::vector<std::vector<int*>> adopted{kThreads, std::vector<int*>(B)};   // by adopter
        std::vector<leakscope::Token> tokens{kThreads};
        std::vector<std::size_t> inner_blocks = std::vector<std::size_t>(kThreads);
        std::vector<std::size_t> outer_blocks = std::vector<std::size_t>(kThreads);
        std::vector<std::size_t> outer_released = std::vector<std::size_t>(kThreads);
    };
    test::Capture capture;   // the inner scopes' reports
    for (int round = 0; round < kRounds; ++round) {
        capture.reports().clear();
        Shared sh;
        Barrier barrier(kThreads);
        std::vector<std::thread> threads;
        for (int t = 0; t < kThreads; ++t) {
            threads.emplace_back([&, t] {
                {
                    LeakScope outer("outer");
                    {
                        LeakScope inner("inner");
                        sh.tokens[t] = inner.token();
                        for (int i = 0; i < A; ++i) sh.phase1[t][i] = test::kept(new int(i));
                        barrier.wait();
                        {
                            leakscope::Adopt adopt(sh.tokens[(t + 1) % kThreads]);
                            for (int i = 0; i < B; ++i) sh.adopted[t][i] = test::kept(new int(i));
                        }
                        int victim = (t + 2) % kThreads;
                        for (int i = 0; i < A; i += 3) delete sh.phase1[victim][i];
                        barrier.wait();
                        sh.inner_blocks[t] = inner.leftovers().blocks;
                        barrier.wait();   // nobody allocates into another scope from here on
                    }
                    leakscope::Report r = outer.leftovers();
                    sh.outer_blocks[t] = r.blocks;
                    sh.outer_released[t] = r.released_blocks;
                    outer.dismiss();
                }
                barrier.wait();
                for (int i = 0; i < A; ++i)
                    if (i % 3 != 0) delete sh.phase1[t][i];
                for (int* p : sh.adopted[t]) delete p;
            });
        }
        for (auto& th : threads) th.join();
        const std::size_t freed_by_victimiser = (A + 2) / 3;
        CHECK(capture.reports().size() == kThreads);   // each inner scope reported once
        for (int t = 0; t < kThreads; ++t) {
            INFO("round " << round << " thread " << t);
            // Own phase-1 blocks not freed by thread t-2, plus B blocks thread t-1 made for it.
            CHECK(sh.inner_blocks[t] == A - freed_by_victimiser + B);
            // The outer scope sees the inner one's leftovers (the inner report went to stderr).
            CHECK(sh.outer_blocks[t] == A - freed_by_victimiser + B);
            // Blocks of another thread's scope freed here were not born in this scope or below
            // it, so they count on its minus side.
            CHECK(sh.outer_released[t] == freed_by_victimiser);
        }
    }
}

// The hook remembers which slot a thread's births went to last (its "lane") and takes it
// straight next time; a scope closed on another thread, whose slot that thread then reuses for a
// scope of its own, must not receive the opener's later births.
TEST_CASE("a scope closed elsewhere, its slot reused there: the opener's later births are no one's", "[threads][bad-input]") {
    std::mutex m;
    std::condition_variable cv;
    int step = 0;
    auto advance_to = [&](int s) {
        std::lock_guard<std::mutex> lock(m);
        step = s;
        cv.notify_all();
    };
    auto wait_for = [&](int s) {
        std::unique_lock<std::mutex> lock(m);
        cv.wait(lock, [&] { return step >= s; });
    };
    LeakScope* a = nullptr;
    std::size_t b_blocks_before = 99, b_blocks_after = 99;
    std::thread opener([&] {
        a = test::kept(new LeakScope("closed elsewhere"));
        for (int i = 0; i < 3; ++i) delete test::kept(new int(i));   // births and deaths in the lane
        advance_to(1);
        wait_for(2);   // a closed on the other thread, and its slot reused by b there
        int* p = test::kept(new int(7));
        advance_to(3);
        wait_for(4);
        delete p;
        delete a;   // closed already: nothing more happens
    });
    std::thread closer([&] {
        wait_for(1);
        a->dismiss();
        LeakScope b("opened elsewhere");
        int* own = test::kept(new int(8));   // b's log has room: a birth there would be taken
        b_blocks_before = b.leftovers().blocks;
        advance_to(2);
        wait_for(3);
        b_blocks_after = b.leftovers().blocks;
        delete own;
        b.dismiss();
        advance_to(4);
    });
    opener.join();
    closer.join();
    CHECK(b_blocks_before == 1);
    CHECK(b_blocks_after == 1);
}

// Births and deaths through the lane stay exact when what decides it changes under it: nested
// scopes, Ignore, a block born in an outer scope freed in an inner one, a scope per iteration.
TEST_CASE("the lane follows scope changes exactly", "[threads][scope]") {
    std::vector<int*> kept_outer, ignored;   // their buffers born before the scopes
    kept_outer.reserve(600);
    ignored.reserve(50);
    leakscope::LeakScope outer("outer");
    for (int i = 0; i < 600; ++i) kept_outer.push_back(test::kept(new int(i)));   // past one log chunk
    for (int round = 0; round < 50; ++round) {
        leakscope::LeakScope inner("inner");
        int* mine = test::kept(new int(round));
        {
            leakscope::Ignore ignore;
            ignored.push_back(test::kept(new int(round)));   // intentional survivor: no one's
        }
        delete kept_outer.back();     // an outer block dies inside: the minus side, not the lane
        kept_outer.pop_back();
        delete test::kept(new int(1));
        Report r = inner.leftovers();
        CHECK(r.blocks == 1);
        CHECK(r.bytes == sizeof(int));
        delete mine;
        CHECK(inner.clean());
    }
    Report r = outer.leftovers();
    CHECK(r.blocks == 550);
    for (int* p : kept_outer) delete p;
    CHECK(outer.clean());
    for (int* p : ignored) delete p;
}
