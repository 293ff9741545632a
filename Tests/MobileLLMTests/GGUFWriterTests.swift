import Foundation
import Testing
@testable import MobileLLM

/// The GGUF writer against the GGUF reader: every metadata type survives a round trip, tensor data lands aligned
/// and unchanged, and everything a reader would reject is refused before anything is written.
@Suite("GGUF writer")
struct GGUFWriterTests {
    /// One value of every scalar type (extremes included), strings, arrays of every element type (empty ones too)
    /// and arrays nested three deep.
    static let everyValue: [(String, GGUFValue)] = [
        ("general.architecture", .string("llama")),
        ("t.uint8", .uint8(255)), ("t.int8", .int8(-128)), ("t.uint16", .uint16(65535)), ("t.int16", .int16(-32768)),
        ("t.uint32", .uint32(.max)), ("t.int32", .int32(.min)), ("t.float32", .float32(-1.5e-7)),
        ("t.float32.inf", .float32(.infinity)), ("t.bool.true", .bool(true)), ("t.bool.false", .bool(false)),
        ("t.string", .string("héllo, 世界 🦙\n\"quoted\"")), ("t.string.empty", .string("")),
        ("t.uint64", .uint64(.max)), ("t.int64", .int64(.min)), ("t.float64", .float64(-0.1)),
        ("a.uint8", .array(.uint8([0, 1, 255]))), ("a.int8", .array(.int8([-128, 0, 127]))),
        ("a.uint16", .array(.uint16([0, 65535]))), ("a.int16", .array(.int16([-32768, 32767]))),
        ("a.uint32", .array(.uint32([0, .max]))), ("a.int32", .array(.int32([.min, -1, .max]))),
        ("a.float32", .array(.float32([0, -0.0, 3.25, .greatestFiniteMagnitude]))), ("a.bool", .array(.bool([true, false, true]))),
        ("a.string", .array(.string(["", "a b", "Ġthe", "<|begin_of_text|>"]))), ("a.uint64", .array(.uint64([0, .max]))),
        ("a.int64", .array(.int64([.min, .max]))), ("a.float64", .array(.float64([1e300, -1e-300]))),
        ("a.empty.int32", .array(.int32([]))), ("a.empty.string", .array(.string([]))),
        ("a.nested", .array(.array([.int32([1, 2]), .string(["x"]), .array([.float32([0.5]), .uint8([])]), .bool([])]))),
        ("a.nested.empty", .array(.array([]))),
    ]

    @Test("every metadata type and nested arrays round-trip through the reader, in order")
    func metadataRoundTrip() throws {
        let directory = try TemporaryDirectory()
        var writer = try GGUFWriter()
        for (key, value) in Self.everyValue { try writer.set(key, value) }
        let path = directory.path + "/meta.gguf"
        try writer.write(to: path)
        let file = try GGUFFile(path: path)
        #expect(file.version == 3)
        #expect(file.metadataKeys == Self.everyValue.map(\.0) + ["general.alignment"])
        for (key, value) in Self.everyValue {
            #expect(file.metadata[key] == value, "\(key)")
        }
        #expect(file.metadata["general.alignment"] == .uint32(32))
        #expect(file.tensors.isEmpty)
    }

    @Test("tensor data of several types and shapes is aligned and unchanged", arguments: [32, 64, 1])
    func tensorsRoundTrip(alignment: Int) throws {
        let directory = try TemporaryDirectory()
        var writer = try GGUFWriter(alignment: alignment)
        try writer.set("general.architecture", .string("test"))
        var generator = SeededGenerator(seed: 3)
        func randomBytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8(truncatingIfNeeded: generator.next()) } }
        // name, type, ggml dimensions
        let specs: [(String, GGMLType, [Int])] = [
            ("a.f32", .f32, [7]), ("b.f16", .f16, [5, 3]), ("c.q4_0", .q4_0, [64, 3]), ("d.q8_0", .q8_0, [32, 2, 2]),
            ("e.bf16", .bf16, [3, 1, 1, 2]), ("f.q6_k", .q6_K, [256, 1]), ("g.q4_1", .q4_1, [32, 5]),
        ]
        var contents: [String: [UInt8]] = [:]
        let buffers = try specs.map { name, type, dimensions -> OwnedBuffer in
            let size = dimensions.reduce(1, *) / type.blockSize * type.blockBytes
            let bytes = randomBytes(size)
            contents[name] = bytes
            let buffer = OwnedBuffer(byteCount: size)
            buffer.pointer.copyMemory(from: bytes, byteCount: size)
            if name.hasPrefix("c") || name.hasPrefix("g") {
                // Produced row by row while writing.
                try writer.addTensor(name: name, type: type, dimensions: dimensions) { rows, destination in
                    let rowBytes = dimensions[0] / type.blockSize * type.blockBytes
                    destination.copyMemory(from: UnsafeRawBufferPointer(start: buffer.pointer + rows.lowerBound * rowBytes, count: rows.count * rowBytes))
                }
            } else {
                try writer.addTensor(name: name, type: type, dimensions: dimensions,
                                     bytes: UnsafeRawBufferPointer(start: buffer.pointer, count: size), owner: buffer)
            }
            return buffer
        }
        let path = directory.path + "/tensors.gguf"
        var reports: [GGUFWriteProgress] = []
        try writer.write(to: path) { reports.append($0) }
        withExtendedLifetime(buffers) {}
        #expect(reports.map(\.tensorIndex) == Array(0...specs.count))
        #expect(reports.last?.bytesWritten == contents.values.reduce(0) { $0 + $1.count })

        let file = try GGUFFile(path: path)
        #expect(file.alignment == alignment)
        #expect(file.metadata["general.alignment"] == .uint32(UInt32(alignment)))
        #expect(file.dataOffset % alignment == 0)
        #expect(file.tensors.map(\.name) == specs.map(\.0))
        for (info, spec) in zip(file.tensors, specs) {
            #expect(info.type == spec.1)
            #expect(info.dimensions == spec.2)
            #expect(info.offset % alignment == 0)
            let data = try #require(file.data(of: info))
            #expect(Array(data) == contents[spec.0], "\(spec.0)")
        }
    }

    @Test("malformed metadata and tensors are refused with the key or tensor named")
    func malformedWritesRefused() throws {
        func refused(_ name: String, _ body: () throws -> Void) {
            do {
                try body()
                Issue.record("\(name): accepted")
            } catch let error as MobileLLMError {
                guard case .invalidArgument = error else { Issue.record("\(name): \(error)"); return }
            } catch {
                Issue.record("\(name): \(error)")
            }
        }
        for alignment in [0, 3, 48, -32, 1 << 21] {
            refused("alignment \(alignment)") { _ = try GGUFWriter(alignment: alignment) }
        }
        var writer = try GGUFWriter()
        try writer.set("k", .uint8(1))
        refused("duplicate key") { try writer.set("k", .uint8(2)) }
        refused("empty key") { try writer.set("", .uint8(2)) }
        refused("alignment key with another value") { try writer.set("general.alignment", .uint32(64)) }
        refused("alignment key with another type") { try writer.set("general.alignment", .uint64(32)) }
        var deep = GGUFArray.int32([1])
        for _ in 0..<8 { deep = .array([deep]) }
        refused("arrays nested 9 deep") { try writer.set("deep", .array(deep)) }

        let bytes = [UInt8](repeating: 0, count: 4096)
        try bytes.withUnsafeBytes { raw in
            try writer.addTensor(name: "w", type: .q8_0, dimensions: [32, 2], bytes: UnsafeRawBufferPointer(rebasing: raw[0..<68]))
            refused("duplicate tensor") { try writer.addTensor(name: "w", type: .f32, dimensions: [1], bytes: UnsafeRawBufferPointer(rebasing: raw[0..<4])) }
            refused("row not a multiple of the block") { try writer.addTensor(name: "x", type: .q4_0, dimensions: [30, 2], bytes: UnsafeRawBufferPointer(rebasing: raw[0..<36])) }
            refused("too few bytes") { try writer.addTensor(name: "x", type: .f16, dimensions: [4, 4], bytes: UnsafeRawBufferPointer(rebasing: raw[0..<31])) }
            refused("too many bytes") { try writer.addTensor(name: "x", type: .q4_0, dimensions: [32], bytes: UnsafeRawBufferPointer(rebasing: raw[0..<19])) }
            refused("no dimensions") { try writer.addTensor(name: "x", type: .f32, dimensions: [], bytes: UnsafeRawBufferPointer(rebasing: raw[0..<4])) }
            refused("five dimensions") { try writer.addTensor(name: "x", type: .f32, dimensions: [1, 1, 1, 1, 1], bytes: UnsafeRawBufferPointer(rebasing: raw[0..<4])) }
            refused("zero dimension") { try writer.addTensor(name: "x", type: .f32, dimensions: [4, 0], bytes: UnsafeRawBufferPointer(rebasing: raw[0..<0])) }
            refused("name too long") { try writer.addTensor(name: String(repeating: "n", count: 64), type: .f32, dimensions: [1], bytes: UnsafeRawBufferPointer(rebasing: raw[0..<4])) }
            refused("empty name") { try writer.addTensor(name: "", type: .f32, dimensions: [1], bytes: UnsafeRawBufferPointer(rebasing: raw[0..<4])) }
            refused("produced tensor with a bad row") { try writer.addTensor(name: "y", type: .q4_K, dimensions: [128, 1]) { _, _ in } }
        }
        // The refused additions left no trace: the writer still holds exactly one key and one tensor.
        #expect(writer.metadata.map(\.key) == ["k"])
        #expect(writer.tensors.map(\.name) == ["w"])
    }

    @Test("a failure while writing leaves no file behind and an existing file untouched")
    func atomicWrite() throws {
        struct Boom: Error {}
        let directory = try TemporaryDirectory()
        let path = try directory.write("model.gguf", "previous contents")
        var writer = try GGUFWriter()
        try writer.set("general.architecture", .string("test"))
        // 32 MB: the first 16 MB chunk is written, the second fails.
        try writer.addTensor(name: "big", type: .f32, dimensions: [1024, 8192]) { rows, destination in
            if rows.lowerBound >= 4096 { throw Boom() }
            destination.initializeMemory(as: UInt8.self, repeating: 1)
        }
        #expect(throws: Boom.self) { try writer.write(to: path) }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "previous contents")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["model.gguf"])

        let fresh = directory.path + "/new.gguf"
        #expect(throws: Boom.self) { try writer.write(to: fresh) }
        #expect(!FileManager.default.fileExists(atPath: fresh))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["model.gguf"])

        #expect(throws: MobileLLMError.self) { try GGUFWriter().write(to: directory.path + "/missing/dir/x.gguf") }
    }
}
