import Foundation
import Testing
@testable import MobileLLM

/// The engine against transformers: logits at every position and greedy continuations recorded by
/// scripts/make_fixtures.py from a float32 `from_pretrained` of the committed weights.
@Suite("Golden outputs from transformers")
struct GoldenModelTests {
    @Test("logits match transformers within 1e-3", arguments: Fixtures.models)
    func logitsMatch(fixture: String) throws {
        try expectLogits(of: try Model(path: Fixtures.path(fixture)), match: try ModelReference.load(fixture), fixture: fixture)
    }

    @Test("greedy continuations are identical to transformers", arguments: Fixtures.models)
    func greedyMatches(fixture: String) throws {
        try expectGreedy(of: try Model(path: Fixtures.path(fixture)), match: try ModelReference.load(fixture), fixture: fixture)
    }

    @Test("prefill and token-by-token decode give identical logits", arguments: Fixtures.models)
    func prefillEqualsDecode(fixture: String) throws {
        let reference = try ModelReference.load(fixture)
        let model = try Model(path: Fixtures.path(fixture))
        guard let tokens = reference.sequences.map(\.tokens).max(by: { $0.count < $1.count }) else { return }
        let prefill = try model.makeSession(contextLength: 128).feed(tokens, logits: .all)
        let decoder = try model.makeSession(contextLength: 128)
        for (index, token) in tokens.enumerated() {
            let row = try decoder.feed([token])
            #expect(Array(row.last) == Array(prefill.row(index)), "position \(index) differs between prefill and decode")
        }
        #expect(decoder.position == tokens.count)
    }

    @Test("prefill longer than one internal batch equals decode")
    func longPrefillCrossesBatches() throws {
        let model = try Model(path: Fixtures.path("llama4-nope-f32"))
        var generator = SeededGenerator(seed: 7)
        let tokens = (0..<(Session.batchLimit + 37)).map { _ in Int32(generator.next() % UInt64(model.vocabularySize)) }
        let prefill = try model.makeSession(contextLength: 512).feed(tokens, logits: .all)
        #expect(prefill.rowCount == tokens.count)
        let decoder = try model.makeSession(contextLength: 512)
        try decoder.feed(Array(tokens.prefix(Session.batchLimit - 3)), logits: .none)
        for index in (Session.batchLimit - 3)..<tokens.count {
            let row = try decoder.feed([tokens[index]])
            #expect(Array(row.last) == Array(prefill.row(index)), "position \(index)")
        }
    }

    @Test("rewinding the KV cache reproduces a fresh session", arguments: Fixtures.models)
    func rewind(fixture: String) throws {
        let model = try Model(path: Fixtures.path(fixture))
        let prefix: [Int32] = [5, 17, 42, 9, 101, 7, 64, 3, 250, 11]
        let first: [Int32] = [33, 44, 55, 66, 77]
        let second: [Int32] = [12, 13, 14]
        let session = try model.makeSession(contextLength: 64)
        try session.feed(prefix + first)
        try session.rewind(to: prefix.count)
        #expect(session.position == prefix.count)
        let rewound = try session.feed(second, logits: .all)
        let fresh = try model.makeSession(contextLength: 64).feed(prefix + second, logits: .all)
        for row in 0..<second.count {
            #expect(Array(rewound.row(row)) == Array(fresh.row(prefix.count + row)))
        }
        session.reset()
        #expect(session.position == 0)
        let afterReset = try session.feed(prefix)
        let freshPrefix = try model.makeSession(contextLength: 64).feed(prefix)
        #expect(afterReset == freshPrefix)
        #expect(throws: MobileLLMError.self) { try session.rewind(to: prefix.count + 1) }
        #expect(throws: MobileLLMError.self) { try session.rewind(to: -1) }
    }
}

/// The f16 KV cache: same arg-max almost everywhere and prefill == decode, with the expected small drift.
@Suite("f16 KV cache")
struct HalfCacheTests {
    @Test("an f16 cache stays close to transformers and prefill equals decode", arguments: Fixtures.models)
    func halfCache(fixture: String) throws {
        let reference = try ModelReference.load(fixture)
        let model = try Model(path: Fixtures.path(fixture))
        #expect(try model.makeSession().kvCacheType == .f32, "float weights default to an exact cache")
        guard let sequence = reference.sequences.max(by: { $0.tokens.count < $1.tokens.count }) else { return }
        let prefill = try model.makeSession(contextLength: 128, kvCacheType: .f16).feed(sequence.tokens, logits: .all)
        let decoder = try model.makeSession(contextLength: 128, kvCacheType: .f16)
        var agree = 0
        for (index, token) in sequence.tokens.enumerated() {
            let row = try decoder.feed([token])
            #expect(Array(row.last) == Array(prefill.row(index)))
            #expect(maxAbsDifference(prefill.row(index), sequence.logits[index]) < 0.2)
            if Sampler.argmax(prefill.row(index)) == Sampler.argmax(sequence.logits[index]) { agree += 1 }
        }
        #expect(Double(agree) >= 0.95 * Double(sequence.tokens.count))
    }
}

/// The Q8_0 KV cache on a real model (SmolLM2 GGUF, head_dim 64): top-1 agreement with transformers through prefill
/// and through token-by-token decode, state round trip; refused for head sizes Q8_0 blocks do not divide.
/// (Quantized weights are not bit-identical between prefill and decode: the decode kernel scales each block's partial
/// sum, the prefill tile scales the weights — and Q8_0 rounding of K/V amplifies that difference.)
@Suite("Q8_0 KV cache", .serialized)
struct Q8CacheTests {
    @Test("a Q8_0 cache agrees with transformers through prefill and decode; state round trip")
    func q8Cache() throws {
        guard let path = TokenizerFixtures.requireAsset(TokenizerFixtures.smollm2GGUF) else { return }
        let model = try Model(path: path)
        let reference = try RealModelTests.reference()
        let sequence = reference.sequences[1]
        let prefillSession = try model.makeSession(contextLength: 128, kvCacheType: .q8_0)
        let c = model.configuration
        #expect(prefillSession.kvCacheCapacityBytes == 2 * c.layerCount * c.kvHeadCount * 128 * (c.headDimension / 32) * 34)
        let prefill = try prefillSession.feed(sequence.tokens, logits: .all)
        let decoder = try model.makeSession(contextLength: 128, kvCacheType: .q8_0)
        var prefillAgree = 0, decodeAgree = 0
        for (index, token) in sequence.tokens.enumerated() {
            let row = try decoder.feed([token])
            if Int32(Sampler.argmax(row.last)) == sequence.argmax[index] { decodeAgree += 1 }
            if Int32(Sampler.argmax(prefill.row(index))) == sequence.argmax[index] { prefillAgree += 1 }
        }
        let total = Double(sequence.tokens.count)
        #expect(Double(prefillAgree) >= 0.9 * total && Double(decodeAgree) >= 0.9 * total,
                "prefill \(prefillAgree), decode \(decodeAgree) of \(sequence.tokens.count)")
        // Restoring a saved state reproduces the session bit for bit.
        let state = decoder.saveState()
        let restored = try model.makeSession(contextLength: 128, kvCacheType: .q8_0)
        try state.withUnsafeBytes { try restored.restoreState($0) }
        #expect(maxAbsDifference(try restored.feed([3]).last, try decoder.feed([3]).last) == 0)
        let f16 = try model.makeSession(contextLength: 128, kvCacheType: .f16)
        try f16.feed(Array(sequence.tokens.prefix(4)))
        #expect(throws: MobileLLMError.self) { try f16.saveState().withUnsafeBytes { try restored.restoreState($0) } }
    }

    @Test("Q8_0 needs a head dimension divisible by 32")
    func refused() throws {
        let model = try Model(path: Fixtures.path("llama4-r1like-bf16-sharded"))  // head_dim 16
        #expect(throws: MobileLLMError.self) { try model.makeSession(kvCacheType: .q8_0) }
    }
}
