# ctest script: install the build into PREFIX, check the layout, then consume the installed package the two ways
# users do (find_package from CMake, pkg-config from anything else) and run the results on FIXTURE.
function(run)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(NOT result EQUAL 0)
        message(FATAL_ERROR "failed (${result}): ${ARGN}\n${out}\n${err}")
    endif()
    message(STATUS "ok: ${ARGN}")
endfunction()

file(REMOVE_RECURSE "${PREFIX}")
run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${PREFIX}")
foreach(path include/mobilellm.h include/mobilellm.hpp lib/libmobilellm.so lib/cmake/MobileLLM/MobileLLMConfig.cmake
             lib/cmake/MobileLLM/MobileLLMConfigVersion.cmake lib/pkgconfig/mobilellm.pc)
    if(NOT EXISTS "${PREFIX}/${path}")
        message(FATAL_ERROR "missing after install: ${PREFIX}/${path}")
    endif()
endforeach()

# find_package(MobileLLM) from a separate project.
set(consumer "${PREFIX}-consumer")
file(REMOVE_RECURSE "${consumer}")
run(${CMAKE_COMMAND} -S "${SOURCE_DIR}/examples/cpp" -B "${consumer}" -G "${CMAKE_GENERATOR}" "-DCMAKE_PREFIX_PATH=${PREFIX}")
run(${CMAKE_COMMAND} --build "${consumer}")
run("${consumer}/generate_cpp" "${FIXTURE}")

# pkg-config.
find_program(PKG_CONFIG pkg-config REQUIRED)
set(ENV{PKG_CONFIG_PATH} "${PREFIX}/lib/pkgconfig")
execute_process(COMMAND ${PKG_CONFIG} --cflags --libs mobilellm OUTPUT_VARIABLE flags RESULT_VARIABLE result
                OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT result EQUAL 0)
    message(FATAL_ERROR "pkg-config mobilellm failed")
endif()
separate_arguments(flags UNIX_COMMAND "${flags}")
run(${C_COMPILER} -std=c99 -Wall -Wextra -Werror -pedantic "${SOURCE_DIR}/examples/c/load.c" ${flags}
    "-Wl,-rpath,${PREFIX}/lib" -o "${consumer}/load_pkgconfig")
run("${consumer}/load_pkgconfig" "${FIXTURE}")
