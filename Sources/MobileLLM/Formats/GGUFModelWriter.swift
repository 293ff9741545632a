import Dispatch

/// Options for writing a model as GGUF.
public struct GGUFExportOptions: Sendable {
    /// Storage type of every matrix (see `QuantizationPlan`); vectors are written as F32.
    public var plan: QuantizationPlan
    /// `general.name` (default: the source's name, or its file/directory name).
    public var name: String?
    /// Threads that convert tensor rows (nil: every core).
    public var threadCount: Int?
    /// Data alignment (`general.alignment`).
    public var alignment: Int
    /// Test hook: write `llama` q/k rows unpermuted (a deliberately wrong file, to prove the permutation matters).
    var skipQKPermutation = false

    /// Options writing projections as `type` and the embedding/output matrix as `outputType` (nil: `type`).
    public init(type: QuantType, outputType: QuantType? = nil, name: String? = nil, threadCount: Int? = nil, alignment: Int = 32) {
        plan = QuantizationPlan(projectionType: type, outputType: outputType)
        self.name = name
        self.threadCount = threadCount
        self.alignment = alignment
    }
}

/// What `GGUFExport.write` wrote.
public struct GGUFExportReport: Sendable {
    /// One written tensor.
    public struct Tensor: Sendable {
        /// GGUF name.
        public let name: String
        /// Storage type.
        public let type: GGMLType
        /// ggml dimensions (innermost first).
        public let dimensions: [Int]
        /// Data bytes.
        public let byteCount: Int
    }
    /// The written file.
    public let path: String
    /// `general.architecture`.
    public let architecture: String
    /// Tensors in file order.
    public let tensors: [Tensor]
    /// Size of the file.
    public let fileBytes: Int
    /// Wall time of the whole conversion.
    public let seconds: Double
    /// Remarks (type fallbacks, end-of-sequence ids that GGUF cannot carry).
    public let notes: [String]

    /// How many tensors each type has, by lower-case type name (e.g. "q4_0": 154, "f32": 45).
    public var typeCounts: [String: Int] {
        tensors.reduce(into: [:]) { $0["\($1.type)".lowercased(), default: 0] += 1 }
    }
}

/// Writes models as GGUF files in llama.cpp's layout (`general.architecture` of the model's family: `llama`,
/// `llama4`, `qwen2`, `qwen3`), so that they reload in mobilellm with the same configuration, read back with gguf-py,
/// and (for `llama`, `qwen2`, `qwen3`) run in llama.cpp.
public enum GGUFExport {
    /// Converts the model at `path` (a Hugging Face directory or a GGUF file) to a GGUF file at `destination`,
    /// storing matrices as `options.plan` says and vectors as F32.
    ///
    /// For a `llama` model from a Hugging Face directory, q/k rows (and biases) are permuted from the half-split
    /// RoPE layout into llama.cpp's interleaved pairs, as llama.cpp's converter does; `llama4_text` models already
    /// pair interleaved dimensions and are written unchanged. llama3 RoPE scaling becomes a `rope_freqs.weight`
    /// tensor of per-pair factors. The tokenizer (tokenizer.json, tokenizer_config.json, chat template) is written
    /// when the directory has one; a GGUF source's `tokenizer.*` metadata is copied.
    ///
    /// Throws `MobileLLMError` naming the file and field for anything the source lacks or GGUF cannot express; a
    /// failed conversion leaves no file at `destination`. `progress` is called before each tensor is written.
    @discardableResult
    public static func write(modelAt path: String, to destination: String, options: GGUFExportOptions,
                             progress: ((GGUFWriteProgress) -> Void)? = nil) throws -> GGUFExportReport {
        let start = DispatchTime.now().uptimeNanoseconds
        try QuantizationPlan.checkWritable(options.plan.projectionType, name: "type")
        try QuantizationPlan.checkWritable(options.plan.outputType, name: "outputType")
        return try write(opened: OpenedModelSource(path: path), path: path, to: destination, options: options, start: start, progress: progress)
    }

    /// Writes a model of `shape`'s exact configuration with pseudo-random weights (`Model.synthetic`'s, made directly
    /// in the plan's types) as a GGUF file, for benchmarks that need a file (e.g. the same file in llama.cpp).
    /// `tokenizerDirectory`, a folder with `tokenizer.json` (and optionally `tokenizer_config.json`) whose vocabulary
    /// fits the shape's, or a GGUF file whose `tokenizer.*` metadata is copied (llama.cpp's `ggml-vocab-*.gguf`, with
    /// exactly the shape's vocabulary size), adds the tokenizer llama.cpp needs to load a file; without it the file
    /// has none.
    /// `general.name` defaults to "synthetic <shape>". Throws as `write(modelAt:to:options:progress:)` does, and
    /// `fileNotFound` when the tokenizer directory has no tokenizer.json.
    @discardableResult
    public static func write(synthetic shape: SyntheticModel, seed: UInt64 = 1, tokenizerDirectory: String? = nil, to destination: String,
                             options: GGUFExportOptions, progress: ((GGUFWriteProgress) -> Void)? = nil) throws -> GGUFExportReport {
        let start = DispatchTime.now().uptimeNanoseconds
        try QuantizationPlan.checkWritable(options.plan.projectionType, name: "type")
        try QuantizationPlan.checkWritable(options.plan.outputType, name: "outputType")
        let c = shape.configuration
        guard let architecture = ArchitectureRegistry.architecture(for: c.modelType) else {
            throw MobileLLMError.unsupported(path: shape.rawValue, feature: "model_type \(c.modelType)")
        }
        var tokenizerFiles: OpenedModelSource.TokenizerFiles?
        var tokenizerGGUF: GGUFFile?
        if let tokenizerDirectory, pathKind(tokenizerDirectory) == .file {
            // A GGUF file (such as llama.cpp's ggml-vocab-*.gguf): its tokenizer.* metadata is copied.
            guard try GGUFFile.hasMagic(path: tokenizerDirectory) else {
                throw MobileLLMError.invalidFile(path: tokenizerDirectory, field: "(file)", problem: "not a GGUF file and not a folder with tokenizer.json")
            }
            let file = try GGUFFile(path: tokenizerDirectory)
            let count = try file.stringArray("tokenizer.ggml.tokens")?.count ?? 0
            guard count == c.vocabularySize else {
                throw MobileLLMError.invalidFile(path: tokenizerDirectory, field: "tokenizer.ggml.tokens",
                                                 problem: "\(count) tokens; the \(shape.rawValue) shapes have a vocabulary of \(c.vocabularySize)")
            }
            tokenizerGGUF = file
        } else if let tokenizerDirectory {
            let file = ModelDirectory.join(tokenizerDirectory, "tokenizer.json")
            let config = ModelDirectory.join(tokenizerDirectory, "tokenizer_config.json")
            guard fileExists(file) else {
                throw MobileLLMError.fileNotFound(path: file, reason: "the tokenizer directory has no tokenizer.json")
            }
            tokenizerFiles = .init(directory: tokenizerDirectory, tokenizerFile: file,
                                   configFile: fileExists(config) ? config : nil)
        }
        let source = SyntheticTensorSource(configuration: c, architecture: architecture, seed: seed, plan: options.plan,
                                           threads: options.threadCount ?? Platform.activeProcessorCount)
        var named = options
        named.name = options.name ?? "synthetic \(shape.rawValue)"
        let opened = OpenedModelSource(configuration: c, source: source, directory: nil, gguf: tokenizerGGUF, tokenizerFiles: tokenizerFiles)
        return try write(opened: opened, path: "synthetic:\(shape.rawValue)", to: destination, options: named, start: start, progress: progress)
    }

    /// The conversion of an opened source (`path` names it in errors).
    private static func write(opened: OpenedModelSource, path: String, to destination: String, options: GGUFExportOptions, start: UInt64,
                              progress: ((GGUFWriteProgress) -> Void)?) throws -> GGUFExportReport {
        let c = opened.configuration
        guard let architecture = ArchitectureRegistry.architecture(for: c.modelType) else {
            throw MobileLLMError.unsupported(path: path, feature: "model_type \(c.modelType)")
        }
        // Every tensor the model needs, shape-checked (errors name the tensor), before anything is written.
        let schema = architecture.tensors(c)
        _ = try TransformerWeights(configuration: c, schema: schema, source: opened.source)
        let threads = options.threadCount ?? Platform.activeProcessorCount
        guard threads >= 1, threads <= 1024 else {
            throw MobileLLMError.invalidArgument(name: "threadCount", problem: "expected 1...1024, found \(threads)")
        }

        var writer = try GGUFWriter(alignment: options.alignment)
        var notes: [String] = []
        let arch = architecture.ggufArchitectures.first ?? c.modelType
        let name = try options.name ?? opened.gguf?.string("general.name") ?? ModelDirectory.stem(of: path)
        let metadata = commonMetadata(c, architecture: arch, name: name, fileType: fileType(options.plan.projectionType))
            + (try architecture.ggufMetadata(c, prefix: arch, path: path))
        for (key, value) in metadata {
            try writer.set(key, value)
        }
        notes += try addTokenizer(to: &writer, opened: opened, configuration: c, path: path)

        // Tensors in schema order (embedding, RoPE factors, layers, final norm, output); the output matrix only when
        // the model has one of its own.
        let specs = options.skipQKPermutation ? schema.tensors.map(\.unpermuted) : schema.tensors
        let written = specs.filter { $0.role != .output || (!c.tiedEmbeddings && opened.source.tensor(named: $0.name) != nil) }
        var report: [GGUFExportReport.Tensor] = []
        var fallbacks: [(name: String, columns: Int, requested: QuantType, type: QuantType)] = []
        func add(_ ggufName: String, _ tensor: StoredTensor, type: QuantType, sourceRow: (@Sendable (Int) -> Int)?) throws {
            guard let ggmlType = GGMLType(rawValue: UInt32(type.rawValue)) else {
                throw MobileLLMError.unsupported(path: path, feature: "storage type \(type)")
            }
            let dimensions = Array(tensor.shape.reversed())
            if tensor.type == type, sourceRow == nil {
                // Already in the target type: the bytes go to the file as they are.
                let bytes = UnsafeRawBufferPointer(start: tensor.pointer, count: tensor.shape.reduce(1, *) / type.blockSize * type.blockBytes)
                try writer.addTensor(name: ggufName, type: ggmlType, dimensions: dimensions, bytes: bytes, owner: tensor.owner)
            } else if tensor.shape.count == 1, sourceRow != nil {
                // A permuted vector (a q/k bias): its elements move, so convert it as [n, 1] rows of one element.
                let column = StoredTensor(name: tensor.name, type: tensor.type, shape: [tensor.count, 1], owner: tensor.owner, pointer: tensor.pointer)
                try writer.addTensor(name: ggufName, type: ggmlType, dimensions: dimensions) { _, destination in
                    guard let base = destination.baseAddress else { return }
                    TensorConversion.convert(column, rows: 0..<column.count, to: type, sourceRow: sourceRow, destination: base, threads: 1)
                }
            } else {
                let rowCount = tensor.shape.dropLast().reduce(1, *)
                try writer.addTensor(name: ggufName, type: ggmlType, dimensions: dimensions) { rows, destination in
                    guard let base = destination.baseAddress else { return }
                    TensorConversion.convert(tensor, rows: rows, to: type, sourceRow: sourceRow, destination: base, threads: threads)
                    // Done with the source: keep a large model's mapping from filling memory while it is written.
                    if rows.upperBound == rowCount { TensorConversion.releasePages(of: tensor) }
                }
            }
            let written = writer.tensors[writer.tensors.count - 1]
            report.append(.init(name: ggufName, type: ggmlType, dimensions: dimensions, byteCount: written.byteCount))
        }

        for (index, spec) in written.enumerated() {
            let sourceName = spec.name, ggufName = spec.ggufName
            guard let tensor = opened.source.tensor(named: sourceName) else {
                throw MobileLLMError.invalidFile(path: opened.source.location, field: sourceName, problem: "tensor missing")
            }
            var sourceRow: (@Sendable (Int) -> Int)?
            if case let .llamaPairs(heads) = spec.ggufRowOrder {
                sourceRow = llamaCppPermutation(headCount: heads, headDimension: c.headDimension)
            }
            let type: QuantType
            if tensor.shape.count == 2, let (planned, requested) = options.plan.type(for: schema.quantizationRole(of: sourceName), columns: tensor.shape[1]) {
                type = planned
                fallbacks.append((sourceName, tensor.shape[1], requested, planned))
            } else {
                type = .f32
            }
            if index == 0, let factors = ropeFactors(c) {
                // llama.cpp keeps llama3 RoPE scaling as per-pair frequency divisors.
                let buffer = OwnedBuffer(byteCount: factors.count * 4)
                buffer.pointer.copyMemory(from: factors, byteCount: factors.count * 4)
                try add(ggufName, tensor, type: type, sourceRow: sourceRow)
                try writer.addTensor(name: "rope_freqs.weight", type: .f32, dimensions: [factors.count],
                                     bytes: UnsafeRawBufferPointer(start: buffer.pointer, count: factors.count * 4), owner: buffer)
                report.append(.init(name: "rope_freqs.weight", type: .f32, dimensions: [factors.count], byteCount: factors.count * 4))
                continue
            }
            try add(ggufName, tensor, type: type, sourceRow: sourceRow)
        }

        notes += QuantizationPlan.fallbackNotes(fallbacks)
        try writer.write(to: destination, progress: progress)
        let size = fileSize(destination) ?? 0
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return GGUFExportReport(path: destination, architecture: arch, tensors: report, fileBytes: size, seconds: seconds, notes: notes)
    }

    /// Destination row → source row of llama.cpp's converter `permute` for a [heads * headDimension, ...] q or k
    /// projection: within each head, the half-split rows (x_i, x_{i+d/2}) become adjacent pairs (x_2i, x_2i+1).
    static func llamaCppPermutation(headCount: Int, headDimension: Int) -> @Sendable (Int) -> Int {
        let half = headDimension / 2
        return { row in
            let head = row / headDimension, within = row % headDimension
            return head * headDimension + (within % 2) * half + within / 2
        }
    }

    /// ggml's `general.file_type` (llama_ftype) for a model whose projections have `type`.
    static func fileType(_ type: QuantType) -> UInt32 {
        switch type {
        case .f32: return 0
        case .f16: return 1
        case .q4_0: return 2
        case .q4_1: return 3
        case .q5_0: return 8
        case .q5_1: return 9
        case .q8_0: return 7
        case .iq4_nl: return 25
        case .q2_K: return 10
        case .q3_K: return 12
        case .q4_K: return 15
        case .q5_K: return 17
        case .q6_K: return 18
        case .bf16: return 32
        }
    }

    /// Per-pair RoPE frequency divisors for scalings GGUF keeps as `rope_freqs.weight` (llama3, or factors read from a
    /// GGUF), chosen so that `plain / factor` rounds to exactly the scaled frequency mobilellm computes; nil otherwise.
    static func ropeFactors(_ c: ModelConfiguration) -> [Float]? {
        switch c.ropeScaling {
        case let .frequencyFactors(factors):
            return factors
        case .llama3:
            var plainConfiguration = c
            plainConfiguration.ropeScaling = .none
            let plain = plainConfiguration.ropeInverseFrequencies()
            let scaled = c.ropeInverseFrequencies()
            return zip(plain, scaled).map { base, target in
                let factor = Float(Double(base) / Double(target))
                return [factor, factor.nextUp, factor.nextDown].first { base / $0 == target } ?? factor
            }
        case .none, .linear:
            return nil
        }
    }

    /// The model metadata every llama.cpp decoder has, under prefix `a`; the family adds its own keys
    /// (`Architecture.ggufMetadata`).
    static func commonMetadata(_ c: ModelConfiguration, architecture a: String, name: String, fileType: UInt32) -> [(String, GGUFValue)] {
        func u32(_ value: Int) -> GGUFValue { .uint32(UInt32(clamping: value)) }
        var metadata: [(String, GGUFValue)] = [
            ("general.architecture", .string(a)),
            ("general.type", .string("model")),
            ("general.name", .string(name)),
            ("general.file_type", .uint32(fileType)),
            ("general.quantization_version", .uint32(2)),
            ("\(a).vocab_size", u32(c.vocabularySize)),
            ("\(a).context_length", u32(c.maxPositions)),
            ("\(a).embedding_length", u32(c.hiddenSize)),
            ("\(a).block_count", u32(c.layerCount)),
            ("\(a).feed_forward_length", u32(c.intermediateSize)),
            ("\(a).attention.head_count", u32(c.headCount)),
            ("\(a).attention.head_count_kv", u32(c.kvHeadCount)),
            ("\(a).attention.key_length", u32(c.headDimension)),
            ("\(a).attention.value_length", u32(c.headDimension)),
            ("\(a).attention.layer_norm_rms_epsilon", .float32(c.rmsNormEpsilon)),
            ("\(a).rope.freq_base", .float32(Float(c.ropeTheta))),
            ("\(a).rope.dimension_count", u32(c.headDimension)),
        ]
        if case let .linear(factor) = c.ropeScaling {
            metadata.append(("\(a).rope.scaling.type", .string("linear")))
            metadata.append(("\(a).rope.scaling.factor", .float32(Float(factor))))
        }
        return metadata
    }

    /// Adds the tokenizer and BOS/EOS metadata; returns notes.
    static func addTokenizer(to writer: inout GGUFWriter, opened: OpenedModelSource, configuration c: ModelConfiguration, path: String) throws -> [String] {
        if let gguf = opened.gguf {
            for key in gguf.metadataKeys where key.hasPrefix("tokenizer.") {
                if let value = gguf.metadata[key] { try writer.set(key, value) }
            }
            return []
        }
        var notes: [String] = []
        var tokenizerEOS: Int?
        var tokenizerBOS: Int?
        if let files = opened.tokenizerFiles {
            let tokenizerFile = files.tokenizerFile
            let tokenizer = try Tokenizer.load(path: files.directory)
            let merges = try Tokenizer.mergeStrings(tokenizerJSON: tokenizerFile)
            let exported = try tokenizer.ggufMetadata(vocabularySize: c.vocabularySize, merges: merges, location: tokenizerFile)
            for (key, value) in exported.metadata { try writer.set(key, value) }
            notes += exported.notes
            // llama.cpp also records the unknown and padding tokens.
            for (field, key) in [("unk_token", "tokenizer.ggml.unknown_token_id"), ("pad_token", "tokenizer.ggml.padding_token_id")] {
                if let configFile = files.configFile, let text = try tokenName(field, configFile: configFile),
                   let id = tokenizer.tokenID(forPiece: text) {
                    try writer.set(key, .uint32(UInt32(id)))
                }
            }
            tokenizerEOS = tokenizer.eosTokenID.map(Int.init)
            tokenizerBOS = tokenizer.bosTokenID.map(Int.init)
            if let template = try chatTemplateSource(directory: files.directory, tokenizer: tokenizer), !template.isEmpty {
                try writer.set("tokenizer.chat_template", .string(template))
            }
        }
        if let bos = c.bosTokenID ?? tokenizerBOS {
            try writer.set("tokenizer.ggml.bos_token_id", .uint32(UInt32(bos)))
        }
        // The configuration's end-of-sequence ids go to eos / eot / eom (llama.cpp stops at all three); the
        // tokenizer's own EOS goes first when it is one of them, so its text stays the template's eos_token.
        var eos = c.eosTokenIDs
        if let first = tokenizerEOS, eos.isEmpty || eos.contains(first) {
            eos.removeAll { $0 == first }
            eos.insert(first, at: 0)
        }
        for (key, id) in zip(["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"], eos) {
            try writer.set(key, .uint32(UInt32(id)))
        }
        if eos.count > 3 {
            notes.append("end-of-sequence ids \(eos.dropFirst(3).map(String.init).joined(separator: ", ")) dropped: GGUF keeps at most three (eos, eot, eom)")
        }
        return notes
    }

    /// A token name from tokenizer_config.json (a string or an AddedToken object), or nil.
    static func tokenName(_ field: String, configFile: String) throws -> String? {
        let config = try JSONObjectReader(try FastJSON.load(path: configFile), path: configFile)
        switch config.members[field] {
        case let .string(text)?: return text
        case .object?: return try config.optionalObject(field)?.optionalString("content")
        default: return nil
        }
    }

    /// The directory's chat template text: chat_template.jinja, else tokenizer_config.json's (as the tokenizer read it).
    static func chatTemplateSource(directory: String, tokenizer: Tokenizer) throws -> String? {
        let jinja = ModelDirectory.join(directory, "chat_template.jinja")
        if fileExists(jinja) {
            guard let text = String(validating: try readWholeFile(jinja), as: UTF8.self) else {
                throw MobileLLMError.invalidFile(path: jinja, field: "(document)", problem: "not valid UTF-8")
            }
            return text
        }
        return tokenizer.chatTemplate
    }
}

/// A model opened for reading its tensors: a Hugging Face directory or a GGUF file.
struct OpenedModelSource {
    /// Where a tokenizer comes from: a folder with tokenizer.json and maybe tokenizer_config.json.
    struct TokenizerFiles {
        let directory: String
        let tokenizerFile: String
        let configFile: String?
    }
    let configuration: ModelConfiguration
    let source: TensorSource
    let directory: ModelDirectory?
    let gguf: GGUFFile?
    let tokenizerFiles: TokenizerFiles?

    init(configuration: ModelConfiguration, source: TensorSource, directory: ModelDirectory?, gguf: GGUFFile?, tokenizerFiles: TokenizerFiles?) {
        self.configuration = configuration
        self.source = source
        self.directory = directory
        self.gguf = gguf
        self.tokenizerFiles = tokenizerFiles
    }

    init(path: String) throws {
        let kind = pathKind(path)
        guard kind != .missing else {
            throw MobileLLMError.fileNotFound(path: path, reason: "no such file or directory")
        }
        if kind == .directory {
            let directory = try ModelDirectory(path: path)
            configuration = directory.configuration
            source = directory
            self.directory = directory
            gguf = nil
            tokenizerFiles = directory.tokenizerFile.map { TokenizerFiles(directory: directory.path, tokenizerFile: $0, configFile: directory.tokenizerConfigFile) }
        } else {
            guard try GGUFFile.hasMagic(path: path) else {
                throw MobileLLMError.invalidFile(path: path, field: "(file)", problem: "not a GGUF file (no 'GGUF' magic) and not a model directory")
            }
            let model = try GGUFModelSource(path: path)
            configuration = model.configuration
            source = model
            directory = nil
            gguf = model.gguf
            tokenizerFiles = nil
        }
    }
}
