import Foundation
import Hummingbird
import MobileLLM
import MobileLLMOpenAI

/// Turns one request's choice updates into OpenAI's response JSON: the whole body, or Server-Sent Events chunks.
struct ResponseWriter: Sendable {
    let server: OpenAIServer
    let request: CompletionRequest
    let id: String
    let created: Int

    init(server: OpenAIServer, request: CompletionRequest) {
        self.server = server
        self.request = request
        var random = SystemRandomNumberGenerator()
        id = (request.endpoint == .chat ? "chatcmpl-" : "cmpl-") + String(random.next() as UInt64, radix: 16)
        created = Int(Date().timeIntervalSince1970)
    }

    /// What is known of each choice so far.
    struct State {
        var results: [BatchResult?]
        /// Characters of text each choice has sent (completions' `text_offset`).
        var offsets: [Int]

        mutating func apply(_ update: ChoiceUpdate) {
            if case let .finished(choice, _, result) = update, results.indices.contains(choice) { results[choice] = result }
        }
    }

    func makeState() -> State {
        let count = request.prompts.count * request.samples
        return State(results: Array(repeating: nil, count: count), offsets: Array(repeating: 0, count: count))
    }

    private var isChat: Bool { request.endpoint == .chat }

    /// OpenAI's finish reason for a stop reason.
    static func finishReason(_ reason: StopReason) -> String {
        switch reason {
        case .endOfSequence, .stopString, .grammar, .callback: return "stop"
        case .maxTokens, .contextFull: return "length"
        case .cancelled: return "abort"
        }
    }

    /// A float as the shortest decimal that reads back as the same Float (logprobs), -9999 for -inf as OpenAI does.
    private func number(_ value: Float) -> TemplateValue {
        guard value.isFinite else { return .float(-9999) }
        return .float(Double("\(value)") ?? Double(value))
    }

    // MARK: - Bodies

    /// The usage object of finished results.
    private func usage(_ results: [BatchResult]) -> TemplateValue {
        let prompt = request.prompts.reduce(0) { $0 + $1.count }
        let completion = results.reduce(0) { $0 + $1.tokens.count }
        var members: [(key: String, value: TemplateValue)] = [
            (key: "prompt_tokens", value: .int(prompt)), (key: "completion_tokens", value: .int(completion)),
            (key: "total_tokens", value: .int(prompt + completion))]
        if isChat {
            members.append((key: "completion_tokens_details",
                            value: ["reasoning_tokens": .int(results.reduce(0) { $0 + $1.reasoningTokenCount })]))
        }
        return .object(members)
    }

    /// The non-streaming response body.
    func body(_ state: State) -> TemplateValue {
        let results = state.results.map { $0 ?? BatchResult(tokens: [], stopReason: .cancelled, promptTokenCount: 0, text: "") }
        let choices: [TemplateValue] = results.enumerated().map { index, result in
            var members: [(key: String, value: TemplateValue)] = [(key: "index", value: .int(index))]
            if isChat {
                let reasoning: TemplateValue = request.options.reasoning != nil && !result.reasoning.isEmpty ? .string(result.reasoning) : .null
                members.append((key: "message", value: ["role": "assistant", "content": .string(result.answer),
                                                        "reasoning_content": reasoning]))
                members.append((key: "logprobs", value: request.logprobs ? ["content": .array(result.logprobs.map(chatLogprob))] : .null))
            } else {
                members.append((key: "text", value: .string(result.text)))
                var offset = 0
                members.append((key: "logprobs", value: request.logprobs ? completionLogprobs(result.logprobs, offset: &offset) : .null))
            }
            members.append((key: "finish_reason", value: .string(Self.finishReason(result.stopReason))))
            // An extension: the choice's own token count (usage only has the sum over choices).
            members.append((key: "completion_tokens", value: .int(result.tokens.count)))
            return .object(members)
        }
        return ["id": .string(id), "object": isChat ? "chat.completion" : "text_completion", "created": .int(created),
                "model": .string(server.configuration.modelID), "choices": .array(choices), "usage": usage(results)]
    }

    /// Chat logprobs entry of one token.
    private func chatLogprob(_ entry: TokenLogprob) -> TemplateValue {
        let (text, bytes) = server.tokenText(entry.token)
        return ["token": .string(text), "logprob": number(entry.logprob), "bytes": .ints(bytes),
                "top_logprobs": .array(entry.top.map { top in
                    let (topText, topBytes) = server.tokenText(top.token)
                    return ["token": .string(topText), "logprob": number(top.logprob), "bytes": .ints(topBytes)]
                })]
    }

    /// Completions logprobs of tokens, whose text starts `offset` characters into the choice's text.
    private func completionLogprobs(_ entries: [TokenLogprob], offset: inout Int) -> TemplateValue {
        var tokens: [TemplateValue] = [], values: [TemplateValue] = [], tops: [TemplateValue] = [], offsets: [TemplateValue] = []
        for entry in entries {
            let text = server.tokenText(entry.token).text
            tokens.append(.string(text))
            values.append(number(entry.logprob))
            tops.append(.object(entry.top.map { (key: server.tokenText($0.token).text, value: number($0.logprob)) }))
            offsets.append(.int(offset))
            offset += text.count
        }
        return ["tokens": .array(tokens), "token_logprobs": .array(values), "top_logprobs": .array(tops), "text_offset": .array(offsets)]
    }

    // MARK: - Streams

    /// One Server-Sent Events chunk with `choices`.
    private func chunk(_ choices: [TemplateValue], usage: TemplateValue? = nil) -> String {
        var members: [(key: String, value: TemplateValue)] = [
            (key: "id", value: .string(id)), (key: "object", value: isChat ? "chat.completion.chunk" : "text_completion"),
            (key: "created", value: .int(created)), (key: "model", value: .string(server.configuration.modelID)),
            (key: "choices", value: .array(choices))]
        if let usage { members.append((key: "usage", value: usage)) }
        return "data: " + TemplateValue.object(members).jsonText + "\n\n"
    }

    /// A chunk's choice: a chat delta of `pieces` (answer to `content`, reasoning to `reasoning_content`; markers are
    /// dropped while reasoning is split) or a completion's text.
    private func choice(_ index: Int, pieces: [GeneratedPiece], logprobs: [TokenLogprob], role: Bool, finish: String?,
                        offset: inout Int) -> TemplateValue? {
        let finishValue: TemplateValue = finish.map { .string($0) } ?? .null
        if isChat {
            let splitting = request.options.reasoning != nil
            let content = pieces.filter { !splitting || $0.channel == .answer }.map(\.text).joined()
            let reasoning = splitting ? pieces.filter { $0.channel == .reasoning }.map(\.text).joined() : ""
            var delta: [(key: String, value: TemplateValue)] = []
            if role { delta.append((key: "role", value: "assistant")) }
            if !content.isEmpty || role { delta.append((key: "content", value: .string(content))) }
            if !reasoning.isEmpty { delta.append((key: "reasoning_content", value: .string(reasoning))) }
            let sendLogprobs = request.logprobs && !logprobs.isEmpty
            guard !delta.isEmpty || sendLogprobs || finish != nil else { return nil }
            return ["index": .int(index), "delta": .object(delta),
                    "logprobs": sendLogprobs ? ["content": .array(logprobs.map(chatLogprob))] : .null, "finish_reason": finishValue]
        }
        let text = pieces.map(\.text).joined()
        let sendLogprobs = request.logprobs && !logprobs.isEmpty
        guard !text.isEmpty || sendLogprobs || finish != nil else { return nil }
        let logprobValue = sendLogprobs ? completionLogprobs(logprobs, offset: &offset) : TemplateValue.null
        if !sendLogprobs { offset += text.count }
        return ["index": .int(index), "text": .string(text), "logprobs": logprobValue, "finish_reason": finishValue]
    }

    /// Streams every update of `scheduled` as chunks, then the usage chunk (when asked) and `[DONE]`.
    func stream(_ scheduled: ScheduledRequest, to writer: inout any ResponseBodyWriter) async throws {
        var state = makeState()
        func send(_ text: String, _ writer: inout any ResponseBodyWriter) async throws {
            try await writer.write(ByteBuffer(string: text))
        }
        if isChat {
            // Every choice opens with its role, as OpenAI's first chunk does.
            for index in state.results.indices {
                var offset = 0
                if let opening = choice(index, pieces: [], logprobs: [], role: true, finish: nil, offset: &offset) {
                    try await send(chunk([opening]), &writer)
                }
            }
        }
        for await update in scheduled.updates {
            switch update {
            case let .token(index, _, pieces):
                guard state.offsets.indices.contains(index) else { continue }
                let logprobs = pieces.compactMap(\.logprob)
                if let part = choice(index, pieces: pieces, logprobs: logprobs, role: false, finish: nil, offset: &state.offsets[index]) {
                    try await send(chunk([part]), &writer)
                }
            case let .finished(index, rest, result):
                guard state.offsets.indices.contains(index) else { continue }
                state.apply(update)
                if let part = choice(index, pieces: rest, logprobs: [], role: false, finish: nil, offset: &state.offsets[index]) {
                    try await send(chunk([part]), &writer)
                }
                if let last = choice(index, pieces: [], logprobs: [], role: false, finish: Self.finishReason(result.stopReason),
                                     offset: &state.offsets[index]) {
                    try await send(chunk([last]), &writer)
                }
            case let .failed(error):
                try await send("data: " + error.json.jsonText + "\n\n", &writer)
            }
        }
        if request.includeUsage {
            try await send(chunk([], usage: usage(state.results.compactMap { $0 })), &writer)
        }
        try await send("data: [DONE]\n\n", &writer)
    }
}
