/// Llama 2/3.x and SmolLM2: transformers' `llama` (LlamaForCausalLM).
///
/// RoPE rotates halves (x_i, x_{i+d/2}) on every layer, optionally with llama3 frequency scaling;
/// no QK norm; the MLP lives under `mlp`.
public enum Llama {
    static let definition = ArchitectureDefinition(
        modelTypes: ["llama"],
        configuration: { try configuration($0) },
        embeddingName: "model.embed_tokens.weight",
        finalNormName: "model.norm.weight",
        outputName: "lm_head.weight",
        layerNames: { LayerTensorNames.huggingFace(layer: $0, mlp: "mlp") })

    static func configuration(_ reader: JSONObjectReader) throws -> ModelConfiguration {
        let layerCount = try reader.int("num_hidden_layers", in: 1...4096)
        let headCount = try reader.int("num_attention_heads", in: 1...4096)
        let hiddenSize = try reader.int("hidden_size")
        if let activation = try reader.optionalString("hidden_act"), activation != "silu" {
            throw MobileLLMError.unsupported(path: reader.path, feature: "hidden_act \"\(activation)\" (only silu)")
        }
        if let tp = try reader.optionalInt("pretraining_tp"), tp > 1 {
            throw MobileLLMError.unsupported(path: reader.path, feature: "pretraining_tp \(tp)")
        }
        let rope = try ModelConfiguration.readRoPE(reader, defaultTheta: 10_000)
        let layer = LayerAttentionSpec(usesRoPE: true, qkNorm: false, chunkSize: nil, temperatureTuning: false)
        return ModelConfiguration(
            modelType: "llama",
            vocabularySize: try reader.int("vocab_size"),
            hiddenSize: hiddenSize,
            layerCount: layerCount,
            headCount: headCount,
            kvHeadCount: try reader.optionalInt("num_key_value_heads") ?? headCount,
            headDimension: try ModelConfiguration.headDimension(try reader.optionalInt("head_dim"), hiddenSize: hiddenSize, headCount: headCount, reader: reader),
            intermediateSize: try reader.int("intermediate_size"),
            rmsNormEpsilon: Float(try reader.optionalDouble("rms_norm_eps") ?? 1e-6),
            ropeTheta: rope.theta,
            ropeScaling: rope.scaling,
            ropePairing: .halves,
            maxPositions: try reader.optionalInt("max_position_embeddings") ?? 2048,
            tiedEmbeddings: try reader.optionalBool("tie_word_embeddings") ?? false,
            attentionBias: try reader.optionalBool("attention_bias") ?? false,
            mlpBias: try reader.optionalBool("mlp_bias") ?? false,
            layers: Array(repeating: layer, count: layerCount),
            attentionTemperatureScale: 0,
            attentionFloorScale: 1,
            bosTokenID: try reader.optionalInt("bos_token_id"),
            eosTokenIDs: try reader.intOrIntArray("eos_token_id"))
    }
}
