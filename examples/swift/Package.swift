// swift-tools-version:6.0
// A Swift program using mobilellm directly as a package dependency (the root package, by path) and its async API.
//   swift run --package-path examples/swift SwiftExample [REPOSITORY_ROOT]
import PackageDescription

let package = Package(
    name: "mobilellm-swift-example",
    // MobileLLM's floor (Synchronization): a dependent must not declare lower ones.
    platforms: [.macOS(.v15), .iOS(.v18), .tvOS(.v18), .watchOS(.v11), .visionOS(.v2)],
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
