// swift-tools-version:6.0
// mobilellm: an embeddable inference engine for MobileLLM-R1 and Llama-architecture models.
import PackageDescription

let package = Package(
    name: "mobilellm",
    products: [
        // The Swift API. No unsafe flags anywhere in its targets, so other packages can depend on it.
        .library(name: "MobileLLM", targets: ["MobileLLM"]),
        // The command-line tool.
        .executable(name: "mobilellm", targets: ["mobilellm-cli"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // SIMD micro-kernels in C, compiled per function for each ISA and chosen at run time.
        .target(name: "CMobileLLMKernels"),
        // The engine: formats, architectures, runtime, sampling.
        .target(name: "MobileLLM", dependencies: ["CMobileLLMKernels"]),
        .executableTarget(
            name: "mobilellm-cli",
            dependencies: [
                "MobileLLM",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "MobileLLMTests", dependencies: ["MobileLLM", "CMobileLLMKernels"]),
    ]
)
