import ArgumentParser
import Foundation
import MobileLLM

/// Exit codes: 0 success, 1 input error (one line on stderr), 2 usage error.
struct MobileLLMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mobilellm",
        abstract: "Run MobileLLM-R1 and Llama-architecture models on the CPU.",
        discussion: "Machine-readable output goes to stdout as JSON; diagnostics go to stderr. Exit codes: 0 success, 1 bad input (a one-line message on stderr), 2 bad usage.",
        subcommands: [
            LogitsCommand.self,
            GenerateCommand.self,
            TokenizeCommand.self,
            DetokenizeCommand.self,
            TemplateCommand.self,
            BenchCommand.self,
            QuantizeCommand.self,
        ]
    )
}

/// Options shared by every command that loads a model.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "A Hugging Face model directory (config.json + *.safetensors) or a .gguf file.")
    var model: String

    @Option(name: .long, help: "Threads for matrix work (default: every core).")
    var threads: Int?

    @Option(name: .long, help: "Quantized weights: 'exact' (f32 activations, as transformers on the dequantized model) or 'int8' (faster integer dot products, as llama.cpp).")
    var activations: ActivationPrecision = .exact

    @Option(name: .long, help: "Quantize the weights while loading: q4_0, q4_1, q8_0 (also q4_k, q6_k, f16, bf16, f32).")
    var quantize: QuantType?

    @Option(name: .long, help: "KV cache: f32, f16 or q8_0 (default: f32 for float weights, f16 for quantized).")
    var kvCache: KVCacheType?

    func load() throws -> Model {
        try Model(path: model, options: ModelLoadOptions(threadCount: threads, activationPrecision: activations, quantize: quantize))
    }
}

extension ActivationPrecision: ExpressibleByArgument {}
extension KVCacheType: ExpressibleByArgument {}

/// Parses "1,2,3" into token ids.
func parseTokenList(_ text: String) throws -> [Int32] {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
    if parts.count == 1 && parts[0].isEmpty { return [] }
    return try parts.enumerated().map { index, part in
        guard let value = Int32(part) else {
            throw ValidationError("--tokens: item \(index + 1) \"\(part)\" is not a token id (expected comma-separated integers such as 1,2,3)")
        }
        return value
    }
}

/// Writes JSON to stdout in one piece.
func emit(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

/// A JSON number for a float (null for NaN or infinity, which JSON cannot carry).
func jsonNumber(_ value: Float) -> String {
    value.isFinite ? "\(value)" : "null"
}

/// A JSON string literal.
func jsonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

struct LogitsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logits",
        abstract: "Print the logits a model gives for a token sequence.",
        discussion: "Output: {\"logits\": [[...]]} with one row (the last position) or, with --all-positions, one row per input token."
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .long, help: "Comma-separated token ids, e.g. 1,2,3.")
    var tokens: String

    @Flag(name: .long, help: "Print a row for every input position instead of only the last.")
    var allPositions = false

    func run() throws {
        let ids = try parseTokenList(tokens)
        guard !ids.isEmpty else { throw ValidationError("--tokens: needs at least one token id") }
        let model = try modelOptions.load()
        let session = try model.makeSession(contextLength: min(model.configuration.maxPositions, max(ids.count, 1)), kvCacheType: modelOptions.kvCache)
        let logits = try session.feed(ids, logits: allPositions ? .all : .last)
        var out = "{\"logits\": ["
        out.reserveCapacity(logits.values.count * 12 + 32)
        for row in 0..<logits.rowCount {
            if row > 0 { out += ", " }
            out += "["
            var first = true
            for value in logits.row(row) {
                if !first { out += ", " }
                first = false
                out += jsonNumber(value)
            }
            out += "]"
        }
        out += "]}"
        emit(out)
    }
}

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

/// Runs the command with the exit-code convention: 0 success, 1 input error, 2 usage error; never a trap.
func runMain() -> Int32 {
    do {
        var command = try MobileLLMCommand.parseAsRoot()
        try command.run()
        return 0
    } catch let error as MobileLLMError {
        FileHandle.standardError.write(Data("mobilellm: error: \(error.description)\n".utf8))
        return 1
    } catch let error as ValidationError {
        FileHandle.standardError.write(Data("mobilellm: error: \(error.message)\n".utf8))
        return 2
    } catch {
        let code = MobileLLMCommand.exitCode(for: error)
        let message = MobileLLMCommand.fullMessage(for: error)
        if code == .success {
            if !message.isEmpty { print(message) }
            return 0
        }
        FileHandle.standardError.write(Data("mobilellm: \(message)\n".utf8))
        return 2
    }
}

exit(runMain())
