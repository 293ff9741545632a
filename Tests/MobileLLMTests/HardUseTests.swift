import Foundation
import Synchronization
import Testing
@testable import MobileLLM

/// Engine behaviour the C ABI's hard-use tests rely on (Tests/c/test_hard_use.c): cancel requests that never
/// linger, async streams broken off mid-generation, and a log sink that calls back into the library.
@Suite("Hard use")
struct HardUseTests {
    let model: Model
    let reference: ModelReference

    init() throws {
        model = try Model(path: Fixtures.path("llama4-r1like-bf16-sharded"))
        reference = try ModelReference.load("llama4-r1like-bf16-sharded")
    }

    @Test("an async stream broken off after its first piece leaves the session usable, with no lingering cancel")
    func streamBrokenOff() async throws {
        let greedy = reference.greedy[1]
        let session = try model.makeSession(contextLength: 4096)
        let options = GenerationOptions(maxTokens: 4000, sampling: .greedy, ignoreEOS: true)
        for try await piece in session.generate(greedy.prompt, options: options) {
            #expect(piece.token == greedy.continuation[0])
            break
        }
        // The next call waits for the stopped generation, then runs normally from what it fed.
        let continued = try session.generate(prompt: [], options: GenerationOptions(maxTokens: 3, sampling: .greedy, ignoreEOS: true))
        let fed = session.position - 3 + 1 - greedy.prompt.count
        #expect(fed >= 0)
        if fed >= 0, fed + 3 <= greedy.continuation.count {
            #expect(continued.tokens == Array(greedy.continuation[fed..<(fed + 3)]))
        }
    }

    @Test("a log sink may call into the library: messages logged from inside it are dropped, not recursed into")
    func reentrantLogSink() {
        let delivered = Atomic<Int>(0)
        let marker = "hard-use re-entrancy marker"
        MobileLLMLog.setSink(level: .debug) { _, message in
            guard message.contains(marker) else { return }
            delivered.add(1, ordering: .relaxed)
            MobileLLMLog.log(.error, "\(marker) (nested)")
        }
        defer { MobileLLMLog.setSink(level: nil, nil) }
        MobileLLMLog.log(.info, marker)
        MobileLLMLog.log(.info, marker)
        #expect(delivered.load(ordering: .relaxed) == 2)
    }
}
