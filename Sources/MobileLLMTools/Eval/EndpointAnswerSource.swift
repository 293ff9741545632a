import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import MobileLLM

/// Responses from an OpenAI-compatible server (`mobilellm serve`, vLLM, llama-server, …) through
/// `POST {endpoint}/chat/completions`: each question is one user message, the K samples of a question are one request
/// with `n = K` and `seed` (sample k uses seed + k on `mobilellm serve`, as in-process eval does), and up to
/// `concurrency` requests are in flight at once.
///
/// The request asks for `reasoning_format: "none"` (a `mobilellm serve` extension others ignore), so the content is
/// the whole generated text, as in-process eval scores it; a server that splits reasoning anyway has its
/// `reasoning_content` (or vLLM's `reasoning`) put back before the content, closed by `</think>`.
/// Immutable after init (its HTTP client is Sendable), so its request threads share it safely.
public final class EndpointAnswerSource: BatchAnswerSource, @unchecked Sendable {
    private let base: URL
    private let apiKey: String?
    private let modelName: String
    private let maxTokens: Int
    private let sampling: SamplingParameters
    private let concurrency: Int
    private let client: HTTPClient

    /// A source posting to `endpoint` (the API base, for example `http://127.0.0.1:8080/v1`), naming `model`
    /// (`default` serves whatever `mobilellm serve` serves), with `sampling` (its seed is replaced per request) and
    /// at most `maxTokens` new tokens per response. Throws `invalidArgument` for a URL that is not http(s) or bad
    /// settings.
    public init(endpoint: String, apiKey: String?, model: String = "default", maxTokens: Int, sampling: SamplingParameters,
                concurrency: Int, timeout: TimeInterval = 600) throws {
        try sampling.validate()
        var text = endpoint
        while text.hasSuffix("/") { text.removeLast() }
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
              url.host != nil else {
            throw MobileLLMError.invalidArgument(name: "endpoint", problem: "expected an http(s) URL such as http://127.0.0.1:8080/v1, found \(String(reflecting: endpoint))")
        }
        guard maxTokens >= 1 else { throw MobileLLMError.invalidArgument(name: "maxTokens", problem: "expected a count >= 1, found \(maxTokens)") }
        guard concurrency >= 1 else { throw MobileLLMError.invalidArgument(name: "concurrency", problem: "expected a count >= 1, found \(concurrency)") }
        base = url
        self.apiKey = apiKey
        modelName = model
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.concurrency = concurrency
        client = HTTPClient(idleTimeout: timeout)
    }

    /// The request body for `samples` samples of `item` starting at `seed`.
    func body(for item: EvalItem, samples: Int, seed: UInt64) -> Data {
        let request: TemplateValue = [
            "model": .string(modelName),
            "messages": [["role": "user", "content": .string(item.question)]],
            "max_tokens": .int(maxTokens),
            "temperature": .float(Double(sampling.temperature)),
            "top_p": .float(Double(sampling.topP)),
            "seed": .int(Int(Int64(bitPattern: seed))),
            "n": .int(samples),
            "reasoning_format": "none",
        ]
        return Data(request.jsonText.utf8)
    }

    /// Posts one request and returns its choices as responses (in choice order).
    func post(item: EvalItem, samples: Int, seed: UInt64) throws -> [GeneratedResponse] {
        var headers = ["Content-Type": "application/json"]
        if let apiKey { headers["Authorization"] = "Bearer \(apiKey)" }
        let url = base.appendingPathComponent("chat/completions")
        let (response, data) = try client.post(url, headers: headers, body: body(for: item, samples: samples, seed: seed))
        let where_ = "\(url.absoluteString) (item \"\(item.id)\")"
        let json: [String: JSONValue]
        do {
            guard case let .object(members) = try JSONValue.parse(data, path: where_) else {
                throw MobileLLMError.invalidFile(path: where_, field: "(body)", problem: "not an object")
            }
            json = members
        } catch {
            throw MobileLLMError.io(path: where_, reason: "HTTP \(response.status): the response is not JSON: \(String(decoding: data.prefix(200), as: UTF8.self))")
        }
        guard (200..<300).contains(response.status) else {
            var message = String(decoding: data.prefix(300), as: UTF8.self)
            if case let .object(error)? = json["error"], case let .string(text)? = error["message"] { message = text }
            throw MobileLLMError.io(path: where_, reason: "HTTP \(response.status): \(message)")
        }
        guard case let .array(choices)? = json["choices"], choices.count == samples else {
            throw MobileLLMError.invalidFile(path: where_, field: "choices", problem: "expected \(samples) choices")
        }
        // Tokens per choice: mobilellm serve reports each ("completion_tokens", an extension); other servers only give
        // usage's total, which is the choice's own count when there is one choice.
        var total: Int?
        if case let .object(usage)? = json["usage"], case let .number(count)? = usage["completion_tokens"], samples == 1 {
            total = Int(count)
        }
        return try choices.enumerated().map { index, choice in
            guard case let .object(fields) = choice, case let .object(message)? = fields["message"] else {
                throw MobileLLMError.invalidFile(path: where_, field: "choices[\(index)].message", problem: "missing")
            }
            var text = ""
            if case let .string(content)? = message["content"] { text = content }
            // The thought, where a server split it off: `reasoning_content` (mobilellm serve, llama-server) or
            // `reasoning` (vLLM 0.32's reasoning parsers).
            for key in ["reasoning_content", "reasoning"] {
                if case let .string(reasoning)? = message[key], !reasoning.isEmpty {
                    text = reasoning + "</think>" + text
                    break
                }
            }
            var stop = "eos"
            if case let .string(reason)? = fields["finish_reason"] {
                stop = reason == "stop" ? "eos" : reason == "length" ? "max_tokens" : reason
            }
            var tokens = total ?? text.split(whereSeparator: \.isWhitespace).count
            if case let .number(count)? = fields["completion_tokens"] { tokens = Int(count) }
            return GeneratedResponse(text: text.trimmingSpaces(), tokenCount: tokens, stopReason: stop)
        }
    }

    /// One sample (a request with `n = 1` and `seed`).
    public func respond(to item: EvalItem, sample: Int, seed: UInt64, onToken: (Int) -> Void) throws -> GeneratedResponse {
        let responses = try post(item: item, samples: 1, seed: seed)
        onToken(responses[0].tokenCount)
        return responses[0]
    }

    /// Every item's samples, one request per item (`n = samples`), `concurrency` requests at a time (`parallel` is
    /// ignored: the server batches). Responses are handed to `onResponse` on the calling thread.
    public func respondAll(to items: [EvalItem], samples: Int, seed: UInt64, parallel: Int,
                           onResponse: (Int, Int, GeneratedResponse) throws -> Void, onToken: () -> Void) throws {
        let state = EndpointWork(count: items.count)
        let workers = min(concurrency, max(items.count, 1))
        for _ in 0..<workers {
            Thread.detachNewThread { [self] in
                while let index = state.take() {
                    let outcome = Result { try post(item: items[index], samples: samples, seed: seed) }
                    state.deliver(index, outcome)
                }
            }
        }
        var received = 0
        while received < items.count {
            let (index, outcome) = state.next()
            received += 1
            switch outcome {
            case let .success(responses):
                for (sample, response) in responses.enumerated() {
                    for _ in 0..<response.tokenCount { onToken() }
                    try onResponse(index, sample, response)
                }
            case let .failure(error):
                state.stop()
                throw error
            }
        }
    }
}

/// Work shared by the request threads of `EndpointAnswerSource.respondAll`.
private final class EndpointWork: @unchecked Sendable {
    private let condition = NSCondition()
    private var nextIndex = 0
    private let count: Int
    private var stopped = false
    private var done: [(Int, Result<[GeneratedResponse], Error>)] = []

    init(count: Int) { self.count = count }

    /// The next item to request, or nil when none is left (or the run stopped).
    func take() -> Int? {
        condition.lock()
        defer { condition.unlock() }
        guard !stopped, nextIndex < count else { return nil }
        nextIndex += 1
        return nextIndex - 1
    }

    func deliver(_ index: Int, _ outcome: Result<[GeneratedResponse], Error>) {
        condition.lock()
        done.append((index, outcome))
        condition.signal()
        condition.unlock()
    }

    /// Waits for the next finished request.
    func next() -> (Int, Result<[GeneratedResponse], Error>) {
        condition.lock()
        defer { condition.unlock() }
        while done.isEmpty { condition.wait() }
        return done.removeFirst()
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.unlock()
    }
}
