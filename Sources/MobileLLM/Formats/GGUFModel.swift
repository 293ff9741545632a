
/// A model stored as one GGUF file (llama.cpp's format): configuration from its metadata keys, tensors served under
/// transformers' names (the family's tensor schema maps them) so the rest of the engine is the same for safetensors
/// and GGUF.
struct GGUFModelSource: TensorSource {
    /// The parsed file.
    let gguf: GGUFFile
    /// Tensors by GGUF name.
    let tensors: [String: StoredTensor]
    /// The configuration read from the metadata.
    let configuration: ModelConfiguration
    /// The family, from `general.architecture`.
    let architecture: any Architecture.Type
    /// The family's tensors for this configuration (transformers name → GGUF name).
    let schema: TensorSchema
    /// `general.architecture`, the prefix of the model's metadata keys.
    let prefix: String

    var location: String { gguf.path }

    /// Reads and validates the file's metadata and tensor table (no tensor bytes are read).
    init(path: String) throws {
        let gguf = try GGUFFile(path: path)
        self.gguf = gguf
        let supported = QuantType.allCases.map { "\($0)".uppercased() }.joined(separator: ", ")
        var tensors: [String: StoredTensor] = [:]
        for info in gguf.tensors {
            guard let known = info.type else {
                throw MobileLLMError.invalidFile(path: path, field: "tensor \(info.name).type",
                                                 problem: "\(info.rawType) is not a ggml type (expected one of \(supported))")
            }
            guard let type = QuantType(rawValue: Int32(truncatingIfNeeded: info.rawType)) else {
                throw MobileLLMError.unsupported(path: path, feature: "tensor '\(info.name)' has type \(known) (field 'tensor \(info.name).type'; supported: \(supported))")
            }
            guard let bytes = gguf.data(of: info), let base = bytes.baseAddress else {
                throw MobileLLMError.invalidFile(path: path, field: info.name, problem: "tensor data is not inside the file")
            }
            tensors[info.name] = StoredTensor(name: info.name, type: type, shape: info.dimensions.reversed(), owner: gguf.file, pointer: base)
        }
        self.tensors = tensors
        guard let name = try gguf.string("general.architecture") else {
            throw MobileLLMError.invalidFile(path: path, field: "general.architecture", problem: "missing")
        }
        guard let architecture = ArchitectureRegistry.architecture(gguf: name) else {
            throw MobileLLMError.unsupported(path: path, feature: "general.architecture \"\(name)\" (supported: \(ArchitectureRegistry.supportedGGUFArchitectures.joined(separator: ", ")))")
        }
        self.architecture = architecture
        prefix = name
        let base = try ModelConfiguration.llamaCppBase(gguf: gguf, prefix: name, modelType: architecture.name, tensors: tensors)
        var configuration = try architecture.configuration(gguf: gguf, base: base, prefix: name)
        try configuration.validate(path: path, fieldNames: Self.fieldNames(architecture: name))
        if let factors = tensors["rope_freqs.weight"] {
            guard factors.count == configuration.headDimension / 2 else {
                throw MobileLLMError.invalidFile(path: path, field: "rope_freqs.weight",
                                                 problem: "has \(factors.count) values, expected head_dim / 2 = \(configuration.headDimension / 2)")
            }
            configuration.ropeScaling = .frequencyFactors(WeightMatrix(factors).floats())
        }
        self.configuration = configuration
        schema = architecture.tensors(configuration)
    }

    func tensor(named name: String) -> StoredTensor? {
        schema.spec(named: name).flatMap { tensors[$0.ggufName] }
    }

    func storedName(of name: String) -> String { schema.spec(named: name)?.ggufName ?? name }

    var configurationFieldNames: [String: String] { Self.fieldNames(architecture: prefix) }

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
    /// Reads the keys every llama.cpp decoder shares under `prefix` (`general.architecture`): sizes, head counts,
    /// key length, RMSNorm epsilon, RoPE base and linear scaling, context length, BOS/EOS (eos, eot, eom), and
    /// tied/bias flags from which tensors exist. Every layer rotates interleaved pairs with full attention; the
    /// family (`Architecture.configuration(gguf:base:prefix:)`) sets its pairing and per-layer pattern.
    static func llamaCppBase(gguf: GGUFFile, prefix a: String, modelType: String, tensors: [String: StoredTensor]) throws -> ModelConfiguration {
        let path = gguf.path
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

        let layerSpecs = Array(repeating: LayerAttentionSpec(usesRoPE: true, qkNorm: false, chunkSize: nil, temperatureTuning: false), count: max(0, layers))
        return ModelConfiguration(
            modelType: modelType,
            vocabularySize: vocabulary, hiddenSize: hidden, layerCount: layers, headCount: heads, kvHeadCount: kvHeads,
            headDimension: headDim, intermediateSize: feedForward,
            rmsNormEpsilon: Float(try gguf.number("\(a).attention.layer_norm_rms_epsilon") ?? 1e-5),
            ropeTheta: try gguf.number("\(a).rope.freq_base") ?? 10_000,
            ropeScaling: scaling, ropePairing: .interleaved,
            maxPositions: try gguf.integer("\(a).context_length") ?? 4096,
            tiedEmbeddings: tensors["output.weight"] == nil,
            attentionBias: tensors["blk.0.attn_q.bias"] != nil, mlpBias: tensors["blk.0.ffn_up.bias"] != nil,
            layers: layerSpecs, attentionTemperatureScale: 0, attentionFloorScale: 1,
            bosTokenID: try gguf.integer("tokenizer.ggml.bos_token_id"), eosTokenIDs: eos)
    }
}
