// A small HTTP/1.0 server with the classic leak: rendered pages are cached by path and never
// evicted (the Fil profiler's Flask story). An in-process client sends it 2,000 requests over a
// catalogue that keeps growing. Three views of the same leak:
//  * each request runs in a LeakScope named by its route: the first request for a path leaves
//    its cache entry behind, and the report names the cache line;
//  * a leakscope::Monitor diffs the heap against a baseline taken after a warm-up and marks the
//    sites that grow interval after interval;
//  * leakscope::peak(): where the memory was at the high-water mark, as text and as an HTML
//    flame graph (leaky_server-peak.html).
//
//   build: c++ -std=c++17 -O2 -g -I include examples/leaky_server.cpp -pthread
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>

namespace {
constexpr int kRequests = 2000;
constexpr int kRounds = 8;   // the client's rounds, one per monitor interval (see main)

// ---- the application ----------------------------------------------------------------------------
std::unordered_map<std::string, std::string> page_cache;   // the leak: keyed by path, never evicted

// Built by the first request and kept for the life of the process: a singleton, not a leak. Made
// under Ignore, it never counts for that request (nor in heap views).
const std::string& page_template() {
    static const std::string* layout = [] {
        leakscope::Ignore singleton;
        return new std::string("<html><head><title>Shop</title></head><body>%s</body></html>");
    }();
    return *layout;
}

std::string render_item(const std::string& path) {
    std::string body = "<h1>" + path + "</h1><ul>";
    for (int i = 0; i < 150; ++i) body += "<li>related item " + std::to_string(i) + "</li>";
    std::string page = page_template();
    page.replace(page.find("%s"), 2, body + "</ul>");
    return page;
}

// Returns the whole HTTP response. The cache is meant to save rendering; it saves every path ever
// asked for, forever.
std::string handle(const std::string& path) {
    if (path.compare(0, 6, "/item/") != 0) return "HTTP/1.0 404 Not Found\r\n\r\n";
    auto hit = page_cache.find(path);
    if (hit == page_cache.end()) hit = page_cache.emplace(path, render_item(path)).first;   // the cache line
    return "HTTP/1.0 200 OK\r\nContent-Length: " + std::to_string(hit->second.size()) + "\r\n\r\n" + hit->second;
}

// ---- the socket plumbing --------------------------------------------------------------------------
void send_all(int fd, const std::string& data) {
    for (std::size_t sent = 0; sent < data.size();) {
        ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) return;
        sent += std::size_t(n);
    }
}

// One connection per request (HTTP/1.0). Each request runs in a scope named by its route, not
// its path: "GET /item" has one report per leaking request, and they group by name.
void serve(int listener, int requests) {
    for (int i = 0; i < requests; ++i) {
        int fd = ::accept(listener, nullptr, nullptr);
        if (fd < 0) return;
        char request[1024];
        std::size_t got = 0;
        for (ssize_t n; got < sizeof request - 1 && (n = ::recv(fd, request + got, sizeof request - 1 - got, 0)) > 0;) {
            got += std::size_t(n);
            request[got] = '\0';
            if (std::strstr(request, "\r\n\r\n")) break;
        }
        request[got] = '\0';
        char path[256] = "";
        if (std::sscanf(request, "GET %255s HTTP/1.0", path) == 1) {
            std::string route(path, std::strcspn(path + 1, "/") + 1);   // "/item/42" -> "/item"
            leakscope::LeakScope scope("GET " + route);
            send_all(fd, handle(path));
        }
        ::close(fd);
    }
}

std::string get(std::uint16_t port, const std::string& path) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string response;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
        send_all(fd, "GET " + path + " HTTP/1.0\r\n\r\n");
        char buffer[4096];
        for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) response.append(buffer, std::size_t(n));
    }
    ::close(fd);
    return response;
}

std::string where(const leakscope::Frame& f) {   // "handle (leaky_server.cpp:62)"
    return f.function + " (" + f.file.substr(f.file.rfind('/') + 1) + ":" + std::to_string(f.line) + ")";
}

// Where reports go. Every new path leaves its cache entry behind: printing each of those reports
// would bury the terminal. This writer prints the first report of each route and counts the rest;
// other reports (the monitor's) are printed as they come.
class FirstPerRoute : public leakscope::Writer {
   public:
    void write(const leakscope::Report& r) override {
        std::lock_guard<std::mutex> lock(m_);
        if (r.kind != "leftovers") return text_.write(r);
        Total& t = routes_[r.scope];
        if (t.reports++ == 0) text_.write(r);
        t.bytes += r.bytes;
    }
    void print() {
        std::lock_guard<std::mutex> lock(m_);
        for (const auto& r : routes_)
            std::fprintf(stderr, "scope \"%s\" left blocks behind %zu times, %zu bytes in all\n", r.first.c_str(),
                         r.second.reports, r.second.bytes);
    }

   private:
    struct Total {
        std::size_t reports = 0, bytes = 0;
    };
    std::mutex m_;
    leakscope::TextWriter text_;   // stderr
    std::map<std::string, Total> routes_;
};
}  // namespace

int main() {
    leakscope::configure("track=all");   // peak() and the monitor see the whole heap
    auto reports = std::make_shared<FirstPerRoute>();
    leakscope::set_writers({reports});

    int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);   // port 0: the kernel picks a free one
    socklen_t size = sizeof addr;
    if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener, 64) != 0 ||
        ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &size) != 0) {
        std::perror("leaky_server: listen");
        return 1;
    }
    std::thread server(serve, listener, kRequests);

    // Warm-up and interval are short for the example; a server would use minutes.
    leakscope::Monitor::Options options;
    options.warmup_ms = 200;
    options.interval_ms = 200;
    options.growth_intervals = 3;
    options.threshold_bytes = 64 * 1024;   // quiet until the heap grew 64 KiB past the baseline
    leakscope::Monitor monitor(options);

    // The client: popular pages are asked for again and again, and new items are published all
    // the time (every 5th request is for one never asked for). Real traffic never pauses; here it
    // comes in rounds, one per monitor interval, so that a two-second run shows what hours would.
    std::mt19937 random(7);
    int newest = 50, ok = 0;
    unsigned seen = 0;
    for (int round = 0; round < kRounds; ++round) {
        for (int i = round * kRequests / kRounds; i < (round + 1) * kRequests / kRounds; ++i) {
            int item = i % 5 == 0 ? newest++ : int(random() % unsigned(newest));
            ok += get(ntohs(addr.sin_port), "/item/" + std::to_string(item)).compare(0, 15, "HTTP/1.0 200 OK") == 0;
        }
        for (int waited = 0; monitor.intervals() <= seen && waited < 2000; ++waited)   // at most 10 s
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        seen = monitor.intervals();
    }
    server.join();
    ::close(listener);
    monitor.stop();
    reports->print();

    // The monitor's verdict: the sites whose live bytes rose in each of the last intervals.
    leakscope::Report last = monitor.latest();
    for (const leakscope::Site& s : last.sites)
        if (s.growing && s.frames.size() >= 2)
            std::fprintf(stderr, "monitor: growing in each of the last %u intervals: %zu bytes at %s, called from %s\n",
                         last.growth_intervals, s.bytes, where(s.frames[0]).c_str(), where(s.frames[1]).c_str());

    // Where the memory was at its highest: as text, and as a flame graph to open in a browser.
    leakscope::Report peak = leakscope::peak();
    leakscope::TextWriter(stderr).write(peak);
    leakscope::HtmlWriter("leaky_server-peak.html").write(peak);
    std::printf("served %d requests (%d OK); %zu pages cached, never evicted; peak flame graph: leaky_server-peak.html\n",
                kRequests, ok, page_cache.size());
    return 0;
}
