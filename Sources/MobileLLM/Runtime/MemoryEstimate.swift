/// What a model and one session of it will hold in memory, computed from the model's headers before loading it
/// (`Model.estimateMemory(path:options:contextLength:kvCacheType:)`).
///
/// The parts add up to `totalBytes`, which is what the process's resident memory grows by from just before the
/// load to the peak of a session that fills its whole context. python/tests/test_memory.py checks it with
/// scripts/measure_memory.py, in a child process: peak RSS (VmHWM) minus RSS before the load, after a warm-up load
/// of a tiny model (so the library's own code pages, a few MB shared by every load, are already resident), with
/// the context filled by a real prefill; the estimate must be within 5%. Not counted: the library's code pages,
/// the tokenizer (parsed on first use of a text function, and by `mobilellm_model_get_info`, which the Python
/// `Model` calls: a few MB for a 50K vocabulary), batches (`BatchGenerator`), forks, and logits the host asks for
/// beyond the last row.
public struct MemoryEstimate: Sendable, Equatable {
    /// Bytes of the model files that are memory-mapped and read during inference: file-backed pages, which the OS
    /// may drop under memory pressure and read back (unless `ModelLoadOptions.lockMemory`). The headers and every
    /// tensor the model uses, less the tensors converted or interleaved at load (whose mapped pages are released; with
    /// `lockMemory` the whole files are locked in, so nothing is subtracted).
    public var mappedWeightBytes: Int
    /// Bytes of weights held in anonymous memory: matrices converted at load (`ModelLoadOptions.quantize`), matrices
    /// interleaved at load for the int8 kernels (`ActivationPrecision.int8` on CPUs with such kernels), and the norm
    /// weights and biases, which are kept as f32 arrays.
    public var anonymousWeightBytes: Int
    /// Bytes of K and V one position adds to the KV cache, over all layers.
    public var kvBytesPerPosition: Int
    /// Bytes of KV cache a session of `contextLength` positions holds when full (allocated in pages of
    /// `Session.attentionSegment` positions as the context fills).
    public var kvBytes: Int
    /// Bytes of one session's forward-pass buffers: activations of a full prefill batch (`Session.batchLimit`
    /// rows), attention scratch for `contextLength` positions on every thread, and the last logits row (twice: the
    /// pass's output and the copy the session keeps).
    public var scratchBytes: Int
    /// The context length estimated for.
    public var contextLength: Int
    /// The KV cache element type estimated for.
    public var kvCacheType: KVCacheType
    /// The compute threads estimated for (the per-thread attention scratch depends on them).
    public var threadCount: Int

    /// Everything together: mapped and anonymous weights, the full KV cache and the scratch buffers.
    public var totalBytes: Int { mappedWeightBytes + anonymousWeightBytes + kvBytes + scratchBytes }
}

extension Model {
    /// Estimates the memory loading the model at `path` with `options` and filling one session of `contextLength`
    /// positions (nil: the session default, `options.defaultContextLength` or min(4096, the model's maximum)) with a
    /// `kvCacheType` cache (nil: what `makeSession` picks, f32 for float weights and f16 for quantized ones) takes.
    ///
    /// Reads only headers: the GGUF metadata and tensor table, or config.json and the safetensors headers; never
    /// tensor data. Uses the loader's own rules (the quantize-on-load plan, the KV cache's page size, the session's
    /// scratch layout), so it follows them when they change. Throws what `Model(path:options:)` throws for a
    /// missing or malformed model or bad options, and `invalidArgument` naming `contextLength` or `kvCacheType` as
    /// `makeSession` does.
    public static func estimateMemory(path: String, options: ModelLoadOptions = ModelLoadOptions(), contextLength: Int? = nil,
                                      kvCacheType: KVCacheType? = nil) throws -> MemoryEstimate {
        try options.validate()
        let opened = try OpenedModel(path: path)
        let c = opened.configuration
        guard let architecture = ArchitectureRegistry.architecture(for: c.modelType) else {
            throw MobileLLMError.unsupported(path: path, feature: "model_type \(c.modelType)")
        }
        let capacity = try contextLength ?? options.resolvedDefaultContextLength(c)
        guard capacity >= 1, capacity <= c.maxPositions else {
            throw MobileLLMError.invalidArgument(name: "contextLength", problem: "expected 1...\(c.maxPositions) (the model's max_position_embeddings), found \(capacity)")
        }
        let schema = architecture.tensors(c)

        // Weights: the files are mapped; converted matrices move to owned memory and their mapped pages are released.
        let conversions = options.quantize.map {
            QuantizingSource.conversions(of: opened.source, configuration: c, architecture: architecture,
                                         plan: QuantizationPlan(projectionType: $0)).conversions
        } ?? []
        let converted = Dictionary(conversions.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let fileBytes = opened.files.reduce(0) { $0 + $1.size }
        // Locking (`lockMemory`) reads and pins every page of the files, converted tensors' included.
        var released = options.lockMemory ? 0 : conversions.reduce(0) { $0 + $1.storedBytes }
        var anonymous = conversions.reduce(0) { $0 + $1.convertedBytes }
        let outputIsEmbedding = TransformerWeights.outputIsEmbedding(configuration: c, schema: schema, source: opened.source)
        var quantized = false
        for spec in schema.tensors {
            guard let tensor = opened.source.tensor(named: spec.name) else { continue }
            if TransformerWeights.keepsAsFloats(spec.role) { anonymous += 4 * tensor.count }
            guard TransformerWeights.multiplies(spec.role, outputIsEmbedding: outputIsEmbedding) else { continue }
            let type = converted[spec.name]?.type ?? tensor.type
            quantized = quantized || type.hasQuantizedMatmul
            // Interleaved at load: mapped matrices move to owned memory (converted ones are rearranged in place).
            let rows = tensor.shape.first ?? 1, columns = tensor.shape.count > 1 ? tensor.shape[1] : 1
            if converted[spec.name] == nil,
               WeightMatrix.interleavesAtLoad(type: type, rows: rows, columns: columns, precision: options.activationPrecision) {
                let bytes = rows * (type.rowBytes(columns) ?? 0)
                anonymous += bytes
                if !options.lockMemory { released += bytes }
            }
        }

        // One session: its KV cache, forward buffers, attention scratch and logits.
        let type = kvCacheType ?? KVCacheType.automatic(quantizedWeights: quantized)
        guard type.rowBytes(c.headDimension) > 0 else {
            throw MobileLLMError.invalidArgument(name: "kvCacheType", problem: "\(type.rawValue) needs a head dimension that is a multiple of 32, found \(c.headDimension)")
        }
        let threads = options.resolvedThreadCount
        let kv = KVCache.pageCount(positions: capacity) * KVCache.pageBytes(configuration: c, type: type)
        let scratch = Scratch.Layout(tokens: min(Session.batchLimit, capacity), configuration: c).byteCount
            + 4 * Attention.scratchFloats(configuration: c, capacity: capacity, threads: threads)
            + 2 * 4 * c.vocabularySize
        return MemoryEstimate(mappedWeightBytes: max(0, fileBytes - released), anonymousWeightBytes: anonymous,
                              kvBytesPerPosition: KVCache.bytesPerPosition(configuration: c, type: type), kvBytes: kv,
                              scratchBytes: scratch, contextLength: capacity, kvCacheType: type, threadCount: threads)
    }
}
