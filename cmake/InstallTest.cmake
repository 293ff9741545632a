# ctest script: install the build into PREFIX, check the layout, then consume the installed package the two ways
# users do (find_package from CMake, pkg-config from anything else) and run the results on FIXTURE.
# With -DSTATIC=ON: first configure SOURCE_DIR into BUILD_DIR with -DMOBILELLM_STATIC=ON and the prebuilt
# SHARED_LIBRARY/STATIC_LIBRARY (no tests), install that, and check that the consumers link libmobilellm.a
# statically (pkg-config --static) and need no libmobilellm.so.
function(run)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(NOT result EQUAL 0)
        message(FATAL_ERROR "failed (${result}): ${ARGN}\n${out}\n${err}")
    endif()
    message(STATUS "ok: ${ARGN}")
endfunction()

file(REMOVE_RECURSE "${PREFIX}")
set(library_file lib/libmobilellm.so)
set(absent_file lib/libmobilellm.a)
set(pkg_config_mode "")
if(STATIC)
    file(REMOVE_RECURSE "${BUILD_DIR}")
    run(${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${BUILD_DIR}" -G "${CMAKE_GENERATOR}" -DMOBILELLM_STATIC=ON
        -DMOBILELLM_BUILD_TESTS=OFF "-DMOBILELLM_LIBRARY=${SHARED_LIBRARY}" "-DMOBILELLM_STATIC_LIBRARY=${STATIC_LIBRARY}"
        -DCMAKE_INSTALL_LIBDIR=lib)
    run(${CMAKE_COMMAND} --build "${BUILD_DIR}")
    set(library_file lib/libmobilellm.a)
    set(absent_file lib/libmobilellm.so)
    set(pkg_config_mode --static)
endif()
run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${PREFIX}")
foreach(path include/mobilellm.h include/mobilellm.hpp ${library_file} lib/cmake/MobileLLM/MobileLLMConfig.cmake
             lib/cmake/MobileLLM/MobileLLMConfigVersion.cmake lib/pkgconfig/mobilellm.pc)
    if(NOT EXISTS "${PREFIX}/${path}")
        message(FATAL_ERROR "missing after install: ${PREFIX}/${path}")
    endif()
endforeach()
if(EXISTS "${PREFIX}/${absent_file}")
    message(FATAL_ERROR "installed although not asked for: ${PREFIX}/${absent_file}")
endif()

# A program linked against the installed package must (static) or must not (shared) carry the library inside.
function(check_linkage program)
    execute_process(COMMAND ldd "${program}" OUTPUT_VARIABLE needed RESULT_VARIABLE result)
    if(STATIC AND needed MATCHES "libmobilellm")
        message(FATAL_ERROR "${program} was linked statically but needs libmobilellm.so:\n${needed}")
    elseif(NOT STATIC AND NOT needed MATCHES "libmobilellm.so")
        message(FATAL_ERROR "${program} does not use libmobilellm.so:\n${needed}")
    endif()
endfunction()

# find_package(MobileLLM) from a separate project.
set(consumer "${PREFIX}-consumer")
file(REMOVE_RECURSE "${consumer}")
run(${CMAKE_COMMAND} -S "${SOURCE_DIR}/examples/cpp" -B "${consumer}" -G "${CMAKE_GENERATOR}" "-DCMAKE_PREFIX_PATH=${PREFIX}")
run(${CMAKE_COMMAND} --build "${consumer}")
check_linkage("${consumer}/generate_cpp")
run("${consumer}/generate_cpp" "${FIXTURE}")

# pkg-config.
find_program(PKG_CONFIG pkg-config REQUIRED)
set(ENV{PKG_CONFIG_PATH} "${PREFIX}/lib/pkgconfig")
execute_process(COMMAND ${PKG_CONFIG} ${pkg_config_mode} --cflags --libs mobilellm OUTPUT_VARIABLE flags RESULT_VARIABLE result
                OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT result EQUAL 0)
    message(FATAL_ERROR "pkg-config mobilellm failed")
endif()
separate_arguments(flags UNIX_COMMAND "${flags}")
run(${C_COMPILER} -std=c99 -Wall -Wextra -Werror -pedantic "${SOURCE_DIR}/examples/c/load.c" ${flags}
    "-Wl,-rpath,${PREFIX}/lib" -o "${consumer}/load_pkgconfig")
check_linkage("${consumer}/load_pkgconfig")
run("${consumer}/load_pkgconfig" "${FIXTURE}")
