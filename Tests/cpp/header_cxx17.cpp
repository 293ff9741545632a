// Compiled with -std=c++17 -Wall -Wextra -Werror -pedantic: mobilellm.h and mobilellm.hpp must be clean C++17.
#include "mobilellm.h"
#include "mobilellm.hpp"

namespace {
[[maybe_unused]] mobilellm::SamplerParams header_cxx17_check = mobilellm::SamplerParams::greedy();
}
