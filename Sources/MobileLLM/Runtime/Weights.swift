import CMobileLLMKernels
import Dispatch

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
    /// True when the rows are interleaved in groups of 8 (`mlk_q_r8_pack`, the layout of the int8 kernels that read
    /// 8 rows per load; same bytes, rearranged): done at load in the int8 mode where this CPU has such a kernel
    /// (`interleavesAtLoad`). Every accessor here undoes it, so only the multiply sees the difference.
    let interleaved: Bool
    /// The kernels' `wtype` for the bytes: the type itself; for Q4_1 whose blocks share d and m in pairs (MLX 4-bit,
    /// group 64), `MLK_R8_Q4_1_PAIRS` when interleaved (int8) or `MLK_Q4_1_PAIRS_ROWS` when compacted (exact),
    /// both at Q4_0's density.
    let layout: Int32
    /// True when the rows are compacted Q4_1 pairs (`MLK_Q4_1_PAIRS_ROWS`, see `compactedPairs`).
    var isCompactedPairs: Bool { layout == Int32(MLK_Q4_1_PAIRS_ROWS) }

    /// Wraps a stored 1-D or 2-D tensor whose shape has been checked by the caller.
    init(_ tensor: StoredTensor) {
        rows = tensor.shape.first ?? 1
        columns = tensor.shape.count > 1 ? tensor.shape[1] : 1
        type = tensor.type
        rowBytes = tensor.type.rowBytes(columns) ?? 0
        pointer = tensor.pointer
        owner = tensor.owner
        interleaved = false
        layout = tensor.type.rawValue
    }

    private init(rearranging matrix: WeightMatrix, as layout: Int32, into buffer: OwnedBuffer, interleaved: Bool) {
        rows = matrix.rows
        columns = matrix.columns
        type = matrix.type
        rowBytes = matrix.rowBytes
        pointer = UnsafeRawPointer(buffer.pointer)
        owner = buffer
        self.interleaved = interleaved
        self.layout = layout
    }

    /// For the exact kernels: a Q4_1 matrix whose blocks share d and m in pairs (`mlk_q_r8_pairs_shared`: MLX 4-bit,
    /// group 64) compacted to `MLK_Q4_1_PAIRS_ROWS`, 36 bytes per 64 weights instead of 40, where a SIMD kernel
    /// reads that layout (`mlk_q4_1_pairs_fast`); otherwise the matrix itself. Bytes the loader owns are compacted in
    /// place and the pages past the compact bytes returned; mapped bytes go to owned memory and their file pages are
    /// released. Rows, the fingerprint and the results are those of the plain Q4_1 matrix.
    func compactedPairs() -> WeightMatrix {
        guard type == .q4_1, !interleaved, columns % 64 == 0, rows > 0, mlk_q4_1_pairs_fast() != 0,
              mlk_q_r8_pairs_shared(pointer, Int64(rows), Int64(columns)) != 0 else { return self }
        let own = ownedBuffer
        let compactBytes = rows * columns / 64 * 36
        let buffer = own ?? OwnedBuffer(weightBytes: compactBytes)
        mlk_q4_1_pairs_compact(pointer, Int64(rows), Int64(columns), buffer.pointer)
        releaseSource(rearrangedInto: buffer, usedBytes: compactBytes)
        return WeightMatrix(rearranging: self, as: Int32(MLK_Q4_1_PAIRS_ROWS), into: buffer, interleaved: false)
    }

    /// The owned buffer holding exactly this matrix's bytes (a matrix converted at load), which a rearrangement may
    /// rewrite in place; nil for mapped bytes or a view into a larger buffer.
    private var ownedBuffer: OwnedBuffer? {
        (owner as? OwnedBuffer).flatMap { UnsafeRawPointer($0.pointer) == pointer && $0.byteCount >= byteCount ? $0 : nil }
    }

    /// After this matrix was rearranged into `buffer` (its first `usedBytes` bytes): mapped source bytes have their
    /// file pages released; rearranged in place and smaller, the whole pages past `usedBytes` go back to the system.
    private func releaseSource(rearrangedInto buffer: OwnedBuffer, usedBytes: Int) {
        if UnsafeRawPointer(buffer.pointer) != pointer {
            TensorConversion.releasePages(pointer: pointer, byteCount: byteCount, owner: owner)
        } else if usedBytes < byteCount {
            TensorConversion.dropWholePages(buffer.pointer + usedBytes, byteCount: byteCount - usedBytes)
        }
    }

    /// Whether the loader interleaves a [rows, columns] matrix of `type` that it multiplies under `precision`: int8
    /// activations and an r8 kernel for the type on this CPU (`mlk_q_r8_worthwhile`: Q4_0, Q4_1 and Q8_0 with
    /// rows % 8 == 0 on AVX2 and later). The one rule of the loader and the memory estimate.
    static func interleavesAtLoad(type: QuantType, rows: Int, columns: Int, precision: ActivationPrecision) -> Bool {
        precision == .int8 && mlk_q_r8_worthwhile(type.rawValue, Int64(rows), Int64(columns)) != 0
    }

    /// The matrix interleaved, groups of 8 rows packed on up to `threads` threads. Bytes the loader owns (a matrix
    /// converted at load) are rearranged in place, group by group (a packed group fills exactly its 8 rows' bytes);
    /// mapped bytes are packed into owned memory and the file pages they were read from are released
    /// (`TensorConversion.releasePages`). Q4_1 whose blocks pair up (`mlk_q_r8_pairs_shared`: MLX 4-bit, group 64)
    /// packs as `MLK_R8_Q4_1_PAIRS`, smaller (36 bytes per 64 weights instead of 40): in place on one thread, the
    /// pages past the packed bytes then returned to the system.
    func interleavedCopy(threads: Int) -> WeightMatrix {
        let pairs = type == .q4_1 && mlk_q_r8_pairs_shared(pointer, Int64(rows), Int64(columns)) != 0
        let layout = pairs ? Int32(MLK_R8_Q4_1_PAIRS) : type.rawValue
        let packedBytes = pairs ? Int(mlk_q_r8_bytes(layout, Int64(rows), Int64(columns))) : byteCount
        let own = ownedBuffer
        let inPlace = own != nil
        let buffer = own ?? OwnedBuffer(weightBytes: packedBytes)
        let groups = rows / 8, groupBytes = 8 * rowBytes, packedGroupBytes = groups > 0 ? packedBytes / groups : 0
        // In place, a packed group lands at or before its own source bytes; pairs pack smaller, so a group may land on
        // bytes of earlier groups only, which one thread has already read: pairs in place run on one thread.
        let workers = pairs && inPlace ? 1 : max(1, min(threads, groups, byteCount / (1 << 20) + 1))
        let source = UnsafeSendableRawPointer(pointer), destination = UnsafeSendablePointer(buffer.pointer)
        let columns = self.columns
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            let start = groups * worker / workers, end = groups * (worker + 1) / workers
            guard start < end else { return }
            guard inPlace else {
                mlk_q_r8_pack(layout, source.pointer + start * groupBytes, Int64(8 * (end - start)), Int64(columns),
                              destination.pointer + start * packedGroupBytes)
                return
            }
            let group = UnsafeMutableRawPointer.allocate(byteCount: groupBytes, alignment: 64)
            defer { group.deallocate() }
            for g in start..<end {
                mlk_q_r8_pack(layout, source.pointer + g * groupBytes, 8, Int64(columns), group)
                (destination.pointer + g * packedGroupBytes).copyMemory(from: group, byteCount: packedGroupBytes)
            }
        }
        releaseSource(rearrangedInto: buffer, usedBytes: packedBytes)
        return WeightMatrix(rearranging: self, as: layout, into: buffer, interleaved: true)
    }

    /// Bytes the matrix occupies (interleaved in pairs: the smaller packed size).
    public var byteCount: Int {
        if isCompactedPairs { return rows * columns / 64 * 36 }
        return interleaved && layout != type.rawValue ? Int(mlk_q_r8_bytes(layout, Int64(rows), Int64(columns))) : rows * rowBytes
    }

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
        withStoredRow(index) { mlk_q_dequantize_row(type.rawValue, $0.baseAddress, Int64(columns), destination) }
    }

    /// Calls `body` with the bytes of row `index` as stored in the file (un-interleaved into a temporary copy when
    /// the matrix is interleaved).
    func withStoredRow<Result>(_ index: Int, _ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        guard interleaved || isCompactedPairs else {
            return try body(UnsafeRawBufferPointer(start: pointer + index * rowBytes, count: rowBytes))
        }
        return try withUnsafeTemporaryAllocation(byteCount: rowBytes, alignment: 16) { buffer in
            if isCompactedPairs {
                mlk_q4_1_pairs_expand_row(pointer, Int64(columns), Int64(index), buffer.baseAddress)
            } else {
                mlk_q_r8_unpack_row(layout, pointer, Int64(columns), Int64(index), buffer.baseAddress)
            }
            return try body(UnsafeRawBufferPointer(buffer))
        }
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
    /// dequantized in registers (exact mode). An interleaved matrix (int8 mode only, whose inputs always carry Q8A
    /// rows) takes ranges on 8-row boundaries, as `ComputePool.project` makes them.
    func multiplyRows(_ range: Range<Int>, input: ProjectionInput, output y: UnsafeMutablePointer<Float>) {
        guard !range.isEmpty else { return }
        if interleaved, let quantized = input.quantized {
            mlk_q_r8_matmul_rows(layout, quantized, Int64(input.count), Int64(columns), pointer,
                                 Int64(range.lowerBound), Int64(range.upperBound), y, Int64(rows))
        } else if isQuantized, let quantized = input.quantized, !isCompactedPairs {
            mlk_q_matmul_rows(type.rawValue, quantized, Int64(input.count), Int64(columns), pointer,
                              Int64(range.lowerBound), Int64(range.upperBound), y, Int64(rows))
        } else if isQuantized {
            // Compacted pairs only exist in the exact mode (`TransformerWeights` compacts only there).
            mlk_qf32_matmul_rows_prepared(layout, input.x, input.prepared, Int64(input.count), Int64(columns), pointer,
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
    /// The rows' 16-bit form (`mlk_qf32_prepare`), present only in the int16 mode when a quantized matrix's kernel
    /// reads it (passes of 16 rows and more on AVX-512 VNNI).
    let prepared: UnsafeRawPointer?
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
    /// Per-head q / k RMSNorm weights [head_dim] (Qwen3), when the schema has them.
    let queryNorm: [Float]?
    let keyNorm: [Float]?
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
    /// True when the output projection is the embedding matrix: tied embeddings, or no output tensor in `source`.
    static func outputIsEmbedding(configuration c: ModelConfiguration, schema: TensorSchema, source: TensorSource) -> Bool {
        c.tiedEmbeddings || !schema.tensors.contains { $0.role == .output && source.tensor(named: $0.name) != nil }
    }

    /// Whether a tensor of `role` is a matrix the forward pass multiplies: every projection, the output projection,
    /// and the embedding only when it is also the output (`outputIsEmbedding`); otherwise it is only looked up.
    static func multiplies(_ role: TensorRole, outputIsEmbedding: Bool) -> Bool {
        role == .projection || (role == .output && !outputIsEmbedding) || (role == .embedding && outputIsEmbedding)
    }

    /// Whether `init(configuration:schema:source:)` copies tensors of `role` into owned f32 arrays (norm weights and
    /// biases) instead of multiplying them where they are mapped.
    static func keepsAsFloats(_ role: TensorRole) -> Bool { role == .norm || role == .bias }

    /// Collects and shape-checks every tensor of `schema` (the family's tensor list for configuration `c`). Errors
    /// name the tensor as its file does and the configuration fields its expected shape comes from.
    /// With `rearranges`, the matrices are laid out for `precision`'s kernels: in int8, those it multiplies that
    /// `WeightMatrix.interleavesAtLoad` picks (the embedding only when it is also the output projection) are
    /// interleaved on `threads` threads; in exact, Q4_1 pairs are compacted (`WeightMatrix.compactedPairs`). Both may
    /// rewrite bytes the source owns in place, so the source must not be used afterwards (the model loader drops it);
    /// without `rearranges` (the default: a shape check) nothing is rewritten.
    init(configuration c: ModelConfiguration, schema: TensorSchema, source: TensorSource,
         precision: ActivationPrecision = .exact, rearranges: Bool = false, threads: Int = 1) throws {
        let fieldNames = source.configurationFieldNames
        func field(_ name: String) -> String { fieldNames[name] ?? name }
        func require(_ spec: TensorSpec) throws -> StoredTensor {
            let shape = spec.sizes
            let origin = spec.shape.map { $0.fields.map(field).joined(separator: " × ") }.joined(separator: ", ")
            let expected = "\(shape) = [\(origin)] from the configuration"
            guard let tensor = source.tensor(named: spec.name) else {
                let note = spec.layer.map { "; layer \($0) of \(field("num_hidden_layers")) \(c.layerCount)" } ?? ""
                throw MobileLLMError.invalidFile(path: source.location, field: source.storedName(of: spec.name),
                                                 problem: "tensor missing (expected shape \(expected)\(note))")
            }
            guard tensor.shape == shape else {
                throw MobileLLMError.invalidFile(path: source.location, field: source.storedName(of: spec.name),
                                                 problem: "shape \(tensor.shape), expected \(expected)")
            }
            guard tensor.type.rowBytes(shape.last ?? 1) != nil else {
                throw MobileLLMError.invalidFile(path: source.location, field: source.storedName(of: spec.name),
                                                 problem: "\(tensor.type) blocks of \(tensor.type.blockSize) do not divide the row length \(shape.last ?? 1)")
            }
            return tensor
        }
        // Every tensor, checked in file order; matrices and vectors by (layer, slot), biases apart.
        var matrices: [TensorSlot: WeightMatrix] = [:], vectors: [TensorSlot: [Float]] = [:], biases: [TensorSlot: [Float]] = [:]
        var layerMatrices = Array(repeating: [TensorSlot: WeightMatrix](), count: c.layerCount)
        var layerVectors = Array(repeating: [TensorSlot: [Float]](), count: c.layerCount)
        var layerBiases = Array(repeating: [TensorSlot: [Float]](), count: c.layerCount)
        let outputIsEmbedding = Self.outputIsEmbedding(configuration: c, schema: schema, source: source)
        func matrix(_ tensor: StoredTensor, _ role: TensorRole) -> WeightMatrix {
            let matrix = WeightMatrix(tensor)
            guard rearranges else { return matrix }
            if Self.multiplies(role, outputIsEmbedding: outputIsEmbedding)
                && WeightMatrix.interleavesAtLoad(type: matrix.type, rows: matrix.rows, columns: matrix.columns, precision: precision) {
                return matrix.interleavedCopy(threads: threads)
            }
            return precision != .int8 ? matrix.compactedPairs() : matrix
        }
        for spec in schema.tensors {
            if spec.role == .output && outputIsEmbedding { continue }
            let tensor = try require(spec)
            // Norms and biases (`keepsAsFloats`) become f32 arrays; matrices stay where they are stored.
            switch (spec.role, spec.layer) {
            case (.norm, nil): vectors[spec.slot] = WeightMatrix(tensor).floats()
            case (.bias, nil): biases[spec.slot] = WeightMatrix(tensor).floats()
            case (_, nil): matrices[spec.slot] = matrix(tensor, spec.role)
            case let (.norm, layer?): layerVectors[layer][spec.slot] = WeightMatrix(tensor).floats()
            case let (.bias, layer?): layerBiases[layer][spec.slot] = WeightMatrix(tensor).floats()
            case let (_, layer?): layerMatrices[layer][spec.slot] = matrix(tensor, spec.role)
            }
        }
        func missing(_ slot: TensorSlot) -> MobileLLMError {
            .unsupported(path: source.location, feature: "a tensor schema without \(slot.rawValue)")
        }
        guard let embedding = matrices[.embedding], let finalNorm = vectors[.finalNorm] else { throw missing(.embedding) }
        self.embedding = embedding
        self.finalNorm = finalNorm
        output = Linear(weight: matrices[.output] ?? embedding, bias: biases[.output])
        layers = try (0..<c.layerCount).map { index in
            let m = layerMatrices[index], v = layerVectors[index], b = layerBiases[index]
            func linear(_ slot: TensorSlot) throws -> Linear {
                guard let weight = m[slot] else { throw missing(slot) }
                return Linear(weight: weight, bias: b[slot])
            }
            func vector(_ slot: TensorSlot) throws -> [Float] {
                guard let weight = v[slot] else { throw missing(slot) }
                return weight
            }
            return LayerWeights(
                attentionNorm: try vector(.attentionNorm),
                query: try linear(.query), key: try linear(.key), value: try linear(.value), output: try linear(.attentionOutput),
                queryNorm: v[.queryNorm], keyNorm: v[.keyNorm],
                mlpNorm: try vector(.mlpNorm),
                gate: try linear(.gate), up: try linear(.up), down: try linear(.down))
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
