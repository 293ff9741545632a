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
        prefills --prompt-tokens random tokens in a fresh session and decodes --gen-tokens tokens after them \
        (greedily, or sampled with --temperature/--top-p/--seed through the engine's Sampler; end-of-sequence tokens \
        do not stop it). Reports the best repetition: {"prefill_tok_s", "decode_tok_s", "weight_bytes_per_token", \
        "load_ms", "peak_rss_bytes", "threads", "batch", "per_sequence_decode_tok_s", "depth", \
        "kv_bytes_per_token"}.

        --depth D decodes after a D-token random context (prefilled untimed in its own session) instead of after the \
        prefill measurement's prompt; "depth" is the context decoding started from (--prompt-tokens without \
        --depth). "kv_bytes_per_token" is the K and V bytes one decoded token's attention reads, averaged over the \
        timed decode positions: layers × 2 × KV heads × head row bytes of the KV cache type × positions attended \
        (a chunked-attention layer attends only its chunk).

        --batch N decodes N sequences together through one BatchGenerator: each gets its own random context of \
        depth tokens (prefilled untimed), then only the batched decode steps are timed (every step one token per \
        sequence; sequence i samples with seed --seed + i). "decode_tok_s" is then the aggregate over the N \
        sequences and "per_sequence_decode_tok_s" = decode_tok_s / N. --batch, --depth and sampling combine. \

        --grammar FILE.gbnf or --json-schema FILE|JSON measures constrained decoding (a model with a tokenizer): the \
        decode runs twice through the generation loop from the same context, once free and once constrained \
        (restarting from the context whenever the grammar completes), and the JSON gains "constrained_decode_tok_s" \
        and "constrained_ratio" (best constrained / best free; "decode_tok_s" is then the free run through the same loop).

        --measure-bandwidth adds "read_bandwidth_bytes_s" and "roofline_fraction" = (weight_bytes_per_token / N + \
        kv_bytes_per_token) × decode_tok_s / bandwidth: the bytes a decode step must read (the weights once for all \
        N rows, each row its own KV), per token, at the measured rate, against the read bandwidth.

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

    @Option(name: .long, help: "Quantized weights: exact (f32 activations), int8 (integer dot products) or int16 (exact, 16-bit activations in prefill on AVX-512 VNNI) (default: the library's default).")
    var activations: ActivationPrecision?

    @Option(name: .long, help: "Prompt length for the prefill measurement.")
    var promptTokens: Int = 512

    @Option(name: .long, help: "Tokens to decode.")
    var genTokens: Int = 128

    @Option(name: .long, help: "Decode N sequences together (batched decoding); decode_tok_s is their aggregate.")
    var batch: Int?

    @Option(name: .long, help: "Decode after a context of D random tokens (prefilled untimed) instead of after the --prompt-tokens prompt.")
    var depth: Int?

    @Option(name: .long, help: "Sample the decoded tokens at this temperature (default: greedy).")
    var temperature: Float?

    @Option(name: .long, help: "Nucleus sampling threshold for sampled decoding (1: off).")
    var topP: Float = 1

    @Option(name: .long, help: "Sampling seed (sequence i of a batch uses seed + i; default: random).")
    var seed: UInt64?

    @OptionGroup var constraint: ConstraintOptions

    @Option(name: .long, help: "Repetitions; the best is reported.")
    var repetitions: Int = 3

    @Flag(name: .long, help: "Print JSON on stdout.")
    var json = false

    @Flag(name: .long, help: "Also measure read bandwidth with the same threads and report the decode roofline fraction.")
    var measureBandwidth = false

    func validate() throws {
        try validateModelSource(model: model, synthetic: synthetic)
        guard promptTokens >= 1, genTokens >= 0, repetitions >= 1 else {
            throw ValidationError("--prompt-tokens must be >= 1, --gen-tokens >= 0 and --repetitions >= 1")
        }
        if let batch, batch < 1 || batch > Session.batchLimit {
            throw ValidationError("--batch: expected 1...\(Session.batchLimit), found \(batch)")
        }
        if let depth, depth < 1 { throw ValidationError("--depth: expected a count >= 1, found \(depth)") }
        if constraint.isSet, batch != nil { throw ValidationError("--grammar/--json-schema measure single-sequence decoding: drop --batch") }
        do {
            try samplingParameters.validate()
        } catch let error as MobileLLMError {
            throw ValidationError("--temperature/--top-p: \(error.description)")
        }
    }

    /// The decode sampler's settings (greedy without --temperature).
    var samplingParameters: SamplingParameters {
        SamplingParameters(temperature: temperature ?? 0, topP: topP, seed: seed)
    }

    /// `count` random token ids of `model`'s vocabulary.
    private func randomTokens(_ count: Int, _ model: Model, _ generator: inout SystemRandomNumberGenerator) -> [Int32] {
        (0..<count).map { _ in Int32.random(in: 0..<Int32(model.vocabularySize), using: &generator) }
    }

    /// Decodes `genTokens` tokens on `session` (holding a context whose last logits are `logits`); returns seconds.
    private func decodeSingle(_ session: Session, logits: Logits) throws -> Double {
        var sampler = try Sampler(samplingParameters)
        var logits = logits
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<genTokens {
            logits = try session.feed([sampler.sample(logits.last, history: session.tokens)])
        }
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// Decodes `genTokens` tokens on `session` (holding a context) through `Session.generate`, free and then
    /// constrained by `grammar`, each from the same context (a generation the grammar completes early is restarted
    /// from it, seeded anew); returns both rates in tokens per second.
    private func decodeConstrained(_ session: Session, grammar: Grammar) throws -> (free: Double, constrained: Double) {
        let base = session.position
        // One-time costs stay out of the timing: loading the tokenizer and building the grammar's vocabulary trie.
        _ = try grammar.constraint(tokenizer: try session.model.tokenizer(), endTokens: Set(session.model.eosTokenIDs.map { Int32($0) }))
        func measure(_ grammar: Grammar?) throws -> Double {
            var produced = 0, seconds = 0.0, round: UInt64 = 0
            while produced < genTokens {
                var parameters = samplingParameters
                parameters.seed = seed.map { $0 &+ round }
                let options = GenerationOptions(maxTokens: genTokens - produced, sampling: parameters, ignoreEOS: grammar == nil,
                                                grammar: grammar)
                let start = DispatchTime.now().uptimeNanoseconds
                let result = try session.generate(prompt: [], options: options)
                seconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                produced += result.tokens.count
                try session.rewind(to: base)
                round += 1
                if result.tokens.isEmpty { break }
            }
            return seconds > 0 ? Double(produced) / seconds : 0
        }
        return (try measure(nil), try measure(grammar))
    }

    /// Decodes `genTokens` tokens on each of `sessions` together through one `BatchGenerator` (each continues from
    /// its context); returns seconds and the tokens produced.
    private func decodeBatch(_ sessions: [Session], model: Model) throws -> (seconds: Double, tokens: Int) {
        let generator = try BatchGenerator(model: model)
        for (index, session) in sessions.enumerated() {
            var parameters = samplingParameters
            parameters.seed = seed.map { $0 &+ UInt64(index) }
            try generator.add(session: session, prompt: [], options: GenerationOptions(maxTokens: genTokens, sampling: parameters, ignoreEOS: true))
        }
        var tokens = 0
        let start = DispatchTime.now().uptimeNanoseconds
        while generator.activeCount > 0 {
            for event in try generator.step() {
                if case .token = event { tokens += 1 }
            }
        }
        return (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, tokens)
    }

    func run() throws {
        var options = ModelLoadOptions(threadCount: threads, quantize: quant)
        if let activations { options.activationPrecision = activations }
        let loadStart = DispatchTime.now().uptimeNanoseconds
        let loaded: Model
        if let synthetic, let shape = SyntheticModel(rawValue: synthetic) {
            loaded = try Model.synthetic(shape, options: options)
        } else {
            loaded = try Model(path: model ?? "", options: options)
        }
        let loadMilliseconds = Double(DispatchTime.now().uptimeNanoseconds - loadStart) / 1e6

        var generator = SystemRandomNumberGenerator()
        let prompt = randomTokens(promptTokens, loaded, &generator)
        let sequences = batch ?? 1
        let contextTokens = depth ?? promptTokens
        guard contextTokens + genTokens + 1 <= loaded.configuration.maxPositions else {
            throw ValidationError("--depth/--prompt-tokens + --gen-tokens: \(contextTokens) + \(genTokens) positions exceed the model's context of \(loaded.configuration.maxPositions)")
        }
        var bestPrefill = 0.0, bestDecode = 0.0, bestConstrained = 0.0
        var kvType = KVCacheType.f32
        let grammar = try constraint.compiledGrammar()
        for repetition in 0..<repetitions {
            let session = try loaded.makeSession(contextLength: min(loaded.configuration.maxPositions, promptTokens + genTokens + 1), kvCacheType: kvCache)
            kvType = session.kvCacheType
            let start = DispatchTime.now().uptimeNanoseconds
            let logits = try session.feed(prompt)
            let prefillSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            bestPrefill = max(bestPrefill, Double(promptTokens) / prefillSeconds)

            // The contexts to decode from, prefilled untimed (the prefill session itself without --depth/--batch).
            var decodeRate = 0.0
            if batch == nil {
                var decodeSession = session, decodeLogits = logits
                if let depth {
                    decodeSession = try loaded.makeSession(contextLength: depth + genTokens + 1, kvCacheType: kvCache)
                    decodeLogits = try decodeSession.feed(randomTokens(depth, loaded, &generator))
                }
                if let grammar {
                    let (free, constrained) = try decodeConstrained(decodeSession, grammar: grammar)
                    decodeRate = free
                    bestConstrained = max(bestConstrained, constrained)
                } else {
                    let seconds = try decodeSingle(decodeSession, logits: decodeLogits)
                    if genTokens > 0 { decodeRate = Double(genTokens) / seconds }
                }
            } else {
                let sessions = try (0..<sequences).map { _ in
                    let context = try loaded.makeSession(contextLength: contextTokens + genTokens + 1, kvCacheType: kvCache)
                    _ = try context.feed(randomTokens(contextTokens, loaded, &generator), logits: .none)
                    return context
                }
                let (seconds, tokens) = try decodeBatch(sessions, model: loaded)
                if tokens > 0 { decodeRate = Double(tokens) / seconds }
            }
            bestDecode = max(bestDecode, decodeRate)
            FileHandle.standardError.write(Data(String(format: "repetition %d: prefill %.1f tok/s, decode %.1f tok/s%@\n", repetition + 1,
                                                       Double(promptTokens) / prefillSeconds, decodeRate,
                                                       sequences > 1 ? " (\(sequences) sequences)" : "").utf8))
        }
        // Decode positions: the single path feeds positions depth..<depth+G; the batched path recomputes the
        // context's last position first, so depth-1..<depth+G-1.
        let firstPosition = batch == nil ? contextTokens : contextTokens - 1
        let kvBytes = genTokens > 0
            ? (firstPosition..<(firstPosition + genTokens)).reduce(0.0) {
                $0 + Double(KVCache.bytesRead(configuration: loaded.configuration, type: kvType, position: $1))
            } / Double(genTokens)
            : 0
        // Best constrained over best free (each the best repetition, as every rate here).
        let bestRatio = bestDecode > 0 ? bestConstrained / bestDecode : 0
        let peak = peakResidentBytes()
        // Measured after the model runs, so its buffer does not count in peak RSS.
        let bandwidth = measureBandwidth ? measureReadBandwidth(threads: loaded.threadCount) : 0
        var fields: [(key: String, value: TemplateValue)] = [
            (key: "prefill_tok_s", value: .rounded(bestPrefill, places: 2)), (key: "decode_tok_s", value: .rounded(bestDecode, places: 2)),
            (key: "weight_bytes_per_token", value: .int(Int(loaded.weightBytesPerToken))),
            (key: "load_ms", value: .rounded(loadMilliseconds, places: 1)),
            (key: "peak_rss_bytes", value: .int(Int(peak))), (key: "threads", value: .int(loaded.threadCount)),
            (key: "batch", value: .int(sequences)),
            (key: "per_sequence_decode_tok_s", value: .rounded(bestDecode / Double(sequences), places: 2)),
            (key: "depth", value: .int(contextTokens)), (key: "kv_cache", value: .string(kvType.rawValue)),
            (key: "activations", value: .string(loaded.activationPrecision.rawValue)),
            (key: "kv_bytes_per_token", value: .int(Int(kvBytes.rounded()))),
            (key: "sampling", value: .string(temperature.map { $0 > 0 ? "temperature \($0), top-p \(topP)" : "greedy" } ?? "greedy")),
        ]
        let bytesPerToken = Double(loaded.weightBytesPerToken) / Double(sequences) + kvBytes
        let roofline = bandwidth > 0 ? bestDecode * bytesPerToken / bandwidth : 0
        if grammar != nil {
            fields.append((key: "constrained_decode_tok_s", value: .rounded(bestConstrained, places: 2)))
            fields.append((key: "constrained_ratio", value: .rounded(bestRatio, places: 3)))
        }
        if measureBandwidth {
            fields.append((key: "read_bandwidth_bytes_s", value: .int(Int(bandwidth.rounded()))))
            fields.append((key: "roofline_fraction", value: .rounded(roofline, places: 3)))
        }
        if json {
            emit(TemplateValue.object(fields).jsonText)
        } else {
            var line = String(format: "prefill %.1f tok/s, decode %.1f tok/s, %.1f MB weights/token, load %.0f ms, peak RSS %.1f MB",
                              bestPrefill, bestDecode, Double(loaded.weightBytesPerToken) / 1e6, loadMilliseconds, Double(peak) / 1e6)
            line += String(format: ", batch %d (%.1f tok/s each), depth %d (%.2f MB KV/token)", sequences, bestDecode / Double(sequences),
                           contextTokens, kvBytes / 1e6)
            if grammar != nil { line += String(format: ", constrained decode %.1f tok/s (%.3f of free)", bestConstrained, bestRatio) }
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
