import Foundation
import MobileLLM

/// Remembers which files were checked against a digest, so a large file is hashed once rather than on every run.
///
/// The record is a small JSON file mapping each file's path to the size, modification time (nanoseconds) and
/// digest it had when verified; a file whose size or modification time changed since is no longer verified.
/// Failing to write the record only costs a re-hash next time, so write errors are ignored.
struct VerificationRecord {
    /// Where the record lives.
    let path: String

    /// Whether `file` was verified as `digest` and has not changed since.
    func isVerified(_ file: String, digest: String) -> Bool {
        guard let entry = load()[file], let identity = FileSystem.identity(of: file) else { return false }
        return entry["sha256"] == .string(digest)
            && entry["size"] == .int(identity.size)
            && entry["mtime_ns"] == .int(Int(identity.mtimeNanoseconds))
    }

    /// Records that `file`, as it is now, has `digest`.
    func markVerified(_ file: String, digest: String) {
        guard let identity = FileSystem.identity(of: file) else { return }
        var all = load()
        all[file] = ["sha256": .string(digest), "size": .int(identity.size), "mtime_ns": .int(Int(identity.mtimeNanoseconds))]
        let record = TemplateValue.object(all.map { (key: $0.key, value: $0.value) })
        let data = Data((JSONWriter(indent: "  ", sortKeys: true).write(record) + "\n").utf8)
        try? FileSystem.makeDirectory((path as NSString).deletingLastPathComponent)
        let temporary = path + ".\(ProcessInfo.processInfo.processIdentifier).tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: data) else { return }
        if (try? FileSystem.rename(temporary, to: path)) == nil { FileSystem.remove(temporary) }
    }

    /// Hashes `file` unless the record says it already has `expected`; records a match.
    /// Returns the file's SHA-256 (== `expected` when verified).
    func verify(_ file: String, expected: String) throws -> String {
        if isVerified(file, digest: expected) { return expected }
        let actual = try SHA256.hex(ofFileAt: file)
        if actual == expected { markVerified(file, digest: expected) }
        return actual
    }

    private func load() -> [String: TemplateValue] {
        guard let data = FileManager.default.contents(atPath: path),
              case let .object(members)? = try? TemplateValue.parse(data, path: path) else { return [:] }
        return Dictionary(members.map { ($0.key, $0.value) }, uniquingKeysWith: { _, last in last })
    }
}
