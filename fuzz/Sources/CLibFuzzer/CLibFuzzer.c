// SwiftPM needs one source file per C target; the declarations live in include/CLibFuzzer.h.
#include "CLibFuzzer.h"
