import CMobileLLMKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Android)
import Android
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Synchronization

/// Which storage type each weight of a model gets when it is quantized (by `mobilellm quantize` or at load).
///
/// Projection matrices (q, k, v, o, gate, up, down) get `projectionType`; the token embedding and the output
/// projection get `outputType` (default: the same); vectors (norms, biases) are not quantized. A matrix whose row
/// length is not a multiple of the chosen type's block size falls back to Q8_0 (when 32 divides it) or F16, with a
/// note. The file writer and quantize-on-load share this plan, so both produce the same bytes.
public struct QuantizationPlan: Sendable, Equatable {
    /// Type of the attention and MLP projection matrices.
    public var projectionType: QuantType
    /// Type of the token embedding and output matrices (nil: `projectionType`).
    public var outputType: QuantType?

    /// A plan storing projections as `projectionType` and the embedding/output as `outputType` (nil: the same).
    public init(projectionType: QuantType, outputType: QuantType? = nil) {
        self.projectionType = projectionType
        self.outputType = outputType
    }

    /// What a weight is, for the plan.
    enum Role {
        /// An attention or MLP projection.
        case projection
        /// The token embedding or the output projection.
        case output
        /// A vector (norm weight, bias): never quantized.
        case vector
    }

    /// Throws `invalidArgument(name:)` when `type` is one this library cannot write (`QuantType.canQuantize`).
    static func checkWritable(_ type: QuantType?, name: String) throws {
        guard let type, !type.canQuantize else { return }
        let writable = QuantType.allCases.filter(\.canQuantize).map(\.name).joined(separator: ", ")
        throw MobileLLMError.invalidArgument(name: name, problem: "\(type.name) can be read but not written (writable: \(writable))")
    }

    /// The type a [rows, k] matrix of `role` gets, and the type the plan asked for (they differ after a fallback);
    /// nil for vectors.
    func type(for role: Role, columns k: Int) -> (type: QuantType, requested: QuantType)? {
        let wanted: QuantType
        switch role {
        case .projection: wanted = projectionType
        case .output: wanted = outputType ?? projectionType
        case .vector: return nil
        }
        if k % wanted.blockSize == 0 { return (wanted, wanted) }
        return (k % QuantType.q8_0.blockSize == 0 ? .q8_0 : .f16, wanted)
    }

    /// One line per kind of fallback: "3 matrices with rows of 144 (not a multiple of the q4_0 block size 32) stored as
    /// f16: model.layers.0.mlp.down_proj.weight, ...".
    static func fallbackNotes(_ fallbacks: [(name: String, columns: Int, requested: QuantType, type: QuantType)]) -> [String] {
        var groups: [String: [String]] = [:]
        var order: [String] = []
        for item in fallbacks where item.type != item.requested {
            let key = "rows of \(item.columns) (not a multiple of the \(item.requested.name) block size \(item.requested.blockSize)) stored as \(item.type.name)"
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(item.name)
        }
        return order.map { key in
            let names = groups[key] ?? []
            return "\(names.count) \(names.count == 1 ? "matrix" : "matrices") with \(key): \(names.joined(separator: ", "))"
        }
    }
}

/// Row-wise conversion of stored tensors between types (dequantize to f32, optionally reorder rows, quantize).
enum TensorConversion {
    /// Writes rows `rows` of the [rowCount, k] tensor `tensor`, converted to `type`, consecutively into `destination`
    /// (`rows.count * type.rowBytes(k)` bytes). Destination row r comes from source row `sourceRow(r)` (identity when
    /// nil). Rows whose type already matches are copied byte for byte. Uses up to `threads` threads.
    static func convert(_ tensor: StoredTensor, rows: Range<Int>, to type: QuantType, sourceRow: (@Sendable (Int) -> Int)?,
                        destination: UnsafeMutableRawPointer, threads: Int) {
        let k = tensor.shape.count > 1 ? tensor.shape.dropFirst().reduce(1, *) : (tensor.shape.first ?? 1)
        let sourceRowBytes = tensor.type.rowBytes(k) ?? 0
        let rowBytes = type.rowBytes(k) ?? 0
        guard !rows.isEmpty, rowBytes > 0, sourceRowBytes > 0 else { return }
        let source = tensor.pointer
        let count = rows.count
        let workers = max(1, min(threads, count * k / (1 << 16) + 1, count))
        let output = UnsafeSendablePointer(destination)
        let input = UnsafeSendableRawPointer(source)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            let start = count * worker / workers, end = count * (worker + 1) / workers
            guard start < end else { return }
            if tensor.type == type {
                for index in start..<end {
                    let row = sourceRow?(rows.lowerBound + index) ?? (rows.lowerBound + index)
                    (output.pointer + index * rowBytes).copyMemory(from: input.pointer + row * sourceRowBytes, byteCount: rowBytes)
                }
                return
            }
            let batch = max(1, min(end - start, (1 << 18) / max(1, k)))
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: batch * k)
            defer { scratch.deallocate() }
            var index = start
            while index < end {
                let n = min(batch, end - index)
                for i in 0..<n {
                    let row = sourceRow?(rows.lowerBound + index + i) ?? (rows.lowerBound + index + i)
                    mlk_q_dequantize_row(tensor.type.rawValue, input.pointer + row * sourceRowBytes, Int64(k), scratch + i * k)
                }
                mlk_q_quantize_rows(type.rawValue, scratch, Int64(n), Int64(k), output.pointer + index * rowBytes)
                index += n
            }
        }
    }

    /// Drops the resident pages that lie wholly inside `tensor`'s bytes when they are a read-only file mapping, so a
    /// tensor that has been converted stops counting toward the process's memory (the file stays mapped; touching the
    /// bytes again reads them back from the file). Anything else is left alone.
    static func releasePages(of tensor: StoredTensor) {
        releasePages(pointer: tensor.pointer, byteCount: tensor.count / tensor.type.blockSize * tensor.type.blockBytes, owner: tensor.owner)
    }

    /// `releasePages(of:)` for `byteCount` bytes at `pointer` owned by `owner`.
    static func releasePages(pointer: UnsafeRawPointer, byteCount: Int, owner: AnyObject) {
        guard owner is MappedFile else { return }
        dropWholePages(pointer, byteCount: byteCount)
    }

    /// `madvise(MADV_DONTNEED)` on the pages lying wholly inside `byteCount` bytes at `pointer`: a read-only file
    /// mapping's are read back if touched again; anonymous memory's (bytes an owned buffer no longer uses) are freed.
    static func dropWholePages(_ pointer: UnsafeRawPointer, byteCount: Int) {
        let page = Platform.pageSize
        guard page > 0 else { return }
        let start = (Int(bitPattern: pointer) + page - 1) / page * page
        let end = (Int(bitPattern: pointer) + byteCount) / page * page
        guard end > start, let address = UnsafeMutableRawPointer(bitPattern: start) else { return }
        Platform.dropMappedPages(address, end - start)
    }

    /// The whole tensor converted to `type` (shape unchanged) in a new owned buffer.
    static func converted(_ tensor: StoredTensor, to type: QuantType, threads: Int) -> StoredTensor {
        let k = tensor.shape.count > 1 ? tensor.shape.dropFirst().reduce(1, *) : (tensor.shape.first ?? 1)
        let rowCount = tensor.shape.count > 1 ? tensor.shape[0] : 1
        let buffer = OwnedBuffer(weightBytes: rowCount * (type.rowBytes(k) ?? 0))
        convert(tensor, rows: 0..<rowCount, to: type, sourceRow: nil, destination: buffer.pointer, threads: threads)
        return StoredTensor(name: tensor.name, type: type, shape: tensor.shape, owner: buffer, pointer: UnsafeRawPointer(buffer.pointer))
    }
}

/// A raw pointer that closures running on other threads may capture (each thread touches its own bytes).
struct UnsafeSendablePointer: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    init(_ pointer: UnsafeMutableRawPointer) { self.pointer = pointer }
}

/// A read-only raw pointer that closures running on other threads may capture.
struct UnsafeSendableRawPointer: @unchecked Sendable {
    let pointer: UnsafeRawPointer
    init(_ pointer: UnsafeRawPointer) { self.pointer = pointer }
}

/// A `TensorSource` that quantizes the matrices of another source while a model loads (`ModelLoadOptions.quantize`):
/// every projection and the embedding/output matrix are converted by `plan` into owned memory, with the same bytes
/// `mobilellm quantize` writes for that plan; vectors and matrices already in the target type pass through untouched.
/// A matrix is converted when it is first asked for (the loader asks in schema order, layer by layer) on up to
/// `threads` threads, its mapped source pages are then released, and the result is kept: the file pages resident at
/// any moment stay those of about one tensor, and the wrapped source (and its memory) may be released once the model
/// holds the converted tensors.
struct QuantizingSource: TensorSource {
    let base: TensorSource
    let plan: QuantizationPlan
    /// Fallback notes (matrices whose row length did not fit the requested type).
    let notes: [String]
    /// The matrices to convert, by transformers name.
    private let pending: [String: Conversion]
    /// Converted tensors by transformers name (filled on first request).
    private let converted = ConvertedTensors()
    private let threads: Int

    var location: String { base.location }
    func storedName(of name: String) -> String { base.storedName(of: name) }
    var configurationFieldNames: [String: String] { base.configurationFieldNames }

    init(wrapping base: TensorSource, configuration c: ModelConfiguration, architecture: any Architecture.Type,
         plan: QuantizationPlan, threads: Int) {
        self.base = base
        self.plan = plan
        self.threads = threads
        let (conversions, fallbacks) = Self.conversions(of: base, configuration: c, architecture: architecture, plan: plan)
        pending = Dictionary(conversions.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        notes = QuantizationPlan.fallbackNotes(fallbacks)
    }

    func tensor(named name: String) -> StoredTensor? {
        guard let conversion = pending[name] else { return base.tensor(named: name) }
        return converted.tensors.withLock { converted in
            if let tensor = converted[name] { return tensor }
            let tensor = TensorConversion.converted(conversion.tensor, to: conversion.type, threads: threads)
            TensorConversion.releasePages(of: conversion.tensor)
            converted[name] = tensor
            return tensor
        }
    }

    /// The converted tensors, shared by copies of the source.
    private final class ConvertedTensors: Sendable {
        let tensors = Mutex<[String: StoredTensor]>([:])
    }

    /// A matrix `plan` converts at load: the stored tensor and the type it becomes.
    struct Conversion {
        let name: String
        let tensor: StoredTensor
        let type: QuantType
        /// Bytes of the converted copy (owned memory).
        var convertedBytes: Int { (tensor.shape.first ?? 0) * (type.rowBytes(tensor.shape.count > 1 ? tensor.shape[1] : 0) ?? 0) }
        /// Bytes of the stored tensor (the mapped bytes the conversion reads and then releases).
        var storedBytes: Int { tensor.count / tensor.type.blockSize * tensor.type.blockBytes }
    }

    /// The matrices of `base` that `plan` converts (the embedding first, then the untied output matrix and every
    /// projection, as the schema lists them; a matrix already in its target type is not converted) and every
    /// matrix's (name, row length, requested type, type) for the fallback notes. Reads tensor headers only.
    static func conversions(of base: TensorSource, configuration c: ModelConfiguration, architecture: any Architecture.Type,
                            plan: QuantizationPlan)
        -> (conversions: [Conversion], fallbacks: [(name: String, columns: Int, requested: QuantType, type: QuantType)]) {
        let schema = architecture.tensors(c)
        let matrices = schema.tensors.filter { $0.role == .projection || ($0.role == .output && !c.tiedEmbeddings) }
        let names = schema.tensors.filter { $0.role == .embedding }.map(\.name) + matrices.filter { $0.role == .output }.map(\.name)
            + matrices.filter { $0.role == .projection }.map(\.name)
        var conversions: [Conversion] = []
        var fallbacks: [(name: String, columns: Int, requested: QuantType, type: QuantType)] = []
        for name in names {
            // Missing or misshapen tensors are left to the shape checks of the model loader, which name them.
            guard let tensor = base.tensor(named: name), tensor.shape.count == 2,
                  let (type, requested) = plan.type(for: schema.quantizationRole(of: name), columns: tensor.shape[1]),
                  tensor.type.rowBytes(tensor.shape[1]) != nil else { continue }
            fallbacks.append((name, tensor.shape[1], requested, type))
            if tensor.type == type { continue }
            conversions.append(Conversion(name: name, tensor: tensor, type: type))
        }
        return (conversions, fallbacks)
    }
}
