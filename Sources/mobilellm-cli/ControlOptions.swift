import ArgumentParser
import Foundation
import MobileLLM

/// What the model may write and what is reported about it, shared by `generate` (also `--prompts-jsonl`, where the
/// options apply to every line) and `chat`: reasoning, grammar or JSON Schema, logit bias and bans, logprobs.
struct ControlOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Most reasoning tokens before the thought is closed by force (0: an empty thought).", valueName: "n"))
    var reasoningBudget: Int?

    @Option(name: .long, help: ArgumentHelp("The text that opens a thought (default <think>).", valueName: "text"))
    var reasoningStart: String?

    @Option(name: .long, help: ArgumentHelp("The text that closes a thought (default </think>).", valueName: "text"))
    var reasoningEnd: String?

    @Flag(name: .long, help: "Do not print the reasoning (and its markers) while streaming; JSON still has it.")
    var hideReasoning = false

    @OptionGroup var constraint: ConstraintOptions

    @Option(name: .long, help: ArgumentHelp("Report each token's log-probability and the N most likely alternatives (0...20).", valueName: "n"))
    var logprobs: Int?

    @Option(name: .long, help: ArgumentHelp("Add BIAS to a token's logit: ID=BIAS (a numeric left side is a token id) or PIECE=BIAS (every token whose vocabulary piece or text is PIECE); -inf bans. Repeatable.", valueName: "token=bias"))
    var logitBias: [String] = []

    @Option(name: .long, help: ArgumentHelp("Never produce this token: an id or a piece (as --logit-bias TOKEN=-inf). Repeatable.", valueName: "token"))
    var ban: [String] = []

    /// Whether any reasoning option was given (reasoning tracking is then on whatever the prompt).
    var asksForReasoning: Bool { reasoningBudget != nil || reasoningStart != nil || reasoningEnd != nil || hideReasoning }

    func validate() throws {
        if let reasoningBudget, reasoningBudget < 0 {
            throw ValidationError("--reasoning-budget: expected a count >= 0, found \(reasoningBudget)")
        }
        if reasoningStart == "" { throw ValidationError("--reasoning-start: expected a non-empty marker") }
        if reasoningEnd == "" { throw ValidationError("--reasoning-end: expected a non-empty marker") }
        if let logprobs, !(0...20).contains(logprobs) { throw ValidationError("--logprobs: expected 0...20, found \(logprobs)") }
        _ = try biases()
    }

    /// The --logit-bias and --ban entries: by id and by piece.
    func biases() throws -> (ids: [Int32: Float], pieces: [String: Float]) {
        var ids: [Int32: Float] = [:], pieces: [String: Float] = [:]
        for entry in logitBias {
            guard let equals = entry.lastIndex(of: "="), equals != entry.startIndex else {
                throw ValidationError("--logit-bias: expected TOKEN=BIAS (an id or a piece, then a number), found \"\(entry)\"")
            }
            let key = String(entry[..<equals]), valueText = entry[entry.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            guard let value = Float(valueText), value.isFinite || value == -.infinity else {
                throw ValidationError("--logit-bias: \"\(entry)\": the bias must be a finite number or -inf, found \"\(valueText)\"")
            }
            if let id = Int32(key.trimmingCharacters(in: .whitespaces)) {
                ids[id, default: 0] += value
            } else {
                pieces[key, default: 0] += value
            }
        }
        for entry in ban {
            guard !entry.isEmpty else { throw ValidationError("--ban: expected a token id or a piece") }
            if let id = Int32(entry.trimmingCharacters(in: .whitespaces)) { ids[id] = -.infinity } else { pieces[entry] = -.infinity }
        }
        return (ids, pieces)
    }

    /// The reasoning options the flags give.
    var reasoningOptions: ReasoningOptions {
        ReasoningOptions(start: reasoningStart ?? "<think>", end: reasoningEnd ?? "</think>", budget: reasoningBudget)
    }

    /// The reasoning options for a prompt: on when a reasoning flag was given, or when the prompt (as decoded, chat
    /// template included) ends inside an open thought; nil (no tracking) otherwise.
    func reasoning(forPrompt ids: [Int32], tokenizer: Tokenizer?) throws -> ReasoningOptions? {
        let options = reasoningOptions
        if asksForReasoning {
            guard tokenizer != nil else { throw MobileLLMError.tokenizerMissing(path: "--reasoning-*") }
            return options
        }
        guard let tokenizer, let text = try? tokenizer.decode(ids, skipSpecial: false) else { return nil }
        return options.endsInsideThought(text) ? options : nil
    }

    /// The compiled grammar of --grammar or --json-schema (see `ConstraintOptions.compiledGrammar`).
    func compiledGrammar() throws -> Grammar? { try constraint.compiledGrammar() }

    /// Sets the grammar, bias and logprobs of `options` (the grammar compiled once and passed in).
    func apply(to options: inout GenerationOptions, grammar: Grammar?) throws {
        let (ids, pieces) = try biases()
        options.grammar = grammar
        options.logitBias = ids
        options.logitBiasPieces = pieces
        options.logprobs = logprobs
    }
}

/// JSON members for the control features of one generation: "reasoning", "answer", "reasoning_tokens", "events",
/// and (with --logprobs) "logprobs".
func controlJSONMembers(reasoning: String, answer: String, reasoningTokens: Int, events: [GenerationEvent],
                        logprobs: [TokenLogprob]?, tokenizer: Tokenizer?) -> [(key: String, value: TemplateValue)] {
    var members: [(key: String, value: TemplateValue)] = [
        (key: "reasoning", value: .string(reasoning)), (key: "answer", value: .string(answer)),
        (key: "reasoning_tokens", value: .int(reasoningTokens)),
        (key: "events", value: .array(events.map { event in
            .object([(key: "type", value: .string(event.kind.rawValue)), (key: "token_index", value: .int(event.tokenIndex))])
        }))]
    if let logprobs {
        func piece(_ token: Int32) -> TemplateValue {
            guard let tokenizer, let bytes = try? tokenizer.tokenBytes(token) else { return .null }
            return .string(String(decoding: bytes, as: UTF8.self))
        }
        func number(_ value: Float) -> TemplateValue { .finite(Double("\(value)") ?? Double(value)) }
        members.append((key: "logprobs", value: .array(logprobs.map { entry in
            .object([(key: "token", value: .int(Int(entry.token))), (key: "piece", value: piece(entry.token)),
                     (key: "logprob", value: number(entry.logprob)),
                     (key: "top", value: .array(entry.top.map { top in
                         .object([(key: "token", value: .int(Int(top.token))), (key: "piece", value: piece(top.token)),
                                  (key: "logprob", value: number(top.logprob))])
                     }))])
        })))
    }
    return members
}

/// How a piece is printed while streaming: reasoning and markers unless hidden.
func shownText(_ piece: GeneratedPiece, hideReasoning: Bool) -> String {
    hideReasoning && piece.channel != .answer ? "" : piece.text
}

/// --grammar and --json-schema: what `generate`, `chat` (through `ControlOptions`) and `bench` (the constrained-decode
/// measurement) constrain the output to.
struct ConstraintOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Constrain the output (the answer, after any thought) to a GBNF grammar.", valueName: "file.gbnf"))
    var grammar: String?

    @Option(name: .long, help: ArgumentHelp("Constrain the output (the answer) to a JSON Schema: a file, or inline JSON starting with '{'.", valueName: "file-or-json"))
    var jsonSchema: String?

    /// Whether a constraint was given.
    var isSet: Bool { grammar != nil || jsonSchema != nil }

    func validate() throws {
        if grammar != nil && jsonSchema != nil { throw ValidationError("--grammar and --json-schema each set the constraint: give one of them") }
        if grammar == "" { throw ValidationError("--grammar: expected a file name") }
        if jsonSchema == "" { throw ValidationError("--json-schema: expected a file name or inline JSON") }
    }

    /// The compiled grammar of --grammar or --json-schema (nil when neither is given). A missing or unreadable file is
    /// a `fileNotFound`/`io` error; a schema that is not JSON an `invalidFile` error naming the file; the grammar
    /// engine's own errors name the rule or JSON pointer.
    func compiledGrammar() throws -> Grammar? {
        if let grammar {
            return try Grammar(gbnf: try readText(grammar, option: "--grammar"))
        }
        if let jsonSchema {
            let inline = jsonSchema.trimmingCharacters(in: .whitespaces).hasPrefix("{")
            let text = inline ? jsonSchema : try readText(jsonSchema, option: "--json-schema")
            let name = inline ? "--json-schema (inline)" : jsonSchema
            // The engine's JSON reader, so a malformed schema is reported against its file (byte, line, column).
            do {
                _ = try JSONValue.parse(Data(text.utf8), path: name)
            } catch let MobileLLMError.invalidFile(_, _, problem) {
                throw MobileLLMError.invalidFile(path: name, field: "(json)", problem: problem)
            }
            return try Grammar(jsonSchema: text)
        }
        return nil
    }

    private func readText(_ path: String, option: String) throws -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw MobileLLMError.fileNotFound(path: path, reason: "\(option): no such file")
        }
        guard !isDirectory.boolValue else { throw MobileLLMError.io(path: path, reason: "\(option): is a directory") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MobileLLMError.io(path: path, reason: "\(option): cannot be read")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw MobileLLMError.invalidFile(path: path, field: "(text)", problem: "not UTF-8")
        }
        return text
    }

}
