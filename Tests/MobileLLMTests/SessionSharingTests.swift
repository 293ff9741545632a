import Foundation
import Testing
@testable import MobileLLM

/// A session used from two threads at once (a contract violation hosts make, e.g. an abandoned async stream still
/// finishing) must serialise the calls: no crash, no interleaved cache.
@Suite("Session shared by two threads")
struct SessionSharingTests {
    @Test("concurrent generations on one session run one after the other")
    func serialised() throws {
        let model = try Model(path: Fixtures.path("llama4-r1like-bf16-sharded"), options: ModelLoadOptions(threadCount: 2))
        let session = try model.makeSession(contextLength: 512)
        let options = GenerationOptions(maxTokens: 40, ignoreEOS: true)
        let group = DispatchGroup()
        nonisolated(unsafe) var results: [[Int32]] = [[], []]
        for index in 0..<2 {
            group.enter()
            DispatchQueue.global().async {
                defer { group.leave() }
                if let result = try? session.generate(prompt: [Int32(5 + index), 7, 9], options: options) { results[index] = result.tokens }
            }
        }
        group.wait()
        // Each generation saw only its own tokens: replaying it after the other (whichever went first) gives the same ids.
        #expect(results.allSatisfy { $0.count == 40 })
        #expect(session.position == 2 * (3 + 39))
        let first = try model.makeSession(contextLength: 512).generate(prompt: [5, 7, 9], options: options).tokens
        let firstAfterSecond: [Int32] = try {
            let s = try model.makeSession(contextLength: 512)
            _ = try s.generate(prompt: [6, 7, 9], options: options)  // its last token is not fed, as in the shared run
            return try s.generate(prompt: [5, 7, 9], options: options).tokens
        }()
        #expect(results[0] == first || results[0] == firstAfterSecond)
    }
}
