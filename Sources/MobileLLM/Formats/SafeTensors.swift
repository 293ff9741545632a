
/// Element types a stored tensor may have.
public enum DType: String, Sendable, CaseIterable {
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"

    /// The same type in ggml numbering, as weight matrices record it.
    public var tensorType: QuantType {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        }
    }

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        }
    }
}

/// One stored tensor: its type, shape and bytes, and the object that keeps the bytes alive (a mapped file, or an
/// owned buffer for weights made in memory).
public struct StoredTensor: @unchecked Sendable {
    /// The tensor's name in its file.
    public let name: String
    /// Element type: a float type or a ggml block-quantized type (blocks run along the innermost dimension).
    public let type: QuantType
    /// Shape, outermost dimension first (PyTorch order).
    public let shape: [Int]
    /// Keeps the bytes alive as long as the tensor (a `MappedFile` or an `OwnedBuffer`).
    public let owner: AnyObject
    /// Pointer to the first element.
    public let pointer: UnsafeRawPointer

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
}

/// A stored tensor of 32-bit unsigned words: the packed codes of an MLX quantized matrix (`MLXQuantization`), which
/// only means something together with its `scales` and `biases` and the bits of the model's quantization recipe.
public struct PackedWordTensor: @unchecked Sendable {
    /// The tensor's name in its file.
    public let name: String
    /// Shape, outermost dimension first: [rows, words per row] for a packed matrix.
    public let shape: [Int]
    /// Keeps the bytes alive (the mapped file).
    public let owner: AnyObject
    /// Pointer to the first word (little-endian, possibly unaligned).
    public let pointer: UnsafeRawPointer

    /// Number of words.
    public var count: Int { shape.reduce(1, *) }
}

/// A `.safetensors` file: an 8-byte little-endian header length, a JSON header, then raw tensor bytes.
/// Opening validates the header completely, so no later read can leave the mapping.
public struct SafeTensorsFile: Sendable {
    /// The mapped file.
    public let file: MappedFile
    /// Float tensors by name.
    public let tensors: [String: StoredTensor]
    /// U32 tensors by name (MLX's packed quantized weights; see `MLXQuantization`).
    public let packedWords: [String: PackedWordTensor]

    /// The largest header this reader accepts (the format's own limit is 100 MB).
    public static let maximumHeaderSize = 100_000_000

    /// The format's other dtype names, which this engine does not implement (anything else is not a dtype).
    static let otherDTypes: Set<String> = ["BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64", "F64",
                                           "F8_E5M2", "F8_E4M3", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4"]

    /// Maps and validates the file at `path`.
    public init(path: String) throws {
        let file = try MappedFile(path: path)
        self.file = file
        guard file.size >= 8, let base = file.base else {
            throw MobileLLMError.invalidFile(path: path, field: "header length", problem: "the file has \(file.size) bytes; a safetensors file starts with an 8-byte header length")
        }
        var headerLength: UInt64 = 0
        withUnsafeMutableBytes(of: &headerLength) { $0.copyMemory(from: UnsafeRawBufferPointer(start: base, count: 8)) }
        headerLength = UInt64(littleEndian: headerLength)
        guard headerLength <= UInt64(Self.maximumHeaderSize), Int(headerLength) <= file.size - 8 else {
            throw MobileLLMError.invalidFile(path: path, field: "header length",
                                             problem: "says \(headerLength) bytes but the file has \(file.size - 8) bytes after it (expected at most \(min(file.size - 8, Self.maximumHeaderSize)))")
        }
        let dataStart = 8 + Int(headerLength)
        let header = try JSONObjectReader(JSONValue.parse(file.bytes(8..<dataStart), path: path), path: path)
        let dataSize = file.size - dataStart

        var tensors: [String: StoredTensor] = [:]
        var packedWords: [String: PackedWordTensor] = [:]
        var spans: [(range: Range<Int>, name: String)] = []
        if let metadata = header.members["__metadata__"] {
            // The format's only non-tensor entry: an object of string values.
            for (key, value) in try JSONObjectReader(metadata, path: path, prefix: "__metadata__.").members {
                guard case .string = value else {
                    throw MobileLLMError.invalidFile(path: path, field: "__metadata__.\(key)", problem: "expected a string, found \(value.typeName)")
                }
            }
        }
        for (name, value) in header.members where name != "__metadata__" {
            let entry = try JSONObjectReader(value, path: path, prefix: name + ".")
            guard let dtypeName = try entry.optionalString("dtype") else {
                throw MobileLLMError.invalidFile(path: path, field: name + ".dtype", problem: "missing (expected F32, F16 or BF16)")
            }
            let isWords = dtypeName == "U32"
            let dtype = DType(rawValue: dtypeName)
            guard dtype != nil || isWords else {
                guard Self.otherDTypes.contains(dtypeName) else {
                    throw MobileLLMError.invalidFile(path: path, field: name + ".dtype", problem: "\"\(dtypeName)\" is not a safetensors dtype (expected F32, F16 or BF16, or U32 for MLX packed weights)")
                }
                throw MobileLLMError.unsupported(path: path, feature: "dtype \(dtypeName) of tensor '\(name)' (field '\(name).dtype'; expected F32, F16 or BF16, or U32 for MLX packed weights)")
            }
            let elementBytes = dtype?.byteSize ?? 4
            guard let shape = try entry.optionalIntArray("shape") else {
                throw MobileLLMError.invalidFile(path: path, field: name + ".shape", problem: "missing (expected an array of dimensions)")
            }
            guard let offsets = try entry.optionalIntArray("data_offsets"), offsets.count == 2 else {
                throw MobileLLMError.invalidFile(path: path, field: name + ".data_offsets", problem: "expected [begin, end]")
            }
            var elements = 1
            for dimension in shape {
                guard dimension >= 0 else {
                    throw MobileLLMError.invalidFile(path: path, field: name + ".shape", problem: "negative dimension \(dimension) (expected sizes >= 0)")
                }
                let (product, overflow) = elements.multipliedReportingOverflow(by: dimension)
                guard !overflow, product <= dataSize else {
                    throw MobileLLMError.invalidFile(path: path, field: name + ".shape", problem: "\(shape) has more elements than the file's \(dataSize) data bytes can hold")
                }
                elements = product
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, begin <= end, end <= dataSize else {
                throw MobileLLMError.invalidFile(path: path, field: name + ".data_offsets",
                                                 problem: "[\(begin), \(end)] is outside the \(dataSize) data bytes (expected 0 <= begin <= end <= \(dataSize))")
            }
            guard end - begin == elements * elementBytes else {
                throw MobileLLMError.invalidFile(path: path, field: name + ".data_offsets",
                                                 problem: "spans \(end - begin) bytes but shape \(shape) of \(dtypeName) needs \(elements * elementBytes)")
            }
            spans.append((begin..<end, name))
            if let dtype {
                tensors[name] = StoredTensor(name: name, type: dtype.tensorType, shape: shape, owner: file, pointer: base + dataStart + begin)
            } else {
                packedWords[name] = PackedWordTensor(name: name, shape: shape, owner: file, pointer: base + dataStart + begin)
            }
        }
        // As the reference implementation requires: tensors tile the data section exactly, without overlaps or gaps.
        spans.sort { ($0.range.lowerBound, $0.range.upperBound, $0.name) < ($1.range.lowerBound, $1.range.upperBound, $1.name) }
        var covered = 0, previous = ""
        for span in spans {
            guard span.range.lowerBound >= covered else {
                throw MobileLLMError.invalidFile(path: path, field: span.name + ".data_offsets", problem: "overlaps tensor '\(previous)' (expected to begin at \(covered))")
            }
            guard span.range.lowerBound == covered else {
                throw MobileLLMError.invalidFile(path: path, field: span.name + ".data_offsets",
                                                 problem: "data bytes \(covered)..<\(span.range.lowerBound) belong to no tensor (expected to begin at \(covered))")
            }
            covered = span.range.upperBound
            previous = span.name
        }
        guard covered == dataSize else {
            throw MobileLLMError.invalidFile(path: path, field: "(data)", problem: "the last \(dataSize - covered) data bytes belong to no tensor (expected the tensors to end at the end of the file)")
        }
        self.tensors = tensors
        self.packedWords = packedWords
    }
}

/// Heap memory owned by tensors made in memory (synthetic or converted weights). Freed when the last tensor goes.
public final class OwnedBuffer: @unchecked Sendable {
    /// The bytes.
    public let pointer: UnsafeMutableRawPointer
    /// Their count.
    public let byteCount: Int

    /// Allocates `byteCount` bytes aligned to 64.
    public init(byteCount: Int) {
        self.byteCount = byteCount
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(1, byteCount), alignment: 64)
    }

    /// Allocates `byteCount` bytes for weights the loader writes once and the kernels stream: blocks of 4 MB and more
    /// are aligned to 2 MB and offered to the kernel's transparent huge pages (`Platform.adviseHugePages`), so filling
    /// them takes one page fault per 2 MB instead of per 4 KB and streaming them needs fewer TLB entries.
    init(weightBytes byteCount: Int) {
        self.byteCount = byteCount
        let large = byteCount >= 4 << 20
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(1, byteCount), alignment: large ? 2 << 20 : 64)
        if large { Platform.adviseHugePages(pointer, byteCount / (2 << 20) * (2 << 20)) }
    }

    deinit { pointer.deallocate() }
}
