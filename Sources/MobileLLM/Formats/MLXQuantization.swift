import CMobileLLMKernels
import Dispatch
import Synchronization

/// MLX's affine quantization, as mlx-lm (`mlx_lm.convert -q`, 0.32) records it in config.json and stores it in the
/// weight files, and its lossless conversion to the engine's block types.
///
/// config.json holds `"quantization": {"group_size": G, "bits": B, "mode": "affine"}` (mlx-lm writes the same object
/// again as `quantization_config`). Mixed recipes add per-module entries keyed by module path, such as
/// `"model.layers.0.mlp.down_proj": {"group_size": 64, "bits": 6}`, and a module left in floats may be `false`.
///
/// A quantized module `M` stores three tensors:
/// - `M.weight`: U32 words [rows, in·B/32] holding the B-bit codes of each row little-endian: code i of a row is
///   bits B·i ..< B·i + B of the row's bit stream (word j holds bits 32·j ..< 32·j + 32);
/// - `M.scales` and `M.biases`: [rows, in/G] in F16, BF16 or F32;
/// - the weight (r, i) is `scales[r, i/G] · code + biases[r, i/G]`.
///
/// The directory checks every such matrix as it opens, and converts it when the model first asks for it (the loader
/// then lays it out for its kernels, in place, before asking for the next one), into a type the kernels multiply,
/// without changing a weight:
/// - 4-bit and 5-bit codes become Q4_1 and Q5_1 (`w = d·q + m` per 32 weights, with d and m as f16) when every
///   scale and bias of the matrix is exactly an f16 value: the group's scale and bias are repeated for each of its
///   32-weight blocks, so the weights are the same numbers bit for bit, and multiply at Q4_1/Q5_1 speed;
/// - every other matrix (2, 3, 6 or 8 bits, or scales outside f16's range) is expanded to F32, exactly.
public struct MLXQuantization: Sendable, Equatable {
    /// The bits and group size of one module (or of the model's default).
    public struct Setting: Sendable, Equatable, Hashable {
        /// Bits per code: 2, 3, 4, 5, 6 or 8.
        public var bits: Int
        /// Weights sharing one scale and bias: 32, 64 or 128.
        public var groupSize: Int
    }

    /// The setting of every module without its own entry.
    public var setting: Setting
    /// Per-module entries by module path (`model.layers.0.mlp.down_proj`); nil: the module is not quantized.
    public var overrides: [String: Setting?]

    /// The bit widths MLX's affine mode writes.
    public static let supportedBits = [2, 3, 4, 5, 6, 8]
    /// The group sizes MLX's affine mode writes.
    public static let supportedGroupSizes = [32, 64, 128]

    /// The setting of module `module` (a tensor name without `.weight`); nil when the recipe leaves it in floats.
    public func setting(forModule module: String) -> Setting? {
        if let entry = overrides[module] { return entry }
        return setting
    }

    /// The recipe in config.json `config` (read from `path`), or nil when config.json has no MLX quantization.
    /// `quantization` is read first, then `quantization_config` (a `quantization_config` that names a
    /// `quant_method`, such as GPTQ or AWQ, is another format and yields nil).
    static func parse(_ config: JSONValue, path: String) throws -> MLXQuantization? {
        let reader = try JSONObjectReader(config, path: path)
        let key: String
        if reader.has("quantization") {
            key = "quantization"
        } else if reader.has("quantization_config") {
            key = "quantization_config"
        } else {
            return nil
        }
        guard let object = try reader.optionalObject(key) else { return nil }
        if key == "quantization_config", object.has("quant_method") { return nil }
        let setting = try Self.setting(object, path: path, field: key)
        var overrides: [String: Setting?] = [:]
        for (name, value) in object.members where !["group_size", "bits", "mode"].contains(name) {
            switch value {
            case .bool(false), .null:
                overrides[name] = .some(nil)
            case .bool(true):
                overrides[name] = setting
            case .object:
                overrides[name] = try Self.setting(try JSONObjectReader(value, path: path, prefix: "\(key).\(name)."),
                                                   path: path, field: "\(key).\(name)", defaults: setting)
            default:
                throw MobileLLMError.invalidFile(path: path, field: "\(key).\(name)",
                                                 problem: "expected a module's {\"group_size\", \"bits\"} or false, found \(value.typeName)")
            }
        }
        return MLXQuantization(setting: setting, overrides: overrides)
    }

    /// The bits and group size of `object` (`field` in errors), each defaulting to `defaults` when absent there.
    private static func setting(_ object: JSONObjectReader, path: String, field: String, defaults: Setting? = nil) throws -> Setting {
        if let mode = try object.optionalString("mode"), mode != "affine" {
            throw MobileLLMError.unsupported(path: path, feature: "MLX quantization mode \"\(mode)\" (field '\(field).mode'; this engine reads \"affine\")")
        }
        guard let bits = try object.optionalInt("bits") ?? defaults?.bits else {
            throw MobileLLMError.invalidFile(path: path, field: field + ".bits", problem: "missing (expected one of \(supportedBits.map(String.init).joined(separator: ", ")))")
        }
        guard supportedBits.contains(bits) else {
            throw MobileLLMError.invalidFile(path: path, field: field + ".bits", problem: "\(bits) is not an MLX affine bit width (expected one of \(supportedBits.map(String.init).joined(separator: ", ")))")
        }
        guard let group = try object.optionalInt("group_size") ?? defaults?.groupSize else {
            throw MobileLLMError.invalidFile(path: path, field: field + ".group_size", problem: "missing (expected 32, 64 or 128)")
        }
        guard supportedGroupSizes.contains(group) else {
            throw MobileLLMError.invalidFile(path: path, field: field + ".group_size", problem: "\(group) is not an MLX group size (expected 32, 64 or 128)")
        }
        return Setting(bits: bits, groupSize: group)
    }
}

/// One MLX-quantized matrix as the loader found and converted it (`ModelDirectory.mlxTensors`).
public struct MLXQuantizedTensor: Sendable, Equatable {
    /// The weight's name (`model.layers.0.self_attn.q_proj.weight`).
    public var name: String
    /// Its recipe.
    public var setting: MLXQuantization.Setting
    /// The type the engine holds it in: Q4_1 or Q5_1 (the same weights) or F32 (expanded exactly).
    public var storedAs: QuantType
    /// The dtype of its scales and biases.
    public var scaleType: QuantType
}

/// One MLX packed matrix, checked, that `MLXQuantization.materialize` converts when the model first asks for it.
struct MLXPendingMatrix: @unchecked Sendable {
    let packed: PackedWordTensor
    let scales: StoredTensor
    let biases: StoredTensor
    let record: MLXQuantizedTensor
    /// Columns of the matrix (codes per row).
    let columns: Int
}

/// Converted MLX matrices by name, shared by copies of a `ModelDirectory` (filled on first request).
final class MLXConvertedMatrices: Sendable {
    let tensors = Mutex<[String: StoredTensor]>([:])
}

extension MLXQuantization {
    /// Checks every packed matrix among `words` against `recipe` and its scales and biases in `tensors`, and says what
    /// each becomes: `tensors` without the `scales`/`biases` of those matrices, the matrices to convert by weight name,
    /// and the records. `recipe` nil with packed words present is an error (`configPath` names config.json), as are
    /// missing scales or biases and shapes that disagree with the recipe. Reads the scales and biases (1/16 of the
    /// weights or less), not the codes.
    static func plan(words: [String: PackedWordTensor], tensors: [String: StoredTensor], recipe: MLXQuantization?,
                     configPath: String) throws -> (tensors: [String: StoredTensor], pending: [String: MLXPendingMatrix], records: [MLXQuantizedTensor]) {
        var result = tensors
        var pending: [String: MLXPendingMatrix] = [:]
        var records: [MLXQuantizedTensor] = []
        for name in words.keys.sorted() {
            guard let packed = words[name] else { continue }
            let file = (packed.owner as? MappedFile)?.path ?? configPath
            guard name.hasSuffix(".weight") else {
                throw MobileLLMError.invalidFile(path: file, field: name + ".dtype",
                                                 problem: "U32 is only read for MLX packed weights (a module's `weight`, with its `scales` and `biases`)")
            }
            let module = String(name.dropLast(".weight".count))
            guard let recipe else {
                throw MobileLLMError.invalidFile(path: configPath, field: "quantization",
                                                 problem: "missing: \(name) in \(file) is U32 (MLX packed codes), which needs config.json's \"quantization\": {\"group_size\", \"bits\"}")
            }
            guard let setting = recipe.setting(forModule: module) else {
                throw MobileLLMError.invalidFile(path: configPath, field: "quantization.\(module)",
                                                 problem: "says the module is not quantized, but \(name) in \(file) is U32 (MLX packed codes)")
            }
            let matrix = try check(packed, module: module, setting: setting, tensors: tensors, file: file)
            pending[name] = matrix
            records.append(matrix.record)
            result[module + ".scales"] = nil
            result[module + ".biases"] = nil
        }
        return (result, pending, records)
    }

    /// One packed matrix's shapes, scales and biases checked, and the type it becomes (see the type comment).
    private static func check(_ packed: PackedWordTensor, module: String, setting: Setting, tensors: [String: StoredTensor],
                              file: String) throws -> MLXPendingMatrix {
        let name = packed.name, bits = setting.bits, group = setting.groupSize
        let recipeText = "\(bits)-bit codes in groups of \(group)"
        guard packed.shape.count == 2 else {
            throw MobileLLMError.invalidFile(path: file, field: name + ".shape", problem: "\(packed.shape) (expected [rows, words] for \(recipeText))")
        }
        let rows = packed.shape[0], wordsPerRow = packed.shape[1]
        guard wordsPerRow > 0, (wordsPerRow * 32) % bits == 0, (wordsPerRow * 32 / bits) % group == 0 else {
            throw MobileLLMError.invalidFile(path: file, field: name + ".shape",
                                             problem: "\(packed.shape): \(wordsPerRow) words of \(recipeText) do not hold a whole number of groups (expected words = columns·\(bits)/32 with columns a multiple of \(group))")
        }
        let columns = wordsPerRow * 32 / bits, groups = columns / group
        var parts: [StoredTensor] = []
        for part in ["scales", "biases"] {
            guard let tensor = tensors[module + "." + part] else {
                throw MobileLLMError.invalidFile(path: file, field: module + "." + part,
                                                 problem: "missing: the MLX quantized weight \(name) needs \(module).scales and \(module).biases [\(rows), \(groups)]")
            }
            let partFile = (tensor.owner as? MappedFile)?.path ?? file
            guard tensor.shape == [rows, groups] else {
                throw MobileLLMError.invalidFile(path: partFile, field: tensor.name + ".shape",
                                                 problem: "\(tensor.shape) does not match \(name) \(packed.shape) with \(recipeText) (expected [\(rows), \(groups)]: \(columns) columns / \(group))")
            }
            parts.append(tensor)
        }
        let fitsF16 = (bits == 4 || bits == 5) && exactlyF16(floats(parts[0])) && exactlyF16(floats(parts[1]))
        let type: QuantType = fitsF16 ? (bits == 4 ? .q4_1 : .q5_1) : .f32
        return MLXPendingMatrix(packed: packed, scales: parts[0], biases: parts[1],
                                record: MLXQuantizedTensor(name: name, setting: setting, storedAs: type, scaleType: parts[0].type),
                                columns: columns)
    }

    /// The checked matrix `matrix` converted to its type in owned memory on up to `threads` threads; the file pages of
    /// its codes are released afterwards.
    static func materialize(_ matrix: MLXPendingMatrix, threads: Int) -> StoredTensor {
        let packed = matrix.packed, type = matrix.record.storedAs, columns = matrix.columns
        let bits = matrix.record.setting.bits, group = matrix.record.setting.groupSize
        let rows = packed.shape[0], wordsPerRow = packed.shape[1]
        let scales = floats(matrix.scales), biases = floats(matrix.biases)
        let rowBytes = type.rowBytes(columns) ?? 0
        let buffer = OwnedBuffer(weightBytes: rows * rowBytes)
        let d = type == .f32 ? [] : halves(scales), m = type == .f32 ? [] : halves(biases)
        let source = UnsafeSendableRawPointer(packed.pointer), output = UnsafeSendablePointer(buffer.pointer)
        let workers = max(1, min(threads, rows * columns / (1 << 16) + 1, rows))
        scales.withUnsafeBufferPointer { scales in
            biases.withUnsafeBufferPointer { biases in
                d.withUnsafeBufferPointer { d in
                    m.withUnsafeBufferPointer { m in
                        let rowsIn = MatrixRows(words: source, wordsPerRow: wordsPerRow, bits: bits, columns: columns, group: group,
                                                scales: scales, biases: biases, d: d, m: m)
                        DispatchQueue.concurrentPerform(iterations: workers) { worker in
                            let codes = UnsafeMutablePointer<UInt8>.allocate(capacity: columns)
                            defer { codes.deallocate() }
                            for row in rows * worker / workers ..< rows * (worker + 1) / workers {
                                if type == .q4_1 {
                                    rowsIn.writeQ4_1(row, to: output.pointer + row * rowBytes)
                                    continue
                                }
                                rowsIn.codes(row, into: codes)
                                rowsIn.write(row, codes: codes, as: type, to: output.pointer + row * rowBytes)
                            }
                        }
                    }
                }
            }
        }
        TensorConversion.releasePages(pointer: packed.pointer, byteCount: packed.count * 4, owner: packed.owner)
        return StoredTensor(name: packed.name, type: type, shape: [rows, columns], owner: buffer, pointer: UnsafeRawPointer(buffer.pointer))
    }

    /// A float tensor's values as f32.
    private static func floats(_ tensor: StoredTensor) -> [Float] {
        let count = tensor.count
        let dtype: mlk_dtype = tensor.type == .f16 ? MLK_DTYPE_F16 : tensor.type == .bf16 ? MLK_DTYPE_BF16 : MLK_DTYPE_F32
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            if let base = buffer.baseAddress { mlk_convert_to_f32(tensor.pointer, dtype, Int64(count), base) }
            initialized = count
        }
    }

    /// The f16 bit patterns of `values` (round to nearest even).
    private static func halves(_ values: [Float]) -> [UInt16] {
        [UInt16](unsafeUninitializedCapacity: values.count) { buffer, initialized in
            if let base = buffer.baseAddress { values.withUnsafeBufferPointer { mlk_convert_f32_to_f16($0.baseAddress, Int64(values.count), base) } }
            initialized = values.count
        }
    }

    /// True when every value is an f16 value (converting it to f16 and back gives the same float).
    private static func exactlyF16(_ values: [Float]) -> Bool {
        let half = halves(values)
        var back = [Float](repeating: 0, count: values.count)
        half.withUnsafeBufferPointer { h in back.withUnsafeMutableBufferPointer { mlk_convert_to_f32(h.baseAddress, MLK_DTYPE_F16, Int64(values.count), $0.baseAddress) } }
        return zip(values, back).allSatisfy { $0 == $1 }
    }

    /// Reads the rows of one packed matrix and writes them as Q4_1, Q5_1 or F32.
    private struct MatrixRows: @unchecked Sendable {
        let words: UnsafeSendableRawPointer
        let wordsPerRow: Int, bits: Int, columns: Int, group: Int
        let scales: UnsafeBufferPointer<Float>, biases: UnsafeBufferPointer<Float>
        let d: UnsafeBufferPointer<UInt16>, m: UnsafeBufferPointer<UInt16>

        /// The codes of row `row` (values 0 ..< 2^bits), one per byte.
        func codes(_ row: Int, into codes: UnsafeMutablePointer<UInt8>) {
            let base = words.pointer + row * wordsPerRow * 4
            @inline(__always) func word(_ j: Int) -> UInt32 {
                UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * j, as: UInt32.self))
            }
            let mask = UInt32(1) << UInt32(bits) - 1
            if 32 % bits == 0 {
                let perWord = 32 / bits
                for j in 0..<wordsPerRow {
                    var w = word(j)
                    for t in 0..<perWord {
                        codes[j * perWord + t] = UInt8(truncatingIfNeeded: w & mask)
                        w >>= UInt32(bits)
                    }
                }
                return
            }
            for i in 0..<columns {
                let bit = i * bits, j = bit >> 5, shift = UInt32(bit & 31)
                var v = word(j) >> shift
                if Int(shift) + bits > 32 { v |= word(j + 1) << (32 - shift) }
                codes[i] = UInt8(truncatingIfNeeded: v & mask)
            }
        }

        /// Writes 4-bit row `row` as Q4_1 straight from its words: a 32-code block is 4 words, codes 0-15 in the first
        /// two and 16-31 in the last two, and Q4_1's byte i holds code i (low nibble) and code i + 16 (high nibble).
        func writeQ4_1(_ row: Int, to destination: UnsafeMutableRawPointer) {
            let base = words.pointer + row * wordsPerRow * 4, groups = columns / group
            @inline(__always) func word(_ j: Int) -> UInt64 {
                UInt64(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * j, as: UInt32.self)))
            }
            /// The 8 nibbles of a word, nibble i in the low half of byte i.
            @inline(__always) func spread(_ w: UInt64) -> UInt64 {
                var x = (w | w << 16) & 0x0000_FFFF_0000_FFFF
                x = (x | x << 8) & 0x00FF_00FF_00FF_00FF
                return (x | x << 4) & 0x0F0F_0F0F_0F0F_0F0F
            }
            for block in 0..<(columns / 32) {
                let g = row * groups + block * 32 / group
                let out = destination + block * 20
                out.storeBytes(of: d[g].littleEndian, toByteOffset: 0, as: UInt16.self)
                out.storeBytes(of: m[g].littleEndian, toByteOffset: 2, as: UInt16.self)
                let j = 4 * block
                out.storeBytes(of: (spread(word(j)) | spread(word(j + 2)) << 4).littleEndian, toByteOffset: 4, as: UInt64.self)
                out.storeBytes(of: (spread(word(j + 1)) | spread(word(j + 3)) << 4).littleEndian, toByteOffset: 12, as: UInt64.self)
            }
        }

        /// Writes row `row` (its `codes`) at `destination` as `type`.
        func write(_ row: Int, codes: UnsafeMutablePointer<UInt8>, as type: QuantType, to destination: UnsafeMutableRawPointer) {
            let groups = columns / group
            switch type {
            case .q4_1, .q5_1:
                let blockBytes = type.blockBytes
                for block in 0..<(columns / 32) {
                    let g = row * groups + block * 32 / group
                    let out = destination + block * blockBytes
                    let c = codes + block * 32
                    out.storeBytes(of: d[g].littleEndian, toByteOffset: 0, as: UInt16.self)
                    out.storeBytes(of: m[g].littleEndian, toByteOffset: 2, as: UInt16.self)
                    var offset = 4
                    if type == .q5_1 {
                        var high: UInt32 = 0
                        for j in 0..<32 { high |= UInt32(c[j] >> 4) << UInt32(j) }
                        out.storeBytes(of: high.littleEndian, toByteOffset: 4, as: UInt32.self)
                        offset = 8
                    }
                    for j in 0..<16 {
                        out.storeBytes(of: (c[j] & 15) | (c[j + 16] & 15) << 4, toByteOffset: offset + j, as: UInt8.self)
                    }
                }
            default:
                let out = destination.assumingMemoryBound(to: Float.self)
                for i in 0..<columns {
                    let g = row * groups + i / group
                    out[i] = scales[g] * Float(codes[i]) + biases[g]
                }
            }
        }
    }
}
