import ArgumentParser
import Foundation
import MobileLLM

/// Sampling options shared by `generate` and `chat`.
struct SamplingOptions: ParsableArguments {
    @Option(name: .long, help: "Sampling temperature (0 or absent: greedy).")
    var temperature: Float?

    @Option(name: .long, help: "Keep only the K most likely tokens (0: off).")
    var topK: Int = 0

    @Option(name: .long, help: "Nucleus sampling threshold (1: off).")
    var topP: Float = 1

    @Option(name: .long, help: "Drop tokens below P × the top probability (0: off).")
    var minP: Float = 0

    @Option(name: .long, help: "Repetition penalty as transformers applies it (1: off).")
    var repetitionPenalty: Float = 1

    @Option(name: .long, help: "Random seed; the same seed gives the same output.")
    var seed: UInt64?

    @Flag(name: .long, help: "Do not stop at end-of-sequence tokens.")
    var ignoreEos = false

    /// The sampler settings.
    var parameters: SamplingParameters {
        SamplingParameters(temperature: temperature ?? 0, topK: topK, topP: topP, minP: minP,
                           repetitionPenalty: repetitionPenalty, seed: seed)
    }

    /// Generation options producing at most `maxTokens` tokens.
    func generationOptions(maxTokens: Int) -> GenerationOptions {
        GenerationOptions(maxTokens: maxTokens, sampling: parameters, ignoreEOS: ignoreEos)
    }
}

/// Timing of one generation: prompt processing up to the first token, then decoding.
struct GenerationStats {
    /// Prompt tokens computed (fed) for this generation.
    var promptTokens: Int
    /// Tokens generated.
    var generatedTokens: Int
    /// From the start of prompt processing to the first generated token.
    var timeToFirstToken: Duration
    /// From the start of prompt processing to the end.
    var total: Duration

    /// Prompt tokens per second (nil when no time was measured).
    var promptRate: Double? {
        let time = timeToFirstToken.seconds
        return time > 0 && promptTokens > 0 ? Double(promptTokens) / time : nil
    }

    /// Generated tokens per second after the first (each needs one forward pass; nil with fewer than two).
    var decodeRate: Double? {
        let time = (total - timeToFirstToken).seconds
        return generatedTokens > 1 && time > 0 ? Double(generatedTokens - 1) / time : nil
    }

    /// Milliseconds to the first token.
    var firstTokenMilliseconds: Double { timeToFirstToken.seconds * 1000 }

    private static func rate(_ value: Double?) -> String { value.map { String(format: "%.1f tok/s", $0) } ?? "- tok/s" }

    /// "prompt: 42 tokens, 812.3 tok/s | generated: 64 tokens, 187.0 tok/s | first token: 51.7 ms"
    var line: String {
        "prompt: \(promptTokens) tokens, \(Self.rate(promptRate)) | generated: \(generatedTokens) tokens, "
            + "\(Self.rate(decodeRate)) | first token: \(String(format: "%.1f", firstTokenMilliseconds)) ms"
    }

    /// The same numbers as JSON members (rates and times to 3 decimals).
    var jsonMembers: [(key: String, value: TemplateValue)] {
        [(key: "prompt_tokens", value: .int(promptTokens)),
         (key: "prompt_tokens_per_second", value: .rounded(promptRate, places: 3)),
         (key: "generated_tokens", value: .int(generatedTokens)),
         (key: "decode_tokens_per_second", value: .rounded(decodeRate, places: 3)),
         (key: "time_to_first_token_ms", value: .rounded(firstTokenMilliseconds, places: 3))]
    }
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) * 1e-18
    }
}

/// Writes text to stdout at once (unbuffered), for streaming.
func writeOut(_ text: String) {
    if !text.isEmpty { FileHandle.standardOutput.write(Data(text.utf8)) }
}

/// Writes one line to stderr.
func writeErr(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// The printed text of one generation, as `generate` builds it from token ids: each token's piece (whole UTF-8
/// characters, special tokens left out) passes the stopper (stop strings, --stop-at-boxed) before it is shown.
/// Used by the single `generate` and by `generate --prompts-jsonl`, so both print the same text for the same tokens.
struct GeneratedText {
    private var detokenizer: StreamingDetokenizer?
    private var stopper: TextStopper
    /// Everything shown so far.
    private(set) var text = ""

    /// Text of `tokenizer` (nil: the model has no tokenizer, and there is no text) with `stopStrings` and, when
    /// `stopAtBoxed`, the first closed `\boxed{...}` ending it.
    init(tokenizer: Tokenizer?, stopStrings: [String], stopAtBoxed: Bool) {
        detokenizer = tokenizer?.makeStreamingDetokenizer(skipSpecial: true)
        stopper = TextStopper(stopStrings: stopStrings, stopAtBoxed: stopAtBoxed)
    }

    /// Whether there is text at all (the model has a tokenizer).
    var hasText: Bool { detokenizer != nil }

    /// Why the text ended early (a stop string or a closed box), nil while it goes on.
    var stopReason: TextStopper.Reason? { stopper.reason }

    /// Adds the next generated token; returns the text that can be shown now (possibly empty).
    mutating func push(_ token: Int32) -> String {
        guard detokenizer != nil else { return "" }
        let piece = (try? detokenizer?.push(token)) ?? ""
        let shown = stopper.push(piece)
        text += shown
        return shown
    }

    /// Ends the text after the last token: returns what was held back (incomplete characters, stop-string
    /// candidates) and can be shown now.
    mutating func finish() -> String {
        guard stopper.reason == nil, let rest = detokenizer?.flush() else { return "" }
        let shown = stopper.push(rest) + stopper.finish()
        text += shown
        return shown
    }
}

/// The `--model` / `--synthetic` rule of `bench` and `quantize`: exactly one of them, and a known synthetic shape.
func validateModelSource(model: String?, synthetic: String?) throws {
    guard (model == nil) != (synthetic == nil) else { throw ValidationError("give exactly one of --model or --synthetic") }
    if let synthetic, SyntheticModel(rawValue: synthetic) == nil {
        throw ValidationError("--synthetic: unknown shape \"\(synthetic)\" (known: \(SyntheticModel.allCases.map(\.rawValue).joined(separator: ", ")))")
    }
}
