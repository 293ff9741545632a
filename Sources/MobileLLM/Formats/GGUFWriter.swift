
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Android)
import Android
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a tensor's bytes come from when a `GGUFWriter` writes it.
public enum GGUFTensorData: @unchecked Sendable {
    /// Bytes already in memory (a mapped file or a buffer); `owner` keeps them alive until the file is written.
    case bytes(UnsafeRawBufferPointer, owner: AnyObject?)
    /// Bytes produced on demand, a range of rows at a time, so a large tensor never has to be in memory at once.
    /// A row is `dimensions[0]` elements (one ggml row); the closure fills exactly `rows.count` rows into the buffer.
    case rows(@Sendable (_ rows: Range<Int>, _ destination: UnsafeMutableRawBufferPointer) throws -> Void)
}

/// Progress of `GGUFWriter.write`, reported before each tensor's data and once at the end.
public struct GGUFWriteProgress: Sendable {
    /// Index of the tensor about to be written (equal to `tensorCount` at the end).
    public let tensorIndex: Int
    /// Number of tensors in the file.
    public let tensorCount: Int
    /// The tensor about to be written ("" at the end).
    public let tensorName: String
    /// Tensor data bytes written so far.
    public let bytesWritten: Int
    /// Tensor data bytes in the file.
    public let totalBytes: Int
}

/// Builds a GGUF version 3 file: metadata of every value type (nested arrays included), tensor descriptions with
/// ggml's dimension order (innermost first) and tensor data aligned to `general.alignment`.
///
/// Everything that would make a file other readers reject is refused when it is added, with
/// `MobileLLMError.invalidArgument` naming the key or tensor: a repeated metadata key or tensor name, a tensor name
/// longer than ggml's 63 bytes, a first dimension that is not a multiple of the type's block size, data whose size
/// differs from what the type and dimensions need, arrays nested deeper than 8 levels. `write(to:)` writes a
/// temporary file next to the destination and renames it into place only when everything has been written, so a
/// failure never leaves a half-written file behind.
///
/// Not thread-safe; build one writer on one thread.
public struct GGUFWriter {
    /// One tensor to be written.
    public struct Tensor {
        /// The tensor name.
        public let name: String
        /// Dimensions, innermost (contiguous) first, as ggml orders them.
        public let dimensions: [Int]
        /// The ggml type.
        public let type: GGMLType
        /// Bytes of the data.
        public let byteCount: Int
        /// Where the data comes from.
        public let data: GGUFTensorData

        /// Bytes of one row (`dimensions[0]` elements).
        public var rowBytes: Int { dimensions[0] / type.blockSize * type.blockBytes }
        /// Number of rows (every dimension but the first).
        public var rowCount: Int { dimensions.dropFirst().reduce(1, *) }
    }

    /// Alignment of the data section and of every tensor's data (`general.alignment`).
    public let alignment: Int
    /// Metadata in the order it will be written (`general.alignment` is added at write time when absent).
    public private(set) var metadata: [(key: String, value: GGUFValue)] = []
    /// Tensors in the order they will be written.
    public private(set) var tensors: [Tensor] = []
    private var keys = Set<String>()
    private var names = Set<String>()

    /// ggml's limit on tensor names (GGML_MAX_NAME 64, with the terminating zero).
    public static let maximumNameBytes = 63

    /// A writer whose data is aligned to `alignment` bytes (a power of two, default 32 as in ggml).
    public init(alignment: Int = 32) throws {
        guard alignment > 0, alignment & (alignment - 1) == 0, alignment <= 1 << 20 else {
            throw MobileLLMError.invalidArgument(name: "general.alignment", problem: "expected a power of two up to 1048576, found \(alignment)")
        }
        self.alignment = alignment
    }

    /// Adds metadata `key` = `value`. Throws when the key is empty or already present, when arrays nest deeper than
    /// 8 levels, or for `general.alignment` with a value other than this writer's alignment as a uint32.
    public mutating func set(_ key: String, _ value: GGUFValue) throws {
        guard !key.isEmpty, key.utf8.count < 65536 else {
            throw MobileLLMError.invalidArgument(name: "metadata key", problem: "expected 1...65535 UTF-8 bytes, found \(key.utf8.count)")
        }
        guard !keys.contains(key) else {
            throw MobileLLMError.invalidArgument(name: key, problem: "metadata key set twice")
        }
        if key == "general.alignment", value != .uint32(UInt32(alignment)) {
            throw MobileLLMError.invalidArgument(name: key, problem: "expected uint32 \(alignment) (the writer's alignment), found \(value)")
        }
        if case let .array(array) = value, Self.depth(array) > 8 {
            throw MobileLLMError.invalidArgument(name: key, problem: "arrays nested deeper than 8 levels")
        }
        keys.insert(key)
        metadata.append((key, value))
    }

    /// Adds a tensor whose bytes are in memory. `dimensions` are ggml's (innermost first); `bytes` must hold exactly
    /// the tensor's data (`dimensions[0] / blockSize * blockBytes` per row).
    public mutating func addTensor(name: String, type: GGMLType, dimensions: [Int], bytes: UnsafeRawBufferPointer, owner: AnyObject? = nil) throws {
        let size = try checkTensor(name: name, type: type, dimensions: dimensions)
        guard bytes.count == size else {
            throw MobileLLMError.invalidArgument(name: name, problem: "data has \(bytes.count) bytes, but \(type) \(dimensions) needs \(size)")
        }
        names.insert(name)
        tensors.append(Tensor(name: name, dimensions: dimensions, type: type, byteCount: size, data: .bytes(bytes, owner: owner)))
    }

    /// Adds a tensor whose rows are produced on demand by `rows` while the file is written.
    public mutating func addTensor(name: String, type: GGMLType, dimensions: [Int],
                                   rows: @escaping @Sendable (_ rows: Range<Int>, _ destination: UnsafeMutableRawBufferPointer) throws -> Void) throws {
        let size = try checkTensor(name: name, type: type, dimensions: dimensions)
        names.insert(name)
        tensors.append(Tensor(name: name, dimensions: dimensions, type: type, byteCount: size, data: .rows(rows)))
    }

    /// Validates a tensor description and returns its byte count.
    private func checkTensor(name: String, type: GGMLType, dimensions: [Int]) throws -> Int {
        guard !name.isEmpty, name.utf8.count <= Self.maximumNameBytes else {
            throw MobileLLMError.invalidArgument(name: "tensor name \"\(name)\"", problem: "expected 1...\(Self.maximumNameBytes) UTF-8 bytes, found \(name.utf8.count)")
        }
        guard !names.contains(name) else {
            throw MobileLLMError.invalidArgument(name: name, problem: "tensor name used twice")
        }
        guard (1...4).contains(dimensions.count) else {
            throw MobileLLMError.invalidArgument(name: name, problem: "expected 1...4 dimensions, found \(dimensions.count)")
        }
        var elements = 1
        for dimension in dimensions {
            guard dimension >= 1, dimension <= Int(Int32.max) else {
                throw MobileLLMError.invalidArgument(name: name, problem: "dimension \(dimension) of \(dimensions) is outside 1...\(Int32.max)")
            }
            let (product, overflow) = elements.multipliedReportingOverflow(by: dimension)
            guard !overflow, product <= 1 << 48 else {
                throw MobileLLMError.invalidArgument(name: name, problem: "element count of \(dimensions) overflows")
            }
            elements = product
        }
        guard dimensions[0] % type.blockSize == 0 else {
            throw MobileLLMError.invalidArgument(name: name, problem: "first dimension \(dimensions[0]) is not a multiple of the \(type) block size \(type.blockSize)")
        }
        return elements / type.blockSize * type.blockBytes
    }

    private static func depth(_ array: GGUFArray) -> Int {
        if case let .array(items) = array { return 1 + (items.map(depth).max() ?? 0) }
        return 1
    }

    /// Bytes of tensor data in the file, padding included.
    public var dataBytes: Int { tensors.reduce(0) { $0 + padded($1.byteCount) } }

    private func padded(_ count: Int) -> Int { (count + alignment - 1) / alignment * alignment }

    /// The header: magic, version, counts, metadata and tensor descriptions, padded to the alignment.
    public func header() -> [UInt8] {
        var out = ByteSink()
        out.bytes(Array("GGUF".utf8))
        out.u32(3)
        out.u64(UInt64(tensors.count))
        var entries = metadata
        if !keys.contains("general.alignment") { entries.append(("general.alignment", .uint32(UInt32(alignment)))) }
        out.u64(UInt64(entries.count))
        for (key, value) in entries {
            out.string(key)
            out.value(value)
        }
        var offset = 0
        for tensor in tensors {
            out.string(tensor.name)
            out.u32(UInt32(tensor.dimensions.count))
            for dimension in tensor.dimensions { out.u64(UInt64(dimension)) }
            out.u32(tensor.type.rawValue)
            out.u64(UInt64(offset))
            offset += padded(tensor.byteCount)
        }
        out.bytes([UInt8](repeating: 0, count: padded(out.data.count) - out.data.count))
        return out.data
    }

    /// Writes the file to `path` (through a temporary file renamed into place). `progress` is called before each
    /// tensor and once at the end. Throws `MobileLLMError.io` naming the path when a write fails, or whatever a
    /// row producer throws; in both cases no file is left at `path` (an existing file there stays untouched).
    public func write(to path: String, progress: ((GGUFWriteProgress) -> Void)? = nil) throws {
        let directory = ModelDirectory.parent(of: path)
        let temporary = ModelDirectory.join(directory, "." + ModelDirectory.lastComponent(of: path)) + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_TRUNC, 0o644)
        guard descriptor >= 0 else {
            throw MobileLLMError.io(path: path, reason: "cannot create a file in \(directory): \(String(cString: strerror(errno)))")
        }
        var file = FileSink(descriptor: descriptor, path: path)
        var finished = false
        defer {
            if !finished {
                close(descriptor)
                unlink(temporary)
            }
        }
        try file.write(header())
        let total = tensors.reduce(0) { $0 + $1.byteCount }
        var written = 0
        let chunkLimit = 16 << 20
        var scratch: UnsafeMutableRawBufferPointer?
        defer { scratch?.deallocate() }
        for (index, tensor) in tensors.enumerated() {
            progress?(GGUFWriteProgress(tensorIndex: index, tensorCount: tensors.count, tensorName: tensor.name, bytesWritten: written, totalBytes: total))
            switch tensor.data {
            case let .bytes(bytes, owner):
                try withExtendedLifetime(owner) { try file.write(bytes) }
            case let .rows(produce):
                let rowsPerChunk = max(1, min(tensor.rowCount, chunkLimit / max(1, tensor.rowBytes)))
                let chunkBytes = rowsPerChunk * tensor.rowBytes
                if (scratch?.count ?? 0) < chunkBytes {
                    scratch?.deallocate()
                    scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkBytes, alignment: 64)
                }
                guard let buffer = scratch else { break }
                var row = 0
                while row < tensor.rowCount {
                    let end = min(tensor.rowCount, row + rowsPerChunk)
                    let part = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<((end - row) * tensor.rowBytes)])
                    try produce(row..<end, part)
                    try file.write(UnsafeRawBufferPointer(part))
                    row = end
                }
            }
            try file.write([UInt8](repeating: 0, count: padded(tensor.byteCount) - tensor.byteCount))
            written += tensor.byteCount
        }
        try file.flush()
        guard fsync(descriptor) == 0 else {
            throw MobileLLMError.io(path: path, reason: "fsync failed: \(String(cString: strerror(errno)))")
        }
        guard close(descriptor) == 0 else {
            unlink(temporary)
            finished = true
            throw MobileLLMError.io(path: path, reason: "close failed: \(String(cString: strerror(errno)))")
        }
        finished = true
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw MobileLLMError.io(path: path, reason: "cannot move the written file into place: \(reason)")
        }
        progress?(GGUFWriteProgress(tensorIndex: tensors.count, tensorCount: tensors.count, tensorName: "", bytesWritten: written, totalBytes: total))
    }
}

/// Little-endian serialisation of GGUF header items into memory.
private struct ByteSink {
    var data: [UInt8] = []

    mutating func bytes(_ values: [UInt8]) { data.append(contentsOf: values) }

    mutating func scalar<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) }
    }

    mutating func u32(_ value: UInt32) { scalar(value) }
    mutating func u64(_ value: UInt64) { scalar(value) }

    mutating func string(_ text: String) {
        let utf8 = Array(text.utf8)
        u64(UInt64(utf8.count))
        data.append(contentsOf: utf8)
    }

    mutating func value(_ value: GGUFValue) {
        switch value {
        case let .uint8(v): u32(GGUFValueType.uint8.rawValue); scalar(v)
        case let .int8(v): u32(GGUFValueType.int8.rawValue); scalar(v)
        case let .uint16(v): u32(GGUFValueType.uint16.rawValue); scalar(v)
        case let .int16(v): u32(GGUFValueType.int16.rawValue); scalar(v)
        case let .uint32(v): u32(GGUFValueType.uint32.rawValue); scalar(v)
        case let .int32(v): u32(GGUFValueType.int32.rawValue); scalar(v)
        case let .float32(v): u32(GGUFValueType.float32.rawValue); scalar(v.bitPattern)
        case let .bool(v): u32(GGUFValueType.bool.rawValue); scalar(UInt8(v ? 1 : 0))
        case let .string(v): u32(GGUFValueType.string.rawValue); string(v)
        case let .array(v): u32(GGUFValueType.array.rawValue); arrayBody(v)
        case let .uint64(v): u32(GGUFValueType.uint64.rawValue); scalar(v)
        case let .int64(v): u32(GGUFValueType.int64.rawValue); scalar(v)
        case let .float64(v): u32(GGUFValueType.float64.rawValue); scalar(v.bitPattern)
        }
    }

    /// An array body: element type, count, elements.
    mutating func arrayBody(_ array: GGUFArray) {
        func items<T: FixedWidthInteger>(_ type: GGUFValueType, _ values: [T]) {
            u32(type.rawValue)
            u64(UInt64(values.count))
            data.reserveCapacity(data.count + values.count * MemoryLayout<T>.size)
            for value in values { scalar(value) }
        }
        switch array {
        case let .uint8(a): items(.uint8, a)
        case let .int8(a): items(.int8, a)
        case let .uint16(a): items(.uint16, a)
        case let .int16(a): items(.int16, a)
        case let .uint32(a): items(.uint32, a)
        case let .int32(a): items(.int32, a)
        case let .uint64(a): items(.uint64, a)
        case let .int64(a): items(.int64, a)
        case let .float32(a): items(.float32, a.map(\.bitPattern))
        case let .float64(a): items(.float64, a.map(\.bitPattern))
        case let .bool(a): items(.bool, a.map { UInt8($0 ? 1 : 0) })
        case let .string(a):
            u32(GGUFValueType.string.rawValue)
            u64(UInt64(a.count))
            for text in a { string(text) }
        case let .array(a):
            u32(GGUFValueType.array.rawValue)
            u64(UInt64(a.count))
            for inner in a { arrayBody(inner) }
        }
    }
}

/// Buffered writes to a file descriptor; errors name the destination path.
private struct FileSink {
    let descriptor: Int32
    let path: String
    private var buffer: [UInt8] = []
    private let limit = 4 << 20

    init(descriptor: Int32, path: String) {
        self.descriptor = descriptor
        self.path = path
        buffer.reserveCapacity(limit)
    }

    mutating func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
        if buffer.count + bytes.count <= limit {
            buffer.append(contentsOf: bytes)
            return
        }
        try flush()
        if bytes.count >= limit {
            try writeAll(bytes)
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    mutating func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        guard var pointer = bytes.baseAddress else { return }
        var remaining = bytes.count
        while remaining > 0 {
            let count = Platform.write(descriptor, pointer, min(remaining, 1 << 30))
            if count < 0 {
                if errno == EINTR { continue }
                throw MobileLLMError.io(path: path, reason: "write failed: \(String(cString: strerror(errno)))")
            }
            pointer += count
            remaining -= count
        }
    }
}
