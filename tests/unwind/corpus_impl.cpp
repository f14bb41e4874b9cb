// The unwinder oracle's one implementation translation unit: leakscope's tracker, its replaced
// operator new/delete, and the unwinders under test (see scripts/test-unwind.sh).
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>
