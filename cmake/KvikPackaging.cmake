# Debian packages through CPack, one per install component (included from the root when kvik is
# the top-level project):
#   libkvik0     runtime  libkvik.so.0
#   libkvik-dev  dev      kvik.h, libkvik.so, libkvik.a, kvik.pc, kvik-static.pc, CMake package,
#                         kvik(3)
#   kvik-tools   tools    bin/kvik, kvik(1)
# Made with `cpack -G DEB` in a build configured with -DCMAKE_INSTALL_PREFIX=/usr (so that
# GNUInstallDirs picks the multiarch library directory); see the README. Anything installed
# without one of these components (the "Unspecified" one) goes into no package.
set(CPACK_PACKAGE_NAME kvik)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
if(NOT DEFINED CPACK_PACKAGE_CONTACT)
  set(CPACK_PACKAGE_CONTACT "kvik maintainers <kvik@localhost>")
endif()
set(CPACK_GENERATOR DEB)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev tools)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # name_version-release_arch.deb
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME libkvik0)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION libs)
# Descriptions: the first line is the synopsis (CPACK_PACKAGE_DESCRIPTION_SUMMARY is left unset:
# CPack would put it above every package's own).
set(CPACK_DEBIAN_RUNTIME_DESCRIPTION "fast file I/O between storage and host or GPU memory
libkvik moves bytes between files (or objects behind HTTP and S3) and host
or GPU memory, in parallel, with kvikio's settings. CUDA and cuFile are
opened at run time when present. This package holds the shared library.")
set(CPACK_DEBIAN_DEV_PACKAGE_NAME libkvik-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_DESCRIPTION "fast file I/O with libkvik: development files
The header kvik.h, the static library, pkg-config files (kvik, kvik-static),
the CMake package (find_package(kvik)) and the kvik(3) manual page.")
set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME kvik-tools)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_TOOLS_DESCRIPTION "fast file I/O with libkvik: the kvik command-line tool
What kvik sees on a machine (kvik info), kvik against plain pread and pwrite
(kvik bench), parallel copies of files and remote objects (kvik cp).")

# libkvik-dev and kvik-tools need the libkvik0 of the same build: "libkvik0 (= version)".
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)
set(CPACK_COMPONENT_DEV_DEPENDS runtime)
set(CPACK_COMPONENT_TOOLS_DEPENDS runtime)
# libkvik.a links -lcurl (kvik-static.pc, kvik::kvik_static): the libcurl development files.
if(KVIK_REMOTE)
  set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "libcurl4-openssl-dev | libcurl-dev")
endif()

# The shared library's own dependencies (libc6, libcurl4) from dpkg-shlibdeps where it is there;
# else written out. kvik-tools finds libkvik.so.0 in this build directory (a private directory
# for dpkg-shlibdeps, without package information: the component dependency above covers it).
# A shlibs file makes packages built against libkvik0 depend on it by soname.
find_program(KVIK_DPKG_SHLIBDEPS dpkg-shlibdeps)
mark_as_advanced(KVIK_DPKG_SHLIBDEPS)
if(KVIK_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
  set(CPACK_DEBIAN_TOOLS_PACKAGE_SHLIBDEPS ON)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${PROJECT_BINARY_DIR})
else()
  set(CPACK_DEBIAN_RUNTIME_PACKAGE_DEPENDS "libc6")
  if(KVIK_REMOTE)
    string(APPEND CPACK_DEBIAN_RUNTIME_PACKAGE_DEPENDS ", libcurl4 | libcurl4t64")
  endif()
  set(CPACK_DEBIAN_TOOLS_PACKAGE_DEPENDS "libc6")
endif()
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON) # only packages with a shared library get one
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")

# ldconfig through the trigger (Debian policy 8.1.1: activate-noawait ldconfig), not from
# maintainer scripts: CPack writes a postinst and a postrm that run ldconfig unless the package
# brings its own, so libkvik0 brings ones that do nothing.
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA
    ${CMAKE_CURRENT_LIST_DIR}/deb/triggers ${CMAKE_CURRENT_LIST_DIR}/deb/postinst
    ${CMAKE_CURRENT_LIST_DIR}/deb/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
