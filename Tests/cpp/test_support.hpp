// C++ test helpers shared by the C++ wrapper tests: EXPECT_ERROR (a mobilellm::Error with a status and a message
// fragment) and fixture paths, on top of the C tests' counters in Tests/c/test_support.h.
#pragma once
#include <cstring>
#include <string>

#include "mobilellm.hpp"
#include "test_support.h"

template <typename F>
static void expect_error(F &&body, mobilellm_status status, const char *fragment, int line) {
    test_checks++;
    try {
        body();
        test_failures++;
        fprintf(stderr, "line %d: no exception, expected %s\n", line, mobilellm_status_name(status));
    } catch (const mobilellm::Error &error) {
        if (error.status() != status || std::strstr(error.what(), fragment) == nullptr) {
            test_failures++;
            fprintf(stderr, "line %d: got %s \"%s\", expected %s with \"%s\"\n", line, mobilellm_status_name(error.status()),
                    error.what(), mobilellm_status_name(status), fragment);
        }
    }
}
#define EXPECT_ERROR(body, status, fragment) expect_error([&] { body; }, status, fragment, __LINE__)

static std::string fixture(const char *name) {
    char path[1024];
    test_fixture_path(path, sizeof path, name);
    return path;
}
