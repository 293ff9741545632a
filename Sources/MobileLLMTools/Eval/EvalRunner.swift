import Foundation
import MobileLLM

/// One sample's outcome.
public struct EvalSampleResult: Sendable, Equatable, Encodable {
    /// The sampling seed used (`base seed + sample index`).
    public let seed: UInt64
    /// The extracted answer (see `AnswerExtractor`), nil when the response has none.
    public let answer: String?
    /// The extraction rule that found it.
    public let method: AnswerExtractor.Method?
    /// Whether the answer equals the reference (`AnswerGrader`).
    public let correct: Bool
    /// Tokens generated.
    public let tokens: Int
    /// Why generation stopped.
    public let stopReason: String
    /// The whole response, when asked for.
    public let response: String?

    enum CodingKeys: String, CodingKey {
        case seed, answer, method, correct, tokens, response
        case stopReason = "stop_reason"
    }

    /// Writes every field; `answer` and `method` as null when there is no answer, `response` only when kept.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(seed, forKey: .seed)
        try container.encode(answer, forKey: .answer)  // null when there is no answer
        try container.encode(method?.rawValue, forKey: .method)
        try container.encode(correct, forKey: .correct)
        try container.encode(tokens, forKey: .tokens)
        try container.encode(stopReason, forKey: .stopReason)
        try container.encodeIfPresent(response, forKey: .response)
    }
}

/// One question's outcome: a line of `eval --output`.
public struct EvalItemResult: Sendable, Equatable, Encodable {
    /// The item's id.
    public let id: String
    /// The question.
    public let question: String
    /// The reference answer.
    public let reference: String
    /// Each sample, in order.
    public let samples: [EvalSampleResult]
    /// How many samples are correct.
    public var correctSamples: Int { samples.filter(\.correct).count }

    enum CodingKeys: String, CodingKey {
        case id, question, reference, samples
        case correctSamples = "correct_samples"
    }

    /// Writes the fields and `correct_samples`.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(question, forKey: .question)
        try container.encode(reference, forKey: .reference)
        try container.encode(samples, forKey: .samples)
        try container.encode(correctSamples, forKey: .correctSamples)
    }
}

/// The scores of a run. With K samples per question and c_i correct samples for question i of N:
/// - `accuracy`: the fraction of questions whose first sample is correct — what the Qwen2.5-Math harness reports as
///   `acc` (the first column of its score matrix); with K = 1 all three numbers are the same;
/// - `passAt1`: mean over questions of c_i / K, the unbiased pass@1 estimate from K samples;
/// - `passAtK`: the fraction of questions with at least one correct sample (pass@K).
public struct EvalSummary: Sendable, Equatable, Encodable {
    /// The benchmark.
    public let task: EvalTask
    /// Questions scored.
    public let items: Int
    /// Samples per question (K).
    public let samplesPerItem: Int
    /// See the type's documentation.
    public let accuracy: Double
    /// See the type's documentation.
    public let passAt1: Double
    /// See the type's documentation.
    public let passAtK: Double
    /// Questions whose first sample is correct.
    public let correctFirst: Int
    /// Correct samples over all questions.
    public let correctSamples: Int
    /// Samples whose response had no answer to extract.
    public let noAnswerSamples: Int
    /// Mean generated tokens per sample.
    public let meanTokens: Double
    /// How many samples stopped for each reason.
    public let stopReasons: [String: Int]

    enum CodingKeys: String, CodingKey {
        case task, items, accuracy
        case samplesPerItem = "samples_per_item"
        case passAt1 = "pass_at_1"
        case passAtK = "pass_at_k"
        case correctFirst = "correct_first"
        case correctSamples = "correct_samples"
        case noAnswerSamples = "no_answer_samples"
        case meanTokens = "mean_tokens"
        case stopReasons = "stop_reasons"
    }

    /// The summary of `results` (every item with `samples` samples).
    public init(task: EvalTask, samples: Int, results: [EvalItemResult]) {
        self.task = task
        items = results.count
        samplesPerItem = samples
        let n = Double(max(results.count, 1))
        correctFirst = results.filter { $0.samples.first?.correct ?? false }.count
        correctSamples = results.reduce(0) { $0 + $1.correctSamples }
        accuracy = Double(correctFirst) / n
        passAt1 = results.reduce(0.0) { $0 + Double($1.correctSamples) / Double(max($1.samples.count, 1)) } / n
        passAtK = Double(results.filter { $0.correctSamples > 0 }.count) / n
        let all = results.flatMap(\.samples)
        noAnswerSamples = all.filter { $0.answer == nil }.count
        meanTokens = Double(all.reduce(0) { $0 + $1.tokens }) / Double(max(all.count, 1))
        stopReasons = all.reduce(into: [:]) { $0[$1.stopReason, default: 0] += 1 }
    }
}

/// Where a run is, for progress display.
public struct EvalProgress: Sendable {
    /// Questions finished.
    public let completedItems: Int
    /// Questions in the run.
    public let totalItems: Int
    /// The sample being generated (0-based) of the current question.
    public let sample: Int
    /// Samples per question.
    public let samples: Int
    /// Tokens generated so far for the current sample.
    public let tokens: Int
    /// Questions finished whose first sample was correct.
    public let correctFirst: Int
}

/// Runs an evaluation: every item × every sample through an `AnswerSource`, each response scored.
public enum EvalRunner {
    /// Extracts the answer from `response` and compares it with `reference`.
    public static func score(response: String, reference: String) -> (extraction: AnswerExtractor.Extraction?, correct: Bool) {
        guard let extraction = AnswerExtractor.extract(from: response) else { return (nil, false) }
        return (extraction, AnswerGrader.isEquivalent(extraction.text, reference))
    }

    /// One sample's result: `response` scored against `item`'s reference (the one scoring rule of both paths).
    static func sampleResult(_ response: GeneratedResponse, item: EvalItem, seed: UInt64, includeResponses: Bool) -> EvalSampleResult {
        let (extraction, correct) = score(response: response.text, reference: item.reference)
        return EvalSampleResult(seed: seed, answer: extraction?.text, method: extraction?.method, correct: correct,
                                tokens: response.tokenCount, stopReason: response.stopReason,
                                response: includeResponses ? response.text : nil)
    }

    /// Runs `items` with `samples` samples each (sample k is sampled with seed `seed + k`, so sample 0 of any item is
    /// what `mobilellm generate --chat --seed <seed>` produces for its question). `onItem` receives each finished
    /// item, in item order (to write `--output` as it goes); `onProgress` is called as tokens arrive. Errors from the
    /// source or from `onItem` end the run.
    ///
    /// With `parallel` > 1 and a source that can batch (`BatchAnswerSource`), the samples of several questions
    /// generate together, at most `parallel` sequences at a time (a question's K samples join together, sharing one
    /// prefill of the question); every sample is what the one-at-a-time path generates for it (same seed), and the
    /// scoring is the same.
    public static func run(task: EvalTask, items: [EvalItem], source: AnswerSource, samples: Int, seed: UInt64,
                           includeResponses: Bool = false, parallel: Int = 1, onItem: (EvalItemResult) throws -> Void = { _ in },
                           onProgress: (EvalProgress) -> Void = { _ in }) throws -> EvalSummary {
        guard samples >= 1 else { throw MobileLLMError.invalidArgument(name: "samples", problem: "expected a count >= 1, found \(samples)") }
        guard parallel >= 1 else { throw MobileLLMError.invalidArgument(name: "parallel", problem: "expected a count >= 1, found \(parallel)") }
        if parallel > 1, let batched = source as? BatchAnswerSource {
            return try runBatched(task: task, items: items, source: batched, samples: samples, seed: seed, includeResponses: includeResponses,
                                  parallel: parallel, onItem: onItem, onProgress: onProgress)
        }
        var results: [EvalItemResult] = []
        var correctFirst = 0
        for item in items {
            var sampleResults: [EvalSampleResult] = []
            for sample in 0..<samples {
                let sampleSeed = seed &+ UInt64(sample)
                func progress(_ tokens: Int) {
                    onProgress(EvalProgress(completedItems: results.count, totalItems: items.count, sample: sample,
                                            samples: samples, tokens: tokens, correctFirst: correctFirst))
                }
                progress(0)
                let response = try source.respond(to: item, sample: sample, seed: sampleSeed, onToken: progress)
                sampleResults.append(sampleResult(response, item: item, seed: sampleSeed, includeResponses: includeResponses))
            }
            let result = EvalItemResult(id: item.id, question: item.question, reference: item.reference, samples: sampleResults)
            if result.samples.first?.correct == true { correctFirst += 1 }
            results.append(result)
            try onItem(result)
        }
        onProgress(EvalProgress(completedItems: results.count, totalItems: items.count, sample: samples - 1, samples: samples,
                                tokens: 0, correctFirst: correctFirst))
        return EvalSummary(task: task, samples: samples, results: results)
    }

    /// The batched path of `run`: responses arrive in any order; items are reported in order once all their samples
    /// are in.
    private static func runBatched(task: EvalTask, items: [EvalItem], source: BatchAnswerSource, samples: Int, seed: UInt64,
                                   includeResponses: Bool, parallel: Int, onItem: (EvalItemResult) throws -> Void,
                                   onProgress: (EvalProgress) -> Void) throws -> EvalSummary {
        var pending = [[EvalSampleResult?]](repeating: [EvalSampleResult?](repeating: nil, count: samples), count: items.count)
        var results: [EvalItemResult] = []
        var correctFirst = 0
        var tokens = 0
        func progress() {
            onProgress(EvalProgress(completedItems: results.count, totalItems: items.count, sample: 0, samples: samples,
                                    tokens: tokens, correctFirst: correctFirst))
        }
        progress()
        try source.respondAll(to: items, samples: samples, seed: seed, parallel: parallel, onResponse: { index, sample, response in
            let sampleSeed = seed &+ UInt64(sample)
            pending[index][sample] = sampleResult(response, item: items[index], seed: sampleSeed, includeResponses: includeResponses)
            // Report every item whose samples are all in, in item order.
            while results.count < items.count {
                let next = results.count
                let done = pending[next].compactMap { $0 }
                guard done.count == samples else { break }
                let item = items[next]
                let result = EvalItemResult(id: item.id, question: item.question, reference: item.reference, samples: done)
                pending[next] = []
                if result.samples.first?.correct == true { correctFirst += 1 }
                results.append(result)
                try onItem(result)
            }
            progress()
        }, onToken: {
            tokens += 1
            progress()
        })
        onProgress(EvalProgress(completedItems: results.count, totalItems: items.count, sample: samples - 1, samples: samples,
                                tokens: 0, correctFirst: correctFirst))
        return EvalSummary(task: task, samples: samples, results: results)
    }

    /// `value` as one line of JSON (keys sorted).
    public static func jsonLine<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
