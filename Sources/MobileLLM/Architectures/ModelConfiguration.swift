#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Android)
import Android
#elseif canImport(Darwin)
import Darwin
#endif

/// How a layer's rotary embedding pairs the dimensions of a head.
public enum RoPEPairing: String, Sendable {
    /// Llama-4: (x0, x1), (x2, x3), ... rotated as complex numbers.
    case interleaved
    /// Llama / SmolLM2: (x_i, x_{i + d/2}) rotated together ("rotate_half").
    case halves
}

/// Frequency scaling applied to the rotary embedding.
public enum RoPEScaling: Sendable, Equatable {
    /// Plain `1 / theta^(2i/d)` frequencies.
    case none
    /// Llama-3.1 style: low frequencies divided by `factor`, a smooth ramp in between.
    case llama3(factor: Double, lowFrequencyFactor: Double, highFrequencyFactor: Double, originalMaxPositions: Int)
    /// Positions divided by `factor`.
    case linear(factor: Double)
    /// Each pair's frequency divided by its own factor (GGUF `rope_freqs.weight`, how llama.cpp stores llama3 scaling).
    case frequencyFactors([Float])
}

/// The attention behaviour of one decoder layer.
public struct LayerAttentionSpec: Sendable, Equatable {
    /// Whether this layer rotates q and k (`no_rope_layers[i] == 1` in Llama-4 configs).
    public var usesRoPE: Bool
    /// Weightless RMS normalisation of each q and k head after RoPE (Llama-4 `use_qk_norm`).
    public var qkNorm: Bool
    /// When set, a query sees only keys in its own chunk of this many positions (Llama-4 chunked attention).
    public var chunkSize: Int?
    /// Llama-4 attention temperature tuning (scales q on NoPE layers by position).
    public var temperatureTuning: Bool
}

/// Everything the engine needs to know about a model's shape, read from `config.json` (or GGUF metadata)
/// and validated. Values follow transformers' defaults where the file leaves a field out.
public struct ModelConfiguration: Sendable, Equatable {
    /// The `model_type` this configuration came from (`llama4_text`, `llama`).
    public var modelType: String
    /// Vocabulary size (rows of the embedding).
    public var vocabularySize: Int
    /// Width of the residual stream.
    public var hiddenSize: Int
    /// Number of decoder layers.
    public var layerCount: Int
    /// Number of query heads.
    public var headCount: Int
    /// Number of key/value heads (GQA when smaller than `headCount`).
    public var kvHeadCount: Int
    /// Dimension of each head.
    public var headDimension: Int
    /// Width of the SwiGLU MLP.
    public var intermediateSize: Int
    /// Epsilon of every RMS normalisation.
    public var rmsNormEpsilon: Float
    /// RoPE base.
    public var ropeTheta: Double
    /// RoPE frequency scaling.
    public var ropeScaling: RoPEScaling
    /// RoPE pairing of head dimensions.
    public var ropePairing: RoPEPairing
    /// Longest context the model supports.
    public var maxPositions: Int
    /// Whether the output projection reuses the embedding matrix.
    public var tiedEmbeddings: Bool
    /// Whether q/k/v/o projections have biases.
    public var attentionBias: Bool
    /// Whether the MLP projections have biases.
    public var mlpBias: Bool
    /// Per-layer attention behaviour.
    public var layers: [LayerAttentionSpec]
    /// Temperature tuning strength (Llama-4 `attn_scale`).
    public var attentionTemperatureScale: Double
    /// Temperature tuning period (Llama-4 `floor_scale`).
    public var attentionFloorScale: Double
    /// Beginning-of-sequence token, if the config names one.
    public var bosTokenID: Int?
    /// End-of-sequence tokens from config.json (generation_config.json adds more at load).
    public var eosTokenIDs: [Int]

    /// Query heads that share one key/value head.
    public var groupSize: Int { headCount / kvHeadCount }

    /// Parses and validates a `config.json` document. `path` names the file in errors.
    public static func parse(_ json: JSONValue, path: String) throws -> ModelConfiguration {
        let reader = try JSONObjectReader(json, path: path)
        guard let modelType = try reader.optionalString("model_type") else {
            throw MobileLLMError.invalidFile(path: path, field: "model_type", problem: "missing (expected e.g. \"llama4_text\" or \"llama\")")
        }
        guard let architecture = ArchitectureRegistry.architecture(for: modelType) else {
            throw MobileLLMError.unsupported(path: path, feature: "model_type \"\(modelType)\" (supported: \(ArchitectureRegistry.supportedModelTypes.joined(separator: ", ")))")
        }
        var configuration = try architecture.configuration(reader)
        configuration.modelType = modelType
        try configuration.validate(path: path, fieldNames: architecture.configurationFieldNames)
        return configuration
    }

    /// Reads the fields a standard pre-norm decoder's config.json shares (Llama, Qwen2, Qwen3): sizes, head counts,
    /// `head_dim` (explicit, else `defaultHeadDimension`, else hidden / heads), RMSNorm epsilon, RoPE, context length,
    /// tied embeddings, biases, BOS/EOS; every layer rotates with `pairing` and has no QK norm. `hidden_act` must be
    /// silu. The family adjusts the rest.
    static func readDecoder(_ reader: JSONObjectReader, modelType: String, pairing: RoPEPairing, defaultTheta: Double,
                            defaultEpsilon: Double, defaultMaxPositions: Int, defaultHeadDimension: Int? = nil,
                            defaultTied: Bool) throws -> ModelConfiguration {
        let layerCount = try reader.int("num_hidden_layers", in: 1...4096)
        let headCount = try reader.int("num_attention_heads", in: 1...4096)
        let hiddenSize = try reader.int("hidden_size")
        if let activation = try reader.optionalString("hidden_act"), activation != "silu" {
            throw MobileLLMError.unsupported(path: reader.path, feature: "hidden_act \"\(activation)\" (only silu)")
        }
        let rope = try readRoPE(reader, defaultTheta: defaultTheta)
        let layer = LayerAttentionSpec(usesRoPE: true, qkNorm: false, chunkSize: nil, temperatureTuning: false)
        let explicitHeadDimension = try reader.optionalInt("head_dim") ?? defaultHeadDimension
        return ModelConfiguration(
            modelType: modelType,
            vocabularySize: try reader.int("vocab_size"),
            hiddenSize: hiddenSize,
            layerCount: layerCount,
            headCount: headCount,
            kvHeadCount: try reader.optionalInt("num_key_value_heads") ?? headCount,
            headDimension: try headDimension(explicitHeadDimension, hiddenSize: hiddenSize, headCount: headCount, reader: reader),
            intermediateSize: try reader.int("intermediate_size"),
            rmsNormEpsilon: Float(try reader.optionalDouble("rms_norm_eps") ?? defaultEpsilon),
            ropeTheta: rope.theta,
            ropeScaling: rope.scaling,
            ropePairing: pairing,
            maxPositions: try reader.optionalInt("max_position_embeddings") ?? defaultMaxPositions,
            tiedEmbeddings: try reader.optionalBool("tie_word_embeddings") ?? defaultTied,
            attentionBias: try reader.optionalBool("attention_bias") ?? false,
            mlpBias: try reader.optionalBool("mlp_bias") ?? false,
            layers: Array(repeating: layer, count: layerCount),
            attentionTemperatureScale: 0,
            attentionFloorScale: 1,
            bosTokenID: try reader.optionalInt("bos_token_id"),
            eosTokenIDs: try reader.intOrIntArray("eos_token_id"))
    }

    /// Refuses sliding-window attention (Qwen2/Qwen3 `use_sliding_window`), which the engine does not implement.
    static func refuseSlidingWindow(_ reader: JSONObjectReader) throws {
        if try reader.optionalBool("use_sliding_window") == true {
            throw MobileLLMError.unsupported(path: reader.path, feature: "use_sliding_window true (sliding-window attention is not implemented)")
        }
        if let types = try reader.optionalStringArray("layer_types"), let other = types.first(where: { $0 != "full_attention" }) {
            throw MobileLLMError.unsupported(path: reader.path, feature: "layer_types \"\(other)\" (only full_attention)")
        }
    }

    /// `head_dim` when the config gives it, else `hidden_size / num_attention_heads`, which must then divide exactly.
    static func headDimension(_ explicit: Int?, hiddenSize: Int, headCount: Int, reader: JSONObjectReader) throws -> Int {
        if let explicit { return explicit }
        guard headCount > 0, hiddenSize % headCount == 0 else {
            throw reader.fail("num_attention_heads", "expected a positive integer dividing hidden_size \(hiddenSize), found \(headCount)")
        }
        return hiddenSize / headCount
    }

    /// Checks the relations between fields (heads divide, sizes positive, per-layer lists complete). Errors name
    /// fields as config.json does, or as `fieldNames` maps them (keyed by config.json name; e.g. GGUF metadata keys).
    public func validate(path: String, fieldNames: [String: String] = [:]) throws {
        func bad(_ field: String, _ problem: String) -> MobileLLMError {
            .invalidFile(path: path, field: fieldNames[field] ?? field, problem: problem)
        }
        let limit = 1 << 24
        for (field, value) in [("vocab_size", vocabularySize), ("hidden_size", hiddenSize), ("num_hidden_layers", layerCount),
                               ("num_attention_heads", headCount), ("num_key_value_heads", kvHeadCount),
                               ("head_dim", headDimension), ("intermediate_size", intermediateSize),
                               ("max_position_embeddings", maxPositions)] {
            guard value > 0, value <= (field == "max_position_embeddings" ? 1 << 30 : limit) else {
                throw bad(field, "expected a positive size up to \(field == "max_position_embeddings" ? 1 << 30 : limit), found \(value)")
            }
        }
        guard headCount % kvHeadCount == 0 else {
            throw bad("num_key_value_heads", "\(kvHeadCount) does not divide \(fieldNames["num_attention_heads"] ?? "num_attention_heads") \(headCount) (expected a divisor)")
        }
        guard headDimension % 2 == 0 else { throw bad("head_dim", "RoPE needs an even head dimension, found \(headDimension)") }
        guard layers.count == layerCount else { throw bad("num_hidden_layers", "per-layer settings list \(layers.count) layers, expected \(layerCount)") }
        guard rmsNormEpsilon > 0, rmsNormEpsilon.isFinite else { throw bad("rms_norm_eps", "expected a small positive number, found \(rmsNormEpsilon)") }
        guard ropeTheta > 0, ropeTheta <= Double(Float.greatestFiniteMagnitude) else {
            throw bad("rope_theta", "expected a positive number a Float can hold, found \(ropeTheta)")
        }
        for (index, layer) in layers.enumerated() {
            if let chunk = layer.chunkSize, chunk <= 0 { throw bad("attention_chunk_size", "expected a positive size for layer \(index), found \(chunk)") }
        }
        if attentionFloorScale <= 0, layers.contains(where: { $0.temperatureTuning }) {
            throw bad("floor_scale", "expected a positive number, found \(attentionFloorScale)")
        }
        for id in eosTokenIDs + (bosTokenID.map { [$0] } ?? []) where id < 0 || id >= vocabularySize {
            throw bad(eosTokenIDs.contains(id) ? "eos_token_id" : "bos_token_id", "token id \(id) is outside the vocabulary (expected 0..<\(vocabularySize), the \(fieldNames["vocab_size"] ?? "vocab_size"))")
        }
    }

    /// Reads RoPE settings in either the transformers 4.x layout (`rope_theta`, `rope_scaling`) or the 5.x layout
    /// (`rope_parameters` with `rope_type` and `rope_theta`).
    static func readRoPE(_ reader: JSONObjectReader, defaultTheta: Double) throws -> (theta: Double, scaling: RoPEScaling) {
        var theta = try reader.optionalDouble("rope_theta") ?? defaultTheta
        var scalingObject = try reader.optionalObject("rope_scaling")
        if let parameters = try reader.optionalObject("rope_parameters") {
            if let value = try parameters.optionalDouble("rope_theta") { theta = value }
            scalingObject = parameters
        }
        guard let scaling = scalingObject else { return (theta, .none) }
        let kind = try scaling.optionalString("rope_type") ?? scaling.optionalString("type") ?? "default"
        switch kind {
        case "default":
            return (theta, .none)
        case "llama3":
            let factor = try scaling.optionalDouble("factor") ?? 8
            let low = try scaling.optionalDouble("low_freq_factor") ?? 1
            let high = try scaling.optionalDouble("high_freq_factor") ?? 4
            guard let original = try scaling.optionalInt("original_max_position_embeddings") else {
                throw scaling.fail("original_max_position_embeddings", "missing (llama3 RoPE scaling needs it)")
            }
            guard factor > 0, high > low, original > 0 else {
                throw scaling.fail("factor", "llama3 scaling needs factor > 0, high_freq_factor > low_freq_factor and a positive original length")
            }
            return (theta, .llama3(factor: factor, lowFrequencyFactor: low, highFrequencyFactor: high, originalMaxPositions: original))
        case "linear":
            let factor = try scaling.optionalDouble("factor") ?? 1
            guard factor > 0 else { throw scaling.fail("factor", "expected a positive number, found \(factor)") }
            return (theta, .linear(factor: factor))
        default:
            throw MobileLLMError.unsupported(path: reader.path, feature: "\(scaling.prefix)rope_type \"\(kind)\" (RoPE scaling types supported: default, llama3, linear)")
        }
    }

    /// The inverse frequencies of each rotated pair, computed in f32 exactly as transformers does.
    public func ropeInverseFrequencies() -> [Float] {
        let dimension = headDimension
        var frequencies = (0..<(dimension / 2)).map { index -> Float in
            let exponent = Float(2 * index) / Float(dimension)
            return 1.0 / Float(pow(Double(Float(ropeTheta)), Double(exponent)))
        }
        switch ropeScaling {
        case .none:
            break
        case let .linear(factor):
            frequencies = frequencies.map { $0 / Float(factor) }
        case let .frequencyFactors(factors):
            frequencies = zip(frequencies, factors).map { $0 / $1 }
        case let .llama3(factor, low, high, original):
            let lowWavelength = Double(original) / low
            let highWavelength = Double(original) / high
            frequencies = frequencies.map { frequency in
                let wavelength = 2 * Double.pi / Double(frequency)
                if wavelength < highWavelength { return frequency }
                if wavelength > lowWavelength { return frequency / Float(factor) }
                let smooth = (Double(original) / wavelength - low) / (high - low)
                return Float((1 - smooth) * Double(frequency) / factor + smooth * Double(frequency))
            }
        }
        return frequencies
    }
}
