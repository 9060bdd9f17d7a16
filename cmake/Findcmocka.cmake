# Finds cmocka for kvik's tests and defines the target PkgConfig::CMOCKA (the name the tests link).
# Through pkg-config where it is there; else by header and library (a machine without pkg-config,
# or cmocka unpacked from its .deb files under CMAKE_PREFIX_PATH, as tests/gpu/run.sh does).
# A find module, so -DCMAKE_DISABLE_FIND_PACKAGE_cmocka=ON hides cmocka (tests/packaging uses it).
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(CMOCKA QUIET IMPORTED_TARGET cmocka)
endif()
if(NOT TARGET PkgConfig::CMOCKA)
  find_path(KVIK_CMOCKA_INCLUDE_DIR cmocka.h)
  find_library(KVIK_CMOCKA_LIBRARY cmocka)
  if(KVIK_CMOCKA_INCLUDE_DIR AND KVIK_CMOCKA_LIBRARY)
    add_library(PkgConfig::CMOCKA INTERFACE IMPORTED)
    set_target_properties(PkgConfig::CMOCKA PROPERTIES
      INTERFACE_INCLUDE_DIRECTORIES ${KVIK_CMOCKA_INCLUDE_DIR}
      INTERFACE_LINK_LIBRARIES ${KVIK_CMOCKA_LIBRARY})
  endif()
endif()
if(TARGET PkgConfig::CMOCKA)
  set(cmocka_FOUND TRUE)
else()
  set(cmocka_FOUND FALSE)
endif()
