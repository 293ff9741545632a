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
        "stop_reason": "eos|max_tokens|context_full|stop_string|boxed|grammar", "prompt_tokens", \
        "prompt_tokens_per_second", "generated_tokens", "decode_tokens_per_second", "time_to_first_token_ms" (and \
        "boxed" with --extract-boxed)}; "text" is the output as printed (special tokens left out, cut at a stop), \
        "tokens" every generated id.

        Math (MobileLLM-R1): --math uses the model card's system message "\(MathPrompts.stepByStep)"; \
        --final-only uses "\(MathPrompts.finalOnly)". --stop-at-boxed ends the output at the closing brace of the \
        first \\boxed{...}; --extract-boxed prints only the content of the last \\boxed{...} (an empty line, and a \
        note on stderr, when there is none), as math evaluation harnesses read answers.

        Control: reasoning tracking splits the output into the thought and the answer; it is on when any of \
        --reasoning-budget/--reasoning-start/--reasoning-end/--hide-reasoning is given, or when the prompt as fed \
        (chat template included) ends inside an open <think> (its last <think> after its last </think>). With it, the \
        text keeps special tokens' text (so markers show), --stop strings match anywhere in it, --stop-at-boxed and \
        --extract-boxed read the answer, --hide-reasoning streams the answer alone, and --reasoning-budget N forces \
        the closing "\\n\\nConsidering the limited time, I have to give the answer now.\\n</think>\\n\\n" after N \
        reasoning tokens (noted on the stats line and in "events"). --grammar FILE.gbnf or --json-schema FILE|JSON \
        constrains the answer (after the thought when tracking is on) and ends with stop reason "grammar" when it is \
        complete. --logit-bias ID=BIAS or PIECE=BIAS (repeatable; a numeric left side is an id; a piece matches \
        tokens whose vocabulary spelling or text equals it; -inf bans) and --ban TOKEN_OR_PIECE change the logits \
        before sampling. --logprobs N reports each token's log-probability (from the distribution sampled from, \
        before top-k/top-p/min-p) and the N (0...20) most likely alternatives. The JSON always has "reasoning", \
        "answer", "reasoning_tokens" and "events" ([{"type": "reasoning_budget", "token_index": N}]), and with \
        --logprobs "logprobs": [{"token", "piece", "logprob", "top": [{"token", "piece", "logprob"}]}]. These options \
        apply to every line of --prompts-jsonl.

        Many prompts: --prompts-jsonl FILE --json reads one request per line, {"prompt": "text"} or {"tokens": \
        [ids]}, each with an optional "seed" (an integer >= 0; default --seed) and "max_tokens" (an integer >= 0; \
        default --max-tokens). A "prompt" becomes tokens exactly as --prompt does (the chat template, \
        --system/--math/--final-only, --no-chat-template, --chat); "tokens" are fed as they are, as --tokens. Every \
        line is checked (and tokenized) before any generation: a bad line stops the run with an error naming the \
        file, the line and the field. The requests then run together through one batch, at most --parallel at a time \
        (continuous batching: when one ends, the next line starts), and stdout gets one --json object per line, in \
        input order, with the fields above; the rates are each request's own (its prompt from the moment it joined \
        the batch, its decode while sharing passes with the others). Greedy outputs are the tokens `generate` gives \
        for that prompt alone. One line on stderr sums up the run.
        """
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .long, help: "Prompt as comma-separated token ids.")
    var tokens: String?

    @Option(name: .long, help: "Prompt as text (needs the model's tokenizer).")
    var prompt: String?

    @Option(name: .long, help: ArgumentHelp("Many prompts: a JSONL file of {\"prompt\": TEXT} or {\"tokens\": [IDS]} lines, optional \"seed\" and \"max_tokens\"; needs --json.", valueName: "file"))
    var promptsJsonl: String?

    @Option(name: .long, help: "With --prompts-jsonl: most requests generating at once.")
    var parallel: Int = 8

    @Option(name: .long, help: "Most tokens to generate.")
    var maxTokens: Int = 256

    @OptionGroup var sampling: SamplingOptions

    @OptionGroup(title: "Control") var control: ControlOptions

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
        guard [tokens != nil, prompt != nil, promptsJsonl != nil].filter({ $0 }).count == 1 else {
            throw ValidationError("give exactly one of --tokens, --prompt or --prompts-jsonl")
        }
        if promptsJsonl != nil {
            guard json else { throw ValidationError("--prompts-jsonl prints one JSON object per line: add --json") }
            guard parallel >= 1, parallel <= Session.batchLimit else {
                throw ValidationError("--parallel: expected 1...\(Session.batchLimit), found \(parallel)")
            }
        }
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
        let ids = try textPromptIDs(prompt ?? "", model: model)
        guard !ids.isEmpty else { throw ValidationError("--prompt: the prompt has no tokens") }
        return ids
    }

    /// The ids of a text prompt: wrapped in the chat template (with the options' system message) when the model has
    /// one or --chat asks for it, as transformers' apply_chat_template(tokenize=True) does (the template writes BOS
    /// itself); raw text with BOS under --no-chat-template or without a template.
    func textPromptIDs(_ text: String, model: Model) throws -> [Int32] {
        let tokenizer = try model.tokenizer()
        let useTemplate = try !noChatTemplate && (chat || systemMessage != nil || !model.chatTemplate().isBuiltInDefault)
        if useTemplate {
            var messages: [ChatMessage] = []
            if let systemMessage { messages.append(ChatMessage(role: "system", content: systemMessage)) }
            messages.append(ChatMessage(role: "user", content: text))
            let rendered = try model.applyChatTemplate(messages, addGenerationPrompt: true)
            return tokenizer.encode(rendered, addSpecial: false, parseSpecial: true)
        }
        return tokenizer.encode(text, addSpecial: true, parseSpecial: true)
    }

    /// The KV cache size for a prompt of `promptCount` tokens generating up to `maxTokens`.
    func capacity(promptCount: Int, maxTokens: Int, model: Model) -> Int {
        contextLength ?? min(model.configuration.maxPositions, promptCount + max(maxTokens, 1))
    }

    /// The --json object of one generation. `text` is nil when the model has no tokenizer.
    func jsonObject(tokens: [Int32], text: String?, stopReason: String, stats: GenerationStats, reasoning: String = "",
                    answer: String? = nil, reasoningTokens: Int = 0, events: [GenerationEvent] = [],
                    logprobs: [TokenLogprob] = [], tokenizer: Tokenizer?) -> String {
        var members: [(key: String, value: TemplateValue)] = [
            (key: "tokens", value: .ints(tokens)), (key: "text", value: .string(text)),
            (key: "stop_reason", value: .string(stopReason))]
        members += stats.jsonMembers
        members += controlJSONMembers(reasoning: reasoning, answer: answer ?? text ?? "", reasoningTokens: reasoningTokens,
                                      events: events, logprobs: control.logprobs == nil ? nil : logprobs, tokenizer: tokenizer)
        if extractBoxed { members.append((key: "boxed", value: .string(BoxedAnswer.lastBoxedContent(in: answer ?? text ?? "")))) }
        return TemplateValue.object(members).jsonText
    }

    /// The generation options every prompt gets (`grammar` compiled once), before reasoning is decided per prompt.
    func baseOptions(maxTokens: Int, grammar: Grammar?) throws -> GenerationOptions {
        var options = sampling.generationOptions(maxTokens: maxTokens)
        try control.apply(to: &options, grammar: grammar)
        return options
    }

    func run() throws {
        let grammar = try control.compiledGrammar()
        let model = try modelOptions.load()
        let tokenizer = model.tokenizerFile == nil ? nil : try model.tokenizer()
        if tokenizer == nil, !stop.isEmpty || stopAtBoxed || extractBoxed { throw MobileLLMError.tokenizerMissing(path: model.path) }
        if let promptsJsonl {
            try runBatch(path: promptsJsonl, model: model, tokenizer: tokenizer, grammar: grammar)
            return
        }
        let ids = try promptIDs(model)
        let session = try model.makeSession(contextLength: capacity(promptCount: ids.count, maxTokens: maxTokens, model: model),
                                            kvCacheType: modelOptions.kvCache)
        let streams = !json && !extractBoxed
        var options = try baseOptions(maxTokens: maxTokens, grammar: grammar)
        options.reasoning = try control.reasoning(forPrompt: ids, tokenizer: tokenizer)
        if options.reasoning != nil {
            try runWithChannels(session: session, ids: ids, options: options, tokenizer: tokenizer, streams: streams)
            return
        }

        // Text pieces (whole UTF-8 characters, special tokens left out) pass the stopper, then go to stdout; without
        // a tokenizer token ids are printed.
        var text = GeneratedText(tokenizer: tokenizer, stopStrings: stop, stopAtBoxed: stopAtBoxed)
        let clock = ContinuousClock()
        let start = clock.now
        var firstToken: ContinuousClock.Instant?
        let result = try session.generate(prompt: ids, options: options) { token in
            if firstToken == nil { firstToken = clock.now }
            guard text.hasText else {
                if streams { writeOut("\(token) ") }
                return true
            }
            let piece = text.push(token)
            if streams { writeOut(piece) }
            return text.stopReason == nil
        }
        let rest = text.finish()
        if streams { writeOut(rest) }
        let end = clock.now
        if firstToken == nil, !result.tokens.isEmpty { firstToken = end }
        let stats = GenerationStats(promptTokens: ids.count, generatedTokens: result.tokens.count,
                                    timeToFirstToken: (firstToken ?? end) - start, total: end - start)
        let stopReason = text.stopReason?.rawValue ?? result.stopReason.rawValue
        finish(tokens: result.tokens, text: text.hasText ? text.text : nil, answer: text.text, stopReason: stopReason,
               stats: stats, logprobs: result.logprobs, tokenizer: tokenizer)
    }

    /// Generation with reasoning tracking: the engine's text (special tokens kept, so the markers show) split into
    /// reasoning and answer; --hide-reasoning prints only the answer; --stop-at-boxed and --extract-boxed read the
    /// answer.
    func runWithChannels(session: Session, ids: [Int32], options: GenerationOptions, tokenizer: Tokenizer?, streams: Bool) throws {
        var options = options
        options.stopStrings = stop
        var text = ChannelText(stopAtBoxed: stopAtBoxed)
        let clock = ContinuousClock()
        let start = clock.now
        var firstToken: ContinuousClock.Instant?
        let result = try session.generateText(prompt: ids, options: options) { piece in
            if firstToken == nil, piece.token != nil { firstToken = clock.now }
            guard let shown = text.push(piece) else { return false }
            if streams { writeOut(shownText(shown, hideReasoning: control.hideReasoning)) }
            return !text.boxClosed
        }
        let end = clock.now
        let generation = result.generation
        if firstToken == nil, !generation.tokens.isEmpty { firstToken = end }
        let stats = GenerationStats(promptTokens: ids.count, generatedTokens: generation.tokens.count,
                                    timeToFirstToken: (firstToken ?? end) - start, total: end - start)
        let stopReason = text.stopReason(generation.stopReason)
        finish(tokens: generation.tokens, text: text.text, reasoning: text.reasoning, answer: text.answer, stopReason: stopReason,
               stats: stats, reasoningTokens: generation.reasoningTokenCount, events: generation.events,
               logprobs: generation.logprobs, tokenizer: tokenizer)
    }

    /// Prints the end of one generation: the JSON object, the boxed answer or a newline, and the stats line.
    func finish(tokens: [Int32], text: String?, reasoning: String = "", answer: String, stopReason: String, stats: GenerationStats,
                reasoningTokens: Int = 0, events: [GenerationEvent] = [], logprobs: [TokenLogprob], tokenizer: Tokenizer?) {
        if json {
            emit(jsonObject(tokens: tokens, text: text, stopReason: stopReason, stats: stats, reasoning: reasoning, answer: answer,
                            reasoningTokens: reasoningTokens, events: events, logprobs: logprobs, tokenizer: tokenizer))
        } else if extractBoxed {
            let boxed = BoxedAnswer.lastBoxedContent(in: answer)
            emit(boxed ?? "")
            if boxed == nil { writeErr("mobilellm: note: the output has no \\boxed{...} answer") }
        } else {
            emit("")
        }
        let budget = events.isEmpty ? "" : " | reasoning budget ran out at token \(events[0].tokenIndex)"
        writeErr(stats.line + " | stop: \(stopReason)" + budget)
    }
}

/// The text of one generation with reasoning tracking, built from the engine's pieces: everything, the reasoning and
/// the answer, optionally ended at the closing brace of the answer's first `\boxed{...}` (--stop-at-boxed).
struct ChannelText {
    private(set) var text = ""
    private(set) var reasoning = ""
    private(set) var answer = ""
    private var boxed: BoxedCloseDetector?
    /// True once the answer's box closed (the text ends there).
    private(set) var boxClosed = false

    init(stopAtBoxed: Bool) {
        boxed = stopAtBoxed ? BoxedCloseDetector() : nil
    }

    /// The JSON stop reason of a generation that ended with `reason`: "boxed" once the box closed, the CLI's spelling
    /// of a stop string, else the engine's.
    func stopReason(_ reason: StopReason) -> String {
        boxClosed ? TextStopper.Reason.boxed.rawValue
            : reason == .stopString ? TextStopper.Reason.stopString.rawValue : reason.rawValue
    }

    /// Adds a piece; returns it as shown (cut after a closing box brace), or nil once the text has ended.
    mutating func push(_ piece: GeneratedPiece) -> GeneratedPiece? {
        guard !boxClosed else { return nil }
        var piece = piece
        if piece.channel == .answer, boxed != nil, let prefix = boxed?.prefixThroughClose(of: piece.text) {
            piece.text = prefix
            boxClosed = true
        }
        text += piece.text
        switch piece.channel {
        case .reasoning: reasoning += piece.text
        case .answer: answer += piece.text
        case .marker: break
        }
        return piece
    }
}
