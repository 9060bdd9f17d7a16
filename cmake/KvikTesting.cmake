# Decides whether kvik's tests are built, and sets KVIK_TESTS. Included from the root.
#
# Tests are built only when kvik is the top-level project, BUILD_TESTING is on (CTest's default)
# and cmocka is found, so the README's install commands work on a machine without cmocka, and a
# project that embeds kvik (add_subdirectory, FetchContent) never builds them. Otherwise one
# configure line says that tests are off and why.
#
# BUILD_TESTING=ON given on the first configure (scripts/test.sh, tests/gpu/run.sh and CI pass
# it) turns a missing cmocka into an error instead: a test run must not pass by running nothing.
# ON only by CTest's default stays a default on later configures (KVIK_TESTING_DEFAULTED).
set(KVIK_TESTS OFF)
if(NOT PROJECT_IS_TOP_LEVEL)
  message(STATUS "kvik: tests are off: kvik is not the top-level project")
  return()
endif()
if(NOT DEFINED CACHE{KVIK_TESTING_DEFAULTED})
  if(DEFINED CACHE{BUILD_TESTING})
    set(KVIK_TESTING_DEFAULTED OFF CACHE INTERNAL "BUILD_TESTING was given on the first configure")
  else()
    set(KVIK_TESTING_DEFAULTED ON CACHE INTERNAL "BUILD_TESTING was given on the first configure")
  endif()
endif()
include(CTest)
if(NOT BUILD_TESTING)
  message(STATUS "kvik: tests are off: BUILD_TESTING is OFF")
  return()
endif()
list(PREPEND CMAKE_MODULE_PATH ${CMAKE_CURRENT_LIST_DIR})
find_package(cmocka MODULE)
if(cmocka_FOUND)
  set(KVIK_TESTS ON)
elseif(KVIK_TESTING_DEFAULTED)
  message(STATUS "kvik: tests are off: cmocka not found (install libcmocka-dev, or run "
                 "scripts/test.sh, which installs it)")
else()
  message(FATAL_ERROR "BUILD_TESTING is ON but cmocka was not found: install libcmocka-dev "
                      "(and pkg-config), point CMAKE_PREFIX_PATH at a prefix holding "
                      "include/cmocka.h and libcmocka, or configure with -DBUILD_TESTING=OFF")
endif()
