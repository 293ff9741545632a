/// MobileLLM-R1: transformers' `llama4_text` (Llama4ForCausalLM), dense layers only; GGUF `llama4`.
///
/// Differences from Llama that matter for correctness:
/// - RoPE rotates interleaved pairs (x0,x1),(x2,x3)… and only on layers with `no_rope_layers[i] == 1`;
/// - QK norm: a weightless RMS normalisation of every q and k head after RoPE, on RoPE layers, when `use_qk_norm`;
/// - NoPE layers may scale q by `log1p(floor((pos+1)/floor_scale)) * attn_scale + 1` (`attn_temperature_tuning`);
/// - RoPE layers default to chunked attention of `attention_chunk_size` positions (`layer_types`);
/// - the MLP lives under `feed_forward` and has `intermediate_size_mlp` units.
public enum Llama4Text: Architecture {
    public static let modelTypes = ["llama4_text"]
    public static let ggufArchitectures = ["llama4"]
    public static let configurationFieldNames = ["intermediate_size": "intermediate_size_mlp"]

    public static func tensors(_ c: ModelConfiguration) -> TensorSchema {
        var options = DecoderTensorOptions()
        options.mlpModule = "feed_forward"
        options.mlpWidthField = "intermediate_size_mlp"
        options.qkvBias = c.attentionBias
        options.outputBias = c.attentionBias
        return .decoder(c, options)
    }

    /// RoPE layers: RoPE, then the weightless QK norm; NoPE layers: temperature tuning of q; chunked windows.
    public static func layerRecipe(_ c: ModelConfiguration, layer: Int) -> LayerRecipe {
        let spec = c.layers[layer]
        var blocks: [PositionBlock] = []
        if spec.usesRoPE { blocks.append(.rope(c.ropePairing)) }
        if spec.qkNorm { blocks.append(.headNorm(weighted: false)) }
        if spec.temperatureTuning {
            blocks.append(.temperatureTuning(scale: Float(c.attentionTemperatureScale), floorScale: Float(c.attentionFloorScale)))
        }
        return LayerRecipe(blocks: blocks, chunkSize: spec.chunkSize)
    }

    public static func configuration(_ reader: JSONObjectReader) throws -> ModelConfiguration {
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

    /// llama4 GGUF files: this reader's own keys (`llama4.no_rope_layers`, `llama4.use_qk_norm`,
    /// `llama4.attention.chunk_size`, `llama4.attention.temperature_tuning`, `llama4.attention.temperature_scale`,
    /// `llama4.attention.temperature_floor_scale`) come first; without them, `llama4.attention.sliding_window` = 0
    /// (what the converter writes for MobileLLM) means every layer uses RoPE with QK norm and full attention, and
    /// otherwise llama.cpp's Llama-4 defaults apply (every 4th layer NoPE with temperature tuning 0.1 / 8192, chunked
    /// attention of 8192 on RoPE layers).
    public static func configuration(gguf: GGUFFile, base: ModelConfiguration, prefix a: String) throws -> ModelConfiguration {
        var c = base
        let path = gguf.path
        c.ropePairing = .interleaved
        if gguf.metadata["\(a).rope.freq_base"] == nil { c.ropeTheta = 500_000 }
        let experts = try gguf.integer("llama4.expert_count") ?? 0
        let step = try gguf.integer("llama4.interleave_moe_layer_step") ?? 0
        if experts > 0 || step > 0 {
            throw MobileLLMError.unsupported(path: path, feature: "mixture-of-experts (llama4.expert_count \(experts), llama4.interleave_moe_layer_step \(step)); only dense models such as MobileLLM-R1 run")
        }
        let layers = c.layerCount
        let slidingWindow = try gguf.integer("llama4.attention.sliding_window")
        let mobileLLMStyle = slidingWindow == 0
        var ropeFlags = try gguf.integerArray("llama4.no_rope_layers")
            ?? (0..<max(0, layers)).map { mobileLLMStyle || ($0 + 1) % 4 != 0 ? 1 : 0 }
        if ropeFlags.count != layers {
            throw MobileLLMError.invalidFile(path: path, field: "llama4.no_rope_layers", problem: "has \(ropeFlags.count) entries, expected \(layers)")
        }
        ropeFlags = ropeFlags.map { $0 == 0 ? 0 : 1 }
        let qkNorm = try gguf.bool("llama4.use_qk_norm") ?? true
        let chunk = try gguf.integer("llama4.attention.chunk_size") ?? (mobileLLMStyle ? 0 : 8192)
        let tuning = try gguf.bool("llama4.attention.temperature_tuning") ?? !mobileLLMStyle
        c.attentionTemperatureScale = try gguf.number("llama4.attention.temperature_scale") ?? 0.1
        c.attentionFloorScale = try gguf.number("llama4.attention.temperature_floor_scale") ?? 8192
        c.layers = ropeFlags.map { flag in
            LayerAttentionSpec(usesRoPE: flag == 1, qkNorm: qkNorm && flag == 1, chunkSize: flag == 1 && chunk > 0 ? chunk : nil,
                               temperatureTuning: tuning && flag == 0)
        }
        return c
    }

    /// mobilellm's own `llama4.*` keys for the per-layer attention pattern, which must follow one pattern for all RoPE
    /// / NoPE layers: RoPE flags per layer, one QK-norm switch and one chunk size for the RoPE layers, temperature
    /// tuning on the NoPE layers.
    public static func ggufMetadata(_ c: ModelConfiguration, prefix: String, path: String) throws -> [(String, GGUFValue)] {
        let flags = c.layers.map { $0.usesRoPE ? Int32(1) : 0 }
        let qkNorm = c.layers.contains { $0.qkNorm }
        let tuning = c.layers.contains { $0.temperatureTuning }
        let chunks = Set(c.layers.filter(\.usesRoPE).map { $0.chunkSize ?? 0 })
        for (index, layer) in c.layers.enumerated() {
            let expected = LayerAttentionSpec(usesRoPE: layer.usesRoPE, qkNorm: qkNorm && layer.usesRoPE,
                                              chunkSize: layer.usesRoPE && (chunks.first ?? 0) > 0 ? chunks.first : nil,
                                              temperatureTuning: tuning && !layer.usesRoPE)
            guard chunks.count <= 1, layer == expected else {
                throw MobileLLMError.unsupported(path: path, feature: "layer \(index)'s attention (RoPE \(layer.usesRoPE), QK norm \(layer.qkNorm), chunk \(layer.chunkSize.map(String.init) ?? "none"), temperature tuning \(layer.temperatureTuning)) does not follow one pattern for all RoPE / NoPE layers, which the GGUF llama4 keys cannot express")
            }
        }
        let chunk = UInt32(clamping: chunks.first ?? 0)
        return [
            ("llama4.interleave_moe_layer_step", .uint32(0)),
            ("llama4.expert_count", .uint32(0)),
            ("llama4.attention.sliding_window", .uint32(chunk)),
            ("llama4.no_rope_layers", .array(.int32(flags))),
            ("llama4.use_qk_norm", .bool(qkNorm)),
            ("llama4.attention.chunk_size", .uint32(chunk)),
            ("llama4.attention.temperature_tuning", .bool(tuning)),
            ("llama4.attention.temperature_scale", .float32(Float(c.attentionTemperatureScale))),
            ("llama4.attention.temperature_floor_scale", .float32(Float(c.attentionFloorScale))),
        ]
    }
}
