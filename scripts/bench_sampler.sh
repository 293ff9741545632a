#!/usr/bin/env bash
# Times Sampler.sample on 128,256-entry logit vectors (µs per sampled token), without building the package:
# Sources/MobileLLM/Generation/Sampler.swift is compiled with -O together with a stand-in for MobileLLMError and a
# small driver. Usage: scripts/bench_sampler.sh [path/to/Sampler.swift]   (default: this checkout's)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
source_file="${1:-$root/Sources/MobileLLM/Generation/Sampler.swift}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$source_file" "$work/Sampler.swift"
cat > "$work/Stub.swift" <<'SWIFT'
public enum MobileLLMError: Error { case invalidArgument(name: String, problem: String) }
SWIFT
cat > "$work/main.swift" <<'SWIFT'
import Foundation

/// Box-Muller normal draws from the package's own generator, so every run sees the same logits.
func gaussian(_ count: Int, std: Float, seed: UInt64) -> [Float] {
    var generator = SeededGenerator(seed: seed)
    return (0..<count).map { _ in
        let u1 = Double(generator.next() >> 11 | 1) / Double(1 << 53)
        let u2 = Double(generator.next() >> 11) / Double(1 << 53)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)) * std
    }
}

let vocabulary = 128_256
let broad = gaussian(vocabulary, std: 3, seed: 1)
var peaked = gaussian(vocabulary, std: 2, seed: 2)
for index in 0..<400 { peaked[(index * 7919) % vocabulary] += 22 - Float(index) * 0.05 }
let history: [Int32] = (0..<300).map { Int32(($0 * 104_729) % vocabulary) }

func measure(_ name: String, _ logits: [Float], _ parameters: SamplingParameters, history: [Int32] = []) throws {
    var sampler = try Sampler(parameters)
    var checksum = 0
    for _ in 0..<20 { checksum &+= Int(sampler.sample(logits, history: history)) }  // warm-up
    let rounds = 200
    // Thread CPU time as well as wall time: on a shared machine the wall clock also counts other processes' turns.
    func cpu() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return Double(time.tv_sec) * 1e6 + Double(time.tv_nsec) / 1000
    }
    let start = DispatchTime.now().uptimeNanoseconds, startCPU = cpu()
    for _ in 0..<rounds { checksum &+= Int(sampler.sample(logits, history: history)) }
    let elapsedCPU = (cpu() - startCPU) / Double(rounds)
    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1000 / Double(rounds)
    let kept = sampler.distribution(logits, history: history).count
    print(name.padding(toLength: 44, withPad: " ", startingAt: 0)
          + String(format: "%9.1f µs/token CPU %9.1f wall  (%d kept, checksum %d)", elapsedCPU, elapsed, kept, checksum))
}

print("vocabulary \(vocabulary); each line: mean over 200 sampled tokens after 20 warm-up ones")
try measure("greedy, gaussian std 3", broad, .greedy)
try measure("T0.6 top-p 0.95, gaussian std 3", broad, SamplingParameters(temperature: 0.6, topP: 0.95, seed: 1))
try measure("T0.6 top-p 0.95, peaked", peaked, SamplingParameters(temperature: 0.6, topP: 0.95, seed: 1))
try measure("T0.6 top-p 0.95 top-k 20, gaussian std 3", broad, SamplingParameters(temperature: 0.6, topK: 20, topP: 0.95, seed: 1))
try measure("T0.6 top-p 0.95 rep 1.1, peaked", peaked,
            SamplingParameters(temperature: 0.6, topP: 0.95, repetitionPenalty: 1.1, seed: 1), history: history)
try measure("T0.8 (defaults), peaked", peaked, SamplingParameters(seed: 1))
try measure("T1.0 min-p 0.05, gaussian std 3", broad, SamplingParameters(temperature: 1.0, minP: 0.05, seed: 1))
SWIFT
swiftc -O -module-name SamplerBench "$work/Sampler.swift" "$work/Stub.swift" "$work/main.swift" -o "$work/bench"
"$work/bench"
