import Foundation
@testable import MobileLLM

/// The sort-based sampler that `Sampler` replaced, kept verbatim as the specification the partial-selection sampler
/// must reproduce bit for bit: copy the logits, apply penalties, sort every candidate, divide by temperature, top-k,
/// softmax, top-p, softmax, min-p, softmax, then walk the list with one uniform draw.
struct ReferenceSampler {
    let parameters: SamplingParameters
    private var generator: SeededGenerator

    /// A reference sampler drawing from the same generator as `Sampler` for the same seed.
    init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        generator = SeededGenerator(seed: parameters.seed ?? 0)
    }

    /// The old `Sampler.sample`.
    mutating func sample(_ logits: [Float], history: [Int32]) -> Int32 {
        if parameters.temperature == 0 {
            var scores = logits
            applyPenalties(&scores, history: history)
            return Int32(Sampler.argmax(scores))
        }
        let candidates = distribution(logits, history: history)
        let draw = generator.unitFloat()
        var cumulative: Float = 0
        for candidate in candidates {
            cumulative += candidate.probability
            if draw < cumulative { return candidate.token }
        }
        return candidates.last?.token ?? Int32(Sampler.argmax(logits))
    }

    /// The old `Sampler.distribution`.
    func distribution(_ logits: [Float], history: [Int32]) -> [(token: Int32, probability: Float)] {
        var scores = logits
        applyPenalties(&scores, history: history)
        if parameters.temperature == 0 { return [(Int32(Sampler.argmax(scores)), 1)] }

        var candidates = scores.indices.filter { !scores[$0].isNaN && scores[$0] > -Float.infinity }
        if candidates.isEmpty { return [(Int32(Sampler.argmax(scores)), 1)] }
        candidates.sort { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
        for index in candidates { scores[index] /= parameters.temperature }

        if parameters.topK > 0, parameters.topK < candidates.count {
            let threshold = scores[candidates[parameters.topK - 1]]
            candidates = candidates.filter { scores[$0] >= threshold }
        }
        var probabilities = Self.softmax(candidates.map { scores[$0] })
        if parameters.topP < 1 {
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
