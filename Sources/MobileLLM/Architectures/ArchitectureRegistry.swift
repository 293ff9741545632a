/// Tensor names of one decoder layer in a checkpoint.
public struct LayerTensorNames: Sendable {
    public var attentionNorm: String
    public var query: String
    public var key: String
    public var value: String
    public var output: String
    public var mlpNorm: String
    public var gate: String
    public var up: String
    public var down: String
}

/// One model family: how its config.json is read and how its tensors are named.
/// Each family lives in its own file (`Llama4Text.swift`, `Llama.swift`) and registers here.
public struct ArchitectureDefinition: Sendable {
    /// The `model_type` values this family handles.
    public let modelTypes: [String]
    /// Reads a validated-later configuration from config.json.
    public let configuration: @Sendable (JSONObjectReader) throws -> ModelConfiguration
    /// Name of the token embedding matrix.
    public let embeddingName: String
    /// Name of the final RMSNorm weight.
    public let finalNormName: String
    /// Name of the output projection (absent when embeddings are tied).
    public let outputName: String
    /// Names of layer `index`'s tensors (weights; biases add `.bias` in place of `.weight`).
    public let layerNames: @Sendable (Int) -> LayerTensorNames
    /// config.json fields this family spells differently from Llama's (e.g. `intermediate_size_mlp`), by Llama name.
    public var configurationFieldNames: [String: String] = [:]
}

extension LayerTensorNames {
    /// The names transformers gives a pre-norm decoder layer `index`, with the MLP under `mlp` (`mlp` for Llama,
    /// `feed_forward` for Llama-4).
    static func huggingFace(layer index: Int, mlp: String) -> LayerTensorNames {
        let prefix = "model.layers.\(index)."
        return LayerTensorNames(
            attentionNorm: prefix + "input_layernorm.weight",
            query: prefix + "self_attn.q_proj.weight", key: prefix + "self_attn.k_proj.weight",
            value: prefix + "self_attn.v_proj.weight", output: prefix + "self_attn.o_proj.weight",
            mlpNorm: prefix + "post_attention_layernorm.weight",
            gate: prefix + "\(mlp).gate_proj.weight", up: prefix + "\(mlp).up_proj.weight",
            down: prefix + "\(mlp).down_proj.weight")
    }
}

/// The table from `model_type` to architecture family.
public enum ArchitectureRegistry {
    /// All families, in the order they are tried.
    public static let all: [ArchitectureDefinition] = [Llama4Text.definition, Llama.definition]

    /// The family handling `modelType`, or nil.
    public static func architecture(for modelType: String) -> ArchitectureDefinition? {
        all.first { $0.modelTypes.contains(modelType) }
    }

    /// Every supported `model_type`.
    public static var supportedModelTypes: [String] { all.flatMap(\.modelTypes) }
}
