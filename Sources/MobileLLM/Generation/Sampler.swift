/// How the next token is chosen from logits. The defaults reproduce a plain temperature-0.8 sampler;
/// `SamplingParameters.greedy` takes the arg-max every step.
///
/// The chain applies, in transformers' order: repetition penalty, frequency/presence penalties, then (unless greedy)
/// temperature, top-k, top-p, min-p, and a draw from a seeded generator.
public struct SamplingParameters: Sendable, Equatable {
    /// Softmax temperature; 0 means greedy (arg-max, lowest id on ties).
    public var temperature: Float
    /// Keep only the k most likely tokens (0: off).
    public var topK: Int
    /// Keep the smallest set of most likely tokens whose probability reaches p (1: off).
    public var topP: Float
    /// Drop tokens less likely than min-p × the most likely one's probability (0: off).
    public var minP: Float
    /// transformers' repetition penalty: seen tokens' positive logits are divided by it, negative ones multiplied (1: off).
    public var repetitionPenalty: Float
    /// Subtracted from a token's logit once per earlier occurrence (0: off).
    public var frequencyPenalty: Float
    /// Subtracted from a token's logit if it occurred at all (0: off).
    public var presencePenalty: Float
    /// How many of the most recent tokens the penalties look at (nil: all, prompt included, as transformers does).
    public var penaltyWindow: Int?
    /// Seed of the random generator; the same seed gives the same tokens. nil: a fresh random seed.
    public var seed: UInt64?

    /// A sampler configuration; every argument defaults to "off" except temperature 0.8.
    public init(temperature: Float = 0.8, topK: Int = 0, topP: Float = 1, minP: Float = 0, repetitionPenalty: Float = 1,
                frequencyPenalty: Float = 0, presencePenalty: Float = 0, penaltyWindow: Int? = nil, seed: UInt64? = nil) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repetitionPenalty = repetitionPenalty
        self.frequencyPenalty = frequencyPenalty
        self.presencePenalty = presencePenalty
        self.penaltyWindow = penaltyWindow
        self.seed = seed
    }

    /// Arg-max decoding.
    public static let greedy = SamplingParameters(temperature: 0)

    /// Checks every value's range; throws `invalidArgument` naming the parameter.
    public func validate() throws {
        func bad(_ name: String, _ expected: String, _ value: Any) -> MobileLLMError {
            .invalidArgument(name: name, problem: "expected \(expected), found \(value)")
        }
        guard temperature.isFinite, temperature >= 0 else { throw bad("temperature", "a finite number >= 0", temperature) }
        guard topK >= 0 else { throw bad("top_k", "an integer >= 0", topK) }
        guard topP.isFinite, topP > 0, topP <= 1 else { throw bad("top_p", "a number in (0, 1]", topP) }
        guard minP.isFinite, minP >= 0, minP <= 1 else { throw bad("min_p", "a number in [0, 1]", minP) }
        guard repetitionPenalty.isFinite, repetitionPenalty > 0 else { throw bad("repetition_penalty", "a number > 0", repetitionPenalty) }
        guard frequencyPenalty.isFinite else { throw bad("frequency_penalty", "a finite number", frequencyPenalty) }
        guard presencePenalty.isFinite else { throw bad("presence_penalty", "a finite number", presencePenalty) }
        if let window = penaltyWindow, window < 0 { throw bad("penalty_window", "an integer >= 0", window) }
    }
}

/// A small, fast, seedable generator (xoshiro256**, seeded through SplitMix64).
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    /// A generator whose sequence depends only on `seed`.
    public init(seed: UInt64) {
        var s = seed
        func splitMix() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        let result = ((state.1 &* 5) << 7 | (state.1 &* 5) >> 57) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = state.3 << 45 | state.3 >> 19
        return result
    }

    /// A uniform value in [0, 1) with 24 random bits.
    mutating func unitFloat() -> Float { Float(next() >> 40) / Float(1 << 24) }
}

/// Chooses tokens from logits according to `SamplingParameters`. Holds the random state, so a sampler created with a
/// seed produces the same sequence for the same logits.
public struct Sampler: Sendable {
    /// The configuration.
    public let parameters: SamplingParameters
    private var generator: SeededGenerator

    /// A sampler; throws `invalidArgument` for out-of-range parameters.
    public init(_ parameters: SamplingParameters) throws {
        try parameters.validate()
        self.parameters = parameters
        generator = SeededGenerator(seed: parameters.seed ?? UInt64.random(in: 0...UInt64.max))
    }

    /// Picks the next token. `history` is every token so far (prompt included), used by the penalties.
    public mutating func sample<C: Collection>(_ logits: C, history: [Int32]) -> Int32 where C.Element == Float {
        if parameters.temperature == 0 {
            var scores = Array(logits)
            applyPenalties(&scores, history: history)
            return Int32(Self.argmax(scores))
        }
        let candidates = distribution(logits, history: history)
        let draw = generator.unitFloat()
        var cumulative: Float = 0
        for candidate in candidates {
            cumulative += candidate.probability
            if draw < cumulative { return candidate.token }
        }
        return candidates.last?.token ?? Int32(Self.argmax(logits))
    }

    /// The distribution `sample` draws from: the tokens that survive penalties, temperature, top-k, top-p and min-p,
    /// most likely first (lower id first on ties), with probabilities summing to 1. Greedy parameters give the
    /// single arg-max token with probability 1.
    public func distribution<C: Collection>(_ logits: C, history: [Int32]) -> [(token: Int32, probability: Float)] where C.Element == Float {
        var scores = Array(logits)
        applyPenalties(&scores, history: history)
        if parameters.temperature == 0 { return [(Int32(Self.argmax(scores)), 1)] }

        var candidates = scores.indices.filter { !scores[$0].isNaN && scores[$0] > -Float.infinity }
        if candidates.isEmpty { return [(Int32(Self.argmax(scores)), 1)] }
        candidates.sort { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
        for index in candidates { scores[index] /= parameters.temperature }

        if parameters.topK > 0, parameters.topK < candidates.count {
            let threshold = scores[candidates[parameters.topK - 1]]
            candidates = candidates.filter { scores[$0] >= threshold }
        }
        var probabilities = Self.softmax(candidates.map { scores[$0] })
        if parameters.topP < 1 {
            // Keep token r while the probability of the tokens before it is still below top-p (transformers' rule).
            var cumulative: Float = 0
            var keep = 0
            while keep < probabilities.count {
                cumulative += probabilities[keep]
                keep += 1
                if cumulative >= parameters.topP { break }
            }
            candidates.removeSubrange(keep...)
            probabilities = Self.softmax(candidates.map { scores[$0] })
        }
        if parameters.minP > 0, let top = probabilities.first {
            let threshold = parameters.minP * top
            let kept = probabilities.indices.filter { probabilities[$0] >= threshold }
            candidates = kept.map { candidates[$0] }
            probabilities = Self.softmax(candidates.map { scores[$0] })
        }
        return zip(candidates, probabilities).map { (Int32($0), $1) }
    }

    private func applyPenalties(_ scores: inout [Float], history: [Int32]) {
        let p = parameters
        guard p.repetitionPenalty != 1 || p.frequencyPenalty != 0 || p.presencePenalty != 0 else { return }
        let window = p.penaltyWindow.map { history.suffix($0) } ?? history[...]
        var counts: [Int32: Int] = [:]
        for token in window where token >= 0 && Int(token) < scores.count { counts[token, default: 0] += 1 }
        for (token, count) in counts {
            let index = Int(token)
            var score = scores[index]
            if p.repetitionPenalty != 1 { score = score < 0 ? score * p.repetitionPenalty : score / p.repetitionPenalty }
            score -= Float(count) * p.frequencyPenalty + p.presencePenalty
            scores[index] = score
        }
    }

    /// Offset (from the start) of the largest value; the lowest offset among equal maxima, as torch.argmax.
    /// NaN never wins; all-NaN or empty input gives 0.
    @inlinable
    public static func argmax<C: Collection>(_ values: C) -> Int where C.Element == Float {
        if let fast = values.withContiguousStorageIfAvailable({ argmax(buffer: $0) }) { return fast }
        var best = 0, bestValue = -Float.infinity, offset = 0
        for value in values {
            if value > bestValue {
                best = offset
                bestValue = value
            }
            offset += 1
        }
        return best
    }

    /// `argmax` over contiguous memory.
    @inlinable
    public static func argmax(buffer: UnsafeBufferPointer<Float>) -> Int {
        var best = 0, bestValue = -Float.infinity
        for index in 0..<buffer.count where buffer[index] > bestValue {
            best = index
            bestValue = buffer[index]
        }
        return best
    }

    static func softmax(_ values: [Float]) -> [Float] {
        guard let maximum = values.max() else { return [] }
        let exps = values.map { expf($0 - maximum) }
        let total = exps.reduce(0, +)
        return exps.map { $0 / total }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
