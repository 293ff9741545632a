import ArgumentParser
import Foundation
import MobileLLM
import MobileLLMTools

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a model: architecture, configuration, tensors, tokenizer and chat template.",
        discussion: """
        Reads a model directory (config.json + safetensors) or a GGUF file and reports: the architecture and \
        model_type; the configuration (layers, attention heads, KV heads, head dimension, hidden and intermediate \
        sizes, vocabulary, context length, RoPE theta/scaling and which layers use RoPE or none (NoPE), tied \
        embeddings); the parameter count and the weight files' size; the tensors summarised by type (count, \
        parameters, bytes), or each one with --tensors (shape as the file stores it: safetensors row-major, GGUF in \
        ggml order, fastest dimension first); the tokenizer (vocabulary size, BOS/EOS, pre-tokenizer); and the chat \
        template (present or not, where it comes from, its length in characters and first line).

        With --json one object: {"path", "format", "architecture", "model_type", "config": {"layers", "heads", \
        "kv_heads", "head_dim", "hidden_size", "intermediate_size", "vocab_size", "context_length", "rope_theta", \
        "rope_scaling", "rope_layers" (one of R/N per layer), "nope_layers", "qk_norm", "tied_embeddings", \
        "rms_norm_eps", "bos_token_id", "eos_token_ids"}, "parameters", "file_bytes", "weight_files", \
        "tensor_types": [{"type", "count", "parameters", "bytes"}], "tensors": [{"name", "shape", "type", "bytes"}] \
        (with --tensors), "tokenizer": {"vocab_size", "model", "pre_tokenizer", "bos_token", "bos_token_id", \
        "eos_token", "eos_token_id"} or null, "chat_template": {"present", "source", "length", "first_line"}}.

        With --system no model is read: it prints the library's report of this machine instead (the CPU features \
        the kernels use, the instruction-set level in use and the kernel every weight type runs in each mode; the \
        same text as mobilellm_system_info()).
        """
    )

    @OptionGroup var modelOptions: ModelOptions

    @Flag(name: .long, help: "List every tensor (name, shape, type, bytes).")
    var tensors = false

    @Flag(name: .long, help: "Print one JSON object on stdout.")
    var json = false

    @Flag(name: .long, help: "Print this machine's CPU features and the kernel each weight type and mode runs (no model is read).")
    var system = false

    func run() throws {
        if system {
            guard !json, !tensors, modelOptions.model == nil else {
                throw ValidationError("--system takes no model and no --json/--tensors: it describes the machine")
            }
            emit(MobileLLMSystem.info.hasSuffix("\n") ? String(MobileLLMSystem.info.dropLast()) : MobileLLMSystem.info)
            return
        }
        let model = try modelOptions.load()
        let report = try ModelReport(model: model)
        emit(json ? try report.json(listTensors: tensors) : report.text(listTensors: tensors))
    }
}
