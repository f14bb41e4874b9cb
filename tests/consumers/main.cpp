// Consumer smoke test: leaks one int on purpose; leakscope prints a report on
// stderr and the program still exits 0. Built by scripts/test-consumers.sh.
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>

int main() {
  {
    leakscope::LeakScope scope("consumer");
    // volatile: the compiler may not elide the (deliberately leaked) allocation.
    int* volatile leaked = new int(42);
    (void)leaked;
  }
  return 0;
}
