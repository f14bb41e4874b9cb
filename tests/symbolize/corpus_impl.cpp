// The symbolizer oracle's one implementation translation unit: leakscope's tracker, its replaced
// operator new/delete, current_stack and the symbolizer under test (see scripts/test-symbolize.sh).
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>
