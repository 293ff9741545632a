import ArgumentParser
import Foundation
import MobileLLM
import MobileLLMTools

struct EvalCommand: ParsableCommand {
    /// --parallel's default: the batch size with the best aggregate decode rate measured on SmolLM2-135M Q4_1
    /// (`bench --batch N --depth 128 --gen-tokens 32 --repetitions 3`, 2 threads, exact activations, a quiet moment of
    /// a shared 2-core AMD EPYC): 1 → 28.3 tok/s, 4 → 51.2, 8 → 55.0, 16 → 55.5. 8 and 16 are equal within noise; 8
    /// holds half the KV caches and gives each sequence twice the rate.
    static let defaultParallel = 8

    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Score a model on GSM8K, MATH-500 or AIME the way MobileLLM-R1's evaluation does.",
        discussion: """
        Prompting (MobileLLM-R1's Qwen2.5-Math-based harness, prompt type "raw"): each question, trimmed, is the only \
        user message of the model's chat template, with the generation prompt; sampling at temperature 0.6, top-p \
        0.95, up to 30000 new tokens (fewer when the model's context is shorter). Sample k of every question uses seed \
        --seed + k, so sample 0 is what `generate --chat --seed S` gives.

        Extraction: the content of the last \\boxed{...} (a last box that never closes: the text after it); without \
        one, the text after "The answer is", else the last number. References: GSM8K the text after "####" (commas removed); MATH-500 "answer" (or the last \\boxed{} of \
        "solution"); AIME "answer".

        Equivalence (the harness's math_equal): both answers are normalized (\\dfrac→\\frac, \\left/\\right, \
        \\text{...} units, degrees, dollar and percent signs, thousands separators, "x =" prefixes, number words); \
        then equal text; or, for two plain numbers, a relative difference up to 1e-4 from the reference or from \
        reference ÷100 or ×100 (the harness's percentage rule); or equal tuples/intervals element by element (brackets \
        must match), unordered lists and sets, matrices entry by entry, equations up to a constant factor; or the \
        same value after parsing both as LaTeX/plain math (exact fractions, roots, π; relative 1e-4), or, with variables, the same \
        values at random points. Unlike the harness, interval brackets must match and lists of solutions are \
        compared as sets.

        Batching: with --parallel N (default \(EvalCommand.defaultParallel)), the K samples of a question are one \
        prefill forked K ways, and questions join the batch as earlier ones end, at most N sequences at a time (a \
        question with K > N samples runs alone). Each sample is what the one-at-a-time run (--parallel 1) generates \
        with its seed, and the scoring is the same.

        Scores: accuracy = share of questions whose first sample is correct (the harness's "acc"); pass@1 = mean over \
        questions of correct samples ÷ K; pass@K = share of questions with any correct sample. A progress bar goes to \
        stderr; --json prints the summary on stdout; --output writes one JSON line per question (id, question, \
        reference, and per sample: seed, answer, method, correct, tokens, stop_reason, and with \
        --include-responses the response).
        """
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .long, help: "The benchmark: gsm8k, math500 or aime.")
    var task: EvalTask

    @Option(name: .long, help: "The dataset as JSONL, one question per line.")
    var data: String

    @Option(name: .long, help: "Evaluate only the first N questions.")
    var limit: Int?

    @Option(name: .long, help: "Samples per question (K).")
    var samples: Int = 1

    @Option(name: .long, help: "Most new tokens per response.")
    var maxTokens: Int = 30000

    @Option(name: .long, help: "Sampling temperature (0: greedy).")
    var temperature: Float = 0.6

    @Option(name: .long, help: "Nucleus sampling threshold.")
    var topP: Float = 0.95

    @Option(name: .long, help: "Seed of sample 0; sample k uses seed + k.")
    var seed: UInt64 = 0

    @Option(name: .long, help: "Sequences generating at once: the K samples of a question (one shared prefill) and several questions run as one batch; 1 runs them one after another. The results are the same either way.")
    var parallel: Int = EvalCommand.defaultParallel

    @Option(name: .long, help: "Write one JSON line per question to this file.")
    var output: String?

    @Flag(name: .long, help: "Include each full response in --output.")
    var includeResponses = false

    @Flag(name: .long, help: "Print the summary as JSON on stdout.")
    var json = false

    @Option(name: .long, help: ArgumentHelp("Get the responses from an OpenAI-compatible server instead of a local model: its API base, e.g. http://127.0.0.1:8080/v1 (mobilellm serve, vLLM). Each question's K samples are one request with n = K and the seed.", valueName: "url"))
    var endpoint: String?

    @Option(name: .long, help: "With --endpoint: the bearer token the server wants.")
    var apiKey: String?

    @Option(name: .long, help: "With --endpoint: requests in flight at once (the server batches them).")
    var concurrency = 4

    @Option(name: .long, help: "With --endpoint: the model name sent in each request ('default' is whatever mobilellm serve serves).")
    var servedModel = "default"

    /// Scripted responses instead of a model (testing): rows {"id", "responses": [...]}.
    @Option(name: .long, help: .hidden)
    var responses: String?

    func validate() throws {
        if modelOptions.model != nil && responses != nil { throw ValidationError("--responses replaces the model; give --model or --responses, not both") }
        if endpoint != nil && (modelOptions.model != nil || responses != nil) {
            throw ValidationError("--endpoint replaces the model; give one of --model, --endpoint or --responses")
        }
        if endpoint == nil && apiKey != nil { throw ValidationError("--api-key needs --endpoint") }
        guard concurrency >= 1 && concurrency <= 256 else { throw ValidationError("--concurrency: expected 1...256, found \(concurrency)") }
        if let limit, limit < 1 { throw ValidationError("--limit: expected a count >= 1, found \(limit)") }
        guard samples >= 1 else { throw ValidationError("--samples: expected a count >= 1, found \(samples)") }
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens: expected a count >= 1, found \(maxTokens)") }
        guard parallel >= 1, parallel <= Session.batchLimit else {
            throw ValidationError("--parallel: expected 1...\(Session.batchLimit), found \(parallel)")
        }
    }

    func run() throws {
        var items = try EvalDataset.load(path: data, task: task)
        if let limit { items = Array(items.prefix(limit)) }
        let source: AnswerSource
        var parallel = self.parallel
        if let responses {
            source = try ScriptedAnswerSource(path: responses)
        } else if let endpoint {
            source = try EndpointAnswerSource(endpoint: endpoint, apiKey: apiKey, model: servedModel, maxTokens: maxTokens,
                                              sampling: SamplingParameters(temperature: temperature, topP: temperature == 0 ? 1 : topP, seed: seed),
                                              concurrency: concurrency)
            // The server batches; requests are sent `concurrency` at a time.
            parallel = concurrency > 1 ? max(2, concurrency) : 1
        } else {
            let loaded = try modelOptions.load()
            source = try ModelAnswerSource(model: loaded, maxTokens: maxTokens,
                                           sampling: SamplingParameters(temperature: temperature, topP: temperature == 0 ? 1 : topP, seed: seed),
                                           kvCacheType: modelOptions.kvCache)
        }
        let writer = try output.map { try OutputFileWriter(path: $0) }
        var bar = EvalProgressLine()
        let start = ContinuousClock.now
        let summary = try EvalRunner.run(task: task, items: items, source: source, samples: samples, seed: seed,
                                         includeResponses: includeResponses, parallel: parallel,
                                         onItem: { try writer?.write(try EvalRunner.jsonLine($0)) },
                                         onProgress: { bar.update($0) })
        bar.finish()
        let seconds = start.duration(to: .now).seconds
        if json {
            let settings = EvalSettings(data: data, model: endpoint ?? (responses == nil ? (try? resolvedModelPath(modelOptions.model)) : nil), maxTokens: maxTokens, temperature: temperature,
                                        topP: topP, seed: seed, limit: limit)
            emit(try EvalRunner.jsonLine(EvalReport(summary: summary, settings: settings, seconds: seconds)))
        } else {
            emit(describe(summary, seconds: seconds))
        }
    }

    /// The human-readable summary.
    private func describe(_ s: EvalSummary, seconds: Double) -> String {
        func percent(_ value: Double) -> String { String(format: "%.1f%%", value * 100) }
        let stops = s.stopReasons.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        var lines = [
            "\(s.task.rawValue): \(s.items) questions × \(s.samplesPerItem) sample\(s.samplesPerItem == 1 ? "" : "s") in \(String(format: "%.1f", seconds)) s",
            "accuracy  \(percent(s.accuracy)) (\(s.correctFirst)/\(s.items), first sample)",
            "pass@1    \(percent(s.passAt1)) (\(s.correctSamples)/\(s.items * s.samplesPerItem) samples)",
        ]
        if s.samplesPerItem > 1 { lines.append("pass@\(s.samplesPerItem)    \(percent(s.passAtK))") }
        lines.append("no answer \(s.noAnswerSamples) samples; mean \(String(format: "%.1f", s.meanTokens)) tokens; stopped: \(stops)")
        return lines.joined(separator: "\n")
    }
}

extension EvalTask: ExpressibleByArgument {}

/// The settings echoed in `eval --json`.
private struct EvalSettings: Encodable {
    let data: String
    let model: String?
    let maxTokens: Int
    let temperature: Float
    let topP: Float
    let seed: UInt64
    let limit: Int?

    enum CodingKeys: String, CodingKey {
        case data, model, temperature, seed, limit
        case maxTokens = "max_tokens"
        case topP = "top_p"
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(data, forKey: .data)
        try container.encode(model, forKey: .model)
        try container.encode(maxTokens, forKey: .maxTokens)
        try container.encode(Double("\(temperature)"), forKey: .temperature)  // 0.6, not 0.6000000238
        try container.encode(Double("\(topP)"), forKey: .topP)
        try container.encode(seed, forKey: .seed)
        try container.encode(limit, forKey: .limit)
    }
}

/// `eval --json`: the summary's fields, plus `settings` and `seconds`.
private struct EvalReport: Encodable {
    let summary: EvalSummary
    let settings: EvalSettings
    let seconds: Double

    enum CodingKeys: String, CodingKey { case settings, seconds }

    func encode(to encoder: Encoder) throws {
        try summary.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(settings, forKey: .settings)
        try container.encode(seconds, forKey: .seconds)
    }
}

/// Appends lines to a file as they come (so an interrupted run keeps what it finished).
private final class OutputFileWriter {
    private let handle: FileHandle
    private let path: String

    init(path: String) throws {
        self.path = path
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw MobileLLMError.io(path: path, reason: "cannot create the --output file")
        }
        self.handle = handle
    }

    func write(_ line: String) throws {
        do {
            try handle.write(contentsOf: Data((line + "\n").utf8))
        } catch {
            throw MobileLLMError.io(path: path, reason: "cannot write: \(error.localizedDescription)")
        }
    }

    deinit { try? handle.close() }
}

/// The progress line on stderr: redrawn in place on a terminal (at most ten times a second), one line per finished
/// question otherwise.
private struct EvalProgressLine {
    private let interactive = isatty(2) == 1
    private var lastDraw = ContinuousClock.now - .seconds(1)
    private var lastCompleted = 0
    private var drawn = false

    mutating func update(_ p: EvalProgress) {
        let accuracy = p.completedItems == 0 ? "-" : String(format: "%.1f%%", Double(p.correctFirst) / Double(p.completedItems) * 100)
        if !interactive {
            if p.completedItems > lastCompleted {
                lastCompleted = p.completedItems
                FileHandle.standardError.write(Data("eval: \(p.completedItems)/\(p.totalItems) questions, accuracy \(accuracy)\n".utf8))
            }
            return
        }
        let now = ContinuousClock.now
        guard now - lastDraw >= .milliseconds(100) || p.completedItems == p.totalItems else { return }
        lastDraw = now
        let width = 24
        let filled = p.totalItems == 0 ? width : p.completedItems * width / p.totalItems
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let sample = p.samples > 1 ? "  sample \(p.sample + 1)/\(p.samples)" : ""
        let line = "\r[\(bar)] \(p.completedItems)/\(p.totalItems)\(sample)  \(p.tokens) tokens  accuracy \(accuracy)\u{1B}[K"
        FileHandle.standardError.write(Data(line.utf8))
        drawn = true
    }

    func finish() {
        if drawn { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
