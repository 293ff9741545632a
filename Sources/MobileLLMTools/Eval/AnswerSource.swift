import Foundation
import MobileLLM

/// One response to a question.
public struct GeneratedResponse: Sendable, Equatable {
    /// The response text (special tokens left out, surrounding whitespace trimmed).
    public var text: String
    /// Tokens generated (an end-of-sequence token that ended the response included).
    public var tokenCount: Int
    /// Why the response ended: `eos`, `max_tokens`, `context_full` (a model's), or what a script says.
    public var stopReason: String

    /// A response.
    public init(text: String, tokenCount: Int, stopReason: String) {
        self.text = text
        self.tokenCount = tokenCount
        self.stopReason = stopReason
    }
}

/// Where `eval` gets its responses: a model (`ModelAnswerSource`) or a script of canned responses
/// (`ScriptedAnswerSource`, which lets the whole pipeline run without a model).
public protocol AnswerSource: AnyObject {
    /// The response to `item` for sample `sample` (0-based), sampled with `seed`. `onToken` receives the number of
    /// tokens generated so far, for progress display.
    func respond(to item: EvalItem, sample: Int, seed: UInt64, onToken: (Int) -> Void) throws -> GeneratedResponse
}

/// A source that generates the samples of many questions together (`EvalRunner.run` with `parallel` > 1).
public protocol BatchAnswerSource: AnswerSource {
    /// Generates samples 0..<`samples` of every item (sample k with seed `seed + k`, each the response `respond`
    /// gives for it), keeping at most `parallel` sequences in flight (an item's samples join together, so one item
    /// with more samples than `parallel` runs alone). `onResponse(item index, sample, response)` is called as each
    /// finishes, in any order; `onToken` for each generated token (progress). Throws what generation throws, and what
    /// `onResponse` throws (the run ends).
    func respondAll(to items: [EvalItem], samples: Int, seed: UInt64, parallel: Int,
                    onResponse: (Int, Int, GeneratedResponse) throws -> Void, onToken: () -> Void) throws
}

/// Canned responses read from a JSONL file, one row per item:
/// `{"id": "...", "responses": ["text", {"text": "...", "tokens": 12, "stop_reason": "eos"}, ...]}`
/// — sample k gets the k-th response; a plain string counts its whitespace-separated words as tokens and stops
/// with `eos`.
public final class ScriptedAnswerSource: AnswerSource {
    private let path: String
    private var responses: [String: [GeneratedResponse]] = [:]

    /// Reads `path`; throws `invalidFile` naming the line and field of a malformed row.
    public init(path: String) throws {
        self.path = path
        for (line, row) in try JSONLines.read(path: path) {
            let location = "\(path):\(line)"
            guard let id = try JSONLines.text(row, location: location, keys: ["id"]) else {
                throw MobileLLMError.invalidFile(path: location, field: "id", problem: "missing; expected the item's id (a string or number)")
            }
            guard case let .array(list)? = row["responses"], !list.isEmpty else {
                throw MobileLLMError.invalidFile(path: location, field: "responses", problem: "missing or empty; expected an array of response strings or {\"text\", \"tokens\", \"stop_reason\"} objects")
            }
            responses[id] = try list.enumerated().map { index, entry in
                if case let .string(text) = entry {
                    return GeneratedResponse(text: text, tokenCount: text.split(whereSeparator: \.isWhitespace).count, stopReason: "eos")
                }
                guard case .object = entry, case let .string(text)? = entry["text"] else {
                    throw MobileLLMError.invalidFile(path: location, field: "responses[\(index)]", problem: "expected a string or an object with a \"text\" string")
                }
                let tokens = try JSONLines.text(entry, location: location, keys: ["tokens"]).flatMap { Int($0) } ?? text.split(whereSeparator: \.isWhitespace).count
                var stop = "eos"
                if case let .string(reason)? = entry["stop_reason"] { stop = reason }
                return GeneratedResponse(text: text, tokenCount: tokens, stopReason: stop)
            }
        }
    }

    /// The scripted response; throws `invalidFile` when the script has no row for the item or too few responses.
    public func respond(to item: EvalItem, sample: Int, seed: UInt64, onToken: (Int) -> Void) throws -> GeneratedResponse {
        guard let list = responses[item.id] else {
            throw MobileLLMError.invalidFile(path: path, field: "id", problem: "no row for item \"\(item.id)\"")
        }
        guard sample >= 0, sample < list.count else {
            throw MobileLLMError.invalidFile(path: path, field: "responses", problem: "item \"\(item.id)\" has \(list.count) scripted responses; sample \(sample + 1) was asked for (--samples)")
        }
        onToken(list[sample].tokenCount)
        return list[sample]
    }
}

/// Responses generated by a model, as MobileLLM-R1's evaluation prompts it: the question (trimmed) as the only user
/// message of the model's chat template with the generation prompt, tokenized without added special tokens (the
/// template writes BOS itself), sampled until an end-of-sequence token or the token limit, decoded without special
/// tokens.
public final class ModelAnswerSource: BatchAnswerSource {
    private let model: Model
    private let tokenizer: Tokenizer
    private let maxTokens: Int
    private let sampling: SamplingParameters
    private let kvCacheType: KVCacheType?
    private var session: Session?
    private var prompts: [String: [Int32]] = [:]

    /// A source generating up to `maxTokens` tokens per response (fewer when the model's context is shorter) with
    /// `sampling` (its seed is replaced per sample). Throws when the model has no tokenizer or bad sampling settings.
    public init(model: Model, maxTokens: Int, sampling: SamplingParameters, kvCacheType: KVCacheType? = nil) throws {
        try sampling.validate()
        guard maxTokens >= 1 else { throw MobileLLMError.invalidArgument(name: "maxTokens", problem: "expected a count >= 1, found \(maxTokens)") }
        self.model = model
        self.tokenizer = try model.tokenizer()
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.kvCacheType = kvCacheType
    }

    /// The prompt tokens for `item`.
    public func prompt(for item: EvalItem) throws -> [Int32] {
        if let cached = prompts[item.id] { return cached }
        let text = try model.applyChatTemplate([ChatMessage(role: "user", content: item.question)], addGenerationPrompt: true)
        let ids = tokenizer.encode(text, addSpecial: false, parseSpecial: true)
        prompts[item.id] = ids
        return ids
    }

    /// The prompt of `item` and the most new tokens it may generate; throws `invalidArgument` when the prompt does
    /// not fit the model's context.
    private func request(for item: EvalItem) throws -> (ids: [Int32], newTokens: Int) {
        let ids = try prompt(for: item)
        let limit = model.configuration.maxPositions
        guard !ids.isEmpty, ids.count < limit else {
            throw MobileLLMError.invalidArgument(name: "question", problem: "item \"\(item.id)\": the prompt has \(ids.count) tokens; the model's context holds \(limit)")
        }
        return (ids, min(maxTokens, limit - ids.count))
    }

    /// The response for generated `tokens` that stopped for `reason`.
    private func response(tokens: [Int32], stopReason: StopReason) throws -> GeneratedResponse {
        let text = try tokenizer.decode(tokens, skipSpecial: true)
        return GeneratedResponse(text: text.trimmingSpaces(), tokenCount: tokens.count, stopReason: stopReason.rawValue)
    }

    /// Generates the response (see the type's documentation). Throws `invalidArgument` when the prompt does not fit
    /// the model's context, or what generation throws.
    public func respond(to item: EvalItem, sample: Int, seed: UInt64, onToken: (Int) -> Void) throws -> GeneratedResponse {
        let (ids, newTokens) = try request(for: item)
        let active: Session
        if let current = session, current.capacity >= ids.count + newTokens {
            active = current
            active.reset()
        } else {
            session = nil  // release the old cache before allocating a larger one
            active = try model.makeSession(contextLength: ids.count + newTokens, kvCacheType: kvCacheType)
            session = active
        }
        var parameters = sampling
        parameters.seed = seed
        var count = 0
        let result = try active.generate(prompt: ids, options: GenerationOptions(maxTokens: newTokens, sampling: parameters)) { _ in
            count += 1
            onToken(count)
            return true
        }
        return try response(tokens: result.tokens, stopReason: result.stopReason)
    }

    /// Generates every item's samples through one `BatchGenerator` (see `BatchAnswerSource`): each item's prompt is
    /// fed once and its samples fork it (`BatchGenerator.add(prompt:samples:)`, sample k with seed + k), as many
    /// items at a time as `parallel` sequences allow; when one item's samples end, the next item joins.
    public func respondAll(to items: [EvalItem], samples: Int, seed: UInt64, parallel: Int,
                           onResponse: (Int, Int, GeneratedResponse) throws -> Void, onToken: () -> Void) throws {
        guard samples >= 1, parallel >= 1 else {
            throw MobileLLMError.invalidArgument(name: "parallel", problem: "expected samples and parallel >= 1, found \(samples) and \(parallel)")
        }
        session = nil  // the one-at-a-time session is not needed
        let batch = try BatchGenerator(model: model)
        var owners: [Int: (item: Int, sample: Int)] = [:]
        var next = 0
        func admit() throws {
            while next < items.count {
                let active = batch.activeCount
                guard active == 0 || active + samples <= parallel else { return }
                let (ids, newTokens) = try request(for: items[next])
                var parameters = sampling
                parameters.seed = seed
                let added = try batch.add(prompt: ids, samples: samples, options: GenerationOptions(maxTokens: newTokens, sampling: parameters),
                                          contextLength: ids.count + newTokens, kvCacheType: kvCacheType)
                for (sample, id) in added.enumerated() { owners[id] = (next, sample) }
                next += 1
            }
        }
        try admit()
        while batch.activeCount > 0 {
            for event in try batch.step() {
                switch event {
                case .token:
                    onToken()
                case let .finished(sequence, _, _, result):
                    guard let owner = owners.removeValue(forKey: sequence) else { continue }
                    try onResponse(owner.item, owner.sample, try response(tokens: result.tokens, stopReason: result.stopReason))
                }
            }
            try admit()
        }
    }
}
