// swift-tools-version:6.0
// The grammar mask benchmark (scripts/bench_grammar.sh): a separate package, so the main one carries no benchmark
// product; it depends on the root package by path and is built in release mode.
import PackageDescription

let package = Package(
    name: "grammar-bench",
    dependencies: [
        .package(name: "mobilellm", path: "../.."),
    ],
    targets: [
        .executableTarget(name: "grammar-bench", dependencies: [.product(name: "MobileLLM", package: "mobilellm")]),
    ]
)
