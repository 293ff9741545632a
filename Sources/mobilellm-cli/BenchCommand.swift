import ArgumentParser
import CMobileLLMKernels
import Dispatch
import Foundation
import MobileLLM

/// `mobilellm bench`: prefill and decode speed, load time and peak memory, as JSON.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure prefill and decode speed, load time and peak memory.",
        discussion: """
        Loads --model (or builds --synthetic random weights with a real model's exact shapes), then per repetition \
        prefills --prompt-tokens tokens in a fresh session and decodes --gen-tokens tokens greedily. Reports the best \
        repetition: {"prefill_tok_s", "decode_tok_s", "weight_bytes_per_token", "load_ms", "peak_rss_bytes"}.
        Synthetic shapes: \(SyntheticModel.allCases.map(\.rawValue).joined(separator: ", ")).
        """
    )

    @Option(name: .long, help: "A model directory.")
    var model: String?

    @Option(name: .long, help: "Random weights with the shapes of a known model (see below).")
    var synthetic: String?

    @Option(name: .long, help: "Quantize the weights at load to this type: q4_0, q4_1, q5_0, q5_1, q8_0, q4_k, q5_k, q6_k, f16 (default: as stored).")
    var quant: QuantType?

    @Option(name: .long, help: "Compute threads.")
    var threads: Int?

    @Option(name: .long, help: "KV cache: f32, f16 or q8_0 (default: f32 for float weights, f16 for quantized).")
    var kvCache: KVCacheType?

    @Option(name: .long, help: "Quantized weights: exact (f32 activations) or int8 (integer dot products).")
    var activations: ActivationPrecision = .exact

    @Option(name: .long, help: "Prompt length for the prefill measurement.")
    var promptTokens: Int = 512

    @Option(name: .long, help: "Tokens to decode.")
    var genTokens: Int = 128

    @Option(name: .long, help: "Repetitions; the best is reported.")
    var repetitions: Int = 3

    @Flag(name: .long, help: "Print JSON on stdout.")
    var json = false

    @Flag(name: .long, help: "Also measure read bandwidth with the same threads and report the decode roofline fraction.")
    var measureBandwidth = false

    func validate() throws {
        guard (model == nil) != (synthetic == nil) else { throw ValidationError("give exactly one of --model or --synthetic") }
        if let synthetic, SyntheticModel(rawValue: synthetic) == nil {
            throw ValidationError("--synthetic: unknown shape \"\(synthetic)\" (known: \(SyntheticModel.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard promptTokens >= 1, genTokens >= 0, repetitions >= 1 else {
            throw ValidationError("--prompt-tokens must be >= 1, --gen-tokens >= 0 and --repetitions >= 1")
        }
    }

    func run() throws {
        let options = ModelLoadOptions(threadCount: threads, activationPrecision: activations, quantize: quant)
        let loadStart = DispatchTime.now().uptimeNanoseconds
        let loaded: Model
        if let synthetic, let shape = SyntheticModel(rawValue: synthetic) {
            loaded = try Model.synthetic(shape, options: options)
        } else {
            loaded = try Model(path: model ?? "", options: options)
        }
        let loadMilliseconds = Double(DispatchTime.now().uptimeNanoseconds - loadStart) / 1e6

        var generator = SystemRandomNumberGenerator()
        let prompt = (0..<promptTokens).map { _ in Int32.random(in: 0..<Int32(loaded.vocabularySize), using: &generator) }
        var bestPrefill = 0.0, bestDecode = 0.0
        for repetition in 0..<repetitions {
            let session = try loaded.makeSession(contextLength: min(loaded.configuration.maxPositions, promptTokens + genTokens + 1), kvCacheType: kvCache)
            let start = DispatchTime.now().uptimeNanoseconds
            var logits = try session.feed(prompt)
            let prefillSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            bestPrefill = max(bestPrefill, Double(promptTokens) / prefillSeconds)
            let decodeStart = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<genTokens {
                logits = try session.feed([Int32(Sampler.argmax(logits.last))])
            }
            let decodeSeconds = Double(DispatchTime.now().uptimeNanoseconds - decodeStart) / 1e9
            if genTokens > 0 { bestDecode = max(bestDecode, Double(genTokens) / decodeSeconds) }
            FileHandle.standardError.write(Data(String(format: "repetition %d: prefill %.1f tok/s, decode %.1f tok/s\n", repetition + 1,
                                                       Double(promptTokens) / prefillSeconds,
                                                       genTokens > 0 ? Double(genTokens) / decodeSeconds : 0).utf8))
        }
        let peak = peakResidentBytes()
        // Measured after the model runs, so its buffer does not count in peak RSS.
        let bandwidth = measureBandwidth ? measureReadBandwidth(threads: loaded.threadCount) : 0
        var fields: [(key: String, value: TemplateValue)] = [
            (key: "prefill_tok_s", value: .rounded(bestPrefill, places: 2)), (key: "decode_tok_s", value: .rounded(bestDecode, places: 2)),
            (key: "weight_bytes_per_token", value: .int(Int(loaded.weightBytesPerToken))),
            (key: "load_ms", value: .rounded(loadMilliseconds, places: 1)),
            (key: "peak_rss_bytes", value: .int(Int(peak))), (key: "threads", value: .int(loaded.threadCount)),
        ]
        let roofline = bandwidth > 0 ? bestDecode * Double(loaded.weightBytesPerToken) / bandwidth : 0
        if measureBandwidth {
            fields.append((key: "read_bandwidth_bytes_s", value: .int(Int(bandwidth.rounded()))))
            fields.append((key: "roofline_fraction", value: .rounded(roofline, places: 3)))
        }
        if json {
            emit(TemplateValue.object(fields).jsonText)
        } else {
            var line = String(format: "prefill %.1f tok/s, decode %.1f tok/s, %.1f MB weights/token, load %.0f ms, peak RSS %.1f MB",
                              bestPrefill, bestDecode, Double(loaded.weightBytesPerToken) / 1e6, loadMilliseconds, Double(peak) / 1e6)
            if measureBandwidth { line += String(format: ", read bandwidth %.1f GB/s, decode at %.0f%% of the roofline", bandwidth / 1e9, roofline * 100) }
            emit(line)
        }
    }
}

/// Best-of-5 read bandwidth (bytes/s) of `threads` threads streaming a 1 GiB buffer (larger than any cache).
func measureReadBandwidth(threads: Int) -> Double {
    let bytes = 1 << 30
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
    defer { buffer.deallocate() }
    memset(buffer, 1, bytes)
    let pool = ComputePool(threadCount: threads)
    nonisolated(unsafe) let base = UnsafeRawPointer(buffer)
    let chunk = 1 << 22
    var best = 0.0
    for _ in 0..<5 {
        let start = DispatchTime.now().uptimeNanoseconds
        pool.run(chunks: bytes / chunk) { index, _ in _ = mlk_read_probe(base + index * chunk, chunk) }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        best = max(best, Double(bytes) / seconds)
    }
    return best
}

/// The process's peak resident set (VmHWM) in bytes, or 0 where /proc is unavailable.
func peakResidentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let digits = line.filter(\.isNumber)
        return (Int(digits) ?? 0) * 1024
    }
    return 0
}
