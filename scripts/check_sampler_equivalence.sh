#!/usr/bin/env bash
# Randomized check, in an optimized build, that Sampler (Sources/MobileLLM/Generation/Sampler.swift) gives the same
# distributions (bit for bit) and sampled tokens as the sort-based sampler it replaced (ReferenceSampler in
# Tests/MobileLLMTests/SamplerReference.swift), over random vocabulary sizes (50 ... 151,936), logit shapes and
# parameters. Many more cases than the debug-build tests can afford. Exits 1 on any mismatch.
# Usage: scripts/check_sampler_equivalence.sh [seed] [cases]   (defaults: 1, 300)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$root/Sources/MobileLLM/Generation/Sampler.swift" "$work/Sampler.swift"
sed 's/^@testable import MobileLLM$//' "$root/Tests/MobileLLMTests/SamplerReference.swift" > "$work/Reference.swift"
cat > "$work/Stub.swift" <<'SWIFT'
public enum MobileLLMError: Error { case invalidArgument(name: String, problem: String) }
SWIFT
cat > "$work/main.swift" <<'SWIFT'
import Foundation

let arguments = CommandLine.arguments
var random = SeededGenerator(seed: arguments.count > 1 ? UInt64(arguments[1]) ?? 1 : 1)
let cases = arguments.count > 2 ? Int(arguments[2]) ?? 300 : 300
func uniform() -> Double { Double(random.next() >> 11) / Double(1 << 53) }
func normal() -> Float {
    Float((-2 * log(max(uniform(), 1e-300))).squareRoot() * cos(2 * Double.pi * uniform()))
}
func pick<T>(_ choices: [T]) -> T { choices[Int(random.next() % UInt64(choices.count))] }

var failures = 0
for index in 0..<cases {
    let vocabulary = pick([50, 1000, 5000, 32000, 128_256, 151_936])
    let spread = pick([0.5, 1, 2, 3, 5, 10] as [Float])
    var logits = (0..<vocabulary).map { _ in normal() * spread }
    let shape = random.next() % 6
    switch shape {
    case 1:  // a bulk with a few hundred tokens lifted far above it
        let lift = pick([5, 10, 20, 30] as [Float]), step = pick([0.01, 0.05, 0.2] as [Float])
        for rank in 0..<min(300, vocabulary) { logits[Int(random.next() % UInt64(vocabulary))] += lift - Float(rank) * step }
    case 2:  // coarse grid: many ties
        let grid = pick([0.125, 0.25, 1] as [Float])
        logits = logits.map { ($0 / grid).rounded() * grid }
    case 3:  // masked (-inf) and NaN entries
        for position in logits.indices {
            let roll = random.next() % 100
            if roll < 10 { logits[position] = -.infinity } else if roll == 10 { logits[position] = .nan }
        }
    case 4:  // one token above a third of the vocabulary at one value 9.5 lower (band sums near a power of two)
        let base = normal()
        for position in logits.indices where random.next() % 3 == 0 { logits[position] = base - 9.5 }
        logits[Int(random.next() % UInt64(vocabulary))] = base
    case 5:  // nearly flat
        logits = logits.map { $0 * 0.01 }
    default:
        break
    }
    let penalized = random.next() % 2 == 0
    let parameters = SamplingParameters(
        temperature: pick([0.05, 0.3, 0.6, 0.7, 0.8, 1.0, 1.2, 1.5, 2.5]), topK: pick([0, 0, 0, 1, 5, 20, 40, 100, 1000]),
        topP: pick([1, 1, 0.99, 0.95, 0.9, 0.8, 0.5, 0.1]), minP: pick([0, 0, 0.01, 0.05, 0.2]),
        repetitionPenalty: penalized ? pick([1.1, 1.3, 0.8]) : 1, frequencyPenalty: penalized ? pick([0, 0.2, -0.5]) : 0,
        presencePenalty: penalized ? pick([0, 0.1, 1]) : 0, penaltyWindow: penalized ? pick([nil, 16, 64]) : nil,
        seed: random.next())
    let history = (0..<200).map { _ in Int32(random.next() % UInt64(vocabulary)) }
    guard let sampler = try? Sampler(parameters) else { continue }
    let reference = ReferenceSampler(parameters)
    let ours = sampler.distribution(logits, history: history), theirs = reference.distribution(logits, history: history)
    let sameDistribution = ours.count == theirs.count && zip(ours, theirs).allSatisfy {
        $0.token == $1.token && $0.probability.bitPattern == $1.probability.bitPattern
    }
    var mine = sampler, original = reference
    let sameTokens = (0..<6).allSatisfy { _ in mine.sample(logits, history: history) == original.sample(logits, history: history) }
    if !sameDistribution || !sameTokens {
        failures += 1
        print("MISMATCH case \(index): vocabulary \(vocabulary), spread \(spread), shape \(shape), \(parameters)")
    }
}
print("\(cases) cases, \(failures) mismatches")
exit(failures == 0 ? 0 : 1)
SWIFT
swiftc -O -module-name SamplerCheck "$work/Sampler.swift" "$work/Stub.swift" "$work/Reference.swift" "$work/main.swift" -o "$work/check"
"$work/check" "$@"
