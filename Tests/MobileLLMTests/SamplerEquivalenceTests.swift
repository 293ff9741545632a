import Foundation
import Testing
@testable import MobileLLM

/// The partial-selection sampler against the sort-based one it replaced (`ReferenceSampler`): the same kept tokens
/// in the same order with bit-identical probabilities, and the same token sequence for the same seed.
extension SamplerTests {
    /// Shapes of random logit vectors.
    enum Shape: CaseIterable {
        /// Normal with standard deviation 3: top-p keeps a few hundred tokens at temperature 0.6.
        case gaussian
        /// A normal bulk (std 2) with 200 tokens lifted far above it, as a confident model's logits.
        case peaked
        /// Values on a 0.25 grid, so most scores tie, and the maximum twice.
        case ties
        /// Normal with 5% -inf (masked) and 1% NaN entries.
        case holes
    }

    /// A reproducible random logit vector.
    static func logits(_ count: Int, _ shape: Shape, seed: UInt64) -> [Float] {
        var generator = SeededGenerator(seed: seed)
        func normal() -> Float {
            let u1 = Double(generator.next() >> 11 | 1) / Double(1 << 53)
            let u2 = Double(generator.next() >> 11) / Double(1 << 53)
            return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
        }
        var values = (0..<count).map { _ in normal() * (shape == .peaked ? 2 : 3) }
        switch shape {
        case .gaussian:
            break
        case .peaked:
            for rank in 0..<min(200, count) { values[Int(generator.next() % UInt64(count))] += 20 - Float(rank) * 0.1 }
        case .ties:
            values = values.map { ($0 * 4).rounded() / 4 }
            if let top = values.max(), count > 1 { values[Int(generator.next() % UInt64(count))] = top }
        case .holes:
            for index in values.indices {
                let roll = generator.next() % 100
                if roll < 5 { values[index] = -.infinity } else if roll == 5 { values[index] = .nan }
            }
        }
        return values
    }

    /// Every parameter combination the equivalence tests run (108).
    static let parameterGrid: [SamplingParameters] = {
        var grid: [SamplingParameters] = []
        for temperature: Float in [0.6, 1.0, 1.5] {
            for topP: Float in [0.95, 0.5, 1] {
                for topK in [0, 40, 1] {
                    for minP: Float in [0, 0.05] {
                        for penalties in [false, true] {
                            grid.append(SamplingParameters(
                                temperature: temperature, topK: topK, topP: topP, minP: minP,
                                repetitionPenalty: penalties ? 1.3 : 1, frequencyPenalty: penalties ? 0.2 : 0,
                                presencePenalty: penalties ? 0.1 : 0, penaltyWindow: penalties ? 64 : nil,
                                seed: UInt64(grid.count) &* 7919 &+ 11))
                        }
                    }
                }
            }
        }
        return grid
    }()

    /// Same tokens, same order, bit-identical probabilities.
    static func identical(_ a: [(token: Int32, probability: Float)], _ b: [(token: Int32, probability: Float)]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0.token == $1.token && $0.probability.bitPattern == $1.probability.bitPattern }
    }

    /// Checks `distribution` and `draws` calls of `sample` against the reference for one vector and configuration.
    /// The reference's draws are walked over its distribution once, as its `sample` would do every call.
    static func checkEquivalent(_ logits: [Float], _ parameters: SamplingParameters, history: [Int32], draws: Int,
                                _ label: String) throws {
        let sampler = try Sampler(parameters)
        let reference = ReferenceSampler(parameters)
        let expected = reference.distribution(logits, history: history)
        let ours = sampler.distribution(logits, history: history)
        #expect(identical(ours, expected), "\(label): distribution differs (\(ours.count) vs \(expected.count) tokens)")
        var mine = sampler
        var generator = SeededGenerator(seed: parameters.seed ?? 0)
        for step in 0..<draws {
            let token = mine.sample(logits, history: history)
            var wanted: Int32
            if parameters.temperature == 0 {
                wanted = expected.first?.token ?? 0
            } else {
                let draw = generator.unitFloat()
                var cumulative: Float = 0
                wanted = expected.last?.token ?? Int32(Sampler.argmax(logits))
                for candidate in expected {
                    cumulative += candidate.probability
                    if draw < cumulative {
                        wanted = candidate.token
                        break
                    }
                }
            }
            #expect(token == wanted, "\(label): draw \(step) gave \(token), the reference \(wanted)")
        }
    }

    static func history(_ count: Int, vocabulary: Int, seed: UInt64) -> [Int32] {
        var generator = SeededGenerator(seed: seed)
        return (0..<count).map { _ in Int32(generator.next() % UInt64(vocabulary)) }
    }

    @Test("identical to the sort-based sampler: 1,000-token vocabulary, 108 configurations x 4 shapes")
    func equivalentSmallVocabulary() throws {
        for (index, parameters) in Self.parameterGrid.enumerated() {
            for (shapeIndex, shape) in Shape.allCases.enumerated() {
                let seed = UInt64(index * 4 + shapeIndex)
                let logits = Self.logits(1000, shape, seed: seed)
                let history = Self.history(100, vocabulary: 1000, seed: seed)
                try Self.checkEquivalent(logits, parameters, history: history, draws: 12,
                                         "vocabulary 1000, configuration \(index), \(shape)")
            }
        }
    }

    @Test("identical to the sort-based sampler: 128,256-token vocabulary, 108 configurations")
    func equivalentLargeVocabulary() throws {
        for (index, parameters) in Self.parameterGrid.enumerated() {
            let shape = Shape.allCases[index % Shape.allCases.count]
            let seed = UInt64(1000 + index)
            let logits = Self.logits(128_256, shape, seed: seed)
            let history = Self.history(300, vocabulary: 128_256, seed: seed)
            try Self.checkEquivalent(logits, parameters, history: history, draws: 4,
                                     "vocabulary 128256, configuration \(index), \(shape)")
        }
    }

    @Test("greedy with penalties equals the reference")
    func greedyEquivalent() throws {
        for shape in Shape.allCases {
            let logits = Self.logits(5000, shape, seed: 77)
            let history = Self.history(400, vocabulary: 5000, seed: 78)
            try Self.checkEquivalent(logits, SamplingParameters(temperature: 0, repetitionPenalty: 1.5, frequencyPenalty: 0.3,
                                                                presencePenalty: -0.2, seed: 1),
                                     history: history, draws: 3, "greedy \(shape)")
            try Self.checkEquivalent(logits, .greedy, history: history, draws: 2, "plain greedy \(shape)")
        }
    }

    @Test("edge cases: one finite logit, all equal, NaN, +inf, a cliff, top-k above the vocabulary, top-p 1, empty")
    func edgeCases() throws {
        var single = [Float](repeating: -.infinity, count: 128_256)
        single[70_001] = -3
        let allNaN = [Float](repeating: .nan, count: 1000)
        var withNaN = Self.logits(1000, .gaussian, seed: 5)
        for index in stride(from: 0, to: 1000, by: 7) { withNaN[index] = .nan }
        var withInfinity = Self.logits(1000, .gaussian, seed: 6)
        withInfinity[10] = .infinity
        withInfinity[900] = .infinity
        // One token far above 20,000 equal ones: their sum (below the sorted head) carries the softmax denominator
        // past a power of two, so it must be summed in sorted order rather than as a band of rounded increments.
        var cliff = [Float](repeating: -9.5, count: 20_000)
        cliff[123] = 0
        let vectors: [(String, [Float])] = [
            ("cliff", cliff),
            ("one finite", single),
            ("all equal 1,000", [Float](repeating: 1.5, count: 1000)),
            ("all equal 128,256", [Float](repeating: -2, count: 128_256)),
            ("NaN entries", withNaN),
            ("all NaN", allNaN),
            ("+inf entries", withInfinity),
            ("empty", []),
        ]
        let configurations = [
            SamplingParameters(temperature: 1, seed: 3),
            SamplingParameters(temperature: 0.7, topK: 5000, seed: 4),
            SamplingParameters(temperature: 0.7, topK: 200_000, topP: 0.9, seed: 5),
            SamplingParameters(temperature: 1.2, topP: 1, minP: 0.01, seed: 6),
            SamplingParameters(temperature: 0.6, topP: 0.95, seed: 7),
            SamplingParameters(temperature: 0.6, topP: 0.5, repetitionPenalty: 1.2, seed: 8),
        ]
        for (name, logits) in vectors {
            for (index, parameters) in configurations.enumerated() {
                try Self.checkEquivalent(logits, parameters, history: [1, 2, 70_001], draws: 3, "\(name), configuration \(index)")
            }
        }
        // Direct expectations, independent of the reference.
        let sampler = try Sampler(SamplingParameters(temperature: 0.8, topP: 0.9, seed: 1))
        let lone = sampler.distribution(single, history: [])
        #expect(lone.count == 1 && lone.first?.token == 70_001 && lone.first?.probability == 1)
        let flat = sampler.distribution([Float](repeating: 1.5, count: 1000), history: [])
        #expect(flat.map(\.token) == (0..<Int32(flat.count)).map { $0 }, "equal scores: lowest ids first")
        #expect(flat.count == 900 || flat.count == 901)
        let clean = sampler.distribution(withNaN, history: [])
        #expect(!clean.contains { $0.token % 7 == 0 }, "NaN entries are never candidates")
        #expect(abs(clean.reduce(Float(0)) { $0 + $1.probability } - 1) < 1e-4)
        let wide = try Sampler(SamplingParameters(temperature: 1, topK: 5000, seed: 1)).distribution(withNaN, history: [])
        let unlimited = try Sampler(SamplingParameters(temperature: 1, seed: 1)).distribution(withNaN, history: [])
        #expect(Self.identical(wide, unlimited), "top-k above the vocabulary is off")
        #expect(sampler.distribution([Float](), history: []).map(\.token) == [0])
        var draw = try Sampler(SamplingParameters(temperature: 1, topP: 1, seed: 2))
        #expect(draw.sample(single, history: []) == 70_001)
    }
}
