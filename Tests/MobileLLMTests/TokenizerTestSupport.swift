import Foundation
import Testing
@testable import MobileLLM
import MobileLLMTools

/// Paths of the tokenizer fixtures and assets, located from this file.
enum TokenizerFixtures {
    /// The package root (two levels above Tests/MobileLLMTests).
    static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Tests/Fixtures/tokenizer.
    static let directory = root.appendingPathComponent("Tests/Fixtures/tokenizer")

    /// The asset folder: `$MOBILELLM_ASSETS` or `.cache/assets` in the package.
    static let assets: URL = {
        if let override = ProcessInfo.processInfo.environment["MOBILELLM_ASSETS"], !override.isEmpty {
            return URL(fileURLWithPath: override)
        }
        return root.appendingPathComponent(".cache/assets")
    }()

    static let llama3Directory = assets.appendingPathComponent("llama3-tokenizer").path
    static let smollm2GGUF = assets.appendingPathComponent("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf").path
    static let llamaBPEGGUF = assets.appendingPathComponent("llamacpp/ggml-vocab-llama-bpe.gguf").path
    static let gpt2GGUF = assets.appendingPathComponent("llamacpp/ggml-vocab-gpt-2.gguf").path
    /// The Qwen2.5-Coder-0.5B-Instruct GGUF (a large asset: `MOBILELLM_SKIP_LARGE_ASSETS=1` leaves it out).
    static let qwen25GGUF = assets.appendingPathComponent("qwen25-coder/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf").path

    /// Whether the Qwen2.5 GGUF asset is present (tests that need it are skipped, saying why, when it is not).
    static let hasQwen25GGUF = FileManager.default.fileExists(atPath: qwen25GGUF)

    /// Why the Qwen2.5 GGUF tests are skipped.
    static let qwen25Missing: Comment = "missing large test asset .cache/assets/qwen25-coder/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf: run `python3 scripts/fetch_assets.py` without MOBILELLM_SKIP_LARGE_ASSETS=1 (or set MOBILELLM_ASSETS)"

    /// The Qwen2.5 tokenizer.json + tokenizer_config.json fixture (Tests/Fixtures/tokenizer/qwen25.tokenizer.zip,
    /// scripts/make_qwen_tokenizer_fixture.py), extracted to a temporary directory, loaded, and the directory removed.
    static func qwen25JSONTokenizer() throws -> Tokenizer {
        lock.lock()
        defer { lock.unlock() }
        if let cached = cache["qwen25.tokenizer.zip"] { return cached }
        let temporary = FileManager.default.temporaryDirectory.appendingPathComponent("mobilellm-qwen25-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: temporary) }
        for name in ["tokenizer.json", "tokenizer_config.json"] { _ = try extractQwen25(name, to: temporary) }
        let tokenizer = try Tokenizer.load(path: temporary)
        cache["qwen25.tokenizer.zip"] = tokenizer
        return tokenizer
    }

    /// The path if it exists; otherwise records a failure telling how to fetch the assets, and returns nil.
    static func requireAsset(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) -> String? {
        if FileManager.default.fileExists(atPath: path) { return path }
        Issue.record("missing test asset \(path): run `python3 scripts/fetch_assets.py` first (or set MOBILELLM_ASSETS)",
                     sourceLocation: sourceLocation)
        return nil
    }

    /// Extracts member `name` of Tests/Fixtures/tokenizer/qwen25.tokenizer.zip into `directoryPath`; returns its path.
    static func extractQwen25(_ name: String, to directoryPath: String) throws -> String {
        let archive = try ZipArchive(path: directory.appendingPathComponent("qwen25.tokenizer.zip").path)
        guard let entry = archive.entry(named: name) else {
            throw MobileLLMError.invalidFile(path: archive.path, field: name, problem: "missing member (regenerate with scripts/make_qwen_tokenizer_fixture.py)")
        }
        let destination = directoryPath + "/" + name
        _ = try archive.extract(entry, toFile: destination)
        return destination
    }

    /// Reads a JSON Lines file into values.
    static func jsonLines(_ name: String) throws -> [JSONValue] {
        let path = directory.appendingPathComponent(name).path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MobileLLMError.fileNotFound(path: path, reason: "fixture missing: run scripts/make_tokenizer_fixtures.py")
        }
        return try data.split(separator: UInt8(ascii: "\n")).map { try FastJSON.parse(Data($0), path: path) }
    }

    /// The corpus strings.
    static func corpus() throws -> [String] {
        try jsonLines("corpus.jsonl").map { value in
            guard case let .string(text) = value else { throw MobileLLMError.invalidFile(path: "corpus.jsonl", field: "line", problem: "not a string") }
            return text
        }
    }

    /// Shared loaded tokenizers (loading takes a while in debug builds).
    nonisolated(unsafe) private static var cache: [String: Tokenizer] = [:]
    private static let lock = NSLock()

    static func tokenizer(_ path: String) throws -> Tokenizer {
        lock.lock()
        defer { lock.unlock() }
        if let cached = cache[path] { return cached }
        let tokenizer = try Tokenizer.load(path: path)
        cache[path] = tokenizer
        return tokenizer
    }
}

extension JSONValue {
    /// The value as token ids (nil when not an array of integers).
    var ids: [Int32]? {
        guard case let .array(items) = self else { return nil }
        var out: [Int32] = []
        for item in items {
            guard case let .number(number) = item else { return nil }
            out.append(Int32(number))
        }
        return out
    }

    /// The member `key` of an object.
    subscript(_ key: String) -> JSONValue? {
        guard case let .object(members) = self else { return nil }
        return members[key]
    }

    /// The value as a string.
    var text: String? {
        guard case let .string(text) = self else { return nil }
        return text
    }
}
