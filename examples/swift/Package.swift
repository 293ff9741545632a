// swift-tools-version:6.0
// A Swift program using mobilellm directly as a package dependency (the root package, by path) and its async API.
//   swift run --package-path examples/swift SwiftExample [REPOSITORY_ROOT]
import PackageDescription

let package = Package(
    name: "mobilellm-swift-example",
    dependencies: [
        .package(name: "mobilellm", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "SwiftExample",
            dependencies: [.product(name: "MobileLLM", package: "mobilellm")]
        ),
    ]
)
