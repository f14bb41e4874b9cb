# Helpers for leakscope's own development targets (tests, examples, benches).
# Not installed; included from the top-level CMakeLists.txt only when at least
# one of LEAKSCOPE_BUILD_{TESTS,EXAMPLES,BENCH} is ON.

include_guard(GLOBAL)

# ---------------------------------------------------------------------------
# leakscope_project_options: warnings + sanitizers for our own targets only
# (never propagated to consumers of leakscope::leakscope).
# ---------------------------------------------------------------------------
add_library(leakscope_project_options INTERFACE)

if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  target_compile_options(leakscope_project_options INTERFACE -Wall -Wextra -Wpedantic)
  if(LEAKSCOPE_WARNINGS_AS_ERRORS)
    target_compile_options(leakscope_project_options INTERFACE -Werror)
  endif()

  if(NOT LEAKSCOPE_SANITIZE STREQUAL "")
    if(LEAKSCOPE_SANITIZE MATCHES "thread" AND LEAKSCOPE_SANITIZE MATCHES "address")
      message(FATAL_ERROR "LEAKSCOPE_SANITIZE: 'thread' cannot be combined with 'address'")
    endif()
    set(_leakscope_san_flags
      "-fsanitize=${LEAKSCOPE_SANITIZE}"
      -fno-omit-frame-pointer
      -fno-sanitize-recover=all)
    target_compile_options(leakscope_project_options INTERFACE ${_leakscope_san_flags})
    target_link_options(leakscope_project_options INTERFACE ${_leakscope_san_flags})
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      # GCC's -Wmaybe-uninitialized gives false positives on sanitizer-
      # instrumented code (e.g. GCC 12 in <regex>, used by Catch2's runner),
      # which -Werror would turn into build failures.
      target_compile_options(leakscope_project_options INTERFACE -Wno-maybe-uninitialized)
    endif()
    message(STATUS "leakscope: sanitizers enabled for own targets: ${LEAKSCOPE_SANITIZE}")
    if(LEAKSCOPE_SANITIZE MATCHES "thread" AND CMAKE_CXX_COMPILER_ID MATCHES "Clang")
      message(WARNING
        "leakscope: Clang links its static TSan runtime with --whole-archive and that "
        "runtime defines the global operator new/delete, so every program that defines "
        "LEAKSCOPE_IMPLEMENTATION (without LEAKSCOPE_NO_NEW_DELETE) fails to link with "
        "'multiple definition of operator new'. Use GCC for LEAKSCOPE_SANITIZE=thread.")
    endif()
  endif()
elseif(LEAKSCOPE_WARNINGS_AS_ERRORS OR NOT LEAKSCOPE_SANITIZE STREQUAL "")
  message(WARNING "leakscope: warning/sanitizer options are only implemented for GCC and Clang")
endif()

# ---------------------------------------------------------------------------
# leakscope_read_directives(<source> <defs-var> <env-var>)
#
# Source-file directives (any line, conventionally the first; first match
# wins; values are whitespace separated):
#   // leakscope-test-defines: FOO BAR=1     -> compile definitions (-D)
#   // leakscope-test-env: ASAN_OPTIONS=x=1   -> environment for the test run
# The same convention is implemented for Meson in scripts/source-directive.sh.
# ---------------------------------------------------------------------------
function(leakscope_read_directives src defs_var env_var)
  set(_defs "")
  set(_env "")
  file(STRINGS "${src}" _def_lines REGEX "^[ \t]*//[ \t]*leakscope-test-defines:")
  if(_def_lines)
    list(GET _def_lines 0 _line)
    string(REGEX REPLACE "^[ \t]*//[ \t]*leakscope-test-defines:" "" _line "${_line}")
    separate_arguments(_tokens UNIX_COMMAND "${_line}")
    foreach(_tok IN LISTS _tokens)
      string(REGEX REPLACE "^-D" "" _tok "${_tok}")
      if(NOT _tok STREQUAL "")
        list(APPEND _defs "${_tok}")
      endif()
    endforeach()
  endif()
  file(STRINGS "${src}" _env_lines REGEX "^[ \t]*//[ \t]*leakscope-test-env:")
  if(_env_lines)
    list(GET _env_lines 0 _line)
    string(REGEX REPLACE "^[ \t]*//[ \t]*leakscope-test-env:" "" _line "${_line}")
    separate_arguments(_env UNIX_COMMAND "${_line}")
  endif()
  # Re-configure when the file changes so directive edits are picked up.
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${src}")
  set(${defs_var} "${_defs}" PARENT_SCOPE)
  set(${env_var} "${_env}" PARENT_SCOPE)
endfunction()

# leakscope_add_dev_executable(<target> <sources>...)
# An executable linked with leakscope + our warning/sanitizer settings.
function(leakscope_add_dev_executable target)
  add_executable(${target} ${ARGN})
  target_link_libraries(${target} PRIVATE
    leakscope::leakscope
    leakscope_project_options
    Threads::Threads
    ${CMAKE_DL_LIBS})
endfunction()

# leakscope_link_shared_implementation(<target> <sources>...)
# Links the OBJECT library leakscope_test_implementation (tests/CMakeLists.txt) into <target>,
# unless one of <sources> defines LEAKSCOPE_IMPLEMENTATION itself (a test that needs it
# configured differently).
function(leakscope_link_shared_implementation target)
  foreach(_src IN LISTS ARGN)
    file(STRINGS "${_src}" _own REGEX "^[ \t]*#[ \t]*define[ \t]+LEAKSCOPE_IMPLEMENTATION")
    if(_own)
      return()
    endif()
  endforeach()
  target_sources(${target} PRIVATE $<TARGET_OBJECTS:leakscope_test_implementation>)
endfunction()
