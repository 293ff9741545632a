import Foundation

/// Options for loading a model.
public struct ModelLoadOptions: Sendable {
    /// Threads each session of this model uses for its matrix work (nil: every core).
    public var threadCount: Int?

    /// Options with the given thread count (nil: every core).
    public init(threadCount: Int? = nil) {
        self.threadCount = threadCount
    }
}

/// A loaded model: configuration and weights. Immutable after loading, so one `Model` may serve any number of
/// sessions on any threads. Weights stay memory-mapped from their files.
public final class Model: @unchecked Sendable {
    /// Where the model was loaded from.
    public let path: String
    /// The validated configuration.
    public let configuration: ModelConfiguration
    /// Threads a session uses.
    public let threadCount: Int
    /// `tokenizer.json` of the model, when it has one.
    public let tokenizerFile: String?

    let weights: TransformerWeights
    let ropeFrequencies: [Float]
    /// The tokenizer, loaded on first use (loading a 9 MB tokenizer.json is skipped by token-id-only callers).
    private let tokenizerState = LoadOnce<Tokenizer>()
    private let templateState = LoadOnce<ModelChatTemplate>()

    /// Loads a Hugging Face model directory (config.json + safetensors). Throws `MobileLLMError` naming the file and
    /// field when anything is missing or inconsistent.
    public convenience init(path: String, options: ModelLoadOptions = ModelLoadOptions()) throws {
        let directory = try ModelDirectory(path: path)
        try self.init(path: path, configuration: directory.configuration, source: directory,
                      tokenizerFile: directory.tokenizerFile, options: options)
    }

    /// Builds a model from a configuration and a source of tensors named as the architecture expects.
    init(path: String, configuration: ModelConfiguration, source: TensorSource, tokenizerFile: String?, options: ModelLoadOptions) throws {
        if let threads = options.threadCount, threads < 1 || threads > 1024 {
            throw MobileLLMError.invalidArgument(name: "threadCount", problem: "expected 1...1024, found \(threads)")
        }
        guard let architecture = ArchitectureRegistry.architecture(for: configuration.modelType) else {
            throw MobileLLMError.unsupported(path: path, feature: "model_type \(configuration.modelType)")
        }
        self.path = path
        self.configuration = configuration
        weights = try TransformerWeights(configuration: configuration, architecture: architecture, source: source)
        ropeFrequencies = configuration.ropeInverseFrequencies()
        threadCount = options.threadCount ?? ProcessInfo.processInfo.activeProcessorCount
        self.tokenizerFile = tokenizerFile
    }

    /// The model's tokenizer (tokenizer.json + tokenizer_config.json of the directory), loaded on first use and then
    /// shared. Throws `tokenizerMissing` when the directory has no tokenizer.json, or the load error of a bad one.
    public func tokenizer() throws -> Tokenizer {
        try tokenizerState.get {
            guard tokenizerFile != nil else { throw MobileLLMError.tokenizerMissing(path: path) }
            return try Tokenizer.load(path: path)
        }
    }

    /// The model's chat template (chat_template.jinja or tokenizer_config.json's `chat_template`, with its BOS/EOS
    /// strings), or the built-in Llama-3 header format when the model has none. Loaded on first use.
    public func chatTemplate() throws -> ModelChatTemplate {
        try templateState.get { try ModelChatTemplate.load(modelDirectory: path) }
    }

    /// Renders `messages` with the model's chat template (see `chatTemplate()`), as transformers'
    /// `apply_chat_template(..., tokenize=False)` does.
    public func applyChatTemplate(_ messages: [ChatMessage], addGenerationPrompt: Bool = true,
                                  variables: [String: TemplateValue] = [:]) throws -> String {
        try chatTemplate().render(messages: messages, addGenerationPrompt: addGenerationPrompt, variables: variables)
    }

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
        try Session(model: self, capacity: contextLength ?? min(4096, configuration.maxPositions),
                    kvCacheType: kvCacheType ?? (isQuantized ? .f16 : .f32))
    }
}

/// A thread-safe, load-once holder: the first `get` runs `load`; every later call returns its result (or error).
final class LoadOnce<Value>: @unchecked Sendable {
    private let lock = NSLock()
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
