import Foundation
import MobileLLM

/// Which endpoint a request came to.
public enum CompletionEndpoint: String, Sendable {
    /// `/v1/chat/completions`: messages rendered by the model's chat template.
    case chat = "chat.completions"
    /// `/v1/completions`: raw prompts.
    case completions
}

/// A validated `/v1/chat/completions` or `/v1/completions` request: the prompts as token ids and the generation
/// options every sample uses. Parsing needs the model (tokenizer, template, vocabulary, context), so every error a
/// request can cause is found here, before it joins the batch.
public struct CompletionRequest: Sendable {
    /// The endpoint.
    public var endpoint: CompletionEndpoint
    /// The prompts, as token ids (one for chat; completions may send several).
    public var prompts: [[Int32]]
    /// Samples per prompt (`n`).
    public var samples: Int
    /// Options of sample 0 (sample i uses the seed + i).
    public var options: GenerationOptions
    /// Stream Server-Sent Events.
    public var stream: Bool
    /// Send a last chunk with the usage (`stream_options.include_usage`).
    public var includeUsage: Bool
    /// Report logprobs (chat `logprobs: true`, completions `logprobs: k`).
    public var logprobs: Bool
    /// Top alternatives per token.
    public var topLogprobs: Int

    /// Most samples one request may ask for.
    public static let maxSamples = 128
    /// Most stop strings.
    public static let maxStopStrings = 16

    /// Parses and validates `body` (the request's JSON) for `endpoint` against `model`: `servedID` is the model id
    /// the request's `model` must name (or `default`); `capacity` the KV positions each sequence may use.
    public init(endpoint: CompletionEndpoint, body: [UInt8], model: Model, servedID: String, capacity: Int) throws {
        let value: JSONValue
        do {
            value = try JSONValue.parse(body, path: "request body")
        } catch let MobileLLMError.invalidFile(_, _, problem) {
            throw APIError.invalid(nil, "the body is not valid JSON: \(problem)")
        }
        guard case let .object(fields) = value else {
            throw APIError.invalid(nil, "expected a JSON object as the body, found \(value.typeName)")
        }
        let reader = RequestFields(fields)
        self.endpoint = endpoint

        if let name = try reader.string("model"), name != servedID, name != "default" {
            throw APIError(status: 404, message: "the model '\(name)' does not exist; this server serves '\(servedID)' (or use 'default')",
                           type: "invalid_request_error", param: "model", code: "model_not_found")
        }
        let tokenizer: Tokenizer
        do {
            tokenizer = try model.tokenizer()
        } catch {
            throw APIError(status: 500, message: "the served model has no tokenizer", type: "server_error")
        }

        // Prompts.
        var reasoningFormat = "auto"
        if let format = try reader.string("reasoning_format") {
            guard ["auto", "none"].contains(format) else {
                throw APIError.invalid("reasoning_format", "expected \"auto\" or \"none\", found \(String(reflecting: format))")
            }
            reasoningFormat = format
        }
        switch endpoint {
        case .chat:
            let messages = try Self.messages(reader)
            let addGenerationPrompt = try reader.bool("add_generation_prompt") ?? true
            let continueFinal = try reader.bool("continue_final_message") ?? false
            if continueFinal && addGenerationPrompt && reader.has("add_generation_prompt") {
                throw APIError.invalid("continue_final_message", "continue_final_message needs add_generation_prompt false")
            }
            if continueFinal && messages.last?.role != "assistant" {
                throw APIError.invalid("continue_final_message", "the last message must be an assistant message to continue")
            }
            var text: String
            do {
                text = try model.applyChatTemplate(messages, addGenerationPrompt: addGenerationPrompt && !continueFinal)
            } catch {
                throw APIError.invalid("messages", "the chat template failed on these messages: \(error)")
            }
            if continueFinal, let last = messages.last {
                // The template closes the last message; continuing it means cutting the text right after its content.
                guard !last.content.isEmpty, let range = text.range(of: last.content, options: .backwards) else {
                    throw APIError.invalid("messages", "cannot continue the last assistant message: its content is empty or the template drops it")
                }
                text = String(text[..<range.upperBound])
            }
            prompts = [tokenizer.encode(text, addSpecial: false, parseSpecial: true)]
        case .completions:
            prompts = try Self.prompts(reader, tokenizer: tokenizer, vocabulary: model.vocabularySize)
        }
        for (index, prompt) in prompts.enumerated() {
            let param = endpoint == .chat ? "messages" : "prompt"
            guard !prompt.isEmpty else { throw APIError.invalid(param, "prompt \(index) has no tokens") }
            guard prompt.count < capacity else {
                throw APIError.invalid(param, "the prompt has \(prompt.count) tokens; the context holds \(capacity) (at least one must be left to generate)",
                                       code: "context_length_exceeded")
            }
        }

        // Sampling.
        var sampling = SamplingParameters(temperature: 1, topK: 0, topP: 1, minP: 0)
        if let temperature = try reader.number("temperature", in: 0...2) { sampling.temperature = Float(temperature) }
        if let topP = try reader.number("top_p", in: 0...1) {
            guard topP > 0 else { throw APIError.invalid("top_p", "expected a number in (0, 1], found 0") }
            sampling.topP = Float(topP)
        }
        // -1 and 0 both mean no limit (vLLM takes -1).
        if let topK = try reader.integer("top_k", in: -1...Int(Int32.max)) { sampling.topK = max(0, topK) }
        if let minP = try reader.number("min_p", in: 0...1) { sampling.minP = Float(minP) }
        if let penalty = try reader.number("presence_penalty", in: -2...2) { sampling.presencePenalty = Float(penalty) }
        if let penalty = try reader.number("frequency_penalty", in: -2...2) { sampling.frequencyPenalty = Float(penalty) }
        if let penalty = try reader.number("repetition_penalty", in: 0...10) {
            guard penalty > 0 else { throw APIError.invalid("repetition_penalty", "expected a number > 0, found 0") }
            sampling.repetitionPenalty = Float(penalty)
        }
        if let seed = try reader.integer("seed", in: Int.min...Int.max) { sampling.seed = UInt64(bitPattern: Int64(seed)) }

        var options = GenerationOptions(maxTokens: capacity, sampling: sampling)
        let maxTokens = try reader.integer("max_completion_tokens", in: 0...Int(Int32.max)) ?? reader.integer("max_tokens", in: 0...Int(Int32.max))
        if let maxTokens { options.maxTokens = maxTokens }
        samples = try reader.integer("n", in: 1...Self.maxSamples) ?? 1
        options.ignoreEOS = try reader.bool("ignore_eos") ?? false

        // Stop strings.
        switch fields["stop"] {
        case nil, .null?: break
        case let .string(stop)?:
            guard !stop.isEmpty else { throw APIError.invalid("stop", "expected a non-empty string") }
            options.stopStrings = [stop]
        case let .array(items)?:
            guard items.count <= Self.maxStopStrings else {
                throw APIError.invalid("stop", "expected at most \(Self.maxStopStrings) stop strings, found \(items.count)")
            }
            options.stopStrings = try items.enumerated().map { index, item in
                guard case let .string(stop) = item, !stop.isEmpty else {
                    throw APIError.invalid("stop[\(index)]", "expected a non-empty string, found \(item.typeName)")
                }
                return stop
            }
        case let other?:
            throw APIError.invalid("stop", "expected a string or an array of strings, found \(other.typeName)")
        }

        // Log-probabilities.
        stream = try reader.bool("stream") ?? false
        includeUsage = false
        if let streamOptions = try reader.object("stream_options") {
            includeUsage = try RequestFields(streamOptions, prefix: "stream_options.").bool("include_usage") ?? false
        }
        switch endpoint {
        case .chat:
            logprobs = try reader.bool("logprobs") ?? false
            topLogprobs = try reader.integer("top_logprobs", in: 0...20) ?? 0
            if topLogprobs > 0 && !logprobs {
                throw APIError.invalid("top_logprobs", "top_logprobs needs logprobs: true")
            }
        case .completions:
            let count = try reader.integer("logprobs", in: 0...20)
            logprobs = count != nil
            topLogprobs = count ?? 0
            if try reader.bool("echo") == true {
                throw APIError.invalid("echo", "echo is not supported")
            }
        }
        options.logprobs = logprobs ? topLogprobs : nil

        // Logit bias: {"token id": bias}.
        if let bias = try reader.object("logit_bias") {
            guard bias.count <= 4096 else { throw APIError.invalid("logit_bias", "expected at most 4096 entries, found \(bias.count)") }
            for (key, value) in bias {
                guard let id = Int32(key), id >= 0, Int(id) < model.vocabularySize else {
                    throw APIError.invalid("logit_bias", "keys must be token ids in 0..<\(model.vocabularySize), found \(String(reflecting: key))")
                }
                guard case let .number(number) = value, number.isFinite, (-100...100).contains(number) else {
                    throw APIError.invalid("logit_bias.\(key)", "expected a number in -100...100, found \(value.typeName)")
                }
                options.logitBias[id] = number <= -100 ? -.infinity : Float(number)
            }
        }

        // Constrained output.
        if let format = try reader.object("response_format") {
            let formatFields = RequestFields(format, prefix: "response_format.")
            switch try formatFields.string("type") {
            case "text"?: break
            case "json_object"?:
                options.grammar = try Self.compile(schema: "{\"type\": \"object\"}")
            case "json_schema"?:
                guard let spec = try formatFields.object("json_schema") else {
                    throw APIError.invalid("response_format.json_schema", "missing; expected {\"name\", \"schema\"}")
                }
                guard let schema = spec["schema"] else {
                    throw APIError.invalid("response_format.json_schema.schema", "missing; expected a JSON Schema object")
                }
                guard case .object = schema else {
                    throw APIError.invalid("response_format.json_schema.schema", "expected a JSON Schema object, found \(schema.typeName)")
                }
                // The schema's text with its members in the order sent (JSONValue's objects are unordered, and
                // the order of properties is the order the constrained output writes them).
                let ordered = try? TemplateValue.parse(body, path: "request body")
                guard let schemaText = ordered?.member("response_format")?.member("json_schema")?.member("schema")?.jsonText else {
                    throw APIError.invalid("response_format.json_schema.schema", "expected a JSON Schema object")
                }
                options.grammar = try Self.compile(schema: schemaText)
            case let other:
                throw APIError.invalid("response_format.type", "expected \"text\", \"json_object\" or \"json_schema\", found \(other.map { String(reflecting: $0) } ?? "nothing")")
            }
        }

        // Reasoning: tracked unless reasoning_format is "none" (a prompt that ends inside <think> starts in it).
        let budget = try reader.integer("reasoning_budget", in: -1...Int(Int32.max))
        if reasoningFormat == "auto" {
            options.reasoning = ReasoningOptions(budget: budget.flatMap { $0 < 0 ? nil : $0 })
        } else if let budget, budget >= 0 {
            throw APIError.invalid("reasoning_budget", "a reasoning budget needs reasoning_format \"auto\"")
        }
        // Special tokens' text stays out of the output (vLLM's skip_special_tokens, default true), unless a reasoning
        // marker is itself a special token (the split needs to see it).
        let markersAreSpecial = options.reasoning.map { reasoning in
            [reasoning.start, reasoning.end].contains { marker in
                tokenizer.encode(marker, addSpecial: false, parseSpecial: true).contains { tokenizer.isSpecial($0) }
            }
        } ?? false
        options.skipsSpecialText = try reader.bool("skip_special_tokens") ?? true
        if markersAreSpecial { options.skipsSpecialText = false }
        do {
            try options.sampling.validate()
        } catch {
            throw APIError(error)
        }
        self.options = options
    }

    /// The messages of a chat request.
    private static func messages(_ reader: RequestFields) throws -> [ChatMessage] {
        guard let value = reader.fields["messages"] else {
            throw APIError.invalid("messages", "missing; expected an array of {\"role\", \"content\"} objects")
        }
        guard case let .array(items) = value, !items.isEmpty else {
            throw APIError.invalid("messages", "expected a non-empty array of {\"role\", \"content\"} objects, found \(value == .array([]) ? "an empty array" : value.typeName)")
        }
        return try items.enumerated().map { index, item in
            let at = "messages[\(index)]"
            guard case let .object(message) = item else {
                throw APIError.invalid(at, "expected an object with \"role\" and \"content\", found \(item.typeName)")
            }
            let fields = RequestFields(message, prefix: at + ".")
            guard let role = try fields.string("role") else { throw APIError.invalid(at + ".role", "missing; expected a role") }
            guard ["system", "developer", "user", "assistant", "tool"].contains(role) else {
                throw APIError.invalid(at + ".role", "expected system, developer, user, assistant or tool, found \(String(reflecting: role))")
            }
            let content: String
            switch message["content"] {
            case let .string(text)?: content = text
            case nil, .null?:
                guard role == "assistant" else { throw APIError.invalid(at + ".content", "missing; expected a string") }
                content = ""
            case let .array(parts)?:
                content = try parts.enumerated().map { partIndex, part in
                    let partAt = "\(at).content[\(partIndex)]"
                    guard case let .object(fields) = part, case .string("text")? = fields["type"] else {
                        throw APIError.invalid(partAt, "expected a {\"type\": \"text\", \"text\": ...} part (only text is supported)")
                    }
                    guard case let .string(text)? = fields["text"] else {
                        throw APIError.invalid(partAt + ".text", "missing; expected a string")
                    }
                    return text
                }.joined()
            case let other?:
                throw APIError.invalid(at + ".content", "expected a string or an array of text parts, found \(other.typeName)")
            }
            // developer is OpenAI's newer name for system.
            let reasoning = try fields.string("reasoning_content")
            return ChatMessage(role: role == "developer" ? "system" : role, content: content, reasoningContent: reasoning)
        }
    }

    /// The prompts of a completions request: a string, a token array, or an array of either.
    private static func prompts(_ reader: RequestFields, tokenizer: Tokenizer, vocabulary: Int) throws -> [[Int32]] {
        func tokens(_ items: [JSONValue], at: String) throws -> [Int32] {
            try items.enumerated().map { index, item in
                guard case let .number(number) = item, number.rounded() == number, number >= 0, number < Double(vocabulary) else {
                    throw APIError.invalid("\(at)[\(index)]", "expected a token id in 0..<\(vocabulary)")
                }
                return Int32(number)
            }
        }
        func text(_ prompt: String) -> [Int32] { tokenizer.encode(prompt, addSpecial: true, parseSpecial: true) }
        switch reader.fields["prompt"] {
        case let .string(prompt)?:
            return [text(prompt)]
        case let .array(items)? where !items.isEmpty:
            if items.allSatisfy({ if case .number = $0 { return true } else { return false } }) {
                return [try tokens(items, at: "prompt")]
            }
            guard items.count <= 64 else { throw APIError.invalid("prompt", "expected at most 64 prompts, found \(items.count)") }
            return try items.enumerated().map { index, item in
                switch item {
                case let .string(prompt): return text(prompt)
                case let .array(ids): return try tokens(ids, at: "prompt[\(index)]")
                default: throw APIError.invalid("prompt[\(index)]", "expected a string or an array of token ids, found \(item.typeName)")
                }
            }
        case nil:
            throw APIError.invalid("prompt", "missing; expected a string or an array of token ids")
        case let other?:
            throw APIError.invalid("prompt", "expected a string, an array of token ids or an array of prompts, found \(other.typeName)")
        }
    }

    /// Compiles a JSON Schema constraint, reporting the grammar engine's error as the client's.
    private static func compile(schema: String) throws -> Grammar {
        do {
            return try Grammar(jsonSchema: schema)
        } catch {
            throw APIError(error)
        }
    }
}

/// Typed access to a JSON object's members, each error naming the member (with `prefix`) and what was expected.
struct RequestFields {
    let fields: [String: JSONValue]
    let prefix: String

    init(_ fields: [String: JSONValue], prefix: String = "") {
        self.fields = fields
        self.prefix = prefix
    }

    func has(_ key: String) -> Bool { fields[key] != nil }

    private func fail(_ key: String, _ expected: String, _ value: JSONValue) -> APIError {
        .invalid(prefix + key, "\(prefix + key): expected \(expected), found \(value.typeName)")
    }

    /// A string member; nil when absent or null.
    func string(_ key: String) throws -> String? {
        switch fields[key] {
        case nil, .null?: return nil
        case let .string(text)?: return text
        case let other?: throw fail(key, "a string", other)
        }
    }

    /// A boolean member; nil when absent or null.
    func bool(_ key: String) throws -> Bool? {
        switch fields[key] {
        case nil, .null?: return nil
        case let .bool(flag)?: return flag
        case let other?: throw fail(key, "true or false", other)
        }
    }

    /// A number member within `range`; nil when absent or null.
    func number(_ key: String, in range: ClosedRange<Double>) throws -> Double? {
        switch fields[key] {
        case nil, .null?: return nil
        case let .number(number)?:
            guard number.isFinite, range.contains(number) else {
                throw APIError.invalid(prefix + key, "\(prefix + key): expected a number in \(range.lowerBound)...\(range.upperBound), found \(number)")
            }
            return number
        case let other?: throw fail(key, "a number", other)
        }
    }

    /// An integer member within `range`; nil when absent or null.
    func integer(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        switch fields[key] {
        case nil, .null?: return nil
        case let .number(number)?:
            guard number.isFinite, number.rounded() == number, number >= Double(range.lowerBound),
                  number <= Double(range.upperBound), let value = Int(exactly: number), range.contains(value) else {
                throw APIError.invalid(prefix + key, "\(prefix + key): expected an integer in \(range.lowerBound)...\(range.upperBound), found \(number)")
            }
            return value
        case let other?: throw fail(key, "an integer", other)
        }
    }

    /// An object member; nil when absent or null.
    func object(_ key: String) throws -> [String: JSONValue]? {
        switch fields[key] {
        case nil, .null?: return nil
        case let .object(members)?: return members
        case let other?: throw fail(key, "an object", other)
        }
    }
}

extension TemplateValue {
    /// The value of object member `key` (nil for a non-object or a missing member).
    func member(_ key: String) -> TemplateValue? {
        guard case let .object(members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }
}
