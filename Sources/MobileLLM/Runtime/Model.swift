#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Android)
import Android
#elseif canImport(Darwin)
import Darwin
#endif

/// How activations meet quantized weights.
public enum ActivationPrecision: String, Sendable, CaseIterable {
    /// f32 activations times weights dequantized in registers: the same numbers transformers computes on the
    /// dequantized model (up to summation order).
    case exact
    /// Activations quantized to 8 bits per 32-value block for integer (VNNI) dot products, as llama.cpp does:
    /// faster prefill, and results that drift from the dequantized model by about the activation rounding.
    case int8
    /// Exact, except that passes of 16 rows and more (prefill, large batches) of Q4_0, Q4_1 and Q8_0 weights round
    /// their activations once per matmul to 16-bit integers with an f32 scale per 32-value block and multiply them
    /// with `vpdpwssd` on AVX-512 VNNI CPUs (`mlk_qf32_prepare`): 1.3-1.4x exact's prefill there (SmolLM2, the
    /// R1-950M twin), each activation within 1/65534 of its block's largest magnitude. On other CPUs, and for decode,
    /// it computes exactly what `exact` computes.
    case int16
}

/// Options for loading a model.
public struct ModelLoadOptions: Sendable {
    /// Threads each session of this model uses for its matrix work (nil: every core).
    public var threadCount: Int?
    /// How quantized weights are multiplied (no effect on float weights).
    public var activationPrecision: ActivationPrecision
    /// Quantize on load: projection and embedding/output matrices are converted to this type (with the same bytes
    /// `mobilellm quantize --type` writes; see `QuantizationPlan`) on `threadCount` threads. nil: weights as stored.
    public var quantize: QuantType?
    /// Context length of a session made without one (`makeSession()`): 1 ... the model's maximum. nil:
    /// `min(4096, max_position_embeddings)`.
    public var defaultContextLength: Int?
    /// Lock the memory-mapped model files in RAM after loading (`mlock`), so the OS never pages weights out (and the
    /// first tokens never wait for the disk): every page of the files is read during the load. When the lock fails
    /// (`RLIMIT_MEMLOCK` too low, see `ulimit -l`, or not enough memory) the load fails with `invalidArgument`
    /// naming `lockMemory`, the error and the bytes asked for. Weights converted at load (`quantize`) live in
    /// ordinary memory and are not locked. Default false.
    public var lockMemory: Bool
    /// Interleave the matrices the int8 kernels read 8 rows at a time (`WeightMatrix.interleavesAtLoad`); tests turn
    /// it off to compare against the row-major kernels. Default true.
    var interleavesWeights = true

    /// Options with the given thread count (nil: every core), activation precision, quantize-on-load type, default
    /// session context length and memory locking.
    public init(threadCount: Int? = nil, activationPrecision: ActivationPrecision = .exact, quantize: QuantType? = nil,
                defaultContextLength: Int? = nil, lockMemory: Bool = false) {
        self.threadCount = threadCount
        self.activationPrecision = activationPrecision
        self.quantize = quantize
        self.defaultContextLength = defaultContextLength
        self.lockMemory = lockMemory
    }

    /// Throws `invalidArgument` naming the option for a thread count outside 1...1024 or a quantize type this
    /// library cannot write (checked before any file is read).
    func validate() throws {
        if let threads = threadCount, threads < 1 || threads > 1024 {
            throw MobileLLMError.invalidArgument(name: "threadCount", problem: "expected 1...1024, found \(threads)")
        }
        try QuantizationPlan.checkWritable(quantize, name: "quantize")
    }

    /// The compute threads a model loaded with these options uses (`threadCount`, or every core).
    var resolvedThreadCount: Int { threadCount ?? Platform.activeProcessorCount }

    /// The default session context length of a model of configuration `c` loaded with these options; throws
    /// `invalidArgument` naming `defaultContextLength` when it is outside 1 ... the model's maximum.
    func resolvedDefaultContextLength(_ c: ModelConfiguration) throws -> Int {
        if let length = defaultContextLength, length < 1 || length > c.maxPositions {
            throw MobileLLMError.invalidArgument(name: "defaultContextLength",
                                                 problem: "expected 1...\(c.maxPositions) (the model's max_position_embeddings), found \(length)")
        }
        return defaultContextLength ?? min(4096, c.maxPositions)
    }
}

/// A model's files opened for loading: the configuration and the tensor table (headers only; no tensor bytes read).
struct OpenedModel {
    let configuration: ModelConfiguration
    let source: TensorSource
    let tokenizerFile: String?
    /// The files whose bytes hold the tensors, and their sizes (the whole file is mapped).
    let files: [MappedFile]

    /// Opens a Hugging Face directory (config.json + safetensors) or a GGUF file: parses the configuration and the
    /// tensor headers, maps the files, reads no tensor data. Throws what `Model(path:options:)` throws for them.
    init(path: String) throws {
        if pathKind(path) == .file {
            guard try GGUFFile.hasMagic(path: path) else {
                throw MobileLLMError.invalidFile(path: path, field: "(file)",
                                                 problem: "not a GGUF file (no 'GGUF' magic) and not a model directory")
            }
            let source = try GGUFModelSource(path: path)
            let hasTokenizer = source.gguf.metadata["tokenizer.ggml.model"] != nil
            configuration = source.configuration
            self.source = source
            tokenizerFile = hasTokenizer ? path : nil
            files = [source.gguf.file]
            return
        }
        let directory = try ModelDirectory(path: path)
        configuration = directory.configuration
        source = directory
        tokenizerFile = directory.tokenizerFile
        files = directory.mappedFiles
    }
}

/// A loaded model: configuration and weights. Immutable after loading, so one `Model` may serve any number of
/// sessions on any threads. Weights stay memory-mapped from their files.
public final class Model: @unchecked Sendable {
    /// Where the model was loaded from.
    public let path: String
    /// The validated configuration.
    public let configuration: ModelConfiguration
    /// Threads a forward pass uses (the process shares one pool per thread count, see `ComputePool.shared`).
    public let threadCount: Int
    /// How quantized weights are multiplied.
    public let activationPrecision: ActivationPrecision
    /// `tokenizer.json` of the model, when it has one.
    public let tokenizerFile: String?
    /// Context length of a session made without one.
    public let defaultContextLength: Int

    /// The model's family.
    public let architecture: any Architecture.Type
    /// The family's tensors for this configuration.
    public let schema: TensorSchema
    let weights: TransformerWeights
    /// Per layer: the position blocks and attention window (`Architecture.layerRecipe`).
    let recipes: [LayerRecipe]
    let ropeFrequencies: [Float]
    /// The process-wide compute pool of `threadCount` threads that every session and batch of this model runs on.
    let pool: ComputePool

    /// The view of `pool` that runs parallel regions on `threads` of its threads (1 ... `threadCount`; the pool never
    /// grows); throws `invalidArgument` naming `threadCount` outside that range. Sessions and batches set their thread
    /// count through it.
    func pool(limitedTo threads: Int) throws -> ComputePool {
        guard threads >= 1, threads <= threadCount else {
            throw MobileLLMError.invalidArgument(name: "threadCount", problem: "expected 1...\(threadCount) (the threads of the model's pool), found \(threads)")
        }
        return pool.limited(to: threads)
    }
    /// The tokenizer, loaded on first use (loading a 9 MB tokenizer.json is skipped by token-id-only callers).
    private let tokenizerState = LoadOnce<Tokenizer>()
    private let templateState = LoadOnce<ModelChatTemplate>()
    private let tokenizerConfigState = LoadOnce<TemplateValue?>()

    /// A directory model's tokenizer_config.json, parsed on first use and shared by the tokenizer and the chat
    /// template (nil when there is none).
    private func tokenizerConfig() throws -> TemplateValue? {
        try tokenizerConfigState.get { try ModelChatTemplate.tokenizerConfig(ofDirectory: path) }
    }

    /// Loads a model: a Hugging Face directory (config.json + safetensors, tokenizer files optional) or a GGUF file
    /// (llama.cpp's layouts of every registered family: `llama`, `llama4`, `qwen2`, `qwen3`; float or block-quantized tensors). Weights stay memory-mapped.
    /// Throws `MobileLLMError` naming the file and field when anything is missing or inconsistent.
    public convenience init(path: String, options: ModelLoadOptions = ModelLoadOptions()) throws {
        let opened = try OpenedModel(path: path)
        try self.init(path: path, configuration: opened.configuration, source: opened.source,
                      tokenizerFile: opened.tokenizerFile, options: options)
        if options.lockMemory { try Self.lock(opened.files) }
    }

    /// Locks every byte of `files` in RAM (`mlock`), reading them in; throws `invalidArgument` naming `lockMemory`
    /// when the system refuses.
    static func lock(_ files: [MappedFile]) throws {
        for file in files {
            guard let base = file.base, file.size > 0 else { continue }
            guard mlock(base, file.size) == 0 else {
                let code = errno
                var limit = rlimit()
                #if os(Linux)
                let queried = getrlimit(__rlimit_resource_t(__RLIMIT_MEMLOCK.rawValue), &limit) == 0
                #else
                let queried = getrlimit(RLIMIT_MEMLOCK, &limit) == 0
                #endif
                let limitText = queried ? (limit.rlim_cur == rlim_t.max ? "unlimited" : "\(limit.rlim_cur) bytes") : "unknown"
                throw MobileLLMError.invalidArgument(
                    name: "lockMemory",
                    problem: "mlock of \(file.size) bytes of \(file.path) failed: \(String(cString: strerror(code))) (RLIMIT_MEMLOCK is \(limitText); raise it with ulimit -l, or load without locking)")
            }
        }
    }

    /// Builds a model from a configuration and a source of tensors named as the architecture expects.
    init(path: String, configuration: ModelConfiguration, source: TensorSource, tokenizerFile: String?, options: ModelLoadOptions) throws {
        try options.validate()
        guard let architecture = ArchitectureRegistry.architecture(for: configuration.modelType) else {
            throw MobileLLMError.unsupported(path: path, feature: "model_type \(configuration.modelType)")
        }
        defaultContextLength = try options.resolvedDefaultContextLength(configuration)
        self.path = path
        self.configuration = configuration
        let threads = options.resolvedThreadCount
        threadCount = threads
        pool = ComputePool.shared(threadCount: threads)
        self.architecture = architecture
        let schema = architecture.tensors(configuration)
        self.schema = schema
        let source = options.quantize.map {
            QuantizingSource(wrapping: source, configuration: configuration, architecture: architecture,
                             plan: QuantizationPlan(projectionType: $0), threads: threads) as TensorSource
        } ?? source
        weights = try TransformerWeights(configuration: configuration, schema: schema, source: source,
                                         precision: options.activationPrecision, rearranges: options.interleavesWeights,
                                         threads: threads)
        recipes = (0..<configuration.layerCount).map { architecture.layerRecipe(configuration, layer: $0) }
        ropeFrequencies = configuration.ropeInverseFrequencies()
        activationPrecision = options.activationPrecision
        self.tokenizerFile = tokenizerFile
    }

    /// The model's tokenizer (tokenizer.json + tokenizer_config.json of the directory), loaded on first use and then
    /// shared. Throws `tokenizerMissing` when the directory has no tokenizer.json, or the load error of a bad one.
    public func tokenizer() throws -> Tokenizer {
        try tokenizerState.get {
            guard let tokenizerFile else { throw MobileLLMError.tokenizerMissing(path: path) }
            let tokenizer: Tokenizer
            if isGGUF {
                tokenizer = try Tokenizer.load(path: path)
            } else {
                // tokenizer_config.json is parsed once for the tokenizer and the chat template.
                let config = try tokenizerConfig()
                tokenizer = try Tokenizer(tokenizerJSON: tokenizerFile,
                                          tokenizerConfig: config == nil ? nil : ModelDirectory.join(path, "tokenizer_config.json"),
                                          parsedConfig: config.map(JSONValue.init))
            }
            try checkFits(tokenizer)
            return tokenizer
        }
    }

    /// Throws unless every id of `tokenizer` is a row of the embedding (so encoded text can always be fed).
    private func checkFits(_ tokenizer: Tokenizer) throws {
        let largest = tokenizer.vocabularySize - 1
        guard largest >= configuration.vocabularySize else { return }
        let field = isGGUF ? "tokenizer.ggml.tokens"
            : tokenizer.addedTokens.contains { Int($0.id) == largest } ? "added_tokens" : "model.vocab"
        throw MobileLLMError.invalidFile(path: tokenizer.path, field: field,
                                         problem: "token id \(largest) is outside the model's vocabulary (expected ids below \(configuration.vocabularySize), the rows of its embedding)")
    }

    /// The model's chat template (chat_template.jinja or tokenizer_config.json's `chat_template`, with its BOS/EOS
    /// strings), or the built-in Llama-3 header format when the model has none. Loaded on first use.
    public func chatTemplate() throws -> ModelChatTemplate {
        try templateState.get {
            isGGUF ? try ModelChatTemplate.load(gguf: try tokenizer(), path: path)
                : try ModelChatTemplate.load(modelDirectory: path, tokenizerConfig: try tokenizerConfig())
        }
    }

    /// Renders `messages` with the model's chat template (see `chatTemplate()`), as transformers'
    /// `apply_chat_template(..., tokenize=False)` does.
    public func applyChatTemplate(_ messages: [ChatMessage], addGenerationPrompt: Bool = true,
                                  variables: [String: TemplateValue] = [:]) throws -> String {
        try chatTemplate().render(messages: messages, addGenerationPrompt: addGenerationPrompt, variables: variables)
    }

    /// True when the model was loaded from a GGUF file (the tokenizer and chat template come from its metadata).
    public var isGGUF: Bool { tokenizerFile == path || path.hasSuffix(".gguf") }

    /// Vocabulary size (length of a logits row).
    public var vocabularySize: Int { configuration.vocabularySize }

    /// Token ids that end generation (config.json and generation_config.json merged).
    public var eosTokenIDs: [Int] { configuration.eosTokenIDs }

    /// Bytes of weights read to produce one token.
    public var weightBytesPerToken: Int { weights.bytesPerToken }

    /// True when any weight matrix is stored in a block-quantized format.
    public var isQuantized: Bool { weights.isQuantized }

    /// A new session with its own KV cache of `contextLength` positions (default: min(4096, max positions)).
    ///
    /// `kvCacheType` defaults to `.f32` for float weights, so results stay within float rounding of transformers
    /// (an f16 cache moves logits by ~1e-2), and to `.f16` for quantized weights, whose own rounding dominates.
    public func makeSession(contextLength: Int? = nil, kvCacheType: KVCacheType? = nil) throws -> Session {
        try Session(model: self, capacity: contextLength ?? defaultContextLength,
                    kvCacheType: kvCacheType ?? KVCacheType.automatic(quantizedWeights: isQuantized))
    }
}

/// A thread-safe, load-once holder: the first `get` runs `load`; every later call returns its result (or error).
final class LoadOnce<Value>: @unchecked Sendable {
    private let lock = PosixLock()
    private var result: Result<Value, Error>?

    func get(_ load: () throws -> Value) throws -> Value {
        lock.lock()
        defer { lock.unlock() }
        if let result { return try result.get() }
        let loaded = Result { try load() }
        result = loaded
        return try loaded.get()
    }
}
