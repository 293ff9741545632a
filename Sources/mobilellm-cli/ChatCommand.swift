import ArgumentParser
import Dispatch
import Foundation
import MobileLLM
import Synchronization

struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Chat with a model: a multi-turn conversation read from stdin, answers streamed to stdout.",
        discussion: """
        Each line on stdin is a user message (a terminal or a pipe). The conversation is rendered with the model's \
        chat template before every turn, and only the tokens the KV cache does not already hold are computed, so \
        earlier turns are not processed again. Commands:
          /reset        start over (the system message stays)
          /system TEXT  set the system message (/system alone removes it)
          /help         list the commands
          /exit         end the chat (so does end of input, Ctrl-D)
        Ctrl-C while an answer is being generated stops that answer (the partial answer stays in the conversation); \
        Ctrl-C at the prompt ends the chat (exit status 0, like /exit).

        After each answer one line on stderr reports the turn: prompt tokens reused from the cache and computed \
        (with their rate), generated tokens and the decode rate, time to the first token, and why the answer ended \
        (eos, max_tokens, context_full, cancelled). When the conversation outgrows --context-length the oldest turns \
        are dropped (--fail-when-full: the turn is refused instead). With --json each answer is printed as one JSON \
        object on stdout instead of streamed text: {"turn", "reply", "tokens", "stop_reason", "cancelled", \
        "reused_tokens", "prompt_tokens" (computed this turn), "prompt_tokens_per_second", "generated_tokens", \
        "decode_tokens_per_second", "time_to_first_token_ms", "dropped_messages", "reasoning", "answer", \
        "reasoning_tokens", "events"} (and "logprobs" with --logprobs).

        The control options are generate's (--reasoning-*, --hide-reasoning, --grammar, --json-schema, --logit-bias, \
        --ban, --logprobs) and apply to every turn. Reasoning tracking is on when a reasoning option is given or when \
        the template's generation prompt opens a thought; the thought then stays out of the conversation's history \
        (the answer is the assistant message's content, the thought its reasoning_content, which templates such as \
        Qwen3's render and others drop).
        """
    )

    @OptionGroup var modelOptions: ModelOptions

    @OptionGroup var sampling: SamplingOptions

    @OptionGroup(title: "Control") var control: ControlOptions

    @Option(name: .long, help: "Most tokens per answer.")
    var maxTokens: Int = 1024

    @Option(name: .long, help: "KV cache size in tokens: how much conversation is kept (default: min(4096, the model's limit)).")
    var contextLength: Int?

    @Option(name: .long, help: "The system message.")
    var system: String?

    @Flag(name: .long, help: "Math: the MobileLLM-R1 model card's system message (reason step by step, final answer in \\boxed{}).")
    var math = false

    @Flag(name: .long, help: "Refuse a turn that does not fit the context instead of dropping the oldest turns.")
    var failWhenFull = false

    @Flag(name: .long, help: "Print each answer as one JSON object instead of streaming it.")
    var json = false

    static let help = """
    /reset        start over (the system message stays)
    /system TEXT  set the system message (/system alone removes it)
    /help         this list
    /exit         end the chat (also: end of input)
    Ctrl-C stops the answer being generated; at the prompt it ends the chat.
    """

    func validate() throws {
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens: expected a count >= 1, found \(maxTokens)") }
        if system != nil && math { throw ValidationError("--system and --math each set the system message: give one of them") }
    }

    func run() throws {
        let grammar = try control.compiledGrammar()
        var options = sampling.generationOptions(maxTokens: maxTokens)
        try control.apply(to: &options, grammar: grammar)
        let model = try modelOptions.load()
        let conversation = try Conversation(model: model, contextLength: contextLength, kvCacheType: modelOptions.kvCache,
                                            system: system ?? (math ? MathPrompts.stepByStep : nil),
                                            overflowPolicy: failWhenFull ? .fail : .dropOldestTurns)
        let interrupts = InterruptHandler(conversation: conversation)
        let interactive = isatty(STDIN_FILENO) != 0
        if interactive { writeErr("mobilellm chat: /help for commands; Ctrl-C stops an answer, Ctrl-D ends the chat.") }
        var turns = 0
        while true {
            if interactive { writeOut("> ") }
            guard let line = readLine(strippingNewline: true) else { break }
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            if text.hasPrefix("/") {
                if try !command(text, conversation) { break }
                continue
            }
            turns += 1
            do {
                var turnOptions = options
                turnOptions.reasoning = try reasoning(for: text, in: conversation)
                let turn = try interrupts.whileAnswering {
                    if turnOptions.reasoning != nil {
                        return try conversation.send(text, options: turnOptions) { (piece: GeneratedPiece) in
                            if !json { writeOut(shownText(piece, hideReasoning: control.hideReasoning)) }
                            return true
                        }
                    }
                    return try conversation.send(text, options: turnOptions) { (piece: String) in
                        if !json { writeOut(piece) }
                        return true
                    }
                }
                report(turn, number: turns, tokenizer: try? model.tokenizer())
            } catch let error as MobileLLMError {
                if !json { emit("") }
                writeErr("mobilellm: error: \(error.description)")
            }
        }
    }

    /// The reasoning options of the turn answering `text`: the flags' when a reasoning flag was given, else on only
    /// when the chat template's generation prompt opens a thought (the rendered prompt ends inside one).
    func reasoning(for text: String, in conversation: Conversation) throws -> ReasoningOptions? {
        if control.asksForReasoning { return control.reasoningOptions }
        let options = control.reasoningOptions
        let rendered = try conversation.template.render(messages: conversation.messages + [ChatMessage(role: "user", content: text)],
                                                        addGenerationPrompt: true, variables: conversation.variables)
        return options.endsInsideThought(rendered) ? options : nil
    }

    /// Runs a /command; returns false to end the chat.
    func command(_ text: String, _ conversation: Conversation) throws -> Bool {
        let name = text.prefix { $0 != " " }
        let argument = text.dropFirst(name.count).trimmingCharacters(in: .whitespaces)
        switch name {
        case "/exit", "/quit":
            return false
        case "/reset":
            conversation.reset()
            writeErr("(conversation cleared)")
        case "/system":
            conversation.setSystem(argument.isEmpty ? nil : argument)
            writeErr(argument.isEmpty ? "(system message removed)" : "(system message set)")
        case "/help":
            writeErr(Self.help)
        default:
            writeErr("mobilellm: unknown command \(name) (/help lists the commands)")
        }
        return true
    }

    /// Ends the streamed answer and writes the turn's statistics (and, with --json, the answer object).
    func report(_ turn: ConversationTurn, number: Int, tokenizer: Tokenizer?) {
        let stats = GenerationStats(promptTokens: turn.fedTokenCount, generatedTokens: turn.tokens.count,
                                    timeToFirstToken: turn.timeToFirstToken, total: turn.duration)
        let stop = turn.cancelled ? "cancelled" : turn.stopReason.rawValue
        if json {
            let members: [(key: String, value: TemplateValue)] = [
                (key: "turn", value: .int(number)), (key: "reply", value: .string(turn.reply)),
                (key: "tokens", value: .ints(turn.tokens)), (key: "stop_reason", value: .string(stop)),
                (key: "cancelled", value: .bool(turn.cancelled)), (key: "reused_tokens", value: .int(turn.reusedTokenCount))]
                + stats.jsonMembers + [(key: "dropped_messages", value: .int(turn.droppedMessageCount))]
                + controlJSONMembers(reasoning: turn.reasoning, answer: turn.reply, reasoningTokens: turn.reasoningTokenCount,
                                     events: turn.events, logprobs: control.logprobs == nil ? nil : turn.logprobs, tokenizer: tokenizer)
            emit(TemplateValue.object(members).jsonText)
        } else {
            emit("")
        }
        let dropped = turn.droppedMessageCount > 0 ? " | dropped \(turn.droppedMessageCount) old messages" : ""
        writeErr("turn \(number) | reused: \(turn.reusedTokenCount) tokens | \(stats.line) | stop: \(stop)\(dropped)")
    }
}

/// Ctrl-C handling for the chat: SIGINT is ignored as a signal and delivered through a dispatch source instead (no
/// Swift code runs in a signal handler). While an answer is generated it cancels the answer; at the prompt it ends
/// the process with status 0, as /exit does (a user quitting is not an error).
final class InterruptHandler: @unchecked Sendable {  // `answering` is a mutex; `source` is only set up in init
    private let answering = Locked(false)
    private let source: DispatchSourceSignal
    private let conversation: Conversation

    init(conversation: Conversation) {
        self.conversation = conversation
        signal(SIGINT, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGINT, queue: DispatchQueue.global())
        source.setEventHandler { [weak self] in self?.interrupted() }
        source.resume()
    }

    /// Ctrl-C: cancel the answer, or end the chat when none is being generated.
    private func interrupted() {
        let busy = answering.withLock { busy in
            if busy { conversation.cancel() }
            return busy
        }
        if !busy {
            FileHandle.standardError.write(Data("\n".utf8))
            _exit(0)  // not exit(): the main thread may hold stdin's lock inside readLine
        }
    }

    deinit { source.cancel() }

    /// Runs `body` with Ctrl-C cancelling the conversation's answer.
    func whileAnswering<T>(_ body: () throws -> T) rethrows -> T {
        answering.withLock { $0 = true }
        defer { answering.withLock { $0 = false } }
        return try body()
    }
}
