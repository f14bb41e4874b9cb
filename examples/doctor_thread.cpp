// The "Doctor Thread" story: a service hands blocking work to a thread pool, and memory grows —
// but only because of requests that raised an exception inside the pool. Three views find it:
//  * each request runs in a LeakScope whose token() travels with its task into the pool (the
//    worker holds a leakscope::Adopt while the task runs), so a task's leftovers are the
//    request's, and the report names the line that allocated them;
//  * a leakscope::Monitor diffs the heap against a baseline taken after a warm-up, in a
//    background thread, and marks the sites that grow interval after interval;
//  * the leftovers of all requests, grouped by type, show the FloatingVehicles piling up.
//
//   build: c++ -std=c++17 -O2 -g -I include examples/doctor_thread.cpp -pthread
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

// One vehicle's position report. (Not in an anonymous namespace: its name is the type reported.)
struct FloatingVehicle {
    int id;
    double lat, lon, heading, speed;
};

namespace {
constexpr int kRequests = 2000;   // half of them position feeds
constexpr int kFeedSize = 200;    // vehicles per feed
constexpr int kBadFeedEvery = 10; // every 10th feed ends with a malformed record
constexpr int kFleet = 1000;

struct BadRecord : std::exception {   // no message string to allocate: nothing of it outlives the catch
    const char* what() const noexcept override { return "malformed vehicle record"; }
};

// The latest position of every vehicle, allocated once at start-up.
class Fleet {
   public:
    Fleet() : at_(kFleet) {}
    void update(const FloatingVehicle& v) {
        std::lock_guard<std::mutex> lock(m_);
        at_[std::size_t(v.id % kFleet)] = v;
    }
    int nearest(double lat, double lon) {
        std::lock_guard<std::mutex> lock(m_);
        int best = 0;
        for (int i = 1; i < kFleet; ++i)
            if (distance(at_[std::size_t(i)], lat, lon) < distance(at_[std::size_t(best)], lat, lon)) best = i;
        return best;
    }

   private:
    static double distance(const FloatingVehicle& v, double lat, double lon) {
        return (v.lat - lat) * (v.lat - lat) + (v.lon - lon) * (v.lon - lon);
    }
    std::mutex m_;
    std::vector<FloatingVehicle> at_;
};

FloatingVehicle parse_record(const std::string& line) {
    FloatingVehicle v{};
    if (std::sscanf(line.c_str(), "%d,%lf,%lf,%lf,%lf", &v.id, &v.lat, &v.lon, &v.heading, &v.speed) != 5)
        throw BadRecord();
    return v;
}

// The bug: raw pointers. When parse_record throws, the loop is left and the vehicles made so far
// are never deleted. tagged<FloatingVehicle> types the blocks of this plain `new` for the reports.
void apply_feed(const std::vector<std::string>& feed, Fleet& fleet) {
    std::vector<FloatingVehicle*> batch;
    batch.reserve(feed.size());
    for (const std::string& line : feed)
        batch.push_back(leakscope::tagged<FloatingVehicle>::make(parse_record(line)));   // throws on a bad record: the batch leaks
    for (FloatingVehicle* v : batch) fleet.update(*v);
    for (FloatingVehicle* v : batch) delete v;
}

// A fixed pool. A job carries the token of the request that submitted it, and the worker adopts
// it while the job runs. The queue is an intrusive list: queueing allocates nothing.
class Pool {
   public:
    explicit Pool(int threads) {
        for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
    }
    ~Pool() {
        {
            std::lock_guard<std::mutex> lock(m_);
            stop_ = true;
        }
        ready_.notify_all();
        for (std::thread& w : workers_) w.join();
    }
    // Runs `task` on a worker for the scope of `token`, waits for it, rethrows what it threw.
    void run(leakscope::Token token, std::function<void()> task) {
        Job job;
        job.task = std::move(task);
        job.token = token;
        std::unique_lock<std::mutex> lock(m_);
        (tail_ ? tail_->next : head_) = &job;
        tail_ = &job;
        ready_.notify_one();
        finished_.wait(lock, [&] { return job.done; });
        if (job.error) std::rethrow_exception(job.error);
    }

   private:
    struct Job {
        std::function<void()> task;
        leakscope::Token token;
        std::exception_ptr error;
        bool done = false;
        Job* next = nullptr;
    };
    void work() {
        std::unique_lock<std::mutex> lock(m_);
        for (;;) {
            ready_.wait(lock, [&] { return stop_ || head_; });
            if (!head_) return;
            Job* job = head_;
            head_ = job->next;
            if (!head_) tail_ = nullptr;
            lock.unlock();
            {
                leakscope::Adopt adopt(job->token);   // from here on, allocations count for the request
                try {
                    job->task();
                } catch (...) {
                    job->error = std::current_exception();
                }
                job->task = nullptr;   // the closure dies here, before the request can end
            }
            lock.lock();
            job->done = true;
            finished_.notify_all();
        }
    }
    std::mutex m_;
    std::condition_variable ready_, finished_;
    Job *head_ = nullptr, *tail_ = nullptr;
    bool stop_ = false;
    std::vector<std::thread> workers_;
};

// Where reports go. The bad feeds leave the same leftovers a hundred times: this writer prints
// the first report of each scope name in full, and adds up all leftovers by type. The monitor's
// reports are printed as they come.
class ByType : public leakscope::Writer {
   public:
    void write(const leakscope::Report& r) override {
        std::lock_guard<std::mutex> lock(m_);
        if (r.kind != "leftovers") return text_.write(r);
        if (reports_[r.scope]++ == 0) text_.write(r);
        for (const leakscope::Site& s : r.sites) {
            Total& t = types_[s.type.empty() ? "(untyped)" : s.type];
            t.blocks += s.blocks;
            t.bytes += s.bytes;
        }
    }
    void print() {
        std::lock_guard<std::mutex> lock(m_);
        for (const auto& r : reports_) std::fprintf(stderr, "scope \"%s\" left blocks behind %u times\n", r.first.c_str(), r.second);
        std::fprintf(stderr, "leftovers of all requests by type:\n");
        for (const auto& t : types_) std::fprintf(stderr, "  %-20s %8zu blocks %10zu bytes\n", t.first.c_str(), t.second.blocks, t.second.bytes);
    }

   private:
    struct Total {
        std::size_t blocks = 0, bytes = 0;
    };
    std::mutex m_;
    leakscope::TextWriter text_;   // stderr
    std::map<std::string, unsigned> reports_;
    std::map<std::string, Total> types_;
};

// One request. The scope is named by route, not by request: reports group by it.
void handle(Pool& pool, Fleet& fleet, int n, const std::vector<std::string>& feed, int& failures) {
    if (n % 2 == 0) {
        leakscope::LeakScope scope("GET /nearest");
        int nearest = -1;
        pool.run(scope.token(), [&] { nearest = fleet.nearest(51.5 + n % 7 * 0.01, -0.12); });
        if (nearest < 0) std::fprintf(stderr, "no vehicle\n");
        return;
    }
    leakscope::LeakScope scope("POST /positions");
    try {
        pool.run(scope.token(), [&] { apply_feed(feed, fleet); });
    } catch (const BadRecord&) {
        ++failures;   // the service answers 400 and carries on; the batch stays behind
    }
}
}  // namespace

int main() {
    auto by_type = std::make_shared<ByType>();
    leakscope::set_writers({by_type});
    Fleet fleet;
    Pool pool(2);

    // Two feeds, built once outside every scope: a good one and one whose last record is bad.
    std::vector<std::string> good, bad;
    for (int i = 0; i < kFeedSize; ++i)
        good.push_back(std::to_string(i) + ",51.50" + std::to_string(i % 10) + ",-0.12,90.0,8.5");
    bad = good;
    bad.push_back("9999,51.5,not-a-longitude,0,0");

    // Warm-up and interval are short for the example; a server would use minutes.
    leakscope::Monitor::Options options;
    options.warmup_ms = 200;
    options.interval_ms = 200;
    options.growth_intervals = 3;
    options.threshold_bytes = 64 * 1024;   // quiet until the heap grew 64 KiB past the baseline
    leakscope::Monitor monitor(options);

    // Real traffic never pauses. Here the requests come in rounds, one per monitor interval, so
    // that a two-second run shows what hours of traffic would: every interval sees bad feeds.
    constexpr int kRounds = 8;
    int failures = 0, feeds = 0;
    unsigned seen = 0;
    for (int round = 0; round < kRounds; ++round) {
        for (int n = round * kRequests / kRounds; n < (round + 1) * kRequests / kRounds; ++n) {
            bool is_bad = n % 2 == 1 && ++feeds % kBadFeedEvery == 0;
            handle(pool, fleet, n, is_bad ? bad : good, failures);
        }
        for (int waited = 0; monitor.intervals() <= seen && waited < 2000; ++waited)   // at most 10 s
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        seen = monitor.intervals();
    }
    monitor.stop();

    // The monitor's verdict: the sites that grew in each of the last intervals.
    leakscope::Report last = monitor.latest();
    for (const leakscope::Site& s : last.sites) {
        if (!s.growing || s.frames.empty()) continue;
        std::string file = s.frames[0].file.substr(s.frames[0].file.rfind('/') + 1);
        std::fprintf(stderr, "monitor: growing for %u intervals: %zu blocks (%zu bytes) of %s at %s:%u\n",
                     last.growth_intervals, s.blocks, s.bytes, s.type.c_str(), file.c_str(), s.frames[0].line);
    }
    by_type->print();
    std::printf("served %d requests; %d position feeds failed: %d FloatingVehicle leaked on purpose\n", kRequests,
                failures, failures * kFeedSize);
    return 0;
}
