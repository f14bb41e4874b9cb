// The smallest leakscope program worth copying: a request handler that caches every answer
// in an unbounded map (the leak), wrapped in a LeakScope per request. Requests that only read
// the cache are clean; a request that adds to it leaves blocks behind, and leakscope says so.
//
//   build: c++ -std=c++17 -O2 -g -I include examples/leaky_request.cpp -pthread
#define LEAKSCOPE_IMPLEMENTATION   // in exactly one .cpp of the program
#include <leakscope.hpp>

#include <cstdio>
#include <map>
#include <string>

namespace {
std::map<std::string, std::string> cache;   // grows forever: nobody ever evicts

std::string render_page(const std::string& path) {
    return "<html><body>Hello from " + path + "</body></html>";
}

void handle(const std::string& path, std::string& response) {
    auto hit = cache.find(path);
    if (hit == cache.end()) hit = cache.emplace(path, render_page(path)).first;   // the leak
    response.assign(hit->second);
}
}  // namespace

int main() {
    const char* paths[] = {"/index.html", "/about.html", "/index.html"};
    std::string response;
    response.reserve(4096);   // the response buffer is reused: it is no leftover
    for (const char* path : paths) {
        {
            // What this request leaves behind is reported on stderr when the scope ends.
            leakscope::LeakScope scope(path);
            handle(path, response);
        }
        std::printf("served %-12s %zu bytes\n", path, response.size());
        std::fflush(stdout);
    }
    return 0;
}
