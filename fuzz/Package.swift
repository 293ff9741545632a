// swift-tools-version:6.0
// Fuzz targets for mobilellm's parsers (libFuzzer). A separate package, so the main package carries no fuzzing
// flags; it depends on the root package by path. Build and run with scripts/fuzz.sh, which passes
// -sanitize=fuzzer,address to every Swift target.
import PackageDescription

let package = Package(
    name: "mobilellm-fuzz",
    // MobileLLM's floor (Synchronization): a dependent must not declare lower ones.
    platforms: [.macOS(.v15), .iOS(.v18), .tvOS(.v18), .watchOS(.v11), .visionOS(.v2)],
    dependencies: [
        .package(name: "mobilellm", path: ".."),
    ],
    targets: [
        // Declares libFuzzer's LLVMFuzzerRunDriver (the runtime itself comes with -sanitize=fuzzer).
        .target(name: "CLibFuzzer"),
        // One executable for every target: `mobilellm-fuzz TARGET [libFuzzer options] [corpus dirs or files]`.
        .executableTarget(
            name: "mobilellm-fuzz",
            dependencies: ["CLibFuzzer", .product(name: "MobileLLM", package: "mobilellm"),
                           .product(name: "MobileLLMOpenAI", package: "mobilellm")],
            // SwiftPM links executables with `--defsym main=<module>_main`, which collides with the libFuzzer
            // runtime's own main; gold then dies with an internal error, lld lets the defsym win. Our main calls
            // LLVMFuzzerRunDriver.
            linkerSettings: [.unsafeFlags(["-use-ld=lld"])]
        ),
    ]
)
