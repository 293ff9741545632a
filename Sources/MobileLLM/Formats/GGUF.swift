
/// The value types of GGUF metadata.
public enum GGUFValueType: UInt32, Sendable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7, string = 8,
         array = 9, uint64 = 10, int64 = 11, float64 = 12
}

/// One GGUF metadata value.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32), float32(Float)
    case bool(Bool), string(String), array(GGUFArray), uint64(UInt64), int64(Int64), float64(Double)

    /// The value as an integer when it is one of the integer types (and fits in `Int`).
    public var integer: Int? {
        switch self {
        case let .uint8(v): return Int(v)
        case let .int8(v): return Int(v)
        case let .uint16(v): return Int(v)
        case let .int16(v): return Int(v)
        case let .uint32(v): return Int(v)
        case let .int32(v): return Int(v)
        case let .uint64(v): return v <= UInt64(Int.max) ? Int(v) : nil
        case let .int64(v): return Int(v)
        default: return nil
        }
    }

    /// A short name of the type, for error messages.
    public var typeName: String {
        switch self {
        case .uint8: return "uint8"
        case .int8: return "int8"
        case .uint16: return "uint16"
        case .int16: return "int16"
        case .uint32: return "uint32"
        case .int32: return "int32"
        case .float32: return "float32"
        case .bool: return "bool"
        case .string: return "string"
        case .array: return "array"
        case .uint64: return "uint64"
        case .int64: return "int64"
        case .float64: return "float64"
        }
    }
}

/// A GGUF metadata array, stored with its element type.
public enum GGUFArray: Sendable, Equatable {
    case uint8([UInt8]), int8([Int8]), uint16([UInt16]), int16([Int16]), uint32([UInt32]), int32([Int32])
    case float32([Float]), bool([Bool]), string([String]), uint64([UInt64]), int64([Int64]), float64([Double])
    /// An array of arrays.
    case array([GGUFArray])

    /// Number of elements.
    public var count: Int {
        switch self {
        case let .uint8(a): return a.count
        case let .int8(a): return a.count
        case let .uint16(a): return a.count
        case let .int16(a): return a.count
        case let .uint32(a): return a.count
        case let .int32(a): return a.count
        case let .float32(a): return a.count
        case let .bool(a): return a.count
        case let .string(a): return a.count
        case let .uint64(a): return a.count
        case let .int64(a): return a.count
        case let .float64(a): return a.count
        case let .array(a): return a.count
        }
    }

    /// The elements as integers, when this is an array of an integer type whose values fit in `Int`.
    public var integers: [Int]? {
        switch self {
        case let .uint8(a): return a.map { Int($0) }
        case let .int8(a): return a.map { Int($0) }
        case let .uint16(a): return a.map { Int($0) }
        case let .int16(a): return a.map { Int($0) }
        case let .uint32(a): return a.map { Int($0) }
        case let .int32(a): return a.map { Int($0) }
        case let .int64(a): return a.map { Int($0) }
        case let .uint64(a):
            guard a.allSatisfy({ $0 <= UInt64(Int.max) }) else { return nil }
            return a.map { Int($0) }
        default: return nil
        }
    }
}

/// ggml tensor element types, with their block geometry.
public enum GGMLType: UInt32, Sendable, CaseIterable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case iq4_nl = 20, iq4_xs = 23, i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, bf16 = 30

    /// Elements per block.
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16, .i8, .i16, .i32, .i64, .f64: return 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .iq4_nl: return 32
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K, .iq4_xs: return 256
        }
    }

    /// Bytes per block.
    public var blockBytes: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8: return 1
        case .i64, .f64: return 8
        case .q4_0, .iq4_nl: return 18
        case .q4_1: return 20
        case .q5_0: return 22
        case .q5_1: return 24
        case .q8_0: return 34
        case .q8_1: return 36
        case .q2_K: return 84
        case .q3_K: return 110
        case .q4_K: return 144
        case .q5_K: return 176
        case .q6_K: return 210
        case .q8_K: return 292
        case .iq4_xs: return 136
        }
    }
}

/// One tensor's description in a GGUF file.
public struct GGUFTensorInfo: Sendable, Equatable {
    /// The tensor name.
    public let name: String
    /// Dimensions, innermost (contiguous) first, as ggml orders them.
    public let dimensions: [Int]
    /// The raw ggml type code.
    public let rawType: UInt32
    /// The type, when this reader knows its geometry (nil for other codes).
    public let type: GGMLType?
    /// Offset of the data from the start of the data section.
    public let offset: Int
    /// Offset of the data from the start of the file.
    public let fileOffset: Int
    /// Size of the data in bytes (nil when the type is unknown).
    public let byteCount: Int?

    /// Number of elements.
    public var elementCount: Int { dimensions.reduce(1, *) }
}

/// A GGUF (version 2 or 3) file, memory-mapped: all metadata parsed, tensor data left in place. Every count and
/// length in the header is checked against the file size before use, so a corrupt or lying header throws
/// `invalidFile` instead of reading past the mapping or allocating without bound.
public final class GGUFFile: @unchecked Sendable {
    /// The file's path.
    public let path: String
    /// The mapping (tensor data lives here).
    public let file: MappedFile
    /// The format version (2 or 3).
    public let version: UInt32
    /// Metadata by key.
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    /// Tensor descriptions in file order.
    public let tensors: [GGUFTensorInfo]
    /// Data alignment (`general.alignment`, default 32).
    public let alignment: Int
    /// Offset of the data section from the start of the file.
    public let dataOffset: Int

    /// Whether the file at `path` starts with the GGUF magic. Throws `fileNotFound` when it cannot be opened.
    public static func hasMagic(path: String) throws -> Bool {
        try readFilePrefix(path, count: 4) == Array("GGUF".utf8)
    }

    /// Maps and parses the file at `path`.
    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        var reader = Reader(file: file)
        guard file.size >= 4, try reader.bytes(4) == Array("GGUF".utf8) else {
            throw MobileLLMError.invalidFile(path: path, field: "(magic)", problem: "not a GGUF file (expected the bytes \"GGUF\")")
        }
        version = try reader.u32("version")
        guard version == 2 || version == 3 else {
            throw MobileLLMError.unsupported(path: path, feature: "GGUF version \(version) (2 and 3 are implemented)")
        }
        let tensorCount = try reader.count("tensor_count", minimumElementBytes: 24)
        let metadataCount = try reader.count("metadata_kv_count", minimumElementBytes: 13)
        var metadata: [String: GGUFValue] = [:]
        var keys: [String] = []
        for index in 0..<metadataCount {
            let key = try reader.string("metadata[\(index)].key")
            let rawType = try reader.u32(key)
            guard let type = GGUFValueType(rawValue: rawType) else {
                throw MobileLLMError.invalidFile(path: path, field: key, problem: "unknown value type \(rawType)")
            }
            let value = try reader.value(type, field: key, depth: 0)
            guard metadata[key] == nil else {
                throw MobileLLMError.invalidFile(path: path, field: key, problem: "key appears twice")
            }
            metadata[key] = value
            keys.append(key)
        }
        self.metadata = metadata
        metadataKeys = keys

        var alignment = 32
        if let value = metadata["general.alignment"] {
            guard case let .uint32(raw) = value, raw > 0, raw & (raw - 1) == 0, raw <= 1 << 20 else {
                throw MobileLLMError.invalidFile(path: path, field: "general.alignment", problem: "expected a power-of-two uint32, found \(value)")
            }
            alignment = Int(raw)
        }
        self.alignment = alignment

        var infos: [(String, [Int], UInt32, Int)] = []
        infos.reserveCapacity(tensorCount)
        var names = Set<String>()
        for index in 0..<tensorCount {
            let name = try reader.string("tensors[\(index)].name")
            let field = "tensor \(name)"
            guard names.insert(name).inserted else {
                throw MobileLLMError.invalidFile(path: path, field: field, problem: "name appears twice")
            }
            let dimensionCount = Int(try reader.u32(field + ".n_dims"))
            guard (1...4).contains(dimensionCount) else {
                throw MobileLLMError.invalidFile(path: path, field: field + ".n_dims", problem: "expected 1...4, found \(dimensionCount)")
            }
            var dimensions: [Int] = []
            var elements = 1
            for _ in 0..<dimensionCount {
                let dimension = try reader.u64(field + ".dims")
                guard dimension <= UInt64(Int32.max) else {
                    throw MobileLLMError.invalidFile(path: path, field: field + ".dims", problem: "dimension \(dimension) is too large")
                }
                let (product, overflow) = elements.multipliedReportingOverflow(by: Int(dimension))
                guard !overflow, product <= Int(1) << 48 else {
                    throw MobileLLMError.invalidFile(path: path, field: field + ".dims", problem: "element count overflows")
                }
                elements = product
                dimensions.append(Int(dimension))
            }
            let type = try reader.u32(field + ".type")
            let offset = try reader.u64(field + ".offset")
            guard offset <= UInt64(file.size) else {
                throw MobileLLMError.invalidFile(path: path, field: field + ".offset", problem: "offset \(offset) lies beyond the file (\(file.size) bytes)")
            }
            infos.append((name, dimensions, type, Int(offset)))
        }
        let headerEnd = reader.position
        let dataStart = (headerEnd + alignment - 1) / alignment * alignment
        guard infos.isEmpty || dataStart <= file.size else {
            throw MobileLLMError.invalidFile(path: path, field: "(data)", problem: "the data section starts beyond the end of the file")
        }
        dataOffset = dataStart
        var tensors: [GGUFTensorInfo] = []
        tensors.reserveCapacity(infos.count)
        for (name, dimensions, rawType, offset) in infos {
            let field = "tensor \(name)"
            guard offset % alignment == 0 else {
                throw MobileLLMError.invalidFile(path: path, field: field + ".offset", problem: "offset \(offset) is not a multiple of the alignment \(alignment)")
            }
            let type = GGMLType(rawValue: rawType)
            var byteCount: Int?
            if let type {
                guard dimensions[0] % type.blockSize == 0 else {
                    throw MobileLLMError.invalidFile(path: path, field: field + ".dims", problem: "first dimension \(dimensions[0]) is not a multiple of the \(type) block size \(type.blockSize)")
                }
                let elements = dimensions.reduce(1, *)
                let bytes = elements / type.blockSize * type.blockBytes
                guard dataStart + offset + bytes <= file.size else {
                    throw MobileLLMError.invalidFile(path: path, field: field, problem: "data (\(bytes) bytes at \(dataStart + offset)) runs past the end of the file (\(file.size) bytes)")
                }
                byteCount = bytes
            }
            tensors.append(GGUFTensorInfo(name: name, dimensions: dimensions, rawType: rawType, type: type, offset: offset,
                                          fileOffset: dataStart + offset, byteCount: byteCount))
        }
        // Tensor data must not overlap (llama.cpp lays tensors out back to back; a lying offset aliases another tensor).
        let spans = tensors.indices.filter { (tensors[$0].byteCount ?? 0) > 0 }
            .sorted { (tensors[$0].offset, $0) < (tensors[$1].offset, $1) }
        var end = 0, previous = ""
        for index in spans {
            let tensor = tensors[index]
            guard tensor.offset >= end else {
                throw MobileLLMError.invalidFile(path: path, field: "tensor \(tensor.name).offset",
                                                 problem: "data at \(tensor.offset) overlaps tensor '\(previous)' (expected an offset of at least \(end))")
            }
            end = tensor.offset + (tensor.byteCount ?? 0)
            previous = tensor.name
        }
        self.tensors = tensors
    }

    /// The raw bytes of a tensor (nil when its type is unknown to this reader).
    public func data(of tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer? {
        guard let count = tensor.byteCount else { return nil }
        return file.bytes(tensor.fileOffset..<(tensor.fileOffset + count))
    }

    // MARK: - Typed metadata access (errors name the file and key)

    /// A string value; nil when absent. Throws when present with another type.
    public func string(_ key: String) throws -> String? {
        guard let value = metadata[key] else { return nil }
        guard case let .string(text) = value else { throw typeError(key, "a string", value) }
        return text
    }

    /// An integer value of any integer type; nil when absent.
    public func integer(_ key: String) throws -> Int? {
        guard let value = metadata[key] else { return nil }
        guard let number = value.integer else { throw typeError(key, "an integer", value) }
        return number
    }

    /// A boolean value; nil when absent.
    public func bool(_ key: String) throws -> Bool? {
        guard let value = metadata[key] else { return nil }
        guard case let .bool(flag) = value else { throw typeError(key, "a bool", value) }
        return flag
    }

    /// An array of strings; nil when absent.
    public func stringArray(_ key: String) throws -> [String]? {
        guard let value = metadata[key] else { return nil }
        guard case let .array(.string(items)) = value else { throw typeError(key, "an array of strings", value) }
        return items
    }

    /// An array of integers (any integer element type); nil when absent.
    public func integerArray(_ key: String) throws -> [Int]? {
        guard let value = metadata[key] else { return nil }
        guard case let .array(array) = value, let items = array.integers else { throw typeError(key, "an array of integers", value) }
        return items
    }

    private func typeError(_ key: String, _ expected: String, _ value: GGUFValue) -> MobileLLMError {
        .invalidFile(path: path, field: key, problem: "expected \(expected), found \(value.typeName)")
    }

    /// A bounds-checked little-endian cursor over the mapping.
    private struct Reader {
        let file: MappedFile
        var position = 0

        var remaining: Int { file.size - position }

        func fail(_ field: String, _ problem: String) -> MobileLLMError {
            .invalidFile(path: file.path, field: field, problem: problem)
        }

        mutating func take(_ count: Int, _ field: String) throws -> UnsafeRawBufferPointer {
            guard count >= 0, count <= remaining else {
                throw fail(field, "needs \(count) bytes at offset \(position) but the file has \(remaining) left (truncated or corrupt)")
            }
            let buffer = file.bytes(position..<(position + count))
            position += count
            return buffer
        }

        mutating func bytes(_ count: Int) throws -> [UInt8] { Array(try take(count, "(magic)")) }

        mutating func load<T: FixedWidthInteger>(_ type: T.Type, _ field: String) throws -> T {
            let buffer = try take(MemoryLayout<T>.size, field)
            return T(littleEndian: buffer.loadUnaligned(as: T.self))
        }

        mutating func u32(_ field: String) throws -> UInt32 { try load(UInt32.self, field) }
        mutating func u64(_ field: String) throws -> UInt64 { try load(UInt64.self, field) }

        /// A u64 count whose elements take at least `minimumElementBytes` each: checked against the bytes left.
        mutating func count(_ field: String, minimumElementBytes: Int) throws -> Int {
            let value = try u64(field)
            guard value <= UInt64(remaining / max(minimumElementBytes, 1)) else {
                throw fail(field, "count \(value) cannot fit in the \(remaining) bytes left in the file (expected at most \(remaining / max(minimumElementBytes, 1)))")
            }
            return Int(value)
        }

        mutating func string(_ field: String) throws -> String {
            let length = try count(field, minimumElementBytes: 1)
            return String(decoding: try take(length, field), as: UTF8.self)
        }

        mutating func array<T: FixedWidthInteger>(_ type: T.Type, _ count: Int, _ field: String) throws -> [T] {
            let buffer = try take(count * MemoryLayout<T>.size, field)
            return (0..<count).map { T(littleEndian: buffer.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self)) }
        }

        mutating func value(_ type: GGUFValueType, field: String, depth: Int) throws -> GGUFValue {
            switch type {
            case .uint8: return .uint8(try load(UInt8.self, field))
            case .int8: return .int8(try load(Int8.self, field))
            case .uint16: return .uint16(try load(UInt16.self, field))
            case .int16: return .int16(try load(Int16.self, field))
            case .uint32: return .uint32(try load(UInt32.self, field))
            case .int32: return .int32(try load(Int32.self, field))
            case .float32: return .float32(Float(bitPattern: try load(UInt32.self, field)))
            case .uint64: return .uint64(try load(UInt64.self, field))
            case .int64: return .int64(try load(Int64.self, field))
            case .float64: return .float64(Double(bitPattern: try load(UInt64.self, field)))
            case .bool:
                let byte = try load(UInt8.self, field)
                guard byte <= 1 else { throw fail(field, "bool byte \(byte) is neither 0 nor 1") }
                return .bool(byte == 1)
            case .string: return .string(try string(field))
            case .array: return .array(try arrayValue(field: field, depth: depth))
            }
        }

        mutating func arrayValue(field: String, depth: Int) throws -> GGUFArray {
            guard depth < 8 else { throw fail(field, "arrays nested deeper than 8 levels") }
            let rawType = try u32(field)
            guard let elementType = GGUFValueType(rawValue: rawType) else {
                throw fail(field, "unknown array element type \(rawType)")
            }
            let minimum: Int
            switch elementType {
            case .uint8, .int8, .bool: minimum = 1
            case .uint16, .int16: minimum = 2
            case .uint32, .int32, .float32: minimum = 4
            case .uint64, .int64, .float64, .string: minimum = 8
            case .array: minimum = 12
            }
            let n = try count(field, minimumElementBytes: minimum)
            switch elementType {
            case .uint8: return .uint8(try array(UInt8.self, n, field))
            case .int8: return .int8(try array(Int8.self, n, field))
            case .uint16: return .uint16(try array(UInt16.self, n, field))
            case .int16: return .int16(try array(Int16.self, n, field))
            case .uint32: return .uint32(try array(UInt32.self, n, field))
            case .int32: return .int32(try array(Int32.self, n, field))
            case .uint64: return .uint64(try array(UInt64.self, n, field))
            case .int64: return .int64(try array(Int64.self, n, field))
            case .float32: return .float32(try array(UInt32.self, n, field).map { Float(bitPattern: $0) })
            case .float64: return .float64(try array(UInt64.self, n, field).map { Double(bitPattern: $0) })
            case .bool:
                let raw = try array(UInt8.self, n, field)
                guard raw.allSatisfy({ $0 <= 1 }) else { throw fail(field, "bool array holds a byte other than 0 or 1") }
                return .bool(raw.map { $0 == 1 })
            case .string:
                var items: [String] = []
                items.reserveCapacity(n)
                for _ in 0..<n { items.append(try string(field)) }
                return .string(items)
            case .array:
                var items: [GGUFArray] = []
                for _ in 0..<n { items.append(try arrayValue(field: field, depth: depth + 1)) }
                return .array(items)
            }
        }
    }
}
