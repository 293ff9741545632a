import Foundation
import Testing
@testable import MobileLLM

/// Locations of committed fixtures and fetched assets.
enum Fixtures {
    /// The package root (two levels above this file's folder).
    static let packageRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `Tests/Fixtures/<name>`.
    static func path(_ name: String) -> String {
        packageRoot.appendingPathComponent("Tests/Fixtures").appendingPathComponent(name).path
    }

    /// The golden model fixtures made by scripts/make_fixtures.py.
    static let models = ["llama4-r1like-bf16-sharded", "llama4-nope-f32", "llama-f16", "llama-bf16-untied",
                         "qwen2-f32-tied", "qwen2-bf16-untied", "qwen3-f32-untied", "qwen3-bf16-tied"]
}

/// Feeds every reference sequence to `model` in a fresh session (`kvCacheType`; nil: the model's default) and expects
/// the logits at every position within `tolerance` of the reference, with the same arg-max.
func expectLogits(of model: Model, match reference: ModelReference, fixture: String, kvCacheType: KVCacheType? = nil,
                  tolerance: Float = 1e-3) throws {
    #expect(model.configuration.modelType == reference.model_type)
    #expect(model.vocabularySize == reference.vocab_size)
    for sequence in reference.sequences {
        let session = try model.makeSession(contextLength: 128, kvCacheType: kvCacheType)
        let logits = try session.feed(sequence.tokens, logits: .all)
        #expect(logits.rowCount == sequence.tokens.count)
        var worst: Float = 0
        for (row, expected) in sequence.logits.enumerated() {
            #expect(expected.count == model.vocabularySize)
            worst = max(worst, maxAbsDifference(logits.row(row), expected))
            #expect(Sampler.argmax(logits.row(row)) == Sampler.argmax(expected), "\(fixture): argmax differs at position \(row)")
        }
        #expect(worst <= tolerance, "\(fixture): max |Δlogit| \(worst) over \(sequence.tokens.count) positions")
    }
}

/// Generates every reference greedy continuation with `model` and expects the same tokens, stopped by the length.
func expectGreedy(of model: Model, match reference: ModelReference, fixture: String) throws {
    for greedy in reference.greedy {
        let session = try model.makeSession(contextLength: 128)
        let result = try session.generate(prompt: greedy.prompt, options: GenerationOptions(maxTokens: greedy.continuation.count))
        #expect(result.tokens == greedy.continuation, "\(fixture)")
        #expect(result.stopReason == .maxTokens)
    }
}

/// One golden reference written by scripts/make_fixtures.py.
struct ModelReference: Decodable {
    struct Sequence: Decodable {
        let tokens: [Int32]
        let logits: [[Float]]
    }
    struct Greedy: Decodable {
        let prompt: [Int32]
        let continuation: [Int32]
        let min_margin: Float
    }
    let model_type: String
    let vocab_size: Int
    let sequences: [Sequence]
    let greedy: [Greedy]

    static func load(_ fixture: String) throws -> ModelReference {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path(fixture) + "/reference.json"))
        return try JSONDecoder().decode(ModelReference.self, from: data)
    }
}

/// A temporary directory removed when the value is released.
final class TemporaryDirectory {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("mobilellm-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Writes `text` to `name` inside the directory and returns its path.
    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        let file = path + "/" + name
        try Data(text.utf8).write(to: URL(fileURLWithPath: file))
        return file
    }

    /// Writes `bytes` to `name` inside the directory and returns its path.
    @discardableResult
    func write(_ name: String, bytes: [UInt8]) throws -> String {
        let file = path + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        return file
    }

    /// Copies every file of fixture `name` into this directory.
    func copyFixture(_ name: String) throws {
        let source = Fixtures.path(name)
        for file in try FileManager.default.contentsOfDirectory(atPath: source) {
            try FileManager.default.copyItem(atPath: source + "/" + file, toPath: path + "/" + file)
        }
    }
}

/// Largest absolute difference between two equally long sequences.
func maxAbsDifference<A: Collection, B: Collection>(_ a: A, _ b: B) -> Float where A.Element == Float, B.Element == Float {
    zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}
