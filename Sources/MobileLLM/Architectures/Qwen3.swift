/// Qwen3 (dense): transformers' `qwen3` (Qwen3ForCausalLM), llama.cpp's `qwen3`.
///
/// A Llama skeleton whose q and k heads are RMS-normalised with learned per-head weights (`q_norm`, `k_norm`, one
/// weight per head dimension) *before* half-split RoPE; an explicit `head_dim` (128 by default, not hidden / heads);
/// `attention_bias` puts biases on q, k, v and o (false in every release). GGUF: NEOX RoPE, no q/k permutation,
/// `blk.N.attn_q_norm` / `attn_k_norm`. Sliding-window attention is refused.
public enum Qwen3: Architecture {
    public static let modelTypes = ["qwen3"]
    public static let ggufArchitectures = ["qwen3"]

    public static func configuration(_ reader: JSONObjectReader) throws -> ModelConfiguration {
        try ModelConfiguration.refuseSlidingWindow(reader)
        var c = try ModelConfiguration.readDecoder(reader, modelType: "qwen3", pairing: .halves, defaultTheta: 10_000,
                                                   defaultEpsilon: 1e-6, defaultMaxPositions: 32_768,
                                                   defaultHeadDimension: 128, defaultTied: false)
        for index in c.layers.indices { c.layers[index].qkNorm = true }
        return c
    }

    public static func configuration(gguf: GGUFFile, base: ModelConfiguration, prefix: String) throws -> ModelConfiguration {
        var c = base
        c.ropePairing = .halves
        for index in c.layers.indices { c.layers[index].qkNorm = true }
        return c
    }

    public static func tensors(_ c: ModelConfiguration) -> TensorSchema {
        var options = DecoderTensorOptions()
        options.qkvBias = c.attentionBias
        options.outputBias = c.attentionBias
        options.mlpBias = c.mlpBias
        options.headNorms = true
        return .decoder(c, options)
    }

    public static func layerRecipe(_ c: ModelConfiguration, layer: Int) -> LayerRecipe {
        LayerRecipe(blocks: [.headNorm(weighted: true), .rope(c.ropePairing)])
    }
}
