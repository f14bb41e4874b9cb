// Times whole-process runs of a few commands, interleaved, for the benchmark scripts: a shell loop
// around `date` adds a fork and an exec of its own to every sample (~1 ms, and most of the noise
// at the scale of a 5 ms test suite). Each command is a line of COMMANDS-FILE: leading NAME=VALUE
// words go to its environment, the rest is the program and its arguments (split on spaces; no
// quoting). Output is discarded. Prints one line per command, in order:
//   wall_min_us wall_p25_us wall_median_us cpu_min_us exit_status
// where cpu is the child's user + system time (wait4), and exit_status the last run's.
//   runs RUNS COMMANDS-FILE
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace {

struct Command {
    std::vector<std::string> env, argv;
    std::vector<long> wall_us, cpu_us;
    int status = 0;
};

long micros(const timespec& a, const timespec& b) {
    return (b.tv_sec - a.tv_sec) * 1000000L + (b.tv_nsec - a.tv_nsec) / 1000L;
}

bool run_once(Command& c) {
    std::vector<char*> argv, envp;
    for (std::string& s : c.argv) argv.push_back(s.data());
    argv.push_back(nullptr);
    for (char** e = environ; *e; ++e) envp.push_back(*e);
    for (std::string& s : c.env) envp.push_back(s.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    timespec start{}, end{};
    clock_gettime(CLOCK_MONOTONIC, &start);
    pid_t pid = 0;
    int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
        std::fprintf(stderr, "runs: cannot start %s: %s\n", argv[0], std::strerror(rc));
        return false;
    }
    int status = 0;
    rusage usage{};
    if (wait4(pid, &status, 0, &usage) != pid) return false;
    clock_gettime(CLOCK_MONOTONIC, &end);
    c.wall_us.push_back(micros(start, end));
    c.cpu_us.push_back((usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000000L + usage.ru_utime.tv_usec +
                       usage.ru_stime.tv_usec);
    c.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return true;
}

long at(std::vector<long> v, double q) {
    std::sort(v.begin(), v.end());
    return v[std::size_t(q * double(v.size() - 1))];
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: runs RUNS COMMANDS-FILE\n");
        return 2;
    }
    int runs = std::atoi(argv[1]);
    std::ifstream in(argv[2]);
    std::vector<Command> commands;
    for (std::string line; std::getline(in, line);) {
        std::istringstream words(line);
        Command c;
        for (std::string w; words >> w;) {
            if (c.argv.empty() && w.find('=') != std::string::npos && w.find('/') > w.find('='))
                c.env.push_back(w);
            else
                c.argv.push_back(w);
        }
        if (!c.argv.empty()) commands.push_back(std::move(c));
    }
    if (runs < 1 || commands.empty()) {
        std::fprintf(stderr, "runs: nothing to run\n");
        return 2;
    }
    for (int r = 0; r < runs; ++r)
        for (Command& c : commands)
            if (!run_once(c)) return 1;
    for (const Command& c : commands)
        std::printf("%ld %ld %ld %ld %d\n", at(c.wall_us, 0), at(c.wall_us, 0.25), at(c.wall_us, 0.5),
                    at(c.cpu_us, 0), c.status);
    return 0;
}
