import Foundation
import Testing
@testable import MobileLLM

@Suite("Generation and session limits")
struct GenerationTests {
    let model: Model

    init() throws {
        model = try Model(path: Fixtures.path("llama4-r1like-bf16-sharded"))
    }

    @Test("EOS ids from config.json and generation_config.json stop generation; ignoreEOS continues")
    func stopsAtEOS() throws {
        #expect(Set(model.eosTokenIDs) == [1, 2, 3])
        let reference = try ModelReference.load("llama4-r1like-bf16-sharded")
        let greedy = reference.greedy[0]
        // Declare the 5th continuation token a stop token: generation must end there, including it.
        let stop = Int(greedy.continuation[4])
        let session = try model.makeSession(contextLength: 64)
        let result = try session.generate(prompt: greedy.prompt, options: GenerationOptions(maxTokens: 20, stopTokenIDs: [stop]))
        #expect(result.stopReason == .endOfSequence)
        #expect(result.tokens == Array(greedy.continuation.prefix(while: { Int($0) != stop })) + [Int32(stop)])
        let ignoring = try model.makeSession(contextLength: 64).generate(
            prompt: greedy.prompt, options: GenerationOptions(maxTokens: 20, stopTokenIDs: [stop], ignoreEOS: true))
        #expect(ignoring.tokens == Array(greedy.continuation.prefix(20)))
    }

    @Test("the callback can stop generation")
    func callbackStops() throws {
        var seen: [Int32] = []
        let result = try model.makeSession(contextLength: 64).generate(prompt: [5, 6, 7], options: GenerationOptions(maxTokens: 10, ignoreEOS: true)) { token in
            seen.append(token)
            return seen.count < 3
        }
        #expect(result.stopReason == .callback)
        #expect(result.tokens == seen)
        #expect(seen.count == 3)
    }

    @Test("generation stops when the context is full, and feeding past capacity is an error")
    func contextLimits() throws {
        let session = try model.makeSession(contextLength: 8)
        let result = try session.generate(prompt: [5, 6, 7], options: GenerationOptions(maxTokens: 100, ignoreEOS: true))
        #expect(result.stopReason == .contextFull)
        #expect(result.tokens.count == 6)  // 3 prompt + 5 fed generated tokens fill 8 positions; the 6th is sampled from the last
        #expect(session.position == 8)
        #expect(throws: MobileLLMError.contextFull(capacity: 8, position: 8, requested: 1)) { try session.feed([1]) }
        #expect(session.position == 8)

        let fresh = try model.makeSession(contextLength: 8)
        #expect(throws: MobileLLMError.contextFull(capacity: 8, position: 0, requested: 9)) { try fresh.feed(Array(repeating: 4, count: 9)) }
        #expect(fresh.position == 0)
        #expect(throws: MobileLLMError.self) { try model.makeSession(contextLength: 0) }
        #expect(throws: MobileLLMError.self) { try model.makeSession(contextLength: model.configuration.maxPositions + 1) }
    }

    @Test("token ids outside the vocabulary are refused and change nothing")
    func badTokens() throws {
        let session = try model.makeSession(contextLength: 16)
        try session.feed([1, 2])
        for bad: Int32 in [-1, Int32(model.vocabularySize), .max] {
            #expect(throws: MobileLLMError.self) { try session.feed([3, bad]) }
            #expect(session.position == 2)
        }
        #expect(throws: MobileLLMError.self) { try session.generate(prompt: [], options: GenerationOptions(maxTokens: -1)) }
    }

    @Test("cancel with nothing running does nothing: it never lingers to cancel a later call")
    func cancelWhenIdle() throws {
        let session = try model.makeSession(contextLength: 16)
        try session.feed([1, 2, 3])
        session.cancel()
        let logits = try session.feed([4, 5])
        #expect(session.position == 5)
        let again = try model.makeSession(contextLength: 16).feed([1, 2, 3, 4, 5])
        #expect(logits == again)
    }

    @Test("cancel from onToken stops at the next feed; the session keeps what was fed and continues like an uncancelled run")
    func cancelFromCallback() throws {
        let options = GenerationOptions(maxTokens: 6, ignoreEOS: true)
        let session = try model.makeSession(contextLength: 64)
        #expect(throws: MobileLLMError.cancelled) {
            try session.generate(prompt: [1, 2, 3], options: options) { _ in
                session.cancel()
                return true
            }
        }
        #expect(session.position == 3)
        let continued = try session.generate(prompt: [], options: options)
        let fresh = try model.makeSession(contextLength: 64).generate(prompt: [1, 2, 3], options: options)
        #expect(continued.tokens == fresh.tokens)
    }

    @Test("cancel from another thread interrupts a running generation")
    func cancelFromAnotherThread() throws {
        let session = try model.makeSession(contextLength: 4096)
        let started = DispatchSemaphore(value: 0)
        let finished = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var outcome: Result<GenerationResult, Error>?
        DispatchQueue.global().async {
            outcome = Result {
                try session.generate(prompt: [5, 6], options: GenerationOptions(maxTokens: 4000, ignoreEOS: true)) { _ in
                    started.signal()
                    return true
                }
            }
            finished.signal()
        }
        started.wait()
        session.cancel()
        finished.wait()
        switch outcome {
        case .success(let result)?: Issue.record("expected cancellation, generation finished with \(result.tokens.count) tokens")
        case .failure(let error)?: #expect(error as? MobileLLMError == .cancelled)
        case nil: Issue.record("no outcome")
        }
    }

    @Test("a seeded sampled generation is reproducible")
    func seededGeneration() throws {
        let options = GenerationOptions(maxTokens: 16, sampling: SamplingParameters(temperature: 0.9, topP: 0.95, seed: 11), ignoreEOS: true)
        let a = try model.makeSession(contextLength: 64).generate(prompt: [9, 8, 7], options: options)
        let b = try model.makeSession(contextLength: 64).generate(prompt: [9, 8, 7], options: options)
        #expect(a.tokens == b.tokens)
    }

    @Test("sessions on several threads give the same results as serial runs")
    func concurrentSessions() async throws {
        let prompts: [[Int32]] = [[1, 2, 3], [40, 41], [100, 7, 7, 7], [250, 3]]
        let serial = try prompts.map { try model.makeSession(contextLength: 64).generate(prompt: $0, options: GenerationOptions(maxTokens: 12, ignoreEOS: true)).tokens }
        let shared = model
        let parallel = try await withThrowingTaskGroup(of: (Int, [Int32]).self) { group in
            for (index, prompt) in prompts.enumerated() {
                group.addTask {
                    (index, try shared.makeSession(contextLength: 64).generate(prompt: prompt, options: GenerationOptions(maxTokens: 12, ignoreEOS: true)).tokens)
                }
            }
            var results = [[Int32]](repeating: [], count: prompts.count)
            for try await (index, tokens) in group { results[index] = tokens }
            return results
        }
        #expect(parallel == serial)
    }
}
