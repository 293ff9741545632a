import Foundation

/// A model stored as one GGUF file (llama.cpp's format): configuration from its metadata keys, tensors served under
/// transformers' names so the architecture code is the same for safetensors and GGUF.
struct GGUFModelSource: TensorSource {
    /// The parsed file.
    let gguf: GGUFFile
    /// Tensors by GGUF name.
    let tensors: [String: StoredTensor]
    /// The configuration read from the metadata.
    let configuration: ModelConfiguration

    var location: String { gguf.path }

    /// Reads and validates the file's metadata and tensor table (no tensor bytes are read).
    init(path: String) throws {
        let gguf = try GGUFFile(path: path)
        self.gguf = gguf
        var tensors: [String: StoredTensor] = [:]
        for info in gguf.tensors {
            guard let known = info.type else {
                throw MobileLLMError.invalidFile(path: path, field: "tensor \(info.name).type",
                                                 problem: "\(info.rawType) is not a ggml type (expected one of F32, F16, BF16, Q4_0, Q4_1, Q8_0, Q4_K, Q6_K)")
            }
            guard let type = QuantType(rawValue: Int32(truncatingIfNeeded: info.rawType)) else {
                throw MobileLLMError.unsupported(path: path, feature: "tensor '\(info.name)' has type \(known) (field 'tensor \(info.name).type'; supported: F32, F16, BF16, Q4_0, Q4_1, Q8_0, Q4_K, Q6_K)")
            }
            guard let bytes = gguf.data(of: info), let base = bytes.baseAddress else {
                throw MobileLLMError.invalidFile(path: path, field: info.name, problem: "tensor data is not inside the file")
            }
            tensors[info.name] = StoredTensor(name: info.name, type: type, shape: info.dimensions.reversed(), owner: gguf.file, pointer: base)
        }
        self.tensors = tensors
        var configuration = try ModelConfiguration.parse(gguf: gguf, tensors: tensors)
        try configuration.validate(path: path, fieldNames: Self.fieldNames(architecture: configuration.modelType == "llama" ? "llama" : "llama4"))
        if let factors = tensors["rope_freqs.weight"] {
            guard factors.count == configuration.headDimension / 2 else {
                throw MobileLLMError.invalidFile(path: path, field: "rope_freqs.weight",
                                                 problem: "has \(factors.count) values, expected head_dim / 2 = \(configuration.headDimension / 2)")
            }
            configuration.ropeScaling = .frequencyFactors(WeightMatrix(factors).floats())
        }
        self.configuration = configuration
    }

    func tensor(named name: String) -> StoredTensor? {
        Self.ggufName(forTransformersName: name).flatMap { tensors[$0] }
    }

    func storedName(of name: String) -> String { Self.ggufName(forTransformersName: name) ?? name }

    var configurationFieldNames: [String: String] {
        Self.fieldNames(architecture: configuration.modelType == "llama" ? "llama" : "llama4")
    }

    /// The metadata keys of architecture `a` that hold config.json's fields, by config.json name.
    static func fieldNames(architecture a: String) -> [String: String] {
        ["vocab_size": "\(a).vocab_size", "hidden_size": "\(a).embedding_length", "num_hidden_layers": "\(a).block_count",
         "num_attention_heads": "\(a).attention.head_count", "num_key_value_heads": "\(a).attention.head_count_kv",
         "head_dim": "\(a).attention.key_length", "intermediate_size": "\(a).feed_forward_length",
         "max_position_embeddings": "\(a).context_length", "rms_norm_eps": "\(a).attention.layer_norm_rms_epsilon",
         "rope_theta": "\(a).rope.freq_base", "attention_chunk_size": "\(a).attention.chunk_size",
         "floor_scale": "\(a).attention.temperature_floor_scale",
         "bos_token_id": "tokenizer.ggml.bos_token_id", "eos_token_id": "tokenizer.ggml.eos_token_id"]
    }

    /// llama.cpp's name for a transformers tensor name (nil for names it has no counterpart for).
    static func ggufName(forTransformersName name: String) -> String? {
        switch name {
        case "model.embed_tokens.weight": return "token_embd.weight"
        case "model.norm.weight": return "output_norm.weight"
        case "lm_head.weight": return "output.weight"
        default: break
        }
        let parts = name.split(separator: ".")
        guard parts.count >= 5, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]) else { return nil }
        let suffix = String(parts.last ?? "weight")
        let module = parts[3..<(parts.count - 1)].joined(separator: ".")
        let table = [
            "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
            "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
            "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
            "feed_forward.gate_proj": "ffn_gate", "feed_forward.up_proj": "ffn_up", "feed_forward.down_proj": "ffn_down",
        ]
        guard let short = table[module] else { return nil }
        return "blk.\(layer).\(short).\(suffix)"
    }
}

extension GGUFFile {
    /// A numeric value of any integer or float type; nil when absent.
    func number(_ key: String) throws -> Double? {
        guard let value = metadata[key] else { return nil }
        switch value {
        case let .float32(v): return Double(v)
        case let .float64(v): return v
        default:
            guard let integer = value.integer else {
                throw MobileLLMError.invalidFile(path: path, field: key, problem: "expected a number, found \(value.typeName)")
            }
            return Double(integer)
        }
    }

    /// A required integer value in `range`.
    func requiredInteger(_ key: String, in range: ClosedRange<Int> = 1...(1 << 24)) throws -> Int {
        guard let value = try integer(key) else {
            throw MobileLLMError.invalidFile(path: path, field: key, problem: "missing (expected an integer in \(range.lowerBound)...\(range.upperBound))")
        }
        guard range.contains(value) else {
            throw MobileLLMError.invalidFile(path: path, field: key, problem: "expected an integer in \(range.lowerBound)...\(range.upperBound), found \(value)")
        }
        return value
    }
}

extension ModelConfiguration {
    /// Reads a configuration from llama.cpp's metadata keys (`general.architecture` = `llama` or `llama4`).
    ///
    /// llama.cpp's converter permutes q/k rows of `llama` models into Meta's original layout, so GGUF llama models rotate
    /// interleaved pairs, like Llama-4. For `llama4` files, this reader's own keys (`llama4.no_rope_layers`,
    /// `llama4.use_qk_norm`, `llama4.attention.chunk_size`, `llama4.attention.temperature_tuning`,
    /// `llama4.attention.temperature_scale`, `llama4.attention.temperature_floor_scale`) come first; without them,
    /// `llama4.attention.sliding_window` = 0 (what the converter writes for MobileLLM) means every layer uses RoPE with
    /// QK norm and full attention, and otherwise llama.cpp's Llama-4 defaults apply (every 4th layer NoPE with
    /// temperature tuning 0.1 / 8192, chunked attention of 8192 on RoPE layers).
    static func parse(gguf: GGUFFile, tensors: [String: StoredTensor]) throws -> ModelConfiguration {
        let path = gguf.path
        guard let architecture = try gguf.string("general.architecture") else {
            throw MobileLLMError.invalidFile(path: path, field: "general.architecture", problem: "missing")
        }
        guard architecture == "llama" || architecture == "llama4" else {
            throw MobileLLMError.unsupported(path: path, feature: "general.architecture \"\(architecture)\" (supported: llama, llama4)")
        }
        let a = architecture
        let layers = try gguf.requiredInteger("\(a).block_count", in: 1...4096)
        let hidden = try gguf.requiredInteger("\(a).embedding_length")
        let heads = try gguf.requiredInteger("\(a).attention.head_count", in: 1...4096)
        let kvHeads = try gguf.integer("\(a).attention.head_count_kv") ?? heads
        let feedForward: Int
        if let array = try? gguf.integerArray("\(a).feed_forward_length") {
            guard let first = array.first, array.allSatisfy({ $0 == first }) else {
                throw MobileLLMError.unsupported(path: path, feature: "\(a).feed_forward_length differs between layers")
            }
            feedForward = first
        } else {
            feedForward = try gguf.requiredInteger("\(a).feed_forward_length")
        }
        let vocabulary = try gguf.integer("\(a).vocab_size") ?? gguf.stringArray("tokenizer.ggml.tokens")?.count
            ?? tensors["token_embd.weight"]?.shape.first ?? 0
        guard let headDim = try gguf.integer("\(a).attention.key_length") ?? gguf.integer("\(a).rope.dimension_count")
                ?? (hidden % heads == 0 ? hidden / heads : nil) else {
            throw MobileLLMError.invalidFile(path: path, field: "\(a).attention.head_count",
                                             problem: "expected a positive integer dividing \(a).embedding_length \(hidden), found \(heads)")
        }
        if let valueLength = try gguf.integer("\(a).attention.value_length"), valueLength != headDim {
            throw MobileLLMError.unsupported(path: path, feature: "\(a).attention.value_length \(valueLength) differs from the key length \(headDim)")
        }
        if let rotated = try gguf.integer("\(a).rope.dimension_count"), rotated != headDim {
            throw MobileLLMError.unsupported(path: path, feature: "partial rotary embedding (\(a).rope.dimension_count \(rotated) of head_dim \(headDim))")
        }
        var scaling = RoPEScaling.none
        switch try gguf.string("\(a).rope.scaling.type") ?? "none" {
        case "none": break
        case "linear":
            let factor = try gguf.number("\(a).rope.scaling.factor") ?? 1
            scaling = factor == 1 ? .none : .linear(factor: factor)
        case let other:
            throw MobileLLMError.unsupported(path: path, feature: "\(a).rope.scaling.type \"\(other)\" (supported: none, linear, llama3 via rope_freqs.weight)")
        }
        var eos: [Int] = []
        for key in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] {
            if let id = try gguf.integer(key), !eos.contains(id) { eos.append(id) }
        }

        var layerSpecs = Array(repeating: LayerAttentionSpec(usesRoPE: true, qkNorm: false, chunkSize: nil, temperatureTuning: false), count: max(0, layers))
        var temperatureScale = 0.0, floorScale = 1.0
        if a == "llama4" {
            let experts = try gguf.integer("llama4.expert_count") ?? 0
            let step = try gguf.integer("llama4.interleave_moe_layer_step") ?? 0
            if experts > 0 || step > 0 {
                throw MobileLLMError.unsupported(path: path, feature: "mixture-of-experts (llama4.expert_count \(experts), llama4.interleave_moe_layer_step \(step)); only dense models such as MobileLLM-R1 run")
            }
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
            temperatureScale = try gguf.number("llama4.attention.temperature_scale") ?? 0.1
            floorScale = try gguf.number("llama4.attention.temperature_floor_scale") ?? 8192
            layerSpecs = ropeFlags.map { flag in
                LayerAttentionSpec(usesRoPE: flag == 1, qkNorm: qkNorm && flag == 1, chunkSize: flag == 1 && chunk > 0 ? chunk : nil,
                                   temperatureTuning: tuning && flag == 0)
            }
        }
        return ModelConfiguration(
            modelType: a == "llama4" ? "llama4_text" : "llama",
            vocabularySize: vocabulary, hiddenSize: hidden, layerCount: layers, headCount: heads, kvHeadCount: kvHeads,
            headDimension: headDim, intermediateSize: feedForward,
            rmsNormEpsilon: Float(try gguf.number("\(a).attention.layer_norm_rms_epsilon") ?? 1e-5),
            ropeTheta: try gguf.number("\(a).rope.freq_base") ?? (a == "llama4" ? 500_000 : 10_000),
            ropeScaling: scaling, ropePairing: .interleaved,
            maxPositions: try gguf.integer("\(a).context_length") ?? 4096,
            tiedEmbeddings: tensors["output.weight"] == nil,
            attentionBias: tensors["blk.0.attn_q.bias"] != nil, mlpBias: tensors["blk.0.ffn_up.bias"] != nil,
            layers: layerSpecs, attentionTemperatureScale: temperatureScale, attentionFloorScale: floorScale,
            bosTokenID: try gguf.integer("tokenizer.ggml.bos_token_id"), eosTokenIDs: eos)
    }
}
