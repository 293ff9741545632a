import Foundation
import MobileLLM

/// One fuzz target: a name, what it feeds its input to, a one-time set-up, and the per-input body.
///
/// A body never traps on errors the engine throws (those are the expected outcome for bad input); it calls
/// `violated` when a property the engine promises does not hold, so libFuzzer records the input as a crash.
struct FuzzTarget: Sendable {
    /// The name on the command line (also the corpus directory under fuzz/corpus).
    let name: String
    /// One line for `--list`.
    let about: String
    /// Work done once before fuzzing (loading fixed tokenizers, creating scratch directories).
    let setUp: @Sendable () -> Void
    /// Runs one input.
    let run: @Sendable (UnsafeRawBufferPointer) -> Void

    /// Every target, in the order scripts/fuzz.sh runs them.
    static let all: [FuzzTarget] = [
        configTarget, safetensorsTarget, safetensorsIndexTarget, ggufTarget, tokenizerJSONTarget,
        tokenizerConfigTarget, templateTarget, encodeTarget, gbnfTarget, jsonSchemaTarget, openAIRequestTarget,
    ]

    /// The target called `name`.
    static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }

    /// The target this process runs (set once in main before fuzzing starts, then only read).
    nonisolated(unsafe) static var selected: FuzzTarget?
}

/// Reports a broken invariant: prints `message` and aborts, which libFuzzer records as a crash with its input.
func violated(_ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) -> Never {
    FileHandle.standardError.write(Data("mobilellm-fuzz: invariant violated (\(file):\(line)): \(message())\n".utf8))
    abort()
}

/// The repository root: MOBILELLM_ROOT, else three levels above this source file's directory.
let repositoryRoot: String = {
    if let root = ProcessInfo.processInfo.environment["MOBILELLM_ROOT"] { return root }
    return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path
}()

/// `relative` inside the repository.
func repositoryPath(_ relative: String) -> String { repositoryRoot + "/" + relative }

/// A private directory for the files a target hands to path-based loaders: MOBILELLM_FUZZ_SCRATCH when set (the
/// fuzz script makes one per run on tmpfs), else a new directory under the system temporary directory.
let scratchRoot: String = {
    let base = ProcessInfo.processInfo.environment["MOBILELLM_FUZZ_SCRATCH"]
        ?? (FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory())
    let path = base + "/mobilellm-fuzz-\(getpid())"
    do {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    } catch {
        violated("cannot create the scratch directory \(path): \(error)")
    }
    atexit { try? FileManager.default.removeItem(atPath: scratchRoot) }
    return path
}()

/// A scratch subdirectory `name`, holding copies of the given repository files (copied once).
func scratchDirectory(_ name: String, copying files: [String] = []) -> String {
    let directory = scratchRoot + "/" + name
    do {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for file in files {
            let destination = directory + "/" + (file as NSString).lastPathComponent
            if !FileManager.default.fileExists(atPath: destination) {
                try FileManager.default.copyItem(atPath: repositoryPath(file), toPath: destination)
            }
        }
    } catch {
        violated("cannot prepare the scratch directory \(directory): \(error)")
    }
    return directory
}

/// Replaces the file at `path` with `bytes` (plain POSIX calls: this runs for every input).
func writeInput(_ bytes: UnsafeRawBufferPointer, to path: String) {
    let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard descriptor >= 0 else { violated("cannot open \(path) for writing: errno \(errno)") }
    defer { close(descriptor) }
    var offset = 0
    while offset < bytes.count, let base = bytes.baseAddress {
        let written = write(descriptor, base + offset, bytes.count - offset)
        guard written > 0 else { violated("cannot write \(path): errno \(errno)") }
        offset += written
    }
}

/// The input as text (invalid UTF-8 replaced by U+FFFD, as a host converting bytes to String would).
func text(of bytes: UnsafeRawBufferPointer) -> String { String(decoding: bytes, as: UTF8.self) }
