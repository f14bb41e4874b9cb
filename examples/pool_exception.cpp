// A leak that only happens when a task fails inside a thread pool (the "Doctor Thread" story):
// the request hands work to the pool with its scope's token; each task adopts it, so what the
// task leaves behind counts for the request. One request's task throws halfway through
// building its batch of vehicles, and the batch it already built is never freed.
//
//   build: c++ -std=c++17 -O2 -g -I include examples/pool_exception.cpp -pthread
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include <condition_variable>
#include <cstdio>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {
struct FloatingVehicle {
    double lat, lon, heading;
    int route;
};

// A fixed-size pool; its queue is reserved up front so queueing is not a leftover.
class Pool {
   public:
    explicit Pool(int threads) {
        queue_.reserve(64);
        for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { run(); });
    }
    ~Pool() {
        {
            std::lock_guard<std::mutex> lock(m_);
            stop_ = true;
        }
        cv_.notify_all();
        for (auto& w : workers_) w.join();
    }
    void submit_and_wait(std::function<void()> task) {
        std::unique_lock<std::mutex> lock(m_);
        queue_.push_back(std::move(task));
        cv_.notify_one();
        done_cv_.wait(lock, [&] { return queue_.empty() && busy_ == 0; });
    }

   private:
    void run() {
        std::unique_lock<std::mutex> lock(m_);
        for (;;) {
            cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
            if (queue_.empty()) return;
            std::function<void()> task = std::move(queue_.back());
            queue_.pop_back();
            ++busy_;
            lock.unlock();
            try {
                task();
            } catch (const std::exception& e) {
                std::fprintf(stderr, "pool: task failed: %s\n", e.what());
            }
            task = nullptr;
            lock.lock();
            --busy_;
            done_cv_.notify_all();
        }
    }
    std::mutex m_;
    std::condition_variable cv_, done_cv_;
    std::vector<std::function<void()>> queue_;
    std::vector<std::thread> workers_;
    int busy_ = 0;
    bool stop_ = false;
};

// Builds a batch of vehicles with raw pointers; a bad record aborts the batch half-way and the
// vehicles built so far are lost.
std::size_t load_batch(int request, int size) {
    std::vector<FloatingVehicle*> batch;
    batch.reserve(size);
    for (int i = 0; i < size; ++i) {
        if (request == 3 && i == size / 2) throw std::runtime_error("bad vehicle record");
        batch.push_back(new FloatingVehicle{51.5, -0.1, 90.0, i});
    }
    std::size_t n = batch.size();
    for (FloatingVehicle* v : batch) delete v;
    return n;
}
}  // namespace

int main() {
    Pool pool(2);
    for (int request = 1; request <= 5; ++request) {
        leakscope::LeakScope scope("request " + std::to_string(request));
        leakscope::Token token = scope.token();
        pool.submit_and_wait([token, request] {
            leakscope::Adopt adopt(token);   // this task's allocations count for the request
            load_batch(request, 40);
        });
    }
    std::printf("served 5 requests\n");
    return 0;
}
