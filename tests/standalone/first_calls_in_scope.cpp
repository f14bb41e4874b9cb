// The first calls into leakscope's API in a process may build leakscope's own lazy state (the
// suppression rules behind clean(), the symbolizer behind leftovers()); made from inside a
// user's scope, none of that may join the scope's leftovers. A fresh process is the point: the
// unit suite builds that state once, early, and cannot see this. Exit 0 = pass.
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

#include "../support/expect.hpp"

int main() {
    int* kept = nullptr;
    {
        leakscope::LeakScope scope("first calls");
        kept = new int(7);   // the one leftover
        asm volatile("" : : "g"(kept) : "memory");
        expect(!scope.clean(), "the process's first clean() of a leaking scope says it leaks", 1, 0);
        leakscope::Report first = scope.leftovers();   // the first report: symbolizer built here
        expect_eq("first leftovers(): blocks", long(first.blocks), 1);
        expect_eq("first leftovers(): bytes", long(first.bytes), long(sizeof(int)));
        leakscope::Report again = scope.leftovers();
        expect_eq("second leftovers(): blocks", long(again.blocks), 1);
        expect(!scope.clean(), "clean() again", 1, 0);
        scope.dismiss();
    }
    delete kept;
    {
        leakscope::LeakScope scope("clean after");
        expect(scope.clean(), "a scope with nothing left is clean", 0, 1);
        expect_eq("and has no leftovers", long(scope.leftovers().blocks), 0);
    }
    return failures ? 1 : 0;
}
