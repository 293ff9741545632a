// swift-tools-version:6.0
// mobilellm: an embeddable inference engine for MobileLLM-R1 and Llama-architecture models.
import PackageDescription

/// The package root, for the absolute path of the linker version script.
let packageRoot = Context.packageDirectory

/// scripts/sanitize.sh sets MOBILELLM_SANITIZE: a sanitizer runtime cannot be linked into a self-contained shared
/// library, so libMobileLLMC.so is then linked plainly (shared Swift runtime, undefined sanitizer symbols allowed).
let sanitizing = Context.environment["MOBILELLM_SANITIZE"] != nil

/// The linker flags that make libMobileLLMC.so self-contained with only mobilellm_* exported.
let sharedLibraryFlags: [String] = [
    "-Xlinker", "--version-script=\(packageRoot)/abi/mobilellm.map",
    "-Xlinker", "-soname=libmobilellm.so",
] + (sanitizing ? [] : [
    "-static-stdlib",
    "-Xlinker", "--no-undefined",
    // swiftc's -static-stdlib leaves out FoundationEssentials' own static dependencies; list them here. The engine
    // and shell import FoundationEssentials only, so neither Foundation, CoreFoundation nor ICU's data is linked.
    "-Xlinker", "--start-group",
    "-Xlinker", "-lFoundationEssentials", "-Xlinker", "-l_FoundationCShims", "-Xlinker", "-l_FoundationCollections",
    "-Xlinker", "-lswiftSynchronization",
    "-Xlinker", "--end-group",
])

let package = Package(
    name: "mobilellm",
    // The engine's floor is the Synchronization module (Mutex, Atomic) and String(validating:as:): macOS 15, iOS 18,
    // tvOS 18, watchOS 11, visionOS 2.
    platforms: [.macOS(.v15), .iOS(.v18), .tvOS(.v18), .watchOS(.v11), .visionOS(.v2)],
    products: [
        // The Swift API. No unsafe flags anywhere in its targets, so other packages can depend on it.
        .library(name: "MobileLLM", targets: ["MobileLLM"]),
        // The C ABI (include/mobilellm.h) as a self-contained shared library: Swift runtime and FoundationEssentials linked
        // statically, only mobilellm_* exported. SwiftPM names it libMobileLLMC.so (the product name `mobilellm` is
        // the CLI's); scripts/build_library.sh copies it to .build/release/libmobilellm.so, its soname.
        .library(name: "MobileLLMC", type: .dynamic, targets: ["MobileLLMC"]),
        // The command-line tool.
        .executable(name: "mobilellm", targets: ["mobilellm-cli"]),
        // OpenAI request validation (`CompletionRequest`, `APIError`) without the HTTP server, for hosts with their own
        // HTTP stack and for the fuzz package.
        .library(name: "MobileLLMOpenAI", targets: ["MobileLLMOpenAI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // The HTTP server of `mobilellm serve` (SwiftNIO underneath); only the CLI links it.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // SIMD micro-kernels in C, compiled per function for each ISA and chosen at run time.
        .target(name: "CMobileLLMKernels"),
        // The engine: formats, architectures, runtime, sampling.
        .target(name: "MobileLLM", dependencies: ["CMobileLLMKernels"], exclude: ["Generation/Grammar/README.md"]),
        // include/mobilellm.h as a Clang module for the shell, plus compile-time checks of its struct layouts.
        .target(name: "CMobileLLMABI", path: "Sources/MobileLLMC/Header"),
        // The @_cdecl shell behind include/mobilellm.h: handle tables, status codes, thread-local errors.
        // Its unsafe linker flags apply only to the MobileLLMC product; the MobileLLM product stays free of them.
        .target(
            name: "MobileLLMC",
            dependencies: ["MobileLLM", "CMobileLLMABI"],
            path: "Sources/MobileLLMC/Shell",
            linkerSettings: [
                .unsafeFlags(sharedLibraryFlags, .when(platforms: [.linux])),
            ]
        ),
        // Tool support for the CLI: downloads (default model, hub), archives, hashing, math evaluation.
        // Not part of the Swift API product, so depending on MobileLLM never pulls in networking.
        .target(name: "MobileLLMTools", dependencies: ["MobileLLM"]),
        // The OpenAI API's request model: parsing and validating chat/completions bodies against a model, OpenAI's
        // error shape. No networking.
        .target(name: "MobileLLMOpenAI", dependencies: ["MobileLLM"]),
        // The OpenAI-compatible HTTP server (`mobilellm serve`): the continuous-batch scheduler and the routes. Not part
        // of the Swift API or C library products, so neither pulls in SwiftNIO.
        .target(name: "MobileLLMServer", dependencies: [
            "MobileLLM",
            "MobileLLMOpenAI",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .executableTarget(
            name: "mobilellm-cli",
            dependencies: [
                "MobileLLM",
                "MobileLLMTools",
                "MobileLLMServer",
                "CMobileLLMKernels",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Test support: the scalar Swift references of the quantized formats that the C kernels are checked against.
        // No product includes it.
        .target(name: "MobileLLMTestSupport", dependencies: ["MobileLLM"]),
        .testTarget(name: "MobileLLMTests",
                    dependencies: ["MobileLLM", "MobileLLMTools", "MobileLLMTestSupport", "CMobileLLMKernels"]),
    ]
)
