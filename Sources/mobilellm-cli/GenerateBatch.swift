import Foundation
import MobileLLM
import MobileLLMTools

/// One checked line of `generate --prompts-jsonl`.
struct BatchRequest {
    /// 1-based line number in the file.
    let line: Int
    /// Prompt token ids (never empty, inside the vocabulary).
    let ids: [Int32]
    /// Sampling seed (the line's "seed", else --seed).
    let seed: UInt64?
    /// Most tokens to generate (the line's "max_tokens", else --max-tokens).
    let maxTokens: Int
}

extension GenerateCommand {
    /// Reads and checks every line of `path` (see the command's discussion) before anything runs: each line is
    /// tokenized, its token ids and numbers checked. Throws `invalidFile` naming "path:line" and the field.
    func readRequests(path: String, model: Model, tokenizer: Tokenizer?) throws -> [BatchRequest] {
        let vocabulary = model.vocabularySize
        let known = ["prompt", "tokens", "seed", "max_tokens"]
        var requests: [BatchRequest] = []
        for (line, row) in try JSONLines.read(path: path) {
            let location = "\(path):\(line)"
            func bad(_ field: String, _ problem: String) -> MobileLLMError {
                MobileLLMError.invalidFile(path: location, field: field, problem: problem)
            }
            guard case let .object(members) = row else { throw bad("(line)", "not a JSON object") }
            if let unknown = members.first(where: { !known.contains($0.key) }) {
                throw bad(unknown.key, "unknown field (expected \"prompt\" or \"tokens\", and optionally \"seed\" and \"max_tokens\")")
            }
            let ids: [Int32]
            switch (row["prompt"], row["tokens"]) {
            case (nil, nil), (.some, .some):
                throw bad("prompt", "expected exactly one of \"prompt\" (a string) or \"tokens\" (an array of token ids)")
            case let (.some(value), nil):
                guard case let .string(text) = value else { throw bad("prompt", "expected a string, found \(describe(value))") }
                guard tokenizer != nil else { throw bad("prompt", "the model has no tokenizer (tokenizer.json); give \"tokens\" instead") }
                ids = try textPromptIDs(text, model: model)
                guard !ids.isEmpty else { throw bad("prompt", "the prompt has no tokens") }
            case let (nil, .some(value)):
                guard case let .array(items) = value else { throw bad("tokens", "expected an array of token ids, found \(describe(value))") }
                guard !items.isEmpty else { throw bad("tokens", "needs at least one token id") }
                ids = try items.enumerated().map { index, item in
                    guard case let .int(id) = item else {
                        throw bad("tokens[\(index)]", "expected an integer token id, found \(describe(item))")
                    }
                    guard id >= 0, id < vocabulary else {
                        throw bad("tokens[\(index)]", "token id \(id) is outside the vocabulary (0..<\(vocabulary))")
                    }
                    return Int32(id)
                }
            }
            let seed = try row["seed"].map { value -> UInt64 in
                guard case let .int(number) = value, number >= 0 else {
                    throw bad("seed", "expected an integer >= 0, found \(describe(value))")
                }
                return UInt64(number)
            } ?? sampling.seed
            let lineMaxTokens = try row["max_tokens"].map { value -> Int in
                guard case let .int(number) = value, number >= 0 else {
                    throw bad("max_tokens", "expected an integer >= 0, found \(describe(value))")
                }
                return number
            } ?? maxTokens
            let room = capacity(promptCount: ids.count, maxTokens: lineMaxTokens, model: model)
            guard ids.count <= room else {
                throw bad(row["prompt"] != nil ? "prompt" : "tokens",
                          "the prompt has \(ids.count) tokens; the context holds \(room) (--context-length or the model's limit)")
            }
            requests.append(BatchRequest(line: line, ids: ids, seed: seed, maxTokens: lineMaxTokens))
        }
        return requests
    }

    /// `generate --prompts-jsonl`: every request through one `BatchGenerator`, at most --parallel at a time, one
    /// JSON object per request on stdout in input order (each printed as soon as it and all before it are done).
    ///
    /// The control options (--reasoning-*, --grammar/--json-schema, --logit-bias, --ban, --logprobs) apply to every
    /// line; reasoning tracking is on for a line when a reasoning option is given or its prompt opens a thought.
    func runBatch(path: String, model: Model, tokenizer: Tokenizer?, grammar: Grammar?) throws {
        let requests = try readRequests(path: path, model: model, tokenizer: tokenizer)
        let batch = try BatchGenerator(model: model)
        let clock = ContinuousClock()
        let start = clock.now

        /// A running request.
        struct Running {
            let index: Int
            let joined: ContinuousClock.Instant
            var firstToken: ContinuousClock.Instant?
            var text: GeneratedText
            /// With reasoning tracking: the engine's pieces instead of `text`.
            var channels: ChannelText?
        }
        var running: [Int: Running] = [:]
        var outputs = [String?](repeating: nil, count: requests.count)
        var printed = 0
        var next = 0
        var generated = 0

        func admit() throws {
            while next < requests.count, batch.activeCount < parallel {
                let request = requests[next]
                var options = try baseOptions(maxTokens: request.maxTokens, grammar: grammar)
                options.sampling.seed = request.seed
                options.reasoning = try control.reasoning(forPrompt: request.ids, tokenizer: tokenizer)
                let tracking = options.reasoning != nil
                if tracking { options.stopStrings = stop }
                let id = try batch.add(prompt: request.ids, options: options,
                                       contextLength: capacity(promptCount: request.ids.count, maxTokens: request.maxTokens, model: model),
                                       kvCacheType: modelOptions.kvCache, streamText: tracking)
                running[id] = Running(index: next, joined: clock.now,
                                      text: GeneratedText(tokenizer: tokenizer, stopStrings: stop, stopAtBoxed: stopAtBoxed),
                                      channels: tracking ? ChannelText(stopAtBoxed: stopAtBoxed) : nil)
                next += 1
            }
        }

        try admit()
        while batch.activeCount > 0 {
            for event in try batch.step() {
                switch event {
                case let .token(sequence, token, _, pieces):
                    guard var state = running[sequence] else { continue }
                    if state.firstToken == nil { state.firstToken = clock.now }
                    if state.channels != nil {
                        for piece in pieces { _ = state.channels?.push(piece) }
                        if state.channels?.boxClosed == true { batch.cancel(sequence) }
                    } else {
                        _ = state.text.push(token)
                        // A stop string or a closed box ends the text: the sequence stops before its next token, as
                        // the single `generate` stops when its callback declines.
                        if state.text.stopReason != nil { batch.cancel(sequence) }
                    }
                    running[sequence] = state
                case let .finished(sequence, _, restPieces, result):
                    guard var state = running.removeValue(forKey: sequence) else { continue }
                    let end = clock.now
                    let first = state.firstToken ?? end
                    let request = requests[state.index]
                    let stats = GenerationStats(promptTokens: request.ids.count, generatedTokens: result.tokens.count,
                                                timeToFirstToken: first - state.joined, total: end - state.joined)
                    if var channels = state.channels {
                        for piece in restPieces { _ = channels.push(piece) }
                        outputs[state.index] = jsonObject(tokens: result.tokens, text: channels.text,
                                                          stopReason: channels.stopReason(result.stopReason),
                                                          stats: stats, reasoning: channels.reasoning, answer: channels.answer,
                                                          reasoningTokens: result.reasoningTokenCount, events: result.events,
                                                          logprobs: result.logprobs, tokenizer: tokenizer)
                    } else {
                        _ = state.text.finish()
                        let stopReason = state.text.stopReason?.rawValue ?? result.stopReason.rawValue
                        outputs[state.index] = jsonObject(tokens: result.tokens, text: state.text.hasText ? state.text.text : nil,
                                                          stopReason: stopReason, stats: stats, answer: state.text.text,
                                                          logprobs: result.logprobs, tokenizer: tokenizer)
                    }
                    generated += result.tokens.count
                }
            }
            while printed < outputs.count, let line = outputs[printed] {
                emit(line)
                outputs[printed] = nil
                printed += 1
            }
            try admit()
        }
        let seconds = (clock.now - start).seconds
        let rate = seconds > 0 ? String(format: "%.1f", Double(generated) / seconds) : "-"
        writeErr("requests: \(requests.count), at most \(parallel) at a time | generated: \(generated) tokens in "
                 + String(format: "%.2f", seconds) + " s, \(rate) tok/s overall")
    }
}

/// A short description of a JSON value's type, for error messages.
private func describe(_ value: TemplateValue) -> String {
    switch value {
    case .null: return "null"
    case let .bool(flag): return "the boolean \(flag)"
    case let .int(number): return "the integer \(number)"
    case let .float(number): return "the number \(number)"
    case .string: return "a string"
    case .array: return "an array"
    case .object: return "an object"
    }
}
