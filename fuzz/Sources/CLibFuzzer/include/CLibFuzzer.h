// libFuzzer's entry point for programs that have their own main (here: SwiftPM's executable entry point).
// Defined by the libFuzzer runtime that `-sanitize=fuzzer` links in.
#ifndef CLIBFUZZER_H
#define CLIBFUZZER_H
#include <stddef.h>
#include <stdint.h>

/// Runs libFuzzer with the command line `argc`/`argv`, calling `callback` for each input. Returns the exit code.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
