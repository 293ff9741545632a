import ArgumentParser
import Foundation
import MobileLLM

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate tokens from a prompt.",
        discussion: "Greedy unless --temperature is given. With --json prints {\"tokens\": [...generated ids...], \"text\": \"...\"}."
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .long, help: "Prompt as comma-separated token ids.")
    var tokens: String?

    @Option(name: .long, help: "Prompt as text (needs the model's tokenizer).")
    var prompt: String?

    @Option(name: .long, help: "Most tokens to generate.")
    var maxTokens: Int

    @Option(name: .long, help: "Sampling temperature (0 or absent: greedy).")
    var temperature: Float?

    @Option(name: .long, help: "Keep only the K most likely tokens (0: off).")
    var topK: Int = 0

    @Option(name: .long, help: "Nucleus sampling threshold (1: off).")
    var topP: Float = 1

    @Option(name: .long, help: "Drop tokens below P × the top probability (0: off).")
    var minP: Float = 0

    @Option(name: .long, help: "Repetition penalty as transformers applies it (1: off).")
    var repetitionPenalty: Float = 1

    @Option(name: .long, help: "Random seed; the same seed gives the same output.")
    var seed: UInt64?

    @Option(name: .long, help: "KV cache size in tokens (default: prompt + max tokens, within the model's limit).")
    var contextLength: Int?

    @Flag(name: .long, help: "Do not stop at end-of-sequence tokens.")
    var ignoreEos = false

    @Flag(name: .long, help: "Print {\"tokens\": [...], \"text\": \"...\"} on stdout.")
    var json = false

    @Flag(name: .long, help: "Wrap --prompt in the model's chat template as a user message (with the generation prompt).")
    var chat = false

    @Option(name: .long, help: "A system message for the chat template (implies --chat).")
    var system: String?

    func validate() throws {
        guard (tokens == nil) != (prompt == nil) else { throw ValidationError("give exactly one of --tokens or --prompt") }
        if tokens != nil, chat || system != nil { throw ValidationError("--chat and --system need --prompt TEXT") }
        guard maxTokens >= 0 else { throw ValidationError("--max-tokens: expected a count >= 0, found \(maxTokens)") }
    }

    func run() throws {
        let model = try modelOptions.load()
        let ids: [Int32]
        if let tokens {
            ids = try parseTokenList(tokens)
            guard !ids.isEmpty else { throw ValidationError("--tokens: needs at least one token id") }
        } else if chat || system != nil {
            // As transformers' apply_chat_template(tokenize=True): the template writes BOS itself.
            var messages: [ChatMessage] = []
            if let system { messages.append(ChatMessage(role: "system", content: system)) }
            messages.append(ChatMessage(role: "user", content: prompt ?? ""))
            let text = try model.applyChatTemplate(messages, addGenerationPrompt: true)
            ids = try model.tokenizer().encode(text, addSpecial: false, parseSpecial: true)
        } else {
            ids = try model.tokenizer().encode(prompt ?? "", addSpecial: true, parseSpecial: true)
        }
        guard !ids.isEmpty else { throw ValidationError("--prompt: the prompt has no tokens") }
        let sampling = SamplingParameters(temperature: temperature ?? 0, topK: topK, topP: topP, minP: minP,
                                          repetitionPenalty: repetitionPenalty, seed: seed)
        let capacity = contextLength ?? min(model.configuration.maxPositions, ids.count + max(maxTokens, 1))
        let session = try model.makeSession(contextLength: capacity, kvCacheType: modelOptions.kvCache)
        let options = GenerationOptions(maxTokens: maxTokens, sampling: sampling, ignoreEOS: ignoreEos)
        // Without --json, stream text pieces (whole UTF-8 sequences only), or token ids when there is no tokenizer.
        var detokenizer = (try? model.tokenizer())?.makeStreamingDetokenizer(skipSpecial: true)
        let result = try session.generate(prompt: ids, options: options) { token in
            guard !json else { return true }
            if detokenizer != nil {
                let piece = (try? detokenizer?.push(token)) ?? ""
                if !piece.isEmpty { FileHandle.standardOutput.write(Data(piece.utf8)) }
            } else {
                FileHandle.standardOutput.write(Data("\(token) ".utf8))
            }
            return true
        }
        if !json, let rest = detokenizer?.flush(), !rest.isEmpty { FileHandle.standardOutput.write(Data(rest.utf8)) }
        if json {
            // "text": the generated tokens decoded without special tokens (null when the model has no tokenizer).
            let text = (try? model.tokenizer().decode(result.tokens, skipSpecial: true)).map(jsonString) ?? "null"
            emit("{\"tokens\": [\(result.tokens.map(String.init).joined(separator: ", "))], \"text\": \(text), \"stop_reason\": \(jsonString(result.stopReason.rawValue))}")
        } else {
            emit("")
        }
    }
}
