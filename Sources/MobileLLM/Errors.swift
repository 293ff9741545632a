/// Every failure the engine reports. Each case carries enough context to act on: which file, which field,
/// what was found and what was expected.
public enum MobileLLMError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A file or directory that should exist does not (or cannot be opened).
    case fileNotFound(path: String, reason: String)
    /// A file exists but its content is not what its format requires.
    case invalidFile(path: String, field: String, problem: String)
    /// The input is well formed but uses something this engine does not implement.
    case unsupported(path: String, feature: String)
    /// A caller passed an argument outside its allowed range.
    case invalidArgument(name: String, problem: String)
    /// Feeding more tokens than the session's KV cache can hold.
    case contextFull(capacity: Int, position: Int, requested: Int)
    /// A text interface was used on a model loaded without tokenizer files.
    case tokenizerMissing(path: String)
    /// The operation was cancelled with `Session.cancel()`.
    case cancelled
    /// An I/O operation failed.
    case io(path: String, reason: String)
    /// A chat template failed to compile or render; `path` names the template (a file or a config field),
    /// `line` and `column` (1-based) the construct at fault.
    case template(path: String, line: Int, column: Int, message: String)
    /// A grammar (GBNF, or the grammar a JSON Schema compiles to) failed to compile: `rule` names the rule at fault
    /// ("" before the first rule), `line` and `column` (1-based) the place in the grammar text.
    case grammar(rule: String, line: Int, column: Int, message: String)
    /// A JSON Schema uses something outside the supported subset or is malformed; `pointer` is the JSON pointer
    /// (RFC 6901, "" for the root) of the offending schema value.
    case jsonSchema(pointer: String, message: String)

    public var description: String {
        switch self {
        case let .fileNotFound(path, reason):
            return "\(path): \(reason)"
        case let .invalidFile(path, field, problem):
            return "\(path): field '\(field)': \(problem)"
        case let .unsupported(path, feature):
            return "\(path): unsupported: \(feature)"
        case let .invalidArgument(name, problem):
            return "invalid argument '\(name)': \(problem)"
        case let .contextFull(capacity, position, requested):
            return "context full: the session holds \(capacity) tokens, \(position) are used and \(requested) more were fed"
        case let .tokenizerMissing(path):
            return "\(path): no tokenizer files (tokenizer.json) in the model; use token-id interfaces or add them"
        case .cancelled:
            return "cancelled"
        case let .io(path, reason):
            return "\(path): \(reason)"
        case let .template(path, line, column, message):
            return "\(path): line \(line) column \(column): \(message)"
        case let .grammar(rule, line, column, message):
            return "grammar: line \(line) column \(column)\(rule.isEmpty ? "" : " (rule '\(rule)')"): \(message)"
        case let .jsonSchema(pointer, message):
            return "JSON Schema at '\(pointer.isEmpty ? "#" : "#" + pointer)': \(message)"
        }
    }
}
