import CMobileLLMKernels

/// A [rows, columns] weight matrix (a PyTorch `Linear` weight: one row per output) in its stored element type.
/// The bytes usually live in a memory-mapped file that `owner` keeps alive. Immutable; safe to share.
public struct WeightMatrix: @unchecked Sendable {
    /// Output features.
    public let rows: Int
    /// Input features.
    public let columns: Int
    /// Element type of the stored bytes.
    public let dtype: DType
    /// First element.
    let pointer: UnsafeRawPointer
    /// Whatever owns the bytes.
    let owner: AnyObject

    /// Wraps a stored 2-D tensor.
    init(_ tensor: StoredTensor) {
        rows = tensor.shape[0]
        columns = tensor.shape.count > 1 ? tensor.shape[1] : 1
        dtype = tensor.dtype
        pointer = tensor.pointer
        owner = tensor.owner
    }

    /// Bytes the matrix occupies.
    public var byteCount: Int { rows * columns * dtype.byteSize }

    var kernelType: mlk_dtype {
        switch dtype {
        case .f32: return MLK_DTYPE_F32
        case .f16: return MLK_DTYPE_F16
        case .bf16: return MLK_DTYPE_BF16
        }
    }

    /// Copies row `index` into `destination` as f32.
    func row(_ index: Int, into destination: UnsafeMutablePointer<Float>) {
        mlk_convert_to_f32(pointer + index * columns * dtype.byteSize, kernelType, Int64(columns), destination)
    }

    /// `y[i, j] = Σ_t x[i, t] · W[j, t]` for `count` input rows; `x` is [count, columns], `y` is [count, rows].
    func multiply(_ x: UnsafePointer<Float>, count: Int, into y: UnsafeMutablePointer<Float>, pool: ComputePool) {
        nonisolated(unsafe) let x = x
        nonisolated(unsafe) let y = y
        let type = kernelType
        // Split output rows in multiples of 4 (the kernels' row tile); keep at least ~16k multiply-adds per thread.
        pool.forEach(rows, granularity: 4, minimumPerThread: max(4, 16_384 / max(1, columns * count))) { range in
            mlk_matmul_rows(x, Int64(count), Int64(columns), pointer, type, Int64(range.lowerBound), Int64(range.upperBound), y, Int64(rows))
        }
    }
}

/// A linear layer: a weight matrix and an optional bias.
struct Linear: Sendable {
    let weight: WeightMatrix
    let bias: [Float]?

    func callAsFunction(_ x: UnsafePointer<Float>, count: Int, into y: UnsafeMutablePointer<Float>, pool: ComputePool) {
        weight.multiply(x, count: count, into: y, pool: pool)
        if let bias {
            for i in 0..<count {
                let row = y + i * weight.rows
                for j in 0..<weight.rows { row[j] += bias[j] }
            }
        }
    }
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
    let output: WeightMatrix

    /// True when any matrix is block-quantized (always false until quantized formats land).
    var isQuantized: Bool { false }

    /// Bytes of weights read to produce one token (every matrix once, one embedding row).
    var bytesPerToken: Int {
        var total = output.byteCount + embedding.columns * embedding.dtype.byteSize
        for layer in layers {
            for linear in [layer.query, layer.key, layer.value, layer.output, layer.gate, layer.up, layer.down] {
                total += linear.weight.byteCount
            }
        }
        return total
    }
}

/// Where tensors come from: a set of safetensors files (or, later, a GGUF file), looked up by checkpoint name.
protocol TensorSource {
    /// The tensor named `name`, or nil.
    func tensor(named name: String) -> StoredTensor?
    /// A description of where tensors are looked up, for error messages.
    var location: String { get }
}

extension TransformerWeights {
    /// Collects and shape-checks every tensor the architecture needs.
    init(configuration c: ModelConfiguration, architecture: ArchitectureDefinition, source: TensorSource) throws {
        func require(_ name: String, _ shape: [Int]) throws -> StoredTensor {
            guard let tensor = source.tensor(named: name) else {
                throw MobileLLMError.invalidFile(path: source.location, field: name, problem: "tensor missing (expected shape \(shape))")
            }
            guard tensor.shape == shape else {
                throw MobileLLMError.invalidFile(path: source.location, field: name, problem: "shape \(tensor.shape), expected \(shape) from config.json")
            }
            return tensor
        }
        func vector(_ name: String, _ length: Int) throws -> [Float] {
            let tensor = try require(name, [length])
            return [Float](unsafeUninitializedCapacity: length) { buffer, initialized in
                WeightMatrix(tensor).rowsAsVector(into: buffer.baseAddress)
                initialized = length
            }
        }
        func linear(_ name: String, rows: Int, columns: Int, bias: Bool) throws -> Linear {
            let weight = WeightMatrix(try require(name, [rows, columns]))
            let biasName = name.hasSuffix(".weight") ? String(name.dropLast(7)) + ".bias" : name + ".bias"
            return Linear(weight: weight, bias: bias ? try vector(biasName, rows) : nil)
        }
        let hidden = c.hiddenSize
        let qWidth = c.headCount * c.headDimension
        let kvWidth = c.kvHeadCount * c.headDimension
        embedding = WeightMatrix(try require(architecture.embeddingName, [c.vocabularySize, hidden]))
        finalNorm = try vector(architecture.finalNormName, hidden)
        if !c.tiedEmbeddings, source.tensor(named: architecture.outputName) != nil {
            output = WeightMatrix(try require(architecture.outputName, [c.vocabularySize, hidden]))
        } else {
            output = embedding
        }
        layers = try (0..<c.layerCount).map { index in
            let names = architecture.layerNames(index)
            return LayerWeights(
                attentionNorm: try vector(names.attentionNorm, hidden),
                query: try linear(names.query, rows: qWidth, columns: hidden, bias: c.attentionBias),
                key: try linear(names.key, rows: kvWidth, columns: hidden, bias: c.attentionBias),
                value: try linear(names.value, rows: kvWidth, columns: hidden, bias: c.attentionBias),
                output: try linear(names.output, rows: hidden, columns: qWidth, bias: c.attentionBias),
                mlpNorm: try vector(names.mlpNorm, hidden),
                gate: try linear(names.gate, rows: c.intermediateSize, columns: hidden, bias: c.mlpBias),
                up: try linear(names.up, rows: c.intermediateSize, columns: hidden, bias: c.mlpBias),
                down: try linear(names.down, rows: hidden, columns: c.intermediateSize, bias: c.mlpBias))
        }
    }
}

extension WeightMatrix {
    /// Converts a 1-D tensor (stored as [rows, 1]) to f32.
    func rowsAsVector(into destination: UnsafeMutablePointer<Float>?) {
        guard let destination else { return }
        mlk_convert_to_f32(pointer, kernelType, Int64(rows * columns), destination)
    }
}
