
/// A Hugging Face model directory: `config.json`, weights in `model.safetensors` or shards listed by
/// `model.safetensors.index.json`, optional `generation_config.json` and tokenizer files. MLX directories (mlx-lm
/// conversions, quantized or not) are the same layout; their quantized matrices are converted as they open
/// (`MLXQuantization`).
public struct ModelDirectory: Sendable {
    /// The directory.
    public let path: String
    /// The parsed, validated configuration (EOS ids from generation_config.json merged in).
    public let configuration: ModelConfiguration
    /// Every tensor of every weight file, by name.
    let tensors: [String: StoredTensor]
    /// The weight files that were mapped.
    public let weightFiles: [String]
    /// config.json's MLX quantization recipe, when it has one.
    public let mlxQuantization: MLXQuantization?
    /// The MLX-quantized matrices and what the loader converted each to, by name (empty for other directories).
    public let mlxTensors: [MLXQuantizedTensor]
    /// `tokenizer.json`, when present.
    public let tokenizerFile: String?
    /// `tokenizer_config.json`, when present.
    public let tokenizerConfigFile: String?

    /// MLX packed matrices, checked, converted on first request (`tensor(named:)`), by weight name.
    let mlxPending: [String: MLXPendingMatrix]
    /// Those converted so far.
    private let mlxConverted = MLXConvertedMatrices()

    /// Opens the directory at `path`, reading and validating config and weight headers. Tensor bytes stay mapped, not
    /// read; MLX quantized matrices are checked (shapes, scales and biases) and converted when first asked for
    /// (`MLXQuantization`).
    public init(path: String) throws {
        let kind = pathKind(path)
        guard kind != .missing else {
            throw MobileLLMError.fileNotFound(path: path, reason: "no such file or directory")
        }
        guard kind == .directory else {
            throw MobileLLMError.invalidFile(path: path, field: "(path)", problem: "expected a model directory holding config.json and *.safetensors")
        }
        self.path = path
        let configPath = Self.join(path, "config.json")
        guard fileExists(configPath) else {
            throw MobileLLMError.fileNotFound(path: configPath, reason: "missing: a model directory needs config.json")
        }
        let configJSON = try JSONValue.load(path: configPath)
        var configuration = try ModelConfiguration.parse(configJSON, path: configPath)

        let generationPath = Self.join(path, "generation_config.json")
        if fileExists(generationPath) {
            let generation = try JSONObjectReader(try JSONValue.load(path: generationPath), path: generationPath)
            for id in try generation.intOrIntArray("eos_token_id") where !configuration.eosTokenIDs.contains(id) {
                try Self.checkTokenID(id, field: "eos_token_id", path: generationPath, vocabularySize: configuration.vocabularySize)
                configuration.eosTokenIDs.append(id)
            }
            if let bos = try generation.optionalInt("bos_token_id") {
                try Self.checkTokenID(bos, field: "bos_token_id", path: generationPath, vocabularySize: configuration.vocabularySize)
                if configuration.bosTokenID == nil { configuration.bosTokenID = bos }
            }
        }
        self.configuration = configuration

        let single = Self.join(path, "model.safetensors")
        let index = Self.join(path, "model.safetensors.index.json")
        var tensors: [String: StoredTensor] = [:]
        var words: [String: PackedWordTensor] = [:]
        var files: [String] = []
        if fileExists(single) {
            let file = try SafeTensorsFile(path: single)
            tensors = file.tensors
            words = file.packedWords
            files = [single]
        } else if fileExists(index) {
            let reader = try JSONObjectReader(try JSONValue.load(path: index), path: index)
            guard let map = try reader.optionalObject("weight_map") else {
                throw MobileLLMError.invalidFile(path: index, field: "weight_map", problem: "missing (expected an object from tensor name to shard file)")
            }
            var shardOfTensor: [String: String] = [:]
            for (name, value) in map.members {
                guard case let .string(file) = value else {
                    throw MobileLLMError.invalidFile(path: index, field: "weight_map.\(name)", problem: "expected a file name, found \(value.typeName)")
                }
                guard !file.contains("/"), !file.hasPrefix(".") else {
                    throw MobileLLMError.invalidFile(path: index, field: "weight_map.\(name)", problem: "\"\(file)\" must be a file name inside the model directory")
                }
                shardOfTensor[name] = file
            }
            for file in Set(shardOfTensor.values).sorted() {
                let shardPath = Self.join(path, file)
                guard fileExists(shardPath) else {
                    throw MobileLLMError.fileNotFound(path: shardPath, reason: "missing: listed in model.safetensors.index.json")
                }
                let shard = try SafeTensorsFile(path: shardPath)
                files.append(shardPath)
                for name in Array(shard.tensors.keys) + Array(shard.packedWords.keys) {
                    if tensors[name] != nil || words[name] != nil {
                        throw MobileLLMError.invalidFile(path: shardPath, field: name, problem: "tensor also present in another shard")
                    }
                    tensors[name] = shard.tensors[name]
                    words[name] = shard.packedWords[name]
                }
            }
            for (name, file) in shardOfTensor where tensors[name] == nil && words[name] == nil {
                throw MobileLLMError.invalidFile(path: Self.join(path, file), field: name, problem: "tensor listed in model.safetensors.index.json but absent from the shard")
            }
        } else {
            throw MobileLLMError.fileNotFound(path: single, reason: "missing: expected model.safetensors or model.safetensors.index.json with shards")
        }
        let recipe = try MLXQuantization.parse(configJSON, path: configPath)
        mlxQuantization = recipe
        if words.isEmpty {
            mlxTensors = []
            mlxPending = [:]
        } else {
            (tensors, mlxPending, mlxTensors) = try MLXQuantization.plan(words: words, tensors: tensors, recipe: recipe, configPath: configPath)
        }
        self.tensors = tensors
        self.weightFiles = files

        let tokenizer = Self.join(path, "tokenizer.json")
        tokenizerFile = fileExists(tokenizer) ? tokenizer : nil
        let tokenizerConfig = Self.join(path, "tokenizer_config.json")
        tokenizerConfigFile = fileExists(tokenizerConfig) ? tokenizerConfig : nil
    }

    /// Throws unless `id` is a token of a vocabulary of `vocabularySize` (config.json's `vocab_size`).
    static func checkTokenID(_ id: Int, field: String, path: String, vocabularySize: Int) throws {
        guard id >= 0, id < vocabularySize else {
            throw MobileLLMError.invalidFile(path: path, field: field,
                                             problem: "token id \(id) is outside the vocabulary (expected 0..<\(vocabularySize), config.json vocab_size)")
        }
    }

    /// The mapped weight files, one per file (in `weightFiles` order).
    var mappedFiles: [MappedFile] {
        var byPath: [String: MappedFile] = [:]
        for tensor in tensors.values { if let file = tensor.owner as? MappedFile { byPath[file.path] = file } }
        for matrix in mlxPending.values { if let file = matrix.packed.owner as? MappedFile { byPath[file.path] = file } }
        return weightFiles.compactMap { byPath[$0] }
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    /// The last component of `path` (trailing slashes ignored; "/" for the root).
    static func lastComponent(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard trimmed != "/", let slash = trimmed.lastIndex(of: "/") else { return String(trimmed) }
        return String(trimmed[trimmed.index(after: slash)...])
    }

    /// The last component of `path` without its extension (the text after its last dot, when that dot is neither
    /// the first nor the last character): "model.Q4_0" for "dir/model.Q4_0.gguf".
    static func stem(of path: String) -> String {
        let name = lastComponent(of: path)
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex, name.index(after: dot) != name.endIndex else { return name }
        return String(name[..<dot])
    }

    /// The directory holding `path` (trailing slashes ignored): "/" for a path directly under the root, "." for a
    /// path without a directory part.
    static func parent(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        if slash == trimmed.startIndex { return "/" }
        var parent = trimmed[..<slash]
        while parent.count > 1, parent.hasSuffix("/") { parent = parent.dropLast() }
        return String(parent)
    }
}

extension ModelDirectory: TensorSource {
    func tensor(named name: String) -> StoredTensor? {
        if let tensor = tensors[name] { return tensor }
        guard let pending = mlxPending[name] else { return nil }
        return mlxConverted.tensors.withLock { converted in
            if let tensor = converted[name] { return tensor }
            let tensor = MLXQuantization.materialize(pending, threads: Platform.activeProcessorCount)
            converted[name] = tensor
            return tensor
        }
    }
    var location: String { weightFiles.count == 1 ? weightFiles[0] : path + " (safetensors shards)" }
    var configurationFieldNames: [String: String] {
        ArchitectureRegistry.architecture(for: configuration.modelType)?.configurationFieldNames ?? [:]
    }
}
