/// Llama 2/3.x and SmolLM2: transformers' `llama` (LlamaForCausalLM), llama.cpp's `llama`.
///
/// RoPE rotates halves (x_i, x_{i+d/2}) on every layer, optionally with llama3 frequency scaling; no QK norm; the
/// MLP lives under `mlp`; `attention_bias` puts biases on q, k, v and o. llama.cpp's converter permutes q/k rows
/// into interleaved pairs, so a `llama` GGUF rotates interleaved pairs and export applies the same permutation.
public enum Llama: Architecture {
    public static let modelTypes = ["llama"]
    public static let ggufArchitectures = ["llama"]

    public static func configuration(_ reader: JSONObjectReader) throws -> ModelConfiguration {
        if let tp = try reader.optionalInt("pretraining_tp"), tp > 1 {
            throw MobileLLMError.unsupported(path: reader.path, feature: "pretraining_tp \(tp)")
        }
        return try ModelConfiguration.readDecoder(reader, modelType: "llama", pairing: .halves, defaultTheta: 10_000,
                                                  defaultEpsilon: 1e-6, defaultMaxPositions: 2048, defaultTied: false)
    }

    public static func configuration(gguf: GGUFFile, base: ModelConfiguration, prefix: String) throws -> ModelConfiguration {
        var c = base
        c.ropePairing = .interleaved
        return c
    }

    public static func tensors(_ c: ModelConfiguration) -> TensorSchema {
        var options = DecoderTensorOptions()
        options.qkvBias = c.attentionBias
        options.outputBias = c.attentionBias
        options.mlpBias = c.mlpBias
        if c.ropePairing == .halves {
            options.qkRowOrder = (.llamaPairs(heads: c.headCount), .llamaPairs(heads: c.kvHeadCount))
        }
        return .decoder(c, options)
    }

    public static func layerRecipe(_ c: ModelConfiguration, layer: Int) -> LayerRecipe {
        LayerRecipe(blocks: [.rope(c.ropePairing)])
    }
}
