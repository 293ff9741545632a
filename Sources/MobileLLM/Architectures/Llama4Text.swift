/// MobileLLM-R1: transformers' `llama4_text` (Llama4ForCausalLM), dense layers only.
///
/// Differences from Llama that matter for correctness:
/// - RoPE rotates interleaved pairs (x0,x1),(x2,x3)… and only on layers with `no_rope_layers[i] == 1`;
/// - QK norm: a weightless RMS normalisation of every q and k head after RoPE, on RoPE layers, when `use_qk_norm`;
/// - NoPE layers may scale q by `log1p(floor((pos+1)/floor_scale)) * attn_scale + 1` (`attn_temperature_tuning`);
/// - RoPE layers default to chunked attention of `attention_chunk_size` positions (`layer_types`);
/// - the MLP lives under `feed_forward` and has `intermediate_size_mlp` units.
public enum Llama4Text {
    static let definition = ArchitectureDefinition(
        modelTypes: ["llama4_text"],
        configuration: { try configuration($0) },
        embeddingName: "model.embed_tokens.weight",
        finalNormName: "model.norm.weight",
        outputName: "lm_head.weight",
        layerNames: { LayerTensorNames.huggingFace(layer: $0, mlp: "feed_forward") },
        configurationFieldNames: ["intermediate_size": "intermediate_size_mlp"])

    static func configuration(_ reader: JSONObjectReader) throws -> ModelConfiguration {
        let layerCount = try reader.int("num_hidden_layers", in: 1...4096)
        let headCount = try reader.int("num_attention_heads", in: 1...4096)
        let hiddenSize = try reader.int("hidden_size")

        // Mixture-of-experts layers are not implemented: refuse them explicitly rather than mis-run them.
        if let moeLayers = try reader.optionalIntArray("moe_layers") {
            if !moeLayers.isEmpty {
                throw MobileLLMError.unsupported(path: reader.path, feature: "mixture-of-experts (moe_layers \(moeLayers)); only dense llama4_text models such as MobileLLM-R1 run")
            }
        } else {
            let step = try reader.optionalInt("interleave_moe_layer_step") ?? 1
            if step > 0 {
                throw MobileLLMError.unsupported(path: reader.path, feature: "mixture-of-experts (interleave_moe_layer_step \(step) with no explicit empty moe_layers); only dense llama4_text models such as MobileLLM-R1 run")
            }
        }
        if let activation = try reader.optionalString("hidden_act"), activation != "silu" {
            throw MobileLLMError.unsupported(path: reader.path, feature: "hidden_act \"\(activation)\" (only silu)")
        }

        // no_rope_layers: 1 = this layer uses RoPE. Absent or empty: every `no_rope_layer_interval`-th layer is NoPE.
        var ropeFlags = try reader.optionalIntArray("no_rope_layers") ?? []
        if ropeFlags.isEmpty {
            let interval = try reader.optionalInt("no_rope_layer_interval") ?? 4
            guard interval > 0 else { throw reader.fail("no_rope_layer_interval", "expected a positive integer, found \(interval)") }
            ropeFlags = (0..<layerCount).map { ($0 + 1) % interval != 0 ? 1 : 0 }
        }
        guard ropeFlags.count == layerCount else {
            throw reader.fail("no_rope_layers", "has \(ropeFlags.count) entries, expected one per layer (\(layerCount))")
        }
        guard ropeFlags.allSatisfy({ $0 == 0 || $0 == 1 }) else {
            throw reader.fail("no_rope_layers", "entries must be 0 or 1, found \(ropeFlags)")
        }
        let layerTypes = try reader.optionalStringArray("layer_types") ?? ropeFlags.map { $0 == 1 ? "chunked_attention" : "full_attention" }
        guard layerTypes.count == layerCount else {
            throw reader.fail("layer_types", "has \(layerTypes.count) entries, expected one per layer (\(layerCount))")
        }
        let chunkSize = try reader.optionalInt("attention_chunk_size")
        let useQKNorm = try reader.optionalBool("use_qk_norm") ?? true
        let temperatureTuning = try reader.optionalBool("attn_temperature_tuning") ?? true
        let layers = try zip(ropeFlags, layerTypes).enumerated().map { index, pair -> LayerAttentionSpec in
            let usesRoPE = pair.0 == 1
            let chunk: Int?
            switch pair.1 {
            case "full_attention": chunk = nil
            case "chunked_attention": chunk = chunkSize
            default: throw reader.fail("layer_types[\(index)]", "expected \"full_attention\" or \"chunked_attention\", found \"\(pair.1)\"")
            }
            return LayerAttentionSpec(usesRoPE: usesRoPE, qkNorm: useQKNorm && usesRoPE, chunkSize: chunk,
                                      temperatureTuning: temperatureTuning && !usesRoPE)
        }
        let rope = try ModelConfiguration.readRoPE(reader, defaultTheta: 500_000)
        return ModelConfiguration(
            modelType: "llama4_text",
            vocabularySize: try reader.int("vocab_size"),
            hiddenSize: hiddenSize,
            layerCount: layerCount,
            headCount: headCount,
            kvHeadCount: try reader.optionalInt("num_key_value_heads") ?? headCount,
            headDimension: try ModelConfiguration.headDimension(try reader.optionalInt("head_dim"), hiddenSize: hiddenSize, headCount: headCount, reader: reader),
            intermediateSize: try reader.optionalInt("intermediate_size_mlp") ?? 16384,
            rmsNormEpsilon: Float(try reader.optionalDouble("rms_norm_eps") ?? 1e-5),
            ropeTheta: rope.theta,
            ropeScaling: rope.scaling,
            ropePairing: .interleaved,
            maxPositions: try reader.optionalInt("max_position_embeddings") ?? 131_072,
            tiedEmbeddings: try reader.optionalBool("tie_word_embeddings") ?? false,
            attentionBias: try reader.optionalBool("attention_bias") ?? false,
            mlpBias: false,
            layers: layers,
            attentionTemperatureScale: try reader.optionalDouble("attn_scale") ?? 0.1,
            attentionFloorScale: try reader.optionalDouble("floor_scale") ?? 8192,
            bosTokenID: try reader.optionalInt("bos_token_id"),
            eosTokenIDs: try reader.intOrIntArray("eos_token_id"))
    }
}
