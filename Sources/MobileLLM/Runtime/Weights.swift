import CMobileLLMKernels

/// A [rows, columns] weight matrix (a PyTorch `Linear` weight: one row per output feature) in its stored type:
/// f32/f16/bf16 (multiplied in f32) or a GGUF block-quantized type (multiplied with 8-bit quantized activations).
/// The bytes usually live in a memory-mapped file that `owner` keeps alive. Immutable; safe to share.
public struct WeightMatrix: @unchecked Sendable {
    /// Output features.
    public let rows: Int
    /// Input features.
    public let columns: Int
    /// Element type of the stored bytes.
    public let type: QuantType
    /// Bytes of one row.
    public let rowBytes: Int
    /// First row.
    let pointer: UnsafeRawPointer
    /// Whatever owns the bytes.
    let owner: AnyObject

    /// Wraps a stored 1-D or 2-D tensor whose shape has been checked by the caller.
    init(_ tensor: StoredTensor) {
        rows = tensor.shape.first ?? 1
        columns = tensor.shape.count > 1 ? tensor.shape[1] : 1
        type = tensor.type
        rowBytes = tensor.type.rowBytes(columns) ?? 0
        pointer = tensor.pointer
        owner = tensor.owner
    }

    /// Bytes the matrix occupies.
    public var byteCount: Int { rows * rowBytes }

    /// True for block-quantized storage.
    public var isQuantized: Bool { type.hasQuantizedMatmul }

    /// The kernel element type for float storage.
    var denseKernelType: mlk_dtype {
        switch type {
        case .f16: return MLK_DTYPE_F16
        case .bf16: return MLK_DTYPE_BF16
        default: return MLK_DTYPE_F32
        }
    }

    /// Copies row `index` into `destination` as f32 (dequantizing if needed).
    func row(_ index: Int, into destination: UnsafeMutablePointer<Float>) {
        mlk_q_dequantize_row(type.rawValue, pointer + index * rowBytes, Int64(columns), destination)
    }

    /// The whole matrix as f32 values (for small tensors such as norm weights).
    func floats() -> [Float] {
        [Float](unsafeUninitializedCapacity: rows * columns) { buffer, initialized in
            if let base = buffer.baseAddress {
                for r in 0..<rows { row(r, into: base + r * columns) }
            }
            initialized = rows * columns
        }
    }

    /// Computes rows `range` of `y = x · Wᵀ` on the calling thread; `y` is [count, rows]. Quantized storage multiplies
    /// the Q8A activation rows when the input carries them (fast mode), otherwise the f32 rows with each weight block
    /// dequantized in registers (exact mode).
    func multiplyRows(_ range: Range<Int>, input: ProjectionInput, output y: UnsafeMutablePointer<Float>) {
        guard !range.isEmpty else { return }
        if isQuantized, let quantized = input.quantized {
            mlk_q_matmul_rows(type.rawValue, quantized, Int64(input.count), Int64(columns), pointer,
                              Int64(range.lowerBound), Int64(range.upperBound), y, Int64(rows))
        } else if isQuantized {
            mlk_qf32_matmul_rows(type.rawValue, input.x, Int64(input.count), Int64(columns), pointer,
                                 Int64(range.lowerBound), Int64(range.upperBound), y, Int64(rows))
        } else {
            mlk_matmul_rows(input.x, Int64(input.count), Int64(columns), pointer, denseKernelType,
                            Int64(range.lowerBound), Int64(range.upperBound), y, Int64(rows))
        }
    }
}

/// The input of one or more projections: f32 rows, plus (when a quantized matrix reads them) the same rows
/// quantized once to the kernels' Q8A activation format.
struct ProjectionInput {
    /// [count, columns] f32.
    let x: UnsafePointer<Float>
    /// Rows.
    let count: Int
    /// Q8A rows, present only in the int8-activation mode when some matrix in the projection is quantized.
    let quantized: UnsafeRawPointer?
}

/// A linear layer: a weight matrix and an optional bias.
struct Linear: Sendable {
    let weight: WeightMatrix
    let bias: [Float]?
}

/// Weights of one decoder layer.
struct LayerWeights: Sendable {
    let attentionNorm: [Float]
    let query: Linear
    let key: Linear
    let value: Linear
    let output: Linear
    let mlpNorm: [Float]
    let gate: Linear
    let up: Linear
    let down: Linear
}

/// All weights of a decoder-only transformer, shape-checked against its configuration.
struct TransformerWeights: Sendable {
    let embedding: WeightMatrix
    let layers: [LayerWeights]
    let finalNorm: [Float]
    let output: Linear

    /// Every projection matrix, the output included.
    var matrices: [WeightMatrix] {
        layers.flatMap { [$0.query, $0.key, $0.value, $0.output, $0.gate, $0.up, $0.down].map(\.weight) } + [output.weight]
    }

    /// True when any projection is block-quantized.
    var isQuantized: Bool { matrices.contains { $0.isQuantized } }

    /// Bytes of weights read to produce one token (every matrix once, one embedding row).
    var bytesPerToken: Int { matrices.reduce(embedding.rowBytes) { $0 + $1.byteCount } }
}

/// Where tensors come from: safetensors files, a GGUF file or memory, looked up by transformers' checkpoint names.
protocol TensorSource {
    /// The tensor named `name` (a transformers name such as `model.layers.0.self_attn.q_proj.weight`), or nil.
    func tensor(named name: String) -> StoredTensor?
    /// A description of where tensors are looked up, for error messages.
    var location: String { get }
    /// The name the tensor called `name` has in the source's file, for error messages.
    func storedName(of name: String) -> String
    /// How the source spells config.json's field names (absent: as config.json does), for error messages.
    var configurationFieldNames: [String: String] { get }
}

extension TensorSource {
    func storedName(of name: String) -> String { name }
    var configurationFieldNames: [String: String] { [:] }
}

extension TransformerWeights {
    /// Collects and shape-checks every tensor the architecture needs. Errors name the tensor as its file does and
    /// the configuration fields its expected shape comes from.
    init(configuration c: ModelConfiguration, architecture: ArchitectureDefinition, source: TensorSource) throws {
        let fieldNames = source.configurationFieldNames
        func field(_ name: String) -> String { fieldNames[name] ?? name }
        /// One expected dimension: its size and the configuration fields whose product it is.
        typealias Dimension = (size: Int, fields: [String])
        func require(_ name: String, _ dimensions: [Dimension], layer: Int?) throws -> StoredTensor {
            let shape = dimensions.map(\.size)
            let origin = dimensions.map { $0.fields.map(field).joined(separator: " × ") }.joined(separator: ", ")
            let expected = "\(shape) = [\(origin)] from the configuration"
            guard let tensor = source.tensor(named: name) else {
                let note = layer.map { "; layer \($0) of \(field("num_hidden_layers")) \(c.layerCount)" } ?? ""
                throw MobileLLMError.invalidFile(path: source.location, field: source.storedName(of: name),
                                                 problem: "tensor missing (expected shape \(expected)\(note))")
            }
            guard tensor.shape == shape else {
                throw MobileLLMError.invalidFile(path: source.location, field: source.storedName(of: name),
                                                 problem: "shape \(tensor.shape), expected \(expected)")
            }
            guard tensor.type.rowBytes(shape.last ?? 1) != nil else {
                throw MobileLLMError.invalidFile(path: source.location, field: source.storedName(of: name),
                                                 problem: "\(tensor.type) blocks of \(tensor.type.blockSize) do not divide the row length \(shape.last ?? 1)")
            }
            return tensor
        }
        let hidden: Dimension = (c.hiddenSize, ["hidden_size"])
        let qWidth: Dimension = (c.headCount * c.headDimension, ["num_attention_heads", "head_dim"])
        let kvWidth: Dimension = (c.kvHeadCount * c.headDimension, ["num_key_value_heads", "head_dim"])
        let mlp: Dimension = (c.intermediateSize, ["intermediate_size"])
        func vector(_ name: String, _ length: Dimension, layer: Int?) throws -> [Float] {
            WeightMatrix(try require(name, [length], layer: layer)).floats()
        }
        func linear(_ name: String, rows: Dimension, columns: Dimension, bias: Bool, layer: Int? = nil) throws -> Linear {
            let weight = WeightMatrix(try require(name, [rows, columns], layer: layer))
            let biasName = name.hasSuffix(".weight") ? String(name.dropLast(7)) + ".bias" : name + ".bias"
            return Linear(weight: weight, bias: bias ? try vector(biasName, rows, layer: layer) : nil)
        }
        embedding = WeightMatrix(try require(architecture.embeddingName, [(c.vocabularySize, ["vocab_size"]), hidden], layer: nil))
        finalNorm = try vector(architecture.finalNormName, hidden, layer: nil)
        if !c.tiedEmbeddings, source.tensor(named: architecture.outputName) != nil {
            output = try linear(architecture.outputName, rows: (c.vocabularySize, ["vocab_size"]), columns: hidden, bias: false)
        } else {
            output = Linear(weight: embedding, bias: nil)
        }
        layers = try (0..<c.layerCount).map { index in
            let names = architecture.layerNames(index)
            return LayerWeights(
                attentionNorm: try vector(names.attentionNorm, hidden, layer: index),
                query: try linear(names.query, rows: qWidth, columns: hidden, bias: c.attentionBias, layer: index),
                key: try linear(names.key, rows: kvWidth, columns: hidden, bias: c.attentionBias, layer: index),
                value: try linear(names.value, rows: kvWidth, columns: hidden, bias: c.attentionBias, layer: index),
                output: try linear(names.output, rows: hidden, columns: qWidth, bias: c.attentionBias, layer: index),
                mlpNorm: try vector(names.mlpNorm, hidden, layer: index),
                gate: try linear(names.gate, rows: mlp, columns: hidden, bias: c.mlpBias, layer: index),
                up: try linear(names.up, rows: mlp, columns: hidden, bias: c.mlpBias, layer: index),
                down: try linear(names.down, rows: hidden, columns: mlp, bias: c.mlpBias, layer: index))
        }
    }
}

extension ComputePool {
    /// Computes `outputs[m] = input · linears[m].weightᵀ (+ bias)` for every matrix in one parallel region of row
    /// chunks (multiples of 8 rows, the kernels' tiles). With an `epilogue`, every matrix must have the same number of
    /// rows: each chunk then computes the same rows of all of them and runs `epilogue(rows)` on them (e.g. SwiGLU on
    /// gate and up). When a matrix is quantized in int8 mode, `input` must carry the Q8A rows (see `Session.prepare`).
    func project(_ linears: [Linear], input: ProjectionInput, outputs: [UnsafeMutablePointer<Float>],
                 epilogue: ((Range<Int>) -> Void)? = nil) {
        nonisolated(unsafe) let outputs = outputs
        nonisolated(unsafe) let input = input
        let totalRows = linears.reduce(0) { $0 + $1.weight.rows }
        let work = linears.reduce(0) { $0 + $1.weight.rows * $1.weight.columns } * input.count
        let parallel = work >= 32_768 && threadCount > 1
        // Rows per chunk: about eight chunks per thread, at least 32 rows, in whole 8-row tiles.
        let chunkRows = parallel ? max(32, (totalRows / (threadCount * 8) + 7) / 8 * 8) : Int.max / 2

        func compute(_ index: Int, _ rows: Range<Int>) {
            let linear = linears[index]
            linear.weight.multiplyRows(rows, input: input, output: outputs[index])
            if let bias = linear.bias {
                for i in 0..<input.count {
                    let row = outputs[index] + i * linear.weight.rows
                    for j in rows { row[j] += bias[j] }
                }
            }
        }

        if let epilogue {
            let rows = linears.first?.weight.rows ?? 0
            let chunks = (rows + chunkRows - 1) / chunkRows
            run(chunks: parallel ? chunks : 1) { chunk, _ in
                let range = parallel ? (chunk * chunkRows)..<min(rows, (chunk + 1) * chunkRows) : 0..<rows
                for index in linears.indices { compute(index, range) }
                epilogue(range)
            }
            return
        }
        // Chunks over the concatenated rows of all matrices: (matrix, row range) segments.
        var segments: [(Int, Range<Int>)] = []
        for (index, linear) in linears.enumerated() {
            var start = 0
            while start < linear.weight.rows {
                let end = min(linear.weight.rows, start + chunkRows)
                segments.append((index, start..<end))
                start = end
            }
        }
        run(chunks: segments.count) { chunk, _ in compute(segments[chunk].0, segments[chunk].1) }
    }
}
