import ArgumentParser
import Dispatch
import Foundation
import MobileLLM

extension QuantType: ExpressibleByArgument {
    /// Every command-line option of this type names a type to write, so read-only types (IQ4_NL) are refused here.
    public init?(argument: String) {
        guard let type = QuantType(name: argument), type.canQuantize else { return nil }
        self = type
    }
    public static var allValueStrings: [String] { allCases.filter(\.canQuantize).map(\.name) }
}

/// `mobilellm quantize`: writes a model as a GGUF file with quantized matrices.
struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Write a model (Hugging Face directory or GGUF) as a GGUF file with quantized weights.",
        discussion: """
        Projection matrices are stored as --type, the token embedding / output matrix as --keep-output (default: \
        --type), norms and biases as F32. A matrix whose row length is not a multiple of the type's block size falls \
        back to Q8_0 or F16 (noted on stderr). Llama models are written in llama.cpp's layout (q/k rows permuted for \
        its RoPE), so the file also runs in llama.cpp; MobileLLM-R1 (llama4_text) files load in mobilellm. The file \
        is written to a temporary name and renamed into place when complete. Progress goes to stderr; --json prints \
        a summary on stdout.

        --synthetic SHAPE writes pseudo-random weights with a known model's exact shapes instead of --model (as \
        `bench --synthetic` builds them, made directly in --type): a file for speed comparisons, e.g. \
        `quantize --synthetic llama-r1-950m --tokenizer DIR --type q4_0 --out r1-shapes.gguf` gives a Llama model \
        with MobileLLM-R1-950M's shapes that llama.cpp loads too (llama.cpp needs the tokenizer: --tokenizer names a \
        folder with tokenizer.json, or a GGUF file such as llama.cpp's ggml-vocab-llama-bpe.gguf, Llama 3's tokenizer with \
        these shapes' 128,256 tokens). Its outputs are meaningless. \
        Shapes: \(SyntheticModel.allCases.map(\.rawValue).joined(separator: ", ")).
        """
    )

    @Option(name: .long, help: "A Hugging Face model directory (config.json + *.safetensors) or a .gguf file.")
    var model: String?

    @Option(name: .long, help: "Instead of --model: random weights with the shapes of a known model (see below).")
    var synthetic: String?

    @Option(name: .long, help: "With --synthetic: the tokenizer to store in the file: a folder with tokenizer.json (and tokenizer_config.json), or a GGUF file whose tokenizer.* metadata is copied.")
    var tokenizer: String?

    @Option(name: .long, help: "With --synthetic: the random weights' seed.")
    var seed: UInt64 = 1

    @Option(name: .long, help: "The GGUF file to write.")
    var out: String

    @Option(name: .long, help: "Type of the projection matrices: q4_0, q4_1, q8_0, f16 (also q5_0, q5_1, q4_k, q5_k, q6_k, bf16, f32).")
    var type: QuantType

    @Option(name: .long, help: "Type of the token embedding / output matrix (default: --type).")
    var keepOutput: QuantType?

    @Option(name: .long, help: "general.name in the file (default: the model's name).")
    var name: String?

    @Option(name: .long, help: "Threads for quantization (default: every core).")
    var threads: Int?

    @Flag(name: .long, help: "Print a JSON summary on stdout: types, bytes, seconds.")
    var json = false

    @Flag(name: .long, help: "No progress bar.")
    var quiet = false

    func validate() throws {
        try validateModelSource(model: model, synthetic: synthetic)
        if synthetic == nil, tokenizer != nil { throw ValidationError("--tokenizer goes with --synthetic (a --model brings its own)") }
        if let threads, threads < 1 || threads > 1024 { throw ValidationError("--threads: expected 1...1024, found \(threads)") }
        guard !out.isEmpty else { throw ValidationError("--out: expected a file path") }
    }

    func run() throws {
        let start = DispatchTime.now().uptimeNanoseconds
        let interactive = isatty(2) != 0
        var lastReport = 0.0
        let options = GGUFExportOptions(type: type, outputType: keepOutput, name: name, threadCount: threads)
        let onProgress: (GGUFWriteProgress) -> Void = { progress in
            guard !quiet else { return }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let done = progress.tensorIndex == progress.tensorCount
            // Non-terminals get a line at most every 2 seconds (and the last one); terminals a redrawn bar.
            if !interactive, !done, seconds - lastReport < 2 { return }
            lastReport = seconds
            let fraction = progress.totalBytes > 0 ? Double(progress.bytesWritten) / Double(progress.totalBytes) : 1
            let width = 30
            let filled = min(width, Int(fraction * Double(width)))
            let bar = String(repeating: "=", count: filled) + (filled < width ? ">" + String(repeating: " ", count: width - filled - 1) : "")
            let rate = seconds > 0 ? Double(progress.bytesWritten) / 1e6 / seconds : 0
            let line = String(format: "[%@] %d/%d tensors, %.1f/%.1f MB, %.1f MB/s %@", bar, progress.tensorIndex, progress.tensorCount,
                              Double(progress.bytesWritten) / 1e6, Double(progress.totalBytes) / 1e6, rate,
                              done ? "" : progress.tensorName)
            let padded = line.padding(toLength: max(line.count, 110), withPad: " ", startingAt: 0)
            FileHandle.standardError.write(Data((interactive ? "\r" + padded + (done ? "\n" : "") : line + "\n").utf8))
        }
        let report: GGUFExportReport
        if let synthetic, let shape = SyntheticModel(rawValue: synthetic) {
            report = try GGUFExport.write(synthetic: shape, seed: seed, tokenizerDirectory: tokenizer, to: out, options: options, progress: onProgress)
        } else {
            report = try GGUFExport.write(modelAt: model ?? "", to: out, options: options, progress: onProgress)
        }
        for note in report.notes {
            FileHandle.standardError.write(Data("mobilellm: note: \(note)\n".utf8))
        }
        if json {
            let types = report.typeCounts.sorted { $0.key < $1.key }.map { (key: $0.key, value: TemplateValue.int($0.value)) }
            let summary: TemplateValue = [
                "out": .string(report.path), "architecture": .string(report.architecture), "type": .string(type.name),
                "output_type": .string((keepOutput ?? type).name), "tensors": .int(report.tensors.count),
                "types": .object(types), "bytes": .int(Int(report.fileBytes)),
                "tensor_bytes": .int(report.tensors.reduce(0) { $0 + Int($1.byteCount) }),
                "seconds": .rounded(report.seconds, places: 3), "notes": .array(report.notes.map { .string($0) })]
            emit(summary.jsonText)
        } else if !quiet {
            FileHandle.standardError.write(Data(String(format: "wrote %@: %d tensors, %.1f MB in %.2f s\n", report.path, report.tensors.count,
                                                       Double(report.fileBytes) / 1e6, report.seconds).utf8))
        }
    }
}
