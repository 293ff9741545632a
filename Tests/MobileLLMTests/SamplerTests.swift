import Foundation
import Testing
@testable import MobileLLM

/// The sampler against transformers' logits processors (Tests/Fixtures/sampling, made by
/// scripts/make_sampling_fixtures.py) and against its own contract (seeds, greedy, penalties).
@Suite("Sampling")
struct SamplerTests {
    struct Reference: Decodable {
        struct Parameters: Decodable {
            let temperature: Float
            let top_k: Int
            let top_p: Float
            let min_p: Float
            let repetition_penalty: Float
        }
        struct Case: Decodable {
            let params: Parameters
            let logits: [Float]
            let history: [Int32]
            let scores: [Float?]
        }
        let cases: [Case]
    }

    @Test("kept tokens and probabilities equal transformers' processor chain")
    func matchesTransformers() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("sampling/reference.json")))
        let reference = try JSONDecoder().decode(Reference.self, from: data)
        #expect(reference.cases.count >= 20)
        for (index, item) in reference.cases.enumerated() {
            let p = item.params
            let sampler = try Sampler(SamplingParameters(temperature: p.temperature, topK: p.top_k, topP: p.top_p, minP: p.min_p,
                                                         repetitionPenalty: p.repetition_penalty, seed: 1))
            let ours = sampler.distribution(item.logits, history: item.history)
            let kept = item.scores.enumerated().compactMap { $0.element == nil ? nil : Int32($0.offset) }
            #expect(Set(ours.map(\.token)) == Set(kept), "case \(index): kept tokens differ")
            let finite = item.scores.compactMap { $0 }
            let maximum = finite.max() ?? 0
            let total = finite.reduce(Float(0)) { $0 + exp($1 - maximum) }
            for candidate in ours {
                guard let score = item.scores[Int(candidate.token)] else { continue }
                let expected = exp(score - maximum) / total
                #expect(abs(candidate.probability - expected) < 1e-5, "case \(index) token \(candidate.token)")
            }
        }
    }

    @Test("the same seed gives the same tokens; another seed differs")
    func seeded() throws {
        var generator = SeededGenerator(seed: 3)
        let logits = (0..<200).map { _ in Float(generator.next() % 1000) / 250 }
        func run(_ seed: UInt64) throws -> [Int32] {
            var sampler = try Sampler(SamplingParameters(temperature: 1.0, seed: seed))
            return (0..<64).map { _ in sampler.sample(logits, history: []) }
        }
        #expect(try run(42) == run(42))
        #expect(try run(42) != run(43))
    }

    @Test("sampled frequencies follow the distribution")
    func frequencies() throws {
        let logits: [Float] = [2.0, 1.0, 0.0, -1.0]
        var sampler = try Sampler(SamplingParameters(temperature: 1.0, seed: 9))
        var counts = [Int](repeating: 0, count: 4)
        let draws = 40_000
        for _ in 0..<draws { counts[Int(sampler.sample(logits, history: []))] += 1 }
        let expected = Sampler.softmax(logits)
        for index in 0..<4 {
            #expect(abs(Float(counts[index]) / Float(draws) - expected[index]) < 0.01)
        }
    }

    @Test("greedy takes the arg-max, the lowest id on ties; top-k 1 equals greedy")
    func greedy() throws {
        var sampler = try Sampler(.greedy)
        #expect(sampler.sample([0.5, 3.0, 3.0, -2.0], history: []) == 1)
        var topOne = try Sampler(SamplingParameters(temperature: 1.5, topK: 1, seed: 5))
        for _ in 0..<20 { #expect(topOne.sample([0.5, 3.0, 2.9, -2.0], history: []) == 1) }
        #expect(Sampler.argmax([Float.nan, 1, 2]) == 2)
        #expect(Sampler.argmax([Float]()) == 0)
    }

    @Test("repetition, frequency and presence penalties")
    func penalties() throws {
        // transformers' rule: seen positive logits are divided, negative ones multiplied.
        let repetition = try Sampler(SamplingParameters(temperature: 0, repetitionPenalty: 2))
        var sampler = repetition
        #expect(sampler.sample([3.0, 2.0, -1.0], history: [0]) == 1)  // 3/2 = 1.5 < 2
        let frequency = try Sampler(SamplingParameters(temperature: 1, frequencyPenalty: 0.5, presencePenalty: 0.25, seed: 1))
        let withHistory = frequency.distribution([1.0, 1.0], history: [0, 0, 0])
        // token 0: 1 - 3*0.5 - 0.25 = -0.75 vs token 1: 1.0
        let p0 = withHistory.first { $0.token == 0 }?.probability ?? -1
        #expect(abs(p0 - Sampler.softmax([-0.75, 1.0])[0]) < 1e-6)
        let window = try Sampler(SamplingParameters(temperature: 0, repetitionPenalty: 10, penaltyWindow: 1))
        var windowed = window
        #expect(windowed.sample([3.0, 2.0], history: [0, 1]) == 0)  // only the last token (1) is penalised
    }

    @Test("out-of-range parameters are refused with their name", arguments: [
        ("temperature", SamplingParameters(temperature: -1)),
        ("top_k", SamplingParameters(topK: -3)),
        ("top_p", SamplingParameters(topP: 0)),
        ("top_p", SamplingParameters(topP: 1.5)),
        ("min_p", SamplingParameters(minP: 2)),
        ("repetition_penalty", SamplingParameters(repetitionPenalty: 0)),
        ("temperature", SamplingParameters(temperature: .nan)),
    ])
    func validation(name: String, parameters: SamplingParameters) {
        #expect {
            _ = try Sampler(parameters)
        } throws: { error in
            guard case let MobileLLMError.invalidArgument(argument, _) = error else { return false }
            return argument == name
        }
    }
}
