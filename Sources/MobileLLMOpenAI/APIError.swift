import MobileLLM

/// An error answered to an HTTP client in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with a
/// 4xx or 5xx status.
public struct APIError: Error, Sendable, Equatable {
    /// The HTTP status code.
    public var status: Int
    /// A sentence saying what was wrong and what was expected.
    public var message: String
    /// OpenAI's error type: `invalid_request_error`, `authentication_error`, `not_found_error`, `server_error`, ….
    public var type: String
    /// The request field at fault (a JSON path such as `messages[2].role`), when there is one.
    public var param: String?
    /// A machine-readable code (`context_length_exceeded`, `model_not_found`, `invalid_api_key`, …), when there is one.
    public var code: String?

    /// An error with every member given.
    public init(status: Int, message: String, type: String, param: String? = nil, code: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    /// A 400 for a request field that is missing, of the wrong type or out of range.
    public static func invalid(_ param: String?, _ message: String, code: String? = nil) -> APIError {
        APIError(status: 400, message: message, type: "invalid_request_error", param: param, code: code)
    }

    /// The error JSON body.
    public var json: TemplateValue {
        ["error": ["message": .string(message), "type": .string(type), "param": .string(param), "code": .string(code)]]
    }

    /// The APIError for an engine error met while serving a request: bad arguments and constraints are the client's
    /// (400, naming the field); anything else is the server's (500).
    public init(_ error: any Error) {
        if let error = error as? APIError {
            self = error
            return
        }
        switch error as? MobileLLMError {
        case let .invalidArgument(name, problem)?:
            self = .invalid(name, "\(name): \(problem)")
        case let .contextFull(capacity, position, requested)?:
            self = .invalid("messages", "the prompt needs \(requested) tokens after position \(position); the context holds \(capacity)",
                            code: "context_length_exceeded")
        case let .grammar(rule, line, column, message)?:
            self = .invalid("response_format", "the grammar does not compile: rule '\(rule)' at \(line):\(column): \(message)")
        case let .jsonSchema(pointer, message)?:
            self = .invalid("response_format.json_schema.schema", "the JSON Schema does not compile at '\(pointer)': \(message)")
        case .cancelled?:
            self = APIError(status: 503, message: "the request was cancelled (the server is shutting down)", type: "server_error")
        case .some(let engineError):
            self = APIError(status: 500, message: "\(engineError)", type: "server_error")
        case nil:
            self = APIError(status: 500, message: "\(error)", type: "server_error")
        }
    }
}
