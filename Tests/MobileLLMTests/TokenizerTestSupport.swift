import Foundation
import Testing
@testable import MobileLLM

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

    /// The path if it exists; otherwise records a failure telling how to fetch the assets, and returns nil.
    static func requireAsset(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) -> String? {
        if FileManager.default.fileExists(atPath: path) { return path }
        Issue.record("missing test asset \(path): run `python3 scripts/fetch_assets.py` first (or set MOBILELLM_ASSETS)",
                     sourceLocation: sourceLocation)
        return nil
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
