/// Qwen2 and Qwen2.5 (also Qwen2.5-Coder and -Math): transformers' `qwen2` (Qwen2ForCausalLM), llama.cpp's `qwen2`.
///
/// A Llama skeleton with biases on q, k and v but not on o_proj, half-split RoPE (llama.cpp's NEOX, with no q/k row
/// permutation in GGUF), tied or untied embeddings. Sliding-window attention (`use_sliding_window`) is refused.
public enum Qwen2: Architecture {
    public static let modelTypes = ["qwen2"]
    public static let ggufArchitectures = ["qwen2"]

    public static func configuration(_ reader: JSONObjectReader) throws -> ModelConfiguration {
        try ModelConfiguration.refuseSlidingWindow(reader)
        var c = try ModelConfiguration.readDecoder(reader, modelType: "qwen2", pairing: .halves, defaultTheta: 10_000,
                                                   defaultEpsilon: 1e-6, defaultMaxPositions: 32_768, defaultTied: false)
        c.attentionBias = true
        return c
    }

    public static func configuration(gguf: GGUFFile, base: ModelConfiguration, prefix: String) throws -> ModelConfiguration {
        var c = base
        c.ropePairing = .halves
        return c
    }

    public static func tensors(_ c: ModelConfiguration) -> TensorSchema {
        var options = DecoderTensorOptions()
        options.qkvBias = c.attentionBias
        options.mlpBias = c.mlpBias
        return .decoder(c, options)
    }

    public static func layerRecipe(_ c: ModelConfiguration, layer: Int) -> LayerRecipe {
        LayerRecipe(blocks: [.rope(c.ropePairing)])
    }
}
