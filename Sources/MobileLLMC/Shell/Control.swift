// Output control in the C ABI: the appended mobilellm_generate_params fields (grammar, JSON Schema, logit bias,
// logprobs, reasoning, piece callback) read into the engine's GenerationOptions, and the engine's pieces and
// logprobs written out as mobilellm_piece / mobilellm_token_logprob. Every rule (validation of values, the split,
// the budget, the mask) is the engine's; this file only translates.
import CMobileLLMABI
import MobileLLM
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Android)
import Android
#elseif canImport(Darwin)
import Darwin
#endif

/// Engine argument names and the C fields they come from, for messages that name what the caller set.
let controlFieldNames: [String: String] = [
    "logitBias": "params->logit_bias_tokens",
    "logitBiasPieces": "params->logit_bias_pieces",
    "logprobs": "params->n_logprobs",
    "reasoning.start": "params->reasoning_start",
    "reasoning.end": "params->reasoning_end",
    "reasoning.budget": "params->reasoning_budget",
    "reasoning.closing": "params->reasoning_closing",
    "maxTokens": "params->max_tokens",
]

/// Reads the output-control fields of `p` into `options` (the engine validates values when generation starts).
func readControl(_ p: mobilellm_generate_params, into options: inout GenerationOptions) throws {
    let grammarText = try p.grammar.map { try string($0, "params->grammar") }
    let schemaText = try p.json_schema.map { try string($0, "params->json_schema") }
    if grammarText != nil, schemaText != nil {
        throw ABIError.invalidArgument("params->json_schema", "expected NULL when params->grammar is set (give one constraint)")
    }
    if let grammarText { options.grammar = try Grammar(gbnf: grammarText) }
    if let schemaText { options.grammar = try Grammar(jsonSchema: schemaText) }

    let nBias = try count(p.n_logit_bias, "params->n_logit_bias")
    guard nBias <= 1 << 20 else {
        throw ABIError.invalidArgument("params->n_logit_bias", "expected at most \(1 << 20), found \(nBias)")
    }
    if nBias > 0 {
        guard let tokens = p.logit_bias_tokens else { throw ABIError.null("params->logit_bias_tokens") }
        guard let values = p.logit_bias_values else { throw ABIError.null("params->logit_bias_values") }
        for index in 0..<nBias {
            // A later entry for the same id wins, as a dictionary literal would have it.
            options.logitBias[tokens[index]] = values[index]
        }
    }
    let nPieces = try count(p.n_logit_bias_pieces, "params->n_logit_bias_pieces")
    guard nPieces <= 1 << 16 else {
        throw ABIError.invalidArgument("params->n_logit_bias_pieces", "expected at most \(1 << 16), found \(nPieces)")
    }
    if nPieces > 0 {
        guard let pieces = p.logit_bias_pieces else { throw ABIError.null("params->logit_bias_pieces") }
        guard let values = p.logit_bias_piece_values else { throw ABIError.null("params->logit_bias_piece_values") }
        for index in 0..<nPieces {
            options.logitBiasPieces[try string(pieces[index], "params->logit_bias_pieces[\(index)]")] = values[index]
        }
    }
    guard p.n_logprobs >= -1 else {
        throw ABIError.invalidArgument("params->n_logprobs", "expected -1 (off) or 0...\(MOBILELLM_MAX_TOP_LOGPROBS), found \(p.n_logprobs)")
    }
    options.logprobs = p.n_logprobs >= 0 ? Int(p.n_logprobs) : nil
    options.rawLogprobs = readBool(p, \.raw_logprobs)

    if readBool(p, \.reasoning) {
        guard p.reasoning_budget >= -1 else {
            throw ABIError.invalidArgument("params->reasoning_budget", "expected -1 (no limit) or a count >= 0, found \(p.reasoning_budget)")
        }
        let start = try p.reasoning_start.map { try string($0, "params->reasoning_start") }
        let end = try p.reasoning_end.map { try string($0, "params->reasoning_end") }
        let closing = try p.reasoning_closing.map { try string($0, "params->reasoning_closing") }
        var reasoning = ReasoningOptions()
        if let start { reasoning.start = start }
        if let end { reasoning = ReasoningOptions(start: reasoning.start, end: end, budget: nil, closing: closing) }
        else if let closing { reasoning.closing = closing }
        reasoning.budget = p.reasoning_budget >= 0 ? Int(p.reasoning_budget) : nil
        options.reasoning = reasoning
    } else if p.reasoning_start != nil || p.reasoning_end != nil || p.reasoning_closing != nil || p.reasoning_budget != -1 {
        throw ABIError.invalidArgument("params->reasoning", "is false, but reasoning_start, reasoning_end, reasoning_closing or reasoning_budget is set (set reasoning to true)")
    }
}

/// The channel code of an engine channel.
func channelCode(_ channel: TextChannel) -> Int32 {
    switch channel {
    case .answer: return Int32(MOBILELLM_CHANNEL_ANSWER.rawValue)
    case .reasoning: return Int32(MOBILELLM_CHANNEL_REASONING.rawValue)
    case .marker: return Int32(MOBILELLM_CHANNEL_MARKER.rawValue)
    }
}

/// The C form of a token's log-probabilities.
func cLogprob(_ value: TokenLogprob) -> mobilellm_token_logprob {
    var result = mobilellm_token_logprob()
    result.token = value.token
    result.logprob = value.logprob
    let top = value.top.prefix(Int(MOBILELLM_MAX_TOP_LOGPROBS))
    result.n_top = Int32(top.count)
    withUnsafeMutableBytes(of: &result.top_tokens) { raw in
        let ids = raw.bindMemory(to: Int32.self)
        for (index, entry) in top.enumerated() { ids[index] = entry.token }
    }
    withUnsafeMutableBytes(of: &result.top_logprobs) { raw in
        let values = raw.bindMemory(to: Float.self)
        for (index, entry) in top.enumerated() { values[index] = entry.logprob }
    }
    return result
}

/// C copies of engine pieces that live until `release()`: the text bytes, the logprob structs and the piece array.
final class PublishedPieces {
    private var allocations: [UnsafeMutableRawPointer] = []

    deinit { release() }

    /// Frees everything published so far.
    func release() {
        for pointer in allocations { pointer.deallocate() }
        allocations = []
    }

    /// A C array of `pieces` (nil for none); valid until `release()`.
    func publish(_ pieces: [GeneratedPiece]) -> UnsafePointer<mobilellm_piece>? {
        guard !pieces.isEmpty else { return nil }
        let array = UnsafeMutablePointer<mobilellm_piece>.allocate(capacity: pieces.count)
        allocations.append(UnsafeMutableRawPointer(array))
        for (index, piece) in pieces.enumerated() {
            array.advanced(by: index).initialize(to: publish(piece))
        }
        return UnsafePointer(array)
    }

    /// One C piece; valid until `release()`.
    func publish(_ piece: GeneratedPiece) -> mobilellm_piece {
        var value = mobilellm_piece()
        value.token = piece.token ?? -1
        value.channel = channelCode(piece.channel)
        let bytes = Array(piece.text.utf8CString)
        let text = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
        text.initialize(from: bytes, count: bytes.count)
        allocations.append(UnsafeMutableRawPointer(text))
        value.text = UnsafePointer(text)
        value.text_length = bytes.count - 1
        if let logprob = piece.logprob {
            let pointer = UnsafeMutablePointer<mobilellm_token_logprob>.allocate(capacity: 1)
            pointer.initialize(to: cLogprob(logprob))
            allocations.append(UnsafeMutableRawPointer(pointer))
            value.logprob = UnsafePointer(pointer)
        }
        return value
    }
}
