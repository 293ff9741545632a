// mobilellm-fuzz: libFuzzer targets for mobilellm's parsers.
//
//   mobilellm-fuzz TARGET [libFuzzer options] [corpus directories or input files]
//   mobilellm-fuzz --list
//
// TARGET may also come from MOBILELLM_FUZZ_TARGET (libFuzzer's -fork/-jobs modes re-run the program with the
// options only). SwiftPM gives executables their own `main`, so instead of libFuzzer's main this one picks the target
// and hands the remaining arguments to LLVMFuzzerRunDriver.
import CLibFuzzer
import Foundation

var arguments = CommandLine.arguments
if arguments.count > 1, arguments[1] == "--list" || arguments[1] == "-h" || arguments[1] == "--help" {
    print("usage: mobilellm-fuzz TARGET [libFuzzer options] [corpus...]\ntargets:")
    for target in FuzzTarget.all { print("  \(target.name.padding(toLength: 18, withPad: " ", startingAt: 0)) \(target.about)") }
    exit(0)
}
var argumentOffset = 1
var targetName = ProcessInfo.processInfo.environment["MOBILELLM_FUZZ_TARGET"]
if arguments.count > 1, FuzzTarget.named(arguments[1]) != nil {
    targetName = arguments[1]
    argumentOffset = 2
}
guard let targetName, let target = FuzzTarget.named(targetName) else {
    FileHandle.standardError.write(Data("mobilellm-fuzz: name a target first (see --list)\n".utf8))
    exit(2)
}
setenv("MOBILELLM_FUZZ_TARGET", targetName, 1)
FuzzTarget.selected = target
target.setUp()

// libFuzzer's argv without the target name (argv[0] stays).
var driverArguments = [arguments[0]] + arguments[argumentOffset...]
var cArguments: [UnsafeMutablePointer<CChar>?] = driverArguments.map { strdup($0) } + [nil]
var argc = CInt(driverArguments.count)
let status = cArguments.withUnsafeMutableBufferPointer { buffer -> CInt in
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = buffer.baseAddress
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        FuzzTarget.selected?.run(UnsafeRawBufferPointer(start: data, count: size))
        return 0
    }
}
exit(status)
