import ArgumentParser
import Foundation
import MobileLLM
import MobileLLMTools

/// System messages of the math helpers.
enum MathPrompts {
    /// MobileLLM-R1's model card: the recommended system message for math problems.
    static let stepByStep = "Please reason step by step, and put your final answer within \\boxed{}."
    /// Ours: ask for the boxed final answer alone.
    static let finalOnly = "Give only the final answer, written as \\boxed{ANSWER}, with no explanation."
}

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text (or tokens) from a prompt.",
        discussion: """
        --prompt TEXT is wrapped in the model's chat template as a user message (with the assistant's generation \
        prompt), as transformers' apply_chat_template does, when the model has a template; --no-chat-template feeds \
        the raw text instead (with BOS). --tokens feeds token ids as they are. Greedy unless --temperature is given.

        The text streams to stdout as it is generated. After generation one line on stderr reports the prompt \
        tokens and their rate, the generated tokens and the decode rate (after the first token), and the time to \
        the first token. With --json, stdout gets one object instead: {"tokens": [generated ids], "text": "...", \
        "stop_reason": "eos|max_tokens|context_full|stop_string|boxed", "prompt_tokens", \
        "prompt_tokens_per_second", "generated_tokens", "decode_tokens_per_second", "time_to_first_token_ms" (and \
        "boxed" with --extract-boxed)}; "text" is the output as printed (special tokens left out, cut at a stop), \
        "tokens" every generated id.

        Math (MobileLLM-R1): --math uses the model card's system message "\(MathPrompts.stepByStep)"; \
        --final-only uses "\(MathPrompts.finalOnly)". --stop-at-boxed ends the output at the closing brace of the \
        first \\boxed{...}; --extract-boxed prints only the content of the last \\boxed{...} (an empty line, and a \
        note on stderr, when there is none), as math evaluation harnesses read answers.
        """
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .long, help: "Prompt as comma-separated token ids.")
    var tokens: String?

    @Option(name: .long, help: "Prompt as text (needs the model's tokenizer).")
    var prompt: String?

    @Option(name: .long, help: "Most tokens to generate.")
    var maxTokens: Int = 256

    @OptionGroup var sampling: SamplingOptions

    @Option(name: .long, help: "KV cache size in tokens (default: prompt + max tokens, within the model's limit).")
    var contextLength: Int?

    @Flag(name: .long, help: "Print one JSON object on stdout instead of streaming text.")
    var json = false

    @Flag(name: .long, help: "Use the chat template even when the model has none (the built-in Llama-3 header format).")
    var chat = false

    @Flag(name: .long, help: "Feed --prompt as raw text (with BOS), without the chat template.")
    var noChatTemplate = false

    @Option(name: .long, help: "A system message for the chat template.")
    var system: String?

    @Flag(name: .long, help: "Math: the model card's system message (reason step by step, final answer in \\boxed{}).")
    var math = false

    @Flag(name: .long, help: "Math: a system message asking for only the final answer, as \\boxed{ANSWER}.")
    var finalOnly = false

    @Option(name: .long, help: "End the output before this text (repeatable; matched across token boundaries).")
    var stop: [String] = []

    @Flag(name: .long, help: "End the output at the closing brace of the first \\boxed{...}.")
    var stopAtBoxed = false

    @Flag(name: .long, help: "Print only the content of the last \\boxed{...} of the output.")
    var extractBoxed = false

    /// The system message the options ask for.
    var systemMessage: String? { system ?? (math ? MathPrompts.stepByStep : finalOnly ? MathPrompts.finalOnly : nil) }

    func validate() throws {
        guard (tokens == nil) != (prompt == nil) else { throw ValidationError("give exactly one of --tokens or --prompt") }
        guard [system != nil, math, finalOnly].filter({ $0 }).count <= 1 else {
            throw ValidationError("--system, --math and --final-only each set the system message: give one of them")
        }
        if chat && noChatTemplate { throw ValidationError("--chat and --no-chat-template contradict each other") }
        if noChatTemplate && systemMessage != nil {
            throw ValidationError("--system, --math and --final-only need the chat template (drop --no-chat-template)")
        }
        if tokens != nil, chat || noChatTemplate || systemMessage != nil {
            throw ValidationError("--chat, --no-chat-template, --system, --math and --final-only need --prompt TEXT")
        }
        guard maxTokens >= 0 else { throw ValidationError("--max-tokens: expected a count >= 0, found \(maxTokens)") }
        if stop.contains("") { throw ValidationError("--stop: expected a non-empty string") }
    }

    /// The prompt's token ids.
    func promptIDs(_ model: Model) throws -> [Int32] {
        if let tokens {
            let ids = try parseTokenList(tokens)
            guard !ids.isEmpty else { throw ValidationError("--tokens: needs at least one token id") }
            return ids
        }
        let tokenizer = try model.tokenizer()
        let useTemplate = try !noChatTemplate && (chat || systemMessage != nil || !model.chatTemplate().isBuiltInDefault)
        let ids: [Int32]
        if useTemplate {
            // As transformers' apply_chat_template(tokenize=True): the template writes BOS itself.
            var messages: [ChatMessage] = []
            if let systemMessage { messages.append(ChatMessage(role: "system", content: systemMessage)) }
            messages.append(ChatMessage(role: "user", content: prompt ?? ""))
            let text = try model.applyChatTemplate(messages, addGenerationPrompt: true)
            ids = tokenizer.encode(text, addSpecial: false, parseSpecial: true)
        } else {
            ids = tokenizer.encode(prompt ?? "", addSpecial: true, parseSpecial: true)
        }
        guard !ids.isEmpty else { throw ValidationError("--prompt: the prompt has no tokens") }
        return ids
    }

    func run() throws {
        let model = try modelOptions.load()
        let ids = try promptIDs(model)
        let capacity = contextLength ?? min(model.configuration.maxPositions, ids.count + max(maxTokens, 1))
        let session = try model.makeSession(contextLength: capacity, kvCacheType: modelOptions.kvCache)
        let tokenizer = model.tokenizerFile == nil ? nil : try model.tokenizer()
        if tokenizer == nil, !stop.isEmpty || stopAtBoxed || extractBoxed { throw MobileLLMError.tokenizerMissing(path: model.path) }
        let streams = !json && !extractBoxed

        // Text pieces (whole UTF-8 characters, special tokens left out) pass the stopper, then go to stdout; without
        // a tokenizer token ids are printed.
        var detokenizer = tokenizer?.makeStreamingDetokenizer(skipSpecial: true)
        var stopper = TextStopper(stopStrings: stop, stopAtBoxed: stopAtBoxed)
        var text = ""
        func output(_ piece: String) {
            text += piece
            if streams { writeOut(piece) }
        }
        let clock = ContinuousClock()
        let start = clock.now
        var firstToken: ContinuousClock.Instant?
        let result = try session.generate(prompt: ids, options: sampling.generationOptions(maxTokens: maxTokens)) { token in
            if firstToken == nil { firstToken = clock.now }
            guard detokenizer != nil else {
                if streams { writeOut("\(token) ") }
                return true
            }
            let piece = (try? detokenizer?.push(token)) ?? ""
            output(stopper.push(piece))
            return stopper.reason == nil
        }
        if stopper.reason == nil, let rest = detokenizer?.flush() {
            output(stopper.push(rest))
            output(stopper.finish())
        }
        let end = clock.now
        if firstToken == nil, !result.tokens.isEmpty { firstToken = end }
        let stats = GenerationStats(promptTokens: ids.count, generatedTokens: result.tokens.count,
                                    timeToFirstToken: (firstToken ?? end) - start, total: end - start)
        let stopReason = stopper.reason?.rawValue ?? result.stopReason.rawValue
        let boxed = extractBoxed ? BoxedAnswer.lastBoxedContent(in: text) : nil

        if json {
            var members: [(key: String, value: TemplateValue)] = [
                (key: "tokens", value: .ints(result.tokens)), (key: "text", value: .string(tokenizer == nil ? nil : text)),
                (key: "stop_reason", value: .string(stopReason))]
            members += stats.jsonMembers
            if extractBoxed { members.append((key: "boxed", value: .string(boxed))) }
            emit(TemplateValue.object(members).jsonText)
        } else if extractBoxed {
            emit(boxed ?? "")
            if boxed == nil { writeErr("mobilellm: note: the output has no \\boxed{...} answer") }
        } else {
            emit("")
        }
        writeErr(stats.line + " | stop: \(stopReason)")
    }
}
