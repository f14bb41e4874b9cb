// leakscope's implementation for the test programs that do not build their own: the one
// translation unit that defines LEAKSCOPE_IMPLEMENTATION (and so replaces operator new/delete),
// compiled once per build and linked into each of them, as a user's program would do it.
// A test that needs a differently configured implementation (LEAKSCOPE_NO_NEW_DELETE, say)
// defines LEAKSCOPE_IMPLEMENTATION in its own source and is not linked with this one.
#define LEAKSCOPE_IMPLEMENTATION
#include <leakscope.hpp>
