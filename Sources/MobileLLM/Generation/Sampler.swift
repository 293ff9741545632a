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
///
/// The result is defined by the plain algorithm (sort every candidate, then temperature, top-k, softmax, top-p,
/// softmax, min-p, softmax, one uniform draw walked down the list), but the vocabulary is not sorted: vector passes
/// find the top score and the candidates near it, only those are sorted, and the softmax denominator's sorted-order
/// float sum is completed exactly without sorting the rest (see `bandTotal`). Whenever a shortcut cannot prove that
/// it gives the bit-identical result, a wider window and at last the full sort are used.
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
        if let token = logits.withContiguousStorageIfAvailable({ sample(buffer: $0, history: history) }) { return token }
        let copy = Array(logits)
        return copy.withUnsafeBufferPointer { sample(buffer: $0, history: history) }
    }

    private mutating func sample(buffer: UnsafeBufferPointer<Float>, history: [Int32]) -> Int32 {
        let scores = PenalizedScores(buffer, overrides: penaltyOverrides(buffer, history: history))
        if parameters.temperature == 0 { return Int32(scores.argmax()) }
        let draw = generator.unitFloat()
        return select(scores, fallback: { Int32(scores.argmax()) }, windows: true) { kept in
            var cumulative: Float = 0
            for (token, probability) in zip(kept.tokens, kept.probabilities) {
                cumulative += probability
                if draw < cumulative { return token }
            }
            // Past the end of the window the walk would go on through tokens not listed: decide on a wider one.
            if kept.continues { return nil }
            // As before: the last candidate, or (nothing kept, e.g. NaN probabilities) the arg-max of the raw logits.
            return kept.tokens.last ?? Int32(Self.argmax(buffer: buffer))
        }
    }

    /// The distribution `sample` draws from: the tokens that survive penalties, temperature, top-k, top-p and min-p,
    /// most likely first (lower id first on ties), with probabilities summing to 1. Greedy parameters give the
    /// single arg-max token with probability 1.
    public func distribution<C: Collection>(_ logits: C, history: [Int32]) -> [(token: Int32, probability: Float)] where C.Element == Float {
        if let result = logits.withContiguousStorageIfAvailable({ distribution(buffer: $0, history: history) }) { return result }
        let copy = Array(logits)
        return copy.withUnsafeBufferPointer { distribution(buffer: $0, history: history) }
    }

    private func distribution(buffer: UnsafeBufferPointer<Float>, history: [Int32]) -> [(token: Int32, probability: Float)] {
        let scores = PenalizedScores(buffer, overrides: penaltyOverrides(buffer, history: history))
        let fallback: () -> [(token: Int32, probability: Float)] = { [(Int32(scores.argmax()), 1)] }
        if parameters.temperature == 0 { return fallback() }
        // With no top-k, top-p or min-p every candidate is listed: skip straight to sorting them all.
        let everything = parameters.topK == 0 && parameters.topP == 1 && parameters.minP == 0
        return select(scores, fallback: fallback, windows: !everything) { kept -> [(token: Int32, probability: Float)]? in
            kept.continues ? nil : zip(kept.tokens, kept.probabilities).map { (token: $0, probability: $1) }
        }
    }

    /// The penalized score of every token the penalties touch (transformers' rules, over `penaltyWindow`), so the
    /// logits themselves are never copied.
    private func penaltyOverrides(_ logits: UnsafeBufferPointer<Float>, history: [Int32]) -> [Int: Float] {
        let p = parameters
        guard p.repetitionPenalty != 1 || p.frequencyPenalty != 0 || p.presencePenalty != 0 else { return [:] }
        let window = p.penaltyWindow.map { history.suffix($0) } ?? history[...]
        var counts: [Int32: Int] = [:]
        for token in window where token >= 0 && Int(token) < logits.count { counts[token, default: 0] += 1 }
        var overrides = [Int: Float](minimumCapacity: counts.count)
        for (token, count) in counts {
            let index = Int(token)
            var score = logits[index]
            if p.repetitionPenalty != 1 { score = score < 0 ? score * p.repetitionPenalty : score / p.repetitionPenalty }
            score -= Float(count) * p.frequencyPenalty + p.presencePenalty
            overrides[index] = score
        }
        return overrides
    }

    /// How far below the top score (in units of temperature-scaled logits, i.e. nats) the fallback candidate windows
    /// reach before the sampler sorts every candidate. exp(-18.5) is below half an ulp of any softmax denominator
    /// >= 1, so the first one decides even an untruncated softmax.
    private static let windowGaps: [Float] = [18.5, 46, 115]

    /// Runs the chain on the smallest window of top candidates that provably gives the same result as running it
    /// on every candidate sorted (the specification: sort all, divide by temperature, top-k, softmax, top-p,
    /// softmax, min-p, softmax). A window is every candidate whose penalized score is >= a threshold, so sorted it
    /// is exactly the first entries of the full order. `finish` turns the window's result into the answer, or nil
    /// when it would need candidates beyond the window; then a wider window (at last: all candidates) is tried.
    /// `windows: false` goes straight to all candidates.
    private func select<R>(_ scores: PenalizedScores, fallback: () -> R, windows: Bool, finish: (Kept) -> R?) -> R {
        let (count, upper) = scores.summary()
        if count == 0 { return finish(Kept(tokens: [Int32(scores.argmax())], probabilities: [1], continues: false)) ?? fallback() }
        let temperature = parameters.temperature
        let topK = parameters.topK > 0 && parameters.topK < count ? parameters.topK : 0
        func attempt(_ window: (ids: [Int32], scores: [Float]), threshold: Float) -> R? {
            var window = window, threshold = threshold
            // For top-k only the k + 1 best matter (selected, not sorted); the k-th's ties are checked in evaluate.
            if topK > 0, window.ids.count > 2 * (topK + 1) {
                threshold = Self.largest(topK + 1, of: window.scores)
                window = Self.filter(window, atLeast: threshold)
            }
            guard let kept = evaluate(Self.sorted(window), complete: false, threshold: threshold, count: count) else { return nil }
            return finish(kept)
        }
        if windows, upper.isFinite {
            // A probe: the candidates within 6 nats (top-k) or 9 nats of the top. Its softmax mass estimates the
            // denominator; terms below half an ulp of the denominator cannot change it, which bounds what matters.
            let probeGap: Float = topK > 0 ? 6 : 9
            let probeThreshold = upper - probeGap * temperature
            if probeThreshold < upper {
                let probe = scores.collect(atLeast: probeThreshold)
                if probe.ids.count * 4 <= count, let maximum = probe.scores.max() {
                    if topK > 0, probe.ids.count > topK, let result = attempt(probe, threshold: probeThreshold) { return result }
                    if topK == 0 {
                        let top = maximum / temperature
                        var mass = 0.0
                        for score in probe.scores { mass += exp(Double(score / temperature - top)) }
                        let gap = Float(17.5 - log(max(mass, 1)))
                        let threshold = maximum - gap * temperature
                        // The probe sorted, with the candidates below it down to `threshold` summed unsorted. A large
                        // probe (a flat distribution) is first tried narrower: min-p keeps only tokens within
                        // ln(1 / min-p) nats of the top, and top-p usually stops within a few nats.
                        var heads = [probeThreshold]
                        if probe.ids.count > 1024 {
                            let p = parameters
                            let narrowGap: Float = p.minP > 0 && p.topP == 1 ? min(probeGap - 1, -log(p.minP) + 0.5) : 4.5
                            heads.insert(maximum - narrowGap * temperature, at: 0)
                        }
                        for head in heads where threshold < head && head < maximum {
                            let window = head == probeThreshold ? probe : Self.filter(probe, atLeast: head)
                            if let kept = evaluate(Self.sorted(window), complete: false, threshold: head, count: count,
                                                   band: (scores, threshold)),
                               let result = finish(kept) {
                                return result
                            }
                        }
                        let window = threshold >= probeThreshold ? Self.filter(probe, atLeast: threshold) : scores.collect(atLeast: threshold)
                        if threshold < maximum, window.ids.count * 2 <= count, let result = attempt(window, threshold: threshold) {
                            return result
                        }
                    }
                }
            }
            for gap in Self.windowGaps {
                let threshold = upper - gap * temperature
                guard threshold < upper else { break }
                let window = scores.collect(atLeast: threshold)
                if window.ids.isEmpty { continue }
                if window.ids.count * 2 > count { break }
                if let result = attempt(window, threshold: threshold) { return result }
            }
        }
        let all = Self.sorted(scores.collect(atLeast: -Float.greatestFiniteMagnitude))
        guard let kept = evaluate(all, complete: true, threshold: -Float.infinity, count: count) else { return fallback() }
        return finish(kept) ?? fallback()
    }

    /// The entries of a window whose score is >= `threshold`.
    private static func filter(_ window: (ids: [Int32], scores: [Float]), atLeast threshold: Float) -> (ids: [Int32], scores: [Float]) {
        var ids: [Int32] = [], scores: [Float] = []
        for (id, score) in zip(window.ids, window.scores) where score >= threshold {
            ids.append(id)
            scores.append(score)
        }
        return (ids, scores)
    }

    /// The chain on a sorted window (`ids`, penalized `scores`, most likely first). `complete`: the window holds every
    /// candidate; otherwise every candidate outside it scores below `threshold`, and the result is nil unless that
    /// provably cannot change it. `count` is the number of candidates in all.
    ///
    /// When the list continues past the window, `band` (if given) accounts for the candidates scoring in
    /// [band.floor, threshold) without sorting them (`bandTotal`); otherwise they must all be negligible.
    private func evaluate(_ window: (ids: [Int32], scores: [Float]), complete: Bool, threshold: Float, count: Int,
                          band: (scores: PenalizedScores, floor: Float)? = nil) -> Kept? {
        let p = parameters
        var ids = window.ids
        guard !ids.isEmpty else { return nil }
        let values = window.scores.map { $0 / p.temperature }
        guard complete || values[0].isFinite else { return nil }
        // Length of the sorted prefix that is still in play, and whether the list continues past the window.
        var length = ids.count
        var continues = !complete
        if p.topK > 0, p.topK < count {
            guard p.topK <= length else { return nil }
            let kth = values[p.topK - 1]
            var end = p.topK
            while end < length, values[end] >= kth { end += 1 }
            // Outside the window scores are lower than at `end`, so they are below the k-th too.
            if end == length, !complete { return nil }
            length = end
            continues = false
        }
        var (exps, total, maximum) = Self.exponentials(values[0..<length])
        // Bound on the probability of any candidate outside the window.
        var outside = 0.0
        if continues {
            // expf is within an ulp of exp; 1.001 covers that and the rounding of the quotient below many times.
            let largestOutside = 1.001 * exp(Double(threshold / p.temperature - maximum))
            if band != nil, let kept = minPWithoutDenominator(ids: ids, values: values, exps: exps, largestOutside: largestOutside) {
                return kept
            }
            if let band {
                guard let sum = bandTotal(band.scores, from: band.floor, below: threshold, after: total, maximum: maximum) else { return nil }
                total = sum
            } else {
                // Each outside term is below half an ulp of the running sum (>= this one), so adding it changes nothing.
                guard largestOutside < Double(total.ulp) / 2 else { return nil }
            }
            outside = 1.001 * largestOutside / Double(total)
        }
        var probabilities = exps.map { $0 / total }
        if p.topP < 1 {
            var cumulative: Float = 0
            var keep = 0
            var reached = false
            while keep < length {
                cumulative += probabilities[keep]
                keep += 1
                if cumulative >= p.topP {
                    reached = true
                    break
                }
            }
            if continues, !reached {
                // Outside terms cannot move the sum: everything is kept, and the renormalized softmax is unchanged.
                guard outside < Double(cumulative.ulp) / 2 else { return nil }
            } else {
                length = keep
                continues = false
                (exps, total, maximum) = Self.exponentials(values[0..<length])
                probabilities = exps.map { $0 / total }
            }
        }
        var kept = Array(values[0..<length])
        ids.removeSubrange(length...)
        if p.minP > 0, let top = probabilities.first {
            let minimum = p.minP * top
            if continues { guard outside < Double(minimum) else { return nil } }
            let survivors = probabilities.indices.filter { probabilities[$0] >= minimum }
            ids = survivors.map { ids[$0] }
            kept = survivors.map { kept[$0] }
            (exps, total, maximum) = Self.exponentials(kept[...])
            probabilities = exps.map { $0 / total }
            continues = false
        }
        return Kept(tokens: ids, probabilities: probabilities, continues: continues)
    }

    /// Min-p alone (no top-k, top-p 1) compares fl(e / total) with fl(min-p x fl(1 / total)) (the top term e is 1), so
    /// the denominator only matters for terms within a few ulps of min-p: when every head term `exps` is clearly
    /// above or below min-p (relative margin 2^-20, far beyond the three roundings) and every term outside the head
    /// (at most `largestOutside`) is clearly below, the kept set is the head's terms above min-p, whose softmax
    /// needs no other term. nil when that does not apply.
    private func minPWithoutDenominator(ids: [Int32], values: [Float], exps: [Float], largestOutside: Double) -> Kept? {
        let p = parameters
        guard p.topK == 0 || p.topK >= ids.count, p.topP == 1, p.minP >= 1e-6, exps.count == ids.count, exps.first == 1 else { return nil }
        let minimum = Double(p.minP)
        let above = minimum * (1 + 0x1p-20), below = minimum * (1 - 0x1p-20)
        guard largestOutside < below else { return nil }
        var tokens: [Int32] = [], kept: [Float] = []
        for index in exps.indices {
            let term = Double(exps[index])
            if term > above {
                tokens.append(ids[index])
                kept.append(values[index])
            } else if term >= below {
                return nil
            }
        }
        let (survivors, total, _) = Self.exponentials(kept[...])
        return Kept(tokens: tokens, probabilities: survivors.map { $0 / total }, continues: false)
    }

    /// The softmax denominator over all candidates, given `sum`, the running sum (in sorted order) over those
    /// scoring >= `ceiling`, without sorting the rest. While a float sum stays within one binade [2^e, 2^(e+1)), adding
    /// a term t rounds to the nearest multiple of the binade's ulp, so it adds ulp x round(t / ulp), whatever the order
    /// of the terms, unless t / ulp is exactly half-way (then the result's parity decides). So the sorted-order sum
    /// over the candidates in [floor, ceiling) is `sum` plus those increments, provided no term is half-way, the
    /// total stays below 2^(e+1), and every candidate below `floor` rounds to nothing. nil when any of that fails.
    private func bandTotal(_ scores: PenalizedScores, from floor: Float, below ceiling: Float, after sum: Float, maximum: Float) -> Float? {
        let temperature = parameters.temperature
        guard sum >= 1, sum.isFinite, floor < ceiling else { return nil }
        let ulp = sum.ulp, inverseUlp = 1 / ulp
        func negligible(below floor: Float) -> Bool { 1.001 * exp(Double(floor / temperature - maximum)) < Double(ulp) / 2 }
        // Raise the floor to just where terms start to round to something, if that checks out.
        var floor = floor
        let tight = Float((Double(maximum) + log(Double(ulp) / 2 / 1.001) - 1e-3) * Double(temperature))
        if tight > floor, tight < ceiling, negligible(below: tight) { floor = tight }
        guard negligible(below: floor) else { return nil }
        var units = 0
        var halfway = false
        scores.scan(from: floor, below: ceiling) { _, score in
            let quotient = expf(score / temperature - maximum) * inverseUlp  // exact: ulp is a power of two
            guard quotient >= 0, quotient < 0x1p30 else {
                halfway = true  // cannot happen for scores below the head; refuse rather than trap
                return
            }
            let whole = Int(quotient)
            let fraction = quotient - Float(whole)
            units += fraction > 0.5 ? whole + 1 : whole
            if fraction == 0.5 { halfway = true }
        }
        let total = Double(sum) + Double(units) * Double(ulp)
        let binadeEnd = Double(Float(sign: .plus, exponent: sum.exponent + 1, significand: 1))
        guard !halfway, total < binadeEnd else { return nil }
        return Float(total)
    }

    /// A window's result: tokens most likely first with their probabilities. `continues`: the list goes on past the
    /// window with tokens each too unlikely to change any sum of the listed probabilities.
    private struct Kept {
        var tokens: [Int32]
        var probabilities: [Float]
        var continues: Bool
    }

    /// The unnormalized softmax terms exactly as `softmax` computes them (same operations, same order).
    private static func exponentials(_ values: ArraySlice<Float>) -> (exps: [Float], total: Float, maximum: Float) {
        guard let maximum = values.max() else { return ([], 0, 0) }
        let exps = values.map { expf($0 - maximum) }
        return (exps, exps.reduce(0, +), maximum)
    }

    /// Sorts a window by score (highest first), then id (lowest first), as one integer sort: the score's order-
    /// preserving bit key (with -0 folded into +0, which compares equal) above the id.
    private static func sorted(_ window: (ids: [Int32], scores: [Float])) -> (ids: [Int32], scores: [Float]) {
        var keys = [UInt64]()
        keys.reserveCapacity(window.ids.count)
        for (id, score) in zip(window.ids, window.scores) {
            let bits = (score + 0).bitPattern
            let ordered = bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000
            keys.append(UInt64(~ordered) << 32 | UInt64(UInt32(bitPattern: id)))
        }
        keys = bucketSorted(keys)
        var ids = [Int32](), scores = [Float]()
        ids.reserveCapacity(keys.count)
        scores.reserveCapacity(keys.count)
        for key in keys {
            let ordered = ~UInt32(truncatingIfNeeded: key >> 32)
            let bits = ordered & 0x8000_0000 != 0 ? ordered & 0x7FFF_FFFF : ~ordered
            ids.append(Int32(bitPattern: UInt32(truncatingIfNeeded: key)))
            scores.append(Float(bitPattern: bits))
        }
        return (ids, scores)
    }

    /// `keys` in ascending order: a counting sort on the top 16 bits (sign, exponent and 7 mantissa bits of the
    /// score) when they span a small range, as the scores of a window do, then a sort within each bucket.
    private static func bucketSorted(_ keys: [UInt64]) -> [UInt64] {
        guard keys.count > 64, let low = keys.min(), let high = keys.max() else { return keys.sorted() }
        let first = Int(low >> 48), span = Int(high >> 48) - first + 1
        guard span <= max(4096, 2 * keys.count) else { return keys.sorted() }
        var starts = [Int](repeating: 0, count: span + 1)
        for key in keys { starts[Int(key >> 48) - first + 1] += 1 }
        for bucket in 0..<span { starts[bucket + 1] += starts[bucket] }
        var next = starts
        var result = [UInt64](repeating: 0, count: keys.count)
        for key in keys {
            let bucket = Int(key >> 48) - first
            result[next[bucket]] = key
            next[bucket] += 1
        }
        for bucket in 0..<span where starts[bucket + 1] - starts[bucket] > 1 {
            result[starts[bucket]..<starts[bucket + 1]].sort()
        }
        return result
    }

    /// The `rank`-th largest value (1: the largest) of a non-empty array without NaN, by selection (quickselect
    /// with a median-of-three pivot; a sort if it degenerates). `rank` is clamped to 1...count.
    static func largest(_ rank: Int, of values: [Float]) -> Float {
        guard !values.isEmpty else { return -.infinity }
        var items = values
        let target = min(max(rank, 1), items.count) - 1
        return items.withUnsafeMutableBufferPointer { items -> Float in
            var low = 0, high = items.count - 1, rounds = 0
            while low < high {
                rounds += 1
                if rounds > 64 {
                    let rest = items[low...high].sorted(by: >)
                    return rest[target - low]
                }
                let middle = low + (high - low) / 2
                let pivot = max(min(items[low], items[middle]), min(max(items[low], items[middle]), items[high]))
                var i = low, j = high
                while i <= j {
                    while items[i] > pivot { i += 1 }
                    while items[j] < pivot { j -= 1 }
                    if i <= j {
                        items.swapAt(i, j)
                        i += 1
                        j -= 1
                    }
                }
                if target <= j { high = j } else if target >= i { low = i } else { return items[target] }
            }
            return items[target]
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

/// The logits as the sampler sees them: the caller's buffer, with the few penalized entries overridden.
private struct PenalizedScores {
    let raw: UnsafeBufferPointer<Float>
    let overrides: [Int: Float]
    init(_ raw: UnsafeBufferPointer<Float>, overrides: [Int: Float]) {
        self.raw = raw
        self.overrides = overrides
    }

    /// How many tokens are candidates (neither NaN nor -inf after penalties), and a value not below any candidate's
    /// score (the largest raw or penalized score; -inf if there is none). One vectorized pass.
    func summary() -> (validCount: Int, upperBound: Float) {
        var lanes = SIMD16<Float>(repeating: -.infinity)
        var invalid = 0, index = 0
        if let base = raw.baseAddress {
            let bytes = UnsafeRawPointer(base)
            let floor = SIMD16<Float>(repeating: -.infinity)
            while index + 16 <= raw.count {
                let block = bytes.loadUnaligned(fromByteOffset: index &* 4, as: SIMD16<Float>.self)
                lanes.replace(with: block, where: block .> lanes)  // NaN never replaces
                if !all(block .> floor) {
                    for offset in index..<index + 16 where !(raw[offset] > -.infinity) { invalid += 1 }
                }
                index += 16
            }
        }
        var maximum = lanes.max()
        for offset in index..<raw.count {
            if raw[offset] > maximum { maximum = raw[offset] }
            if !(raw[offset] > -.infinity) { invalid += 1 }
        }
        var valid = raw.count - invalid
        for (index, value) in overrides {
            if raw[index] > -.infinity { valid -= 1 }
            if value > -.infinity { valid += 1 }
            if value > maximum { maximum = value }
        }
        return (valid, maximum)
    }

    /// `Sampler.argmax` of the penalized scores: the lowest index among the largest; NaN never wins; none: 0.
    func argmax() -> Int {
        if overrides.isEmpty { return Sampler.argmax(buffer: raw) }
        var best = 0, bestValue = -Float.infinity
        for index in 0..<raw.count where raw[index] > bestValue && overrides[index] == nil {
            best = index
            bestValue = raw[index]
        }
        for (index, value) in overrides where value > bestValue || (value == bestValue && value > -.infinity && index < best) {
            best = index
            bestValue = value
        }
        return best
    }

    /// Calls `body(index, score)` for every candidate whose penalized score is in [floor, ceiling) (ceiling +inf:
    /// no upper limit), unpenalized tokens in index order, then the penalized ones. Blocks of 16 logits are tested
    /// with vector comparisons and only their hits are visited.
    @inline(__always)
    func scan(from floor: Float, below ceiling: Float, _ body: (Int, Float) -> Void) {
        let floor = max(floor, -Float.greatestFiniteMagnitude)
        let bounded = ceiling < .infinity
        let penalized = !overrides.isEmpty
        var index = 0
        if let base = raw.baseAddress {
            let bytes = UnsafeRawPointer(base)
            let floors = SIMD16<Float>(repeating: floor), ceilings = SIMD16<Float>(repeating: ceiling)
            let bits = SIMD16<UInt32>(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
            let none = SIMD16<UInt32>(repeating: 0)
            while index + 16 <= raw.count {
                let block = bytes.loadUnaligned(fromByteOffset: index &* 4, as: SIMD16<Float>.self)
                let hits = bounded ? (block .>= floors) .& (block .< ceilings) : block .>= floors
                if any(hits) {
                    var mask = none.replacing(with: bits, where: hits).wrappedSum()
                    while mask != 0 {
                        let offset = index + mask.trailingZeroBitCount
                        mask &= mask &- 1
                        if penalized, overrides[offset] != nil { continue }
                        body(offset, base[offset])
                    }
                }
                index += 16
            }
        }
        for offset in index..<raw.count where raw[offset] >= floor && (!bounded || raw[offset] < ceiling) {
            if penalized, overrides[offset] != nil { continue }
            body(offset, raw[offset])
        }
        for (offset, value) in overrides where value >= floor && (!bounded || value < ceiling) { body(offset, value) }
    }

    /// Every candidate whose (penalized) score is >= `threshold` (never -inf or NaN), unsorted.
    func collect(atLeast threshold: Float) -> (ids: [Int32], scores: [Float]) {
        var ids = [Int32](), scores = [Float]()
        scan(from: threshold, below: .infinity) { index, score in
            ids.append(Int32(truncatingIfNeeded: index))
            scores.append(score)
        }
        return (ids, scores)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Android)
import Android
#elseif canImport(Darwin)
import Darwin
#endif

extension Sampler {
    /// The log-probability of `token` and the `top` most likely tokens (most likely first, lower id first on ties;
    /// -inf tokens never listed) under the distribution this sampler draws from before truncation: penalties applied
    /// to `logits`, divided by the temperature (1 when greedy), log-softmax (computed in double precision). With
    /// `raw`, the log-softmax of `logits` themselves. See `TokenLogprob`.
    func logprob<C: Collection>(of token: Int32, in logits: C, history: [Int32], top: Int, raw: Bool) -> TokenLogprob
    where C.Element == Float {
        if let result = logits.withContiguousStorageIfAvailable({ logprob(of: token, buffer: $0, history: history, top: top, raw: raw) }) {
            return result
        }
        let copy = Array(logits)
        return copy.withUnsafeBufferPointer { logprob(of: token, buffer: $0, history: history, top: top, raw: raw) }
    }

    private func logprob(of token: Int32, buffer: UnsafeBufferPointer<Float>, history: [Int32], top: Int, raw: Bool) -> TokenLogprob {
        let temperature = raw || parameters.temperature == 0 ? 1 : Double(parameters.temperature)
        // The scores once, in double precision: penalized, divided by the temperature.
        var scores = [Double](repeating: 0, count: buffer.count)
        var maximum = -Double.infinity
        for index in 0..<buffer.count {
            let value = Double(buffer[index]) / temperature
            scores[index] = value
            if value > maximum { maximum = value }
        }
        if !raw {
            for (index, value) in penaltyOverrides(buffer, history: history) {
                scores[index] = Double(value) / temperature
            }
            maximum = scores.reduce(-Double.infinity) { $1 > $0 ? $1 : $0 }
        }
        guard maximum > -.infinity else { return TokenLogprob(token: token, logprob: -.infinity) }
        var total = 0.0
        for value in scores where value > -.infinity { total += exp(value - maximum) }
        let normalizer = maximum + log(total)
        var best: [(index: Int, score: Double)] = []
        if top > 0 {
            best.reserveCapacity(top + 1)
            for (index, value) in scores.enumerated() where value > -.infinity {  // NaN and -inf are never listed
                if best.count == top, let last = best.last, value <= last.score { continue }
                var at = best.count
                while at > 0, best[at - 1].score < value { at -= 1 }
                best.insert((index, value), at: at)
                if best.count > top { best.removeLast() }
            }
        }
        let chosen = Int(token) >= 0 && Int(token) < buffer.count ? Float(scores[Int(token)] - normalizer) : -.infinity
        return TokenLogprob(token: token, logprob: chosen,
                            top: best.map { TopLogprob(token: Int32($0.index), logprob: Float($0.score - normalizer)) })
    }
}
