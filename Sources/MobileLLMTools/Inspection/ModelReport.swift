import Foundation
import MobileLLM

/// What `mobilellm inspect` reports about a model: architecture, configuration, tensors by type (and one by one),
/// tokenizer and chat template. `json()` is the `--json` output; `text(listTensors:)` the human-readable one.
public struct ModelReport: Sendable, Encodable {
    /// The configuration as the engine reads it.
    public struct Configuration: Sendable, Encodable {
        /// Decoder layers.
        public var layers: Int
        /// Attention (query) heads.
        public var heads: Int
        /// Key/value heads (grouped-query attention).
        public var kvHeads: Int
        /// Dimension of one head.
        public var headDim: Int
        /// Width of the residual stream.
        public var hiddenSize: Int
        /// Width of the (dense) MLP.
        public var intermediateSize: Int
        /// Rows of the embedding matrix.
        public var vocabSize: Int
        /// Most positions the model supports (max_position_embeddings).
        public var contextLength: Int
        /// RoPE base frequency.
        public var ropeTheta: Double
        /// "none", "llama3 (...)", "linear (...)" or "frequency factors (...)".
        public var ropeScaling: String
        /// "interleaved" (Llama-4, GGUF) or "halves" (Hugging Face Llama).
        public var ropePairing: String
        /// One character per layer: R (rotary embedding) or N (no positional embedding).
        public var ropeLayers: String
        /// Indices of the NoPE layers.
        public var nopeLayers: [Int]
        /// Weightless RMS normalisation of q and k heads (Llama-4 `use_qk_norm`).
        public var qkNorm: Bool
        /// The output projection shares the embedding matrix.
        public var tiedEmbeddings: Bool
        /// RMSNorm epsilon.
        public var rmsNormEps: Float
        /// The configured BOS token id.
        public var bosTokenID: Int?
        /// Token ids that end generation.
        public var eosTokenIDs: [Int]

        enum CodingKeys: String, CodingKey {
            case layers, heads, kvHeads = "kv_heads", headDim = "head_dim", hiddenSize = "hidden_size"
            case intermediateSize = "intermediate_size", vocabSize = "vocab_size", contextLength = "context_length"
            case ropeTheta = "rope_theta", ropeScaling = "rope_scaling", ropePairing = "rope_pairing", ropeLayers = "rope_layers"
            case nopeLayers = "nope_layers", qkNorm = "qk_norm", tiedEmbeddings = "tied_embeddings", rmsNormEps = "rms_norm_eps"
            case bosTokenID = "bos_token_id", eosTokenIDs = "eos_token_ids"
        }

        /// Encodes every field (absent values as null).
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(layers, forKey: .layers); try c.encode(heads, forKey: .heads); try c.encode(kvHeads, forKey: .kvHeads)
            try c.encode(headDim, forKey: .headDim); try c.encode(hiddenSize, forKey: .hiddenSize)
            try c.encode(intermediateSize, forKey: .intermediateSize); try c.encode(vocabSize, forKey: .vocabSize)
            try c.encode(contextLength, forKey: .contextLength); try c.encode(ropeTheta, forKey: .ropeTheta)
            try c.encode(ropeScaling, forKey: .ropeScaling); try c.encode(ropePairing, forKey: .ropePairing)
            try c.encode(ropeLayers, forKey: .ropeLayers); try c.encode(nopeLayers, forKey: .nopeLayers)
            try c.encode(qkNorm, forKey: .qkNorm); try c.encode(tiedEmbeddings, forKey: .tiedEmbeddings)
            try c.encode(rmsNormEps, forKey: .rmsNormEps); try c.encode(bosTokenID, forKey: .bosTokenID)
            try c.encode(eosTokenIDs, forKey: .eosTokenIDs)
        }
    }

    /// One stored tensor. `shape` is as the file stores it: safetensors row-major, GGUF in ggml order (fastest first).
    public struct Tensor: Sendable, Encodable {
        /// The tensor's name in its file.
        public var name: String
        /// Dimensions as stored.
        public var shape: [Int]
        /// Storage type: a safetensors dtype (F32, F16, BF16) or a ggml type (F32, Q4_1, Q8_0, ...).
        public var type: String
        /// Bytes of its data.
        public var bytes: Int
        /// Where the family's tensor schema puts it (`embedding`, `query`, `query.bias`, `queryNorm`, `down`, ...), with
        /// its layer (`query@3`); nil for a tensor the schema does not name, which the engine does not read.
        public var role: String?
        /// Elements.
        public var parameters: Int { shape.reduce(1, *) }
    }

    /// Tensors the files hold but the family's schema does not name (the engine ignores them).
    public var unreadTensors: [String] { tensors.filter { $0.role == nil }.map(\.name) }

    /// The schema slot of the tensor `name` (a GGUF name when `gguf`), as `slot` or `slot@layer`.
    static func role(of name: String, in schema: TensorSchema, gguf: Bool) -> String? {
        guard let spec = gguf ? schema.spec(ggufName: name) : schema.spec(named: name) else { return nil }
        let slot = spec.role == .bias ? spec.slot.rawValue + ".bias" : spec.slot.rawValue
        return spec.layer.map { "\(slot)@\($0)" } ?? slot
    }

    /// Tensors of one type.
    public struct TypeSummary: Sendable, Encodable {
        /// The storage type.
        public var type: String
        /// How many tensors have it.
        public var count: Int
        /// Their elements.
        public var parameters: Int
        /// Their bytes.
        public var bytes: Int
    }

    /// The tokenizer.
    public struct TokenizerSummary: Sendable, Encodable {
        /// Token ids (highest id + 1, added tokens included).
        public var vocabSize: Int
        /// The tokenizer model: tokenizer.json `model.type` (BPE) or GGUF `tokenizer.ggml.model` (gpt2).
        public var model: String?
        /// tokenizer.json pre-tokenizer types ("Sequence[Split, ByteLevel]") or GGUF `tokenizer.ggml.pre`.
        public var preTokenizer: String?
        /// The beginning-of-sequence token's text.
        public var bosToken: String?
        /// Its id.
        public var bosTokenID: Int?
        /// The end-of-sequence token's text.
        public var eosToken: String?
        /// Its id.
        public var eosTokenID: Int?

        enum CodingKeys: String, CodingKey {
            case vocabSize = "vocab_size", model, preTokenizer = "pre_tokenizer", bosToken = "bos_token", bosTokenID = "bos_token_id"
            case eosToken = "eos_token", eosTokenID = "eos_token_id"
        }

        /// Encodes every field (absent values as null).
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(vocabSize, forKey: .vocabSize); try c.encode(model, forKey: .model)
            try c.encode(preTokenizer, forKey: .preTokenizer); try c.encode(bosToken, forKey: .bosToken)
            try c.encode(bosTokenID, forKey: .bosTokenID); try c.encode(eosToken, forKey: .eosToken)
            try c.encode(eosTokenID, forKey: .eosTokenID)
        }
    }

    /// The chat template.
    public struct TemplateSummary: Sendable, Encodable {
        /// False when the model has none (chat then uses the built-in Llama-3 header format).
        public var present: Bool
        /// Where it comes from: a chat_template.jinja path, tokenizer_config.json's field, or the GGUF key.
        public var source: String?
        /// Its length in Unicode scalars (Python's `len`).
        public var length: Int?
        /// The template's text up to its first newline.
        public var firstLine: String?

        enum CodingKeys: String, CodingKey { case present, source, length, firstLine = "first_line" }

        /// Encodes every field (absent values as null).
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(present, forKey: .present); try c.encode(source, forKey: .source)
            try c.encode(length, forKey: .length); try c.encode(firstLine, forKey: .firstLine)
        }
    }

    /// One MLX recipe (bits, group size) and what the engine holds its matrices as.
    public struct MLXTensorType: Sendable, Encodable {
        /// Bits per code.
        public var bits: Int
        /// Weights per scale and bias.
        public var groupSize: Int
        /// The dtype of the scales and biases (F16, BF16, F32).
        public var scaleType: String
        /// The engine's type for them: Q4_1 or Q5_1 (the same weights) or F32 (expanded exactly).
        public var storedAs: String
        /// How many matrices.
        public var count: Int
        /// Their weights.
        public var parameters: Int

        enum CodingKeys: String, CodingKey {
            case bits, groupSize = "group_size", scaleType = "scale_type", storedAs = "stored_as", count, parameters
        }
    }

    /// config.json's MLX quantization (`quantization`), summarised.
    public struct MLXQuantizationSummary: Sendable, Encodable {
        /// Always "affine" (the only mode the engine reads).
        public var mode: String
        /// The default bits.
        public var bits: Int
        /// The default group size.
        public var groupSize: Int
        /// Modules with their own entry (mixed recipes), including those left in floats.
        public var moduleOverrides: Int
        /// The quantized matrices by recipe.
        public var tensorTypes: [MLXTensorType]

        enum CodingKeys: String, CodingKey {
            case mode, bits, groupSize = "group_size", moduleOverrides = "module_overrides", tensorTypes = "tensor_types"
        }
    }

    /// The model's path.
    public var path: String
    /// "safetensors" or "gguf".
    public var format: String
    /// config.json `architectures[0]` or GGUF `general.architecture`.
    public var architecture: String?
    /// The engine's model type (llama4_text, llama).
    public var modelType: String
    /// The configuration.
    public var config: Configuration
    /// Elements of every stored tensor.
    public var parameters: Int { tensors.reduce(0) { $0 + $1.parameters } }
    /// Bytes of the weight files (symbolic links followed).
    public var fileBytes: Int
    /// The weight files.
    public var weightFiles: [String]
    /// Every tensor, by name.
    public var tensors: [Tensor]
    /// The tokenizer (nil when the model has none).
    public var tokenizer: TokenizerSummary?
    /// The chat template.
    public var chatTemplate: TemplateSummary
    /// The MLX quantization recipe (nil unless the model is an MLX directory with one).
    public var mlxQuantization: MLXQuantizationSummary?
    /// Whether `encode(to:)` writes the tensor list.
    private var encodesTensors = false

    /// Tensors grouped by type, by type name.
    public var tensorTypes: [TypeSummary] {
        Dictionary(grouping: tensors, by: \.type).map { type, group in
            TypeSummary(type: type, count: group.count, parameters: group.reduce(0) { $0 + $1.parameters },
                        bytes: group.reduce(0) { $0 + $1.bytes })
        }.sorted { $0.type < $1.type }
    }

    /// Gathers the report for a loaded model, reading tensor headers and tokenizer metadata from its files.
    public init(model: Model) throws {
        path = model.path
        modelType = model.configuration.modelType
        config = Self.configuration(model.configuration)
        var tokenizerModel: String?
        var preTokenizer: String?
        if model.isGGUF {
            let gguf = try GGUFFile(path: model.path)
            format = "gguf"
            weightFiles = [model.path]
            architecture = try gguf.string("general.architecture")
            tensors = gguf.tensors.map { info in
                Tensor(name: info.name, shape: info.dimensions,
                       type: info.type.map { "\($0)".uppercased() } ?? "type \(info.rawType)", bytes: info.byteCount ?? 0,
                       role: Self.role(of: info.name, in: model.schema, gguf: true))
            }
            tokenizerModel = try gguf.string("tokenizer.ggml.model")
            preTokenizer = try gguf.string("tokenizer.ggml.pre")
        } else {
            let directory = try ModelDirectory(path: model.path)
            format = "safetensors"
            weightFiles = directory.weightFiles
            let configJSON = try JSONValue.load(path: (model.path as NSString).appendingPathComponent("config.json"))
            if case let .object(members) = configJSON, case let .array(names)? = members["architectures"],
               case let .string(name)? = names.first {
                architecture = name
            }
            let packed = Set(directory.mlxTensors.map(\.name))
            /// A packed weight's scales and biases take its role with a suffix.
            func role(_ name: String) -> String? {
                for part in [".scales", ".biases"] where name.hasSuffix(part) {
                    let weight = String(name.dropLast(part.count)) + ".weight"
                    if packed.contains(weight) { return Self.role(of: weight, in: model.schema, gguf: false).map { $0 + part } }
                }
                return Self.role(of: name, in: model.schema, gguf: false)
            }
            tensors = try directory.weightFiles.flatMap { file in
                let contents = try SafeTensorsFile(path: file)
                return contents.tensors.values.map { tensor in
                    Tensor(name: tensor.name, shape: tensor.shape, type: tensor.type.name.uppercased(),
                           bytes: tensor.count / tensor.type.blockSize * tensor.type.blockBytes, role: role(tensor.name))
                } + contents.packedWords.values.map { words in
                    Tensor(name: words.name, shape: words.shape, type: "U32", bytes: words.count * 4, role: role(words.name))
                }
            }
            if let recipe = directory.mlxQuantization {
                let shapes = Dictionary(tensors.map { ($0.name, $0.shape) }, uniquingKeysWith: { first, _ in first })
                let groups = Dictionary(grouping: directory.mlxTensors) { [$0.setting.bits, $0.setting.groupSize, Int($0.scaleType.rawValue), Int($0.storedAs.rawValue)] }
                let types = groups.values.compactMap { group -> MLXTensorType? in
                    guard let first = group.first else { return nil }
                    let parameters = group.reduce(0) { total, t in
                        let shape = shapes[t.name] ?? []
                        return total + (shape.count == 2 ? shape[0] * shape[1] * 32 / t.setting.bits : 0)
                    }
                    return MLXTensorType(bits: first.setting.bits, groupSize: first.setting.groupSize, scaleType: first.scaleType.name.uppercased(),
                                         storedAs: first.storedAs.name.uppercased(), count: group.count, parameters: parameters)
                }.sorted { ($0.bits, $0.groupSize, $0.storedAs) < ($1.bits, $1.groupSize, $1.storedAs) }
                mlxQuantization = MLXQuantizationSummary(mode: "affine", bits: recipe.setting.bits, groupSize: recipe.setting.groupSize,
                                                         moduleOverrides: recipe.overrides.count, tensorTypes: types)
            }
            if let file = directory.tokenizerFile { (tokenizerModel, preTokenizer) = try Self.describeTokenizerJSON(file) }
        }
        tensors.sort { $0.name < $1.name }
        fileBytes = weightFiles.reduce(0) { total, file in
            var info = stat()
            return total + (stat(file, &info) == 0 ? Int(info.st_size) : 0)
        }
        if model.tokenizerFile != nil {
            let t = try model.tokenizer()
            tokenizer = TokenizerSummary(vocabSize: t.vocabularySize, model: tokenizerModel, preTokenizer: preTokenizer,
                                         bosToken: t.bosToken, bosTokenID: t.bosTokenID.map(Int.init),
                                         eosToken: t.eosToken, eosTokenID: t.eosTokenID.map(Int.init))
        }
        chatTemplate = TemplateSummary(present: false)
        // A GGUF file keeps its template with the tokenizer; without one there is none to read.
        if tokenizer != nil || !model.isGGUF {
            let template = try model.chatTemplate()
            if !template.isBuiltInDefault {
                let source = template.template.source
                chatTemplate = TemplateSummary(present: true,
                                               source: model.isGGUF ? "\(model.path): tokenizer.chat_template" : template.template.name,
                                               length: source.unicodeScalars.count,
                                               firstLine: String(String.UnicodeScalarView(source.unicodeScalars.prefix { $0 != "\n" })))
            }
        }
    }

    private static func configuration(_ c: ModelConfiguration) -> Configuration {
        let scaling: String
        switch c.ropeScaling {
        case .none: scaling = "none"
        case let .llama3(factor, low, high, original):
            scaling = "llama3 (factor \(factor), low \(low), high \(high), original \(original))"
        case let .linear(factor): scaling = "linear (factor \(factor))"
        case let .frequencyFactors(factors): scaling = "frequency factors (\(factors.count) from rope_freqs.weight)"
        }
        return Configuration(layers: c.layerCount, heads: c.headCount, kvHeads: c.kvHeadCount, headDim: c.headDimension,
                             hiddenSize: c.hiddenSize, intermediateSize: c.intermediateSize, vocabSize: c.vocabularySize,
                             contextLength: c.maxPositions, ropeTheta: c.ropeTheta, ropeScaling: scaling,
                             ropePairing: c.ropePairing.rawValue, ropeLayers: c.layers.map { $0.usesRoPE ? "R" : "N" }.joined(),
                             nopeLayers: c.layers.indices.filter { !c.layers[$0].usesRoPE }, qkNorm: c.layers.contains { $0.qkNorm },
                             tiedEmbeddings: c.tiedEmbeddings, rmsNormEps: c.rmsNormEpsilon, bosTokenID: c.bosTokenID,
                             eosTokenIDs: c.eosTokenIDs)
    }

    /// tokenizer.json's model type and pre-tokenizer types ("Sequence[Split, ByteLevel]").
    static func describeTokenizerJSON(_ file: String) throws -> (model: String?, pre: String?) {
        func typeName(_ value: JSONValue?) -> String? {
            guard case let .object(members)? = value, case let .string(type)? = members["type"] else { return nil }
            if type == "Sequence", case let .array(items)? = members["pretokenizers"] {
                return "Sequence[" + items.map { typeName($0) ?? "?" }.joined(separator: ", ") + "]"
            }
            return type
        }
        guard case let .object(members) = try JSONValue.load(path: file) else { return (nil, nil) }
        return (typeName(members["model"]), typeName(members["pre_tokenizer"]))
    }

    enum CodingKeys: String, CodingKey {
        case path, format, architecture, modelType = "model_type", config, parameters, fileBytes = "file_bytes"
        case weightFiles = "weight_files", tensorTypes = "tensor_types", tensors, tokenizer, chatTemplate = "chat_template"
        case unreadTensors = "unread_tensors", mlxQuantization = "mlx_quantization"
    }

    /// Encodes every field (absent values as null); the tensor list only for `json(listTensors: true)`.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(path, forKey: .path); try c.encode(format, forKey: .format)
        try c.encode(architecture, forKey: .architecture); try c.encode(modelType, forKey: .modelType)
        try c.encode(config, forKey: .config); try c.encode(parameters, forKey: .parameters)
        try c.encode(fileBytes, forKey: .fileBytes); try c.encode(weightFiles, forKey: .weightFiles)
        try c.encode(tensorTypes, forKey: .tensorTypes)
        try c.encode(unreadTensors, forKey: .unreadTensors)
        try c.encode(mlxQuantization, forKey: .mlxQuantization)
        if encodesTensors { try c.encode(tensors, forKey: .tensors) }
        try c.encode(tokenizer, forKey: .tokenizer); try c.encode(chatTemplate, forKey: .chatTemplate)
    }

    /// The `--json` output: one object, with the tensor list when `listTensors`.
    public func json(listTensors: Bool) throws -> String {
        var report = self
        report.encodesTensors = listTensors
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(report), as: UTF8.self)
    }

    /// The human-readable output.
    public func text(listTensors: Bool) -> String {
        func bytes(_ n: Int) -> String {
            let units = ["B", "KB", "MB", "GB"]
            var value = Double(n), unit = 0
            while value >= 1000 && unit < units.count - 1 { value /= 1000; unit += 1 }
            return unit == 0 ? "\(n) B" : String(format: "%.1f %@", value, units[unit])
        }
        func plural(_ n: Int, _ word: String) -> String { "\(n) \(word)\(n == 1 ? "" : "s")" }
        let c = config
        var lines = [
            "path:          \(path)",
            "format:        \(format) (\(plural(weightFiles.count, "file")), \(bytes(fileBytes)))",
            "architecture:  \(architecture ?? "-") (model_type \(modelType))",
            "parameters:    \(parameters)",
            "layers:        \(c.layers), hidden \(c.hiddenSize), intermediate \(c.intermediateSize)",
            "attention:     \(c.heads) heads, \(c.kvHeads) KV heads, head dim \(c.headDim)\(c.qkNorm ? ", QK norm" : "")",
            "vocabulary:    \(c.vocabSize), context \(c.contextLength), \(c.tiedEmbeddings ? "tied" : "untied") embeddings",
            "RoPE:          theta \(c.ropeTheta), \(c.ropePairing) pairs, scaling \(c.ropeScaling)",
            "RoPE layers:   \(c.ropeLayers) (NoPE: \(c.nopeLayers.isEmpty ? "none" : c.nopeLayers.map(String.init).joined(separator: ", ")))",
            "tensors:",
        ]
        for group in tensorTypes {
            lines.append("  \(group.type.padding(toLength: 6, withPad: " ", startingAt: 0)) \(plural(group.count, "tensor")), "
                         + "\(group.parameters) parameters, \(bytes(group.bytes))")
        }
        if let mlx = mlxQuantization {
            lines.append("MLX quantization: \(mlx.mode), \(mlx.bits)-bit, group \(mlx.groupSize)"
                         + (mlx.moduleOverrides > 0 ? ", \(plural(mlx.moduleOverrides, "module override"))" : ""))
            for type in mlx.tensorTypes {
                let how = type.storedAs == "F32" ? "expanded to F32" : "held as \(type.storedAs), the same weights"
                lines.append("  \(type.bits)-bit group \(type.groupSize), \(type.scaleType) scales: \(type.count) \(type.count == 1 ? "matrix" : "matrices")"
                             + ", \(type.parameters) parameters, \(how)")
            }
        }
        if listTensors {
            for tensor in tensors {
                lines.append("  \(tensor.name)  [\(tensor.shape.map(String.init).joined(separator: ", "))]  \(tensor.type)  \(tensor.bytes) B"
                             + "  \(tensor.role ?? "(not read)")")
            }
        }
        if let t = tokenizer {
            func token(_ text: String?, _ id: Int?) -> String { text.map { "\($0) (\(id.map(String.init) ?? "-"))" } ?? "-" }
            lines.append("tokenizer:     \(t.model ?? "-"), vocabulary \(t.vocabSize), BOS \(token(t.bosToken, t.bosTokenID)), "
                         + "EOS \(token(t.eosToken, t.eosTokenID)), pre-tokenizer \(t.preTokenizer ?? "-")")
        } else {
            lines.append("tokenizer:     none")
        }
        if chatTemplate.present {
            lines.append("chat template: \(chatTemplate.source ?? "-"), \(chatTemplate.length ?? 0) characters, "
                         + "first line: \(chatTemplate.firstLine ?? "")")
        } else {
            lines.append("chat template: none (chat uses the built-in Llama-3 header format)")
        }
        return lines.joined(separator: "\n")
    }
}

extension ModelReport.TemplateSummary {
    init(present: Bool) { self.init(present: present, source: nil, length: nil, firstLine: nil) }
}
