import Foundation
import Testing
@testable import MobileLLM

/// Many sequences per forward pass (`Model.forward` over parts, `BatchGenerator`), forked sessions and the shared
/// compute pool give exactly what each sequence gets alone. The fixtures are transformers-made random-weight models
/// (scripts/make_fixtures.py), whose own logits tests (GoldenModelTests) pin the single-sequence numbers.
@Suite("Batched sequences")
struct BatchTests {
    /// Prompts of different lengths: some longer than a KV page / attention segment (256), one of a single token.
    static func prompts(vocabulary: Int) -> [[Int32]] {
        let lengths = [5, 1, 300, 37, 260]
        return lengths.enumerated().map { index, length in
            (0..<length).map { Int32((($0 * 7919) + index * 131 + 3) % vocabulary) }
        }
    }

    /// Logits of every position of `tokens` fed to a fresh session (the single-sequence path).
    static func aloneLogits(_ model: Model, _ tokens: [Int32]) throws -> [Float] {
        try model.makeSession(contextLength: 1024).feed(tokens, logits: .all).values
    }

    /// Largest |a - b| relative to the largest |b| (0 when bit-identical).
    static func relativeDifference(_ a: [Float], _ b: [Float]) -> Float {
        let scale = b.reduce(0) { max($0, abs($1)) }
        return a.count == b.count ? maxAbsDifference(a, b) / max(scale, 1e-30) : .infinity
    }

    /// Float weights and the int8 mode compute every row alone, so a row's logits are bit-identical whatever shares
    /// its pass. Quantized weights in the exact mode use one kernel for a single row (it scales each block's partial
    /// sum) and a tile kernel for several (it scales the weights first), as single-sequence prefill and decode already
    /// do: those logits agree to float rounding, bounded here at 1e-4 of the largest logit (1.5e-5 seen).
    @Test("one pass over several sequences gives each one's logits (bit for bit unless quantized-exact)", arguments: [
        ("llama4-r1like-bf16-sharded", QuantType?.none, ActivationPrecision.exact),
        ("llama4-nope-f32", nil, .exact),
        ("qwen2-f32-tied", nil, .exact),
        ("qwen3-bf16-tied", nil, .exact),
        ("llama4-r1like-bf16-sharded", .q4_0, .exact),
        ("qwen3-f32-untied", .q8_0, .exact),
        ("llama4-r1like-bf16-sharded", .q4_0, .int8),
        ("qwen2-f32-tied", .q8_0, .int8),
    ])
    func forwardParts(fixture: String, quantize: QuantType?, activations: ActivationPrecision) throws {
        let model = try Model(path: Fixtures.path(fixture),
                              options: ModelLoadOptions(threadCount: 2, activationPrecision: activations, quantize: quantize))
        let bound: Float = quantize != nil && activations == .exact ? 1e-4 : 0
        let prompts = Self.prompts(vocabulary: model.vocabularySize)
        let alone = try prompts.map { try Self.aloneLogits(model, $0) }

        // All five sequences in one pass (with different lengths and cache positions), every row's logits.
        let caches = try prompts.map { _ in try KVCache(configuration: model.configuration, capacity: 1024, type: model.isQuantized ? .f16 : .f32) }
        var together: [Float] = []
        try model.forward(zip(caches, prompts).map { ForwardPart(cache: $0, tokens: $1, start: 0, logits: .all) },
                          scratch: Scratch(), checkCancelled: {}, into: &together)
        let prefillDifference = Self.relativeDifference(together, alone.flatMap { $0 })
        #expect(prefillDifference <= bound, "prefill rows differ by \(prefillDifference) of the largest logit")

        // Then one decode row per sequence at different depths, against each session continuing alone.
        for (cache, prompt) in zip(caches, prompts) { cache.advance(to: prompt.count) }
        let next: [Int32] = [11, 12, 13, 14, 15]
        var decoded: [Float] = []
        try model.forward(zip(caches, zip(prompts, next)).map { ForwardPart(cache: $0, tokens: [$1.1], start: $1.0.count, logits: .last) },
                          scratch: Scratch(), checkCancelled: {}, into: &decoded)
        let vocabulary = model.vocabularySize
        for (index, prompt) in prompts.enumerated() {
            let session = try model.makeSession(contextLength: 1024)
            try session.feed(prompt, logits: .none)
            let single = try session.feed([next[index]]).values
            let row = Array(decoded[(index * vocabulary)..<((index + 1) * vocabulary)])
            let difference = Self.relativeDifference(row, single)
            #expect(difference <= bound, "sequence \(index): decode row differs by \(difference) of the largest logit")
            #expect(Sampler.argmax(row) == Sampler.argmax(single))
        }
    }

    @Test("BatchGenerator: greedy tokens and last logits equal each sequence's own generation")
    func generatorMatchesSessions() throws {
        for quantize in [QuantType?.none, .q4_0] {
            let model = try Model(path: Fixtures.path("llama4-r1like-bf16-sharded"), options: ModelLoadOptions(threadCount: 2, quantize: quantize))
            let prompts = Self.prompts(vocabulary: model.vocabularySize)
            let options = GenerationOptions(maxTokens: 24, ignoreEOS: true)
            let expected = try prompts.map { try model.makeSession(contextLength: 1024).generate(prompt: $0, options: options).tokens }

            let batch = try BatchGenerator(model: model, maxRowsPerStep: 64)
            var ids: [Int] = []
            for prompt in prompts { ids.append(try batch.add(prompt: prompt, options: options, contextLength: 1024)) }
            var streamed: [Int: [Int32]] = [:]
            var results: [Int: BatchResult] = [:]
            try batch.run { event in
                switch event {
                case let .token(sequence, token, _, _): streamed[sequence, default: []].append(token)
                case let .finished(sequence, _, _, result): results[sequence] = result
                }
                return true
            }
            for (index, id) in ids.enumerated() {
                #expect(results[id]?.tokens == expected[index], "sequence \(index), quantize \(String(describing: quantize))")
                #expect(streamed[id] == expected[index])
                #expect(results[id]?.stopReason == .maxTokens)
                #expect(results[id]?.promptTokenCount == prompts[index].count)
            }
            #expect(batch.activeCount == 0)
        }
    }

    @Test("a sequence added while others decode joins without changing anyone's tokens")
    func continuousJoin() throws {
        let model = try Model(path: Fixtures.path("qwen3-f32-untied"), options: ModelLoadOptions(threadCount: 2))
        let prompts = Self.prompts(vocabulary: model.vocabularySize)
        let options = GenerationOptions(maxTokens: 16, ignoreEOS: true)
        let expected = try prompts.map { try model.makeSession(contextLength: 1024).generate(prompt: $0, options: options).tokens }
        let batch = try BatchGenerator(model: model, maxRowsPerStep: 32)
        var results: [Int: [Int32]] = [:]
        var order: [Int] = [try batch.add(prompt: prompts[0], options: options, contextLength: 1024)]
        var steps = 0
        while batch.activeCount > 0 || order.count < prompts.count {
            // A new sequence joins every third step while the earlier ones decode.
            if steps % 3 == 2, order.count < prompts.count {
                order.append(try batch.add(prompt: prompts[order.count], options: options, contextLength: 1024))
            }
            for case let .finished(sequence, _, _, result) in try batch.step() { results[sequence] = result.tokens }
            steps += 1
        }
        for (index, id) in order.enumerated() { #expect(results[id] == expected[index], "sequence \(index)") }
        // The 300-token prompt went in 32-row chunks next to the decoding sequences, not in one stall.
        #expect(steps > 300 / 32)
    }

    @Test("samples of one prompt: prefilled once, each sample equals a fresh seeded generation")
    func samplesShareThePrompt() throws {
        let model = try Model(path: Fixtures.path("llama4-r1like-bf16-sharded"), options: ModelLoadOptions(threadCount: 2))
        let prompt = Self.prompts(vocabulary: model.vocabularySize)[2]
        let sampling = SamplingParameters(temperature: 1.5, topP: 0.95, seed: 42)
        let options = GenerationOptions(maxTokens: 20, sampling: sampling, ignoreEOS: true)
        let batch = try BatchGenerator(model: model)
        let ids = try batch.add(prompt: prompt, samples: 4, options: options, contextLength: 1024)
        var results: [Int: BatchResult] = [:]
        var rowsPerStep: [Int] = []
        while batch.activeCount > 0 {
            let before = batch.activeCount
            for case let .finished(sequence, _, _, result) in try batch.step() { results[sequence] = result }
            rowsPerStep.append(before)
        }
        for (index, id) in ids.enumerated() {
            var seeded = options
            seeded.sampling.seed = 42 + UInt64(index)
            let fresh = try model.makeSession(contextLength: 1024).generate(prompt: prompt, options: seeded).tokens
            #expect(results[id]?.tokens == fresh, "sample \(index)")
            #expect(results[id]?.promptTokenCount == (index == 0 ? prompt.count : 0))
        }
        // Four different continuations (the seeds differ), from one prefill.
        #expect(Set(ids.compactMap { results[$0]?.tokens }).count == 4)
    }

    @Test("keepsLogits: the logits each sequence sampled from are those of its tokens fed alone (forks: the prompt's)")
    func keptLogits() throws {
        let model = try Model(path: Fixtures.path("llama4-r1like-bf16-sharded"), options: ModelLoadOptions(threadCount: 2))
        let vocabulary = model.vocabularySize
        let prompts = Array(Self.prompts(vocabulary: vocabulary).prefix(2))
        let options = GenerationOptions(maxTokens: 3, ignoreEOS: true)
        let batch = try BatchGenerator(model: model)
        #expect(!batch.keepsLogits)
        batch.keepsLogits = true
        var fed: [Int: [Int32]] = [:]
        for id in try batch.add(prompt: prompts[0], samples: 2, options: options, contextLength: 1024) { fed[id] = prompts[0] }
        fed[try batch.add(prompt: prompts[1], options: options, contextLength: 1024)] = prompts[1]
        var checked = 0
        while batch.activeCount > 0 {
            for case let .token(sequence, token, _, _) in try batch.step() {
                let tokens = fed[sequence] ?? []
                let alone = try Self.aloneLogits(model, tokens)
                #expect(batch.logits(of: sequence) == Array(alone.suffix(vocabulary)), "sequence \(sequence) after \(tokens.count) tokens")
                fed[sequence, default: []].append(token)
                checked += 1
            }
        }
        #expect(checked == 9)
        // Off (the default): nothing is kept.
        let plain = try BatchGenerator(model: model)
        let id = try plain.add(prompt: prompts[1], options: options, contextLength: 1024)
        _ = try plain.step()
        #expect(plain.logits(of: id) == nil)
    }

    @Test("a forked session shares its prefix pages and continues exactly like a fresh one")
    func fork() throws {
        let model = try Model(path: Fixtures.path("qwen2-f32-tied"), options: ModelLoadOptions(threadCount: 2))
        let prompt = Self.prompts(vocabulary: model.vocabularySize)[2]  // 300 tokens: one full page and a partial one
        let base = try model.makeSession(contextLength: 2048)
        try base.feed(prompt, logits: .none)
        let pageBytes = base.cache.pageBytes
        #expect(base.kvCacheBytes == 2 * pageBytes)
        let forked = base.fork()
        #expect(forked.tokens == base.tokens)
        #expect(forked.cache.byteCount == 2 * pageBytes)  // the same two pages, shared

        let options = GenerationOptions(maxTokens: 30, ignoreEOS: true)
        let fresh = try model.makeSession(contextLength: 2048).generate(prompt: prompt, options: options).tokens
        // generate with an empty prompt continues from the cache (recomputing the last position's logits).
        #expect(try forked.generate(prompt: [], options: options).tokens == fresh)
        #expect(try base.generate(prompt: [], options: options).tokens == fresh)

        // A rewind into the shared prefix writes into a shared page: it is copied, the other side is untouched.
        let second = base.fork()
        try second.rewind(to: 100)
        try second.feed([1, 2, 3], logits: .none)
        let afterRewind = try model.makeSession(contextLength: 2048)
        try afterRewind.feed(Array(prompt[0..<100]) + [1, 2, 3], logits: .none)
        #expect(try second.feed([4]).values == afterRewind.feed([4]).values)
        #expect(second.cache.byteCount == pageBytes)  // the rewind freed its second page, and it owns a copy of the first
    }

    @Test("the KV cache grows with use: a 32K-capacity session that used 1K positions holds 1K positions")
    func pagedMemory() throws {
        let model = try Model(path: Fixtures.path("llama4-r1like-bf16-sharded"), options: ModelLoadOptions(threadCount: 2))
        let session = try model.makeSession(contextLength: 32768)
        #expect(session.kvCacheBytes == 0)
        try session.feed((0..<1024).map { Int32($0 % 300) }, logits: .none)
        let perPosition = KVCache.bytesPerPosition(configuration: model.configuration, type: session.kvCacheType)
        #expect(session.kvCacheBytes == 1024 * perPosition)
        #expect(session.kvCacheCapacityBytes == 32768 * perPosition)
        try session.rewind(to: 200)
        #expect(session.kvCacheBytes == 256 * perPosition)  // pages past the position are freed
        session.reset()
        #expect(session.kvCacheBytes == 0)
    }

    @Test("two sessions generating on two threads give the serial results")
    func twoThreads() throws {
        let model = try Model(path: Fixtures.path("llama4-r1like-bf16-sharded"), options: ModelLoadOptions(threadCount: 2))
        let prompts = Array(Self.prompts(vocabulary: model.vocabularySize)[2...3])
        let options = GenerationOptions(maxTokens: 40, ignoreEOS: true)
        let serial = try prompts.map { try model.makeSession(contextLength: 1024).generate(prompt: $0, options: options).tokens }
        nonisolated(unsafe) var concurrent: [[Int32]] = [[], []]
        let group = DispatchGroup()
        for index in 0..<2 {
            group.enter()
            DispatchQueue.global().async {
                defer { group.leave() }
                concurrent[index] = (try? model.makeSession(contextLength: 1024).generate(prompt: prompts[index], options: options).tokens) ?? []
            }
        }
        group.wait()
        #expect(concurrent == serial)
    }

    @Test("cancel: one sequence ends as cancelled, the others are unaffected; cancelAll ends every one")
    func cancel() throws {
        let model = try Model(path: Fixtures.path("llama4-r1like-bf16-sharded"), options: ModelLoadOptions(threadCount: 2))
        let prompts = Self.prompts(vocabulary: model.vocabularySize)
        let options = GenerationOptions(maxTokens: 12, ignoreEOS: true)
        let batch = try BatchGenerator(model: model)
        let ids = try prompts.map { try batch.add(prompt: $0, options: options, contextLength: 1024) }
        var results: [Int: BatchResult] = [:]
        var tokensSeen = 0
        try batch.run { event in
            switch event {
            case .token:
                tokensSeen += 1
                if tokensSeen == 3 { batch.cancel(ids[1]) }
            case let .finished(sequence, _, _, result): results[sequence] = result
            }
            return true
        }
        #expect(results[ids[1]]?.stopReason == .cancelled)
        #expect((results[ids[1]]?.tokens.count ?? 99) < 12)
        let expected = try model.makeSession(contextLength: 1024).generate(prompt: prompts[0], options: options).tokens
        #expect(results[ids[0]]?.tokens == expected)

        let all = try BatchGenerator(model: model)
        let second = try prompts.map { try all.add(prompt: $0, options: options, contextLength: 1024) }
        var ended: [Int: StopReason] = [:]
        try all.run { event in
            if case let .finished(sequence, _, _, result) = event { ended[sequence] = result.stopReason }
            return false  // stop everything at the first event
        }
        #expect(second.allSatisfy { ended[$0] != nil })
        #expect(ended.values.contains(.cancelled))
        // A sequence added after cancelAll is not affected by it.
        all.cancelAll()
        let late = try all.add(prompt: prompts[0], options: options, contextLength: 1024)
        var lateResult: BatchResult?
        try all.run { event in
            if case let .finished(sequence, _, _, result) = event, sequence == late { lateResult = result }
            return true
        }
        #expect(lateResult?.tokens == expected)
    }

    @Test("bad requests throw and add nothing; maxTokens 0 feeds the prompt only")
    func badRequests() throws {
        let model = try Model(path: Fixtures.path("llama4-r1like-bf16-sharded"), options: ModelLoadOptions(threadCount: 1))
        let batch = try BatchGenerator(model: model)
        #expect(throws: MobileLLMError.self) { try batch.add(prompt: [999_999]) }
        #expect(throws: MobileLLMError.self) { try batch.add(prompt: []) }
        #expect(throws: MobileLLMError.self) { try batch.add(prompt: [1, 2], options: GenerationOptions(maxTokens: -1)) }
        #expect(throws: MobileLLMError.self) { try batch.add(prompt: [1, 2], samples: 0) }
        #expect(throws: MobileLLMError.self) { try batch.add(prompt: Array(repeating: 1, count: 20), contextLength: 10) }
        #expect(throws: MobileLLMError.self) {
            try batch.add(prompt: [1], options: GenerationOptions(sampling: SamplingParameters(temperature: -1)))
        }
        #expect(throws: MobileLLMError.self) { try BatchGenerator(model: model, maxRowsPerStep: 0) }
        #expect(batch.activeCount == 0)
        let session = try model.makeSession(contextLength: 64)
        _ = try batch.add(session: session, prompt: [1, 2, 3], options: GenerationOptions(maxTokens: 0))
        #expect(throws: MobileLLMError.self) { try batch.add(session: session, prompt: [4]) }
        var reasons: [StopReason] = []
        try batch.run { event in
            if case let .finished(_, _, _, result) = event { reasons.append(result.stopReason) }
            return true
        }
        #expect(reasons == [.maxTokens])
        #expect(session.tokens == [1, 2, 3])
        // The context fills: the sequence stops with contextFull, as Session.generate does.
        let small = try model.makeSession(contextLength: 8)
        let expected = try model.makeSession(contextLength: 8).generate(prompt: [1, 2, 3], options: GenerationOptions(maxTokens: 50, ignoreEOS: true))
        _ = try batch.add(session: small, prompt: [1, 2, 3], options: GenerationOptions(maxTokens: 50, ignoreEOS: true))
        var full: BatchResult?
        try batch.run { event in
            if case let .finished(_, _, _, result) = event { full = result }
            return true
        }
        #expect(full?.stopReason == .contextFull)
        #expect(full?.tokens == expected.tokens)
    }
}
