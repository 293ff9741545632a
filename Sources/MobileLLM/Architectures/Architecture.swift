/// One model family: everything that differs between Llama-4, Llama, Qwen2 and Qwen3 lives behind this protocol, in
/// one file per family plus one line in `ArchitectureRegistry.all`.
///
/// A family says
/// - which `model_type`s (config.json) and GGUF `general.architecture` names it reads;
/// - how its configuration is parsed and validated, from config.json and from llama.cpp's GGUF keys, and which GGUF
///   keys it writes back;
/// - its **tensor schema** (`tensors(_:)`): the one declarative list of tensors — transformers name, GGUF name, shape
///   from the configuration, role — that drives loading, quantize-on-load, GGUF import and export, synthetic models
///   and `inspect`;
/// - its **layer recipe** (`layerRecipe(_:layer:)`): the shared blocks (RoPE in either pairing, QK norm with or
///   without weights, before or after RoPE, attention temperature tuning, chunked attention windows) in the order
///   its decoder layer applies them to q and k.
///
/// The rest of a decoder layer — pre-norm, q/k/v projections, GQA attention over the KV cache, output projection,
/// SwiGLU MLP — is the same for every family supported today and lives once, in `DecoderLayer`. That is the simpler
/// shape: a family's forward pass is data (a recipe of blocks), so `Session.forward` has no per-family branches, and
/// a new family with the same layer skeleton is one file. A family whose skeleton differs (post-norms, parallel
/// attention + MLP) would add a skeleton next to `DecoderLayer` and name it in its recipe.
public protocol Architecture: Sendable {
    /// The config.json `model_type` values this family handles (the first is its canonical name).
    static var modelTypes: [String] { get }
    /// The GGUF `general.architecture` values this family reads; the first is the one it writes.
    static var ggufArchitectures: [String] { get }
    /// config.json fields this family spells differently from Llama's (e.g. `intermediate_size_mlp`), keyed by the
    /// Llama name, for error messages.
    static var configurationFieldNames: [String: String] { get }

    /// Reads the configuration from config.json (validated afterwards by `ModelConfiguration.validate`).
    static func configuration(_ reader: JSONObjectReader) throws -> ModelConfiguration
    /// Reads the configuration from a GGUF file's metadata (the common llama.cpp keys are in `base`, already read
    /// under this family's prefix); validated afterwards.
    static func configuration(gguf: GGUFFile, base: ModelConfiguration, prefix: String) throws -> ModelConfiguration
    /// GGUF metadata this family writes beyond the common llama.cpp keys (`GGUFExport.commonMetadata`).
    static func ggufMetadata(_ c: ModelConfiguration, prefix: String, path: String) throws -> [(String, GGUFValue)]

    /// Every tensor of a model with configuration `c`, in file order.
    static func tensors(_ c: ModelConfiguration) -> TensorSchema
    /// The blocks layer `layer` applies to its q and k rows, and its attention window.
    static func layerRecipe(_ c: ModelConfiguration, layer: Int) -> LayerRecipe
}

extension Architecture {
    public static var configurationFieldNames: [String: String] { [:] }

    public static func configuration(gguf: GGUFFile, base: ModelConfiguration, prefix: String) throws -> ModelConfiguration { base }

    public static func ggufMetadata(_ c: ModelConfiguration, prefix: String, path: String) throws -> [(String, GGUFValue)] { [] }

    /// The canonical `model_type`.
    static var name: String { modelTypes.first ?? "" }
}

/// The table of families. Adding a family is one file plus one line here.
public enum ArchitectureRegistry {
    /// All families, in the order they are tried.
    public static let all: [any Architecture.Type] = [Llama4Text.self, Llama.self, Qwen2.self, Qwen3.self]

    /// The family handling config.json `model_type` `modelType`, or nil.
    public static func architecture(for modelType: String) -> (any Architecture.Type)? {
        all.first { $0.modelTypes.contains(modelType) }
    }

    /// The family reading GGUF `general.architecture` `name`, or nil.
    public static func architecture(gguf name: String) -> (any Architecture.Type)? {
        all.first { $0.ggufArchitectures.contains(name) }
    }

    /// Every supported `model_type`.
    public static var supportedModelTypes: [String] { all.flatMap { $0.modelTypes } }

    /// Every supported GGUF `general.architecture`.
    public static var supportedGGUFArchitectures: [String] { all.flatMap { $0.ggufArchitectures } }
}

// MARK: - Layer recipes

/// A block applied to one fed row's q and k heads, after the q/k/v projections and before K/V are cached.
public enum PositionBlock: Sendable, Equatable {
    /// Rotary embedding of q and k with this pairing (`ModelConfiguration.ropeInverseFrequencies` angles).
    case rope(RoPEPairing)
    /// RMS normalisation of every q and k head over the head dimension: with the layer's `q_norm`/`k_norm` weights
    /// (Qwen3) or without weights (Llama-4).
    case headNorm(weighted: Bool)
    /// Llama-4 attention temperature tuning: q scaled by `log1p(floor((pos + 1) / floorScale)) * scale + 1`.
    case temperatureTuning(scale: Float, floorScale: Float)
}

/// How one decoder layer treats positions: its q/k blocks in order, and which cached positions a query sees.
public struct LayerRecipe: Sendable, Equatable {
    /// Applied to q and k of each fed row, in order.
    public var blocks: [PositionBlock]
    /// When set, a query at position p sees only keys in its own chunk `[p / n * n, p]` (Llama-4 chunked attention);
    /// nil: every earlier position.
    public var chunkSize: Int?

    /// A recipe of `blocks` with attention window `chunkSize`.
    public init(blocks: [PositionBlock], chunkSize: Int? = nil) {
        self.blocks = blocks
        self.chunkSize = chunkSize
    }
}

// MARK: - Tensor schema

/// What a tensor is to the engine.
public enum TensorRole: String, Sendable {
    /// The token embedding matrix [vocab, hidden].
    case embedding
    /// The output (LM head) matrix [vocab, hidden]; optional: absent means tied to the embedding.
    case output
    /// An attention or MLP projection weight [out, in].
    case projection
    /// A projection's bias vector.
    case bias
    /// An RMSNorm weight vector.
    case norm
}

/// Where a tensor goes in the engine's weights.
public enum TensorSlot: String, Sendable {
    case embedding, output, finalNorm
    case attentionNorm, query, key, value, attentionOutput, queryNorm, keyNorm, mlpNorm, gate, up, down
}

/// How GGUF export reorders a matrix's rows (and its bias) relative to the transformers layout.
public enum GGUFRowOrder: Sendable, Equatable {
    /// As stored.
    case unchanged
    /// llama.cpp's converter `permute` of `llama` q/k projections with this many heads: within each head the
    /// half-split rows (x_i, x_{i+d/2}) become adjacent pairs (x_2i, x_2i+1).
    case llamaPairs(heads: Int)
}

/// One dimension of an expected tensor shape: its size and the configuration fields it is the product of (for
/// error messages).
public struct TensorDimension: Sendable, Equatable {
    /// Size.
    public let size: Int
    /// config.json fields whose product the size is.
    public let fields: [String]

    /// A dimension of `size` from config.json `fields`.
    public init(_ size: Int, _ fields: [String]) {
        self.size = size
        self.fields = fields
    }
}

/// One tensor of a model: names in both formats, expected shape, role.
public struct TensorSpec: Sendable {
    /// transformers' checkpoint name (`model.layers.0.self_attn.q_proj.weight`).
    public let name: String
    /// llama.cpp's GGUF name (`blk.0.attn_q.weight`).
    public let ggufName: String
    /// Shape in PyTorch order (rows first).
    public let shape: [TensorDimension]
    /// What the tensor is.
    public let role: TensorRole
    /// Where it goes.
    public let slot: TensorSlot
    /// The layer it belongs to (nil for global tensors).
    public let layer: Int?
    /// How GGUF export orders its rows.
    public let ggufRowOrder: GGUFRowOrder

    /// A tensor spec.
    public init(name: String, ggufName: String, shape: [TensorDimension], role: TensorRole, slot: TensorSlot,
                layer: Int? = nil, ggufRowOrder: GGUFRowOrder = .unchanged) {
        self.name = name
        self.ggufName = ggufName
        self.shape = shape
        self.role = role
        self.slot = slot
        self.layer = layer
        self.ggufRowOrder = ggufRowOrder
    }

    /// The expected shape's sizes.
    public var sizes: [Int] { shape.map(\.size) }

    /// The same spec written in its stored row order (a test hook for proving the permutation matters).
    var unpermuted: TensorSpec {
        TensorSpec(name: name, ggufName: ggufName, shape: shape, role: role, slot: slot, layer: layer)
    }

    /// Whether a model may lack it (the output matrix: then tied to the embedding).
    public var isOptional: Bool { role == .output }
}

/// The tensors of one model, in file order.
public struct TensorSchema: Sendable {
    /// Every tensor, in file order.
    public let tensors: [TensorSpec]
    private let byName: [String: Int]
    private let byGGUFName: [String: Int]

    /// A schema of `tensors`.
    public init(_ tensors: [TensorSpec]) {
        self.tensors = tensors
        byName = Dictionary(tensors.indices.map { (tensors[$0].name, $0) }, uniquingKeysWith: { first, _ in first })
        byGGUFName = Dictionary(tensors.indices.map { (tensors[$0].ggufName, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// The spec with transformers name `name`.
    public func spec(named name: String) -> TensorSpec? { byName[name].map { tensors[$0] } }

    /// The spec with GGUF name `name`.
    public func spec(ggufName name: String) -> TensorSpec? { byGGUFName[name].map { tensors[$0] } }

    /// The quantization role of the tensor named `name` (vectors for anything not in the schema).
    func quantizationRole(of name: String) -> QuantizationPlan.Role {
        switch spec(named: name)?.role {
        case .embedding?, .output?: return .output
        case .projection?: return .projection
        default: return .vector
        }
    }
}

/// Options of the standard pre-norm decoder's tensor list (`TensorSchema.decoder`).
public struct DecoderTensorOptions: Sendable {
    /// The MLP's module name: `mlp` (Llama, Qwen) or `feed_forward` (Llama-4).
    public var mlpModule = "mlp"
    /// Biases on q, k and v.
    public var qkvBias = false
    /// Bias on the attention output projection.
    public var outputBias = false
    /// Biases on gate, up and down.
    public var mlpBias = false
    /// Per-head q_norm / k_norm weights [head_dim] (Qwen3).
    public var headNorms = false
    /// config.json's name of the MLP width (`intermediate_size`, or Llama-4's `intermediate_size_mlp`).
    public var mlpWidthField = "intermediate_size"
    /// How GGUF export reorders q and k rows.
    public var qkRowOrder: (query: GGUFRowOrder, key: GGUFRowOrder) = (.unchanged, .unchanged)

    /// Default options: no biases, no head norms, MLP under `mlp`.
    public init() {}
}

extension TensorSchema {
    /// The tensors of a pre-norm decoder (embedding, per layer: input norm, q/k/v/o, optional head norms, post
    /// attention norm, gate/up/down; final norm; optional output), named as transformers and llama.cpp name them.
    public static func decoder(_ c: ModelConfiguration, _ options: DecoderTensorOptions) -> TensorSchema {
        let hidden = TensorDimension(c.hiddenSize, ["hidden_size"])
        let vocabulary = TensorDimension(c.vocabularySize, ["vocab_size"])
        let qWidth = TensorDimension(c.headCount * c.headDimension, ["num_attention_heads", "head_dim"])
        let kvWidth = TensorDimension(c.kvHeadCount * c.headDimension, ["num_key_value_heads", "head_dim"])
        let head = TensorDimension(c.headDimension, ["head_dim"])
        let mlp = TensorDimension(c.intermediateSize, [options.mlpWidthField])
        var specs = [TensorSpec(name: "model.embed_tokens.weight", ggufName: "token_embd.weight", shape: [vocabulary, hidden],
                                role: .embedding, slot: .embedding)]
        for layer in 0..<c.layerCount {
            let hf = "model.layers.\(layer).", gguf = "blk.\(layer)."
            func vector(_ module: String, _ short: String, _ slot: TensorSlot, _ length: TensorDimension) {
                specs.append(TensorSpec(name: hf + module + ".weight", ggufName: gguf + short + ".weight", shape: [length],
                                        role: .norm, slot: slot, layer: layer))
            }
            func linear(_ module: String, _ short: String, _ slot: TensorSlot, rows: TensorDimension, columns: TensorDimension,
                        bias: Bool, order: GGUFRowOrder = .unchanged) {
                specs.append(TensorSpec(name: hf + module + ".weight", ggufName: gguf + short + ".weight", shape: [rows, columns],
                                        role: .projection, slot: slot, layer: layer, ggufRowOrder: order))
                if bias {
                    specs.append(TensorSpec(name: hf + module + ".bias", ggufName: gguf + short + ".bias", shape: [rows],
                                            role: .bias, slot: slot, layer: layer, ggufRowOrder: order))
                }
            }
            vector("input_layernorm", "attn_norm", .attentionNorm, hidden)
            linear("self_attn.q_proj", "attn_q", .query, rows: qWidth, columns: hidden, bias: options.qkvBias, order: options.qkRowOrder.query)
            linear("self_attn.k_proj", "attn_k", .key, rows: kvWidth, columns: hidden, bias: options.qkvBias, order: options.qkRowOrder.key)
            linear("self_attn.v_proj", "attn_v", .value, rows: kvWidth, columns: hidden, bias: options.qkvBias)
            linear("self_attn.o_proj", "attn_output", .attentionOutput, rows: hidden, columns: qWidth, bias: options.outputBias)
            if options.headNorms {
                vector("self_attn.q_norm", "attn_q_norm", .queryNorm, head)
                vector("self_attn.k_norm", "attn_k_norm", .keyNorm, head)
            }
            vector("post_attention_layernorm", "ffn_norm", .mlpNorm, hidden)
            linear("\(options.mlpModule).gate_proj", "ffn_gate", .gate, rows: mlp, columns: hidden, bias: options.mlpBias)
            linear("\(options.mlpModule).up_proj", "ffn_up", .up, rows: mlp, columns: hidden, bias: options.mlpBias)
            linear("\(options.mlpModule).down_proj", "ffn_down", .down, rows: hidden, columns: mlp, bias: options.mlpBias)
        }
        specs.append(TensorSpec(name: "model.norm.weight", ggufName: "output_norm.weight", shape: [hidden], role: .norm, slot: .finalNorm))
        specs.append(TensorSpec(name: "lm_head.weight", ggufName: "output.weight", shape: [vocabulary, hidden], role: .output, slot: .output))
        return TensorSchema(specs)
    }
}
