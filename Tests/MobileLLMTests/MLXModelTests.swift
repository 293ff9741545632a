import Foundation
import Testing
import CMobileLLMKernels
import MobileLLMTools
@testable import MobileLLM

/// MLX directories written by mlx-lm itself (scripts/make_mlx_fixtures.py converts the golden fixtures at 4-bit/g64,
/// 8-bit/g32 and a mixed 4/6-bit recipe) against logits MLX computed on the same quantized weights in float32.
@Suite("MLX checkpoints from mlx-lm")
struct MLXModelTests {
    /// Every fixture under Tests/Fixtures/mlx (the directory listing, so a fixture the script adds is tested too).
    static let fixtures: [String] = {
        let root = Fixtures.path("mlx")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return names.filter { FileManager.default.fileExists(atPath: root + "/" + $0 + "/reference.json") }.sorted().map { "mlx/" + $0 }
    }()

    @Test("the fixtures cover MobileLLM-R1's llama4_text at every recipe")
    func coverage() {
        for recipe in ["q4g64", "q8g32", "mixed46", "mlx"] {
            #expect(Self.fixtures.contains("mlx/llama4-r1like-bf16-sharded-" + recipe), "missing mlx/llama4-r1like-bf16-sharded-\(recipe)")
        }
        // Every bit width MLX writes: 2, 3, 5 and 6 (straddling words), 4 and 8.
        for fixture in ["qwen3-bf16-tied-q2g64", "llama-bf16-untied-q3g32", "qwen3-bf16-tied-q5g32", "llama-f16-q6g32"] {
            #expect(Self.fixtures.contains("mlx/" + fixture), "missing mlx/\(fixture)")
        }
        #expect(Self.fixtures.count >= 11)
    }

    @Test("logits match MLX within 1e-3", arguments: fixtures)
    func logitsMatch(fixture: String) throws {
        // An f32 KV cache, as MLX's reference (the default for quantized weights is f16).
        try expectLogits(of: try Model(path: Fixtures.path(fixture)), match: try ModelReference.load(fixture), fixture: fixture,
                         kvCacheType: .f32)
    }

    @Test("greedy continuations are identical to MLX's", arguments: fixtures)
    func greedyMatches(fixture: String) throws {
        try expectGreedy(of: try Model(path: Fixtures.path(fixture)), match: try ModelReference.load(fixture), fixture: fixture)
    }

    @Test("4-bit and 5-bit matrices are held as Q4_1/Q5_1, the rest expanded to F32", arguments: fixtures)
    func storage(fixture: String) throws {
        let directory = try ModelDirectory(path: Fixtures.path(fixture))
        guard !fixture.hasSuffix("-mlx") else {
            // An unquantized conversion: a plain directory.
            #expect(directory.mlxQuantization == nil && directory.mlxTensors.isEmpty)
            return
        }
        let recipe = try #require(directory.mlxQuantization)
        #expect(!directory.mlxTensors.isEmpty)
        if fixture.hasSuffix("q5g32") { #expect(directory.mlxTensors.allSatisfy { $0.storedAs == .q5_1 }, "bf16 scales are f16 values") }
        for tensor in directory.mlxTensors {
            let expected: QuantType = tensor.setting.bits == 4 ? .q4_1 : tensor.setting.bits == 5 ? .q5_1 : .f32
            #expect(tensor.storedAs == expected, "\(fixture): \(tensor.name) \(tensor.setting) stored as \(tensor.storedAs)")
            #expect(directory.tensor(named: tensor.name)?.type == tensor.storedAs)
            let module = String(tensor.name.dropLast(".weight".count))
            #expect(tensor.setting == recipe.setting(forModule: module))
            #expect(directory.tensor(named: module + ".scales") == nil && directory.tensor(named: module + ".biases") == nil)
        }
        if fixture.hasSuffix("mixed46") {
            #expect(Set(directory.mlxTensors.map(\.setting.bits)) == [4, 6], "\(fixture): a mixed recipe holds 4- and 6-bit matrices")
        }
    }

    @Test("quantize writes a GGUF from an MLX directory: F32 computes the same logits, Q4_1 copies the 4-bit matrices byte for byte",
          arguments: fixtures.filter { $0.hasSuffix("q4g64") || $0.hasSuffix("mixed46") })
    func ggufRoundTrip(fixture: String) throws {
        let temporary = try TemporaryDirectory()
        let directory = try ModelDirectory(path: Fixtures.path(fixture))
        let reference = try ModelReference.load(fixture)
        let mlx = try Model(path: Fixtures.path(fixture))
        // F32: every matrix expanded exactly, so the GGUF computes what the MLX directory computes.
        let f32 = temporary.path + "/f32.gguf"
        _ = try GGUFExport.write(modelAt: Fixtures.path(fixture), to: f32, options: GGUFExportOptions(type: .f32))
        let exported = try Model(path: f32)
        for sequence in reference.sequences {
            let a = try mlx.makeSession(contextLength: 64, kvCacheType: .f32).feed(sequence.tokens, logits: .all)
            let b = try exported.makeSession(contextLength: 64, kvCacheType: .f32).feed(sequence.tokens, logits: .all)
            for row in 0..<sequence.tokens.count {
                // Float rounding only (a llama model's q/k rows are permuted to llama.cpp's RoPE pairing).
                #expect(maxAbsDifference(a.row(row), b.row(row)) <= 1e-4, "\(fixture): position \(row)")
            }
        }
        // Q4_1: the matrices MLX stored at 4 bits are held as Q4_1 already, and reach the file unchanged (the float
        // matrices MLX left unquantized are quantized like any other source's).
        let q41 = temporary.path + "/q4_1.gguf"
        _ = try GGUFExport.write(modelAt: Fixtures.path(fixture), to: q41, options: GGUFExportOptions(type: .q4_1))
        let gguf = try GGUFModelSource(path: q41)
        let schema = try #require(ArchitectureRegistry.architecture(for: directory.configuration.modelType)).tensors(directory.configuration)
        var copied = 0
        for tensor in directory.mlxTensors where tensor.storedAs == .q4_1 {
            let loaded = try #require(directory.tensor(named: tensor.name)), written = try #require(gguf.tensor(named: tensor.name))
            #expect(written.type == .q4_1 && written.shape == loaded.shape, "\(fixture): \(tensor.name)")
            guard written.type == .q4_1, written.shape == loaded.shape else { continue }
            var sourceRow: (Int) -> Int = { $0 }
            if case let .llamaPairs(heads)? = schema.spec(named: tensor.name)?.ggufRowOrder {
                sourceRow = GGUFExport.llamaCppPermutation(headCount: heads, headDimension: directory.configuration.headDimension)
            }
            let rowBytes = loaded.shape[1] / 32 * 20
            let same = (0..<loaded.shape[0]).allSatisfy { row in
                memcmp(loaded.pointer + sourceRow(row) * rowBytes, written.pointer + row * rowBytes, rowBytes) == 0
            }
            #expect(same, "\(fixture): \(tensor.name) changed")
            copied += 1
        }
        #expect(copied > 0)
    }

    @Test("int8 interleaves MLX 4-bit/g64 matrices in pairs (Q4_0's density); logits equal the row-major int8 kernels'",
          arguments: fixtures.filter { $0.hasSuffix("q4g64") })
    func int8Pairs(fixture: String) throws {
        let path = Fixtures.path(fixture)
        let int8 = try Model(path: path, options: ModelLoadOptions(activationPrecision: .int8))
        var rowMajorOptions = ModelLoadOptions(activationPrecision: .int8)
        rowMajorOptions.interleavesWeights = false
        let rowMajor = try Model(path: path, options: rowMajorOptions)
        let exact = try Model(path: path)
        let pairs = int8.weights.matrices.filter { $0.layout == Int32(MLK_R8_Q4_1_PAIRS) }
        if mlk_q_r8_worthwhile(QuantType.q4_1.rawValue, 64, 64) != 0 {
            #expect(!pairs.isEmpty, "\(fixture): no matrix interleaved in pairs")
            for matrix in pairs { #expect(matrix.byteCount == matrix.rows * matrix.columns / 64 * 36) }
        }
        #expect(exact.fingerprint == int8.fingerprint)
        let reference = try ModelReference.load(fixture)
        for sequence in reference.sequences {
            let a = try int8.makeSession().feed(sequence.tokens, logits: .all)
            let b = try rowMajor.makeSession().feed(sequence.tokens, logits: .all)
            let scale = b.values.map(abs).max() ?? 1
            // The two int8 paths sum in different orders, so a last-bit difference can flip one activation's 8-bit
            // rounding downstream, a step of 1/254 of its block's range, which this random model amplifies to a few
            // tenths of a percent of the logits (0.27% measured); a wrong interleaving moves them by the whole scale.
            #expect(maxAbsDifference(a.values, b.values) <= 0.01 * max(1, scale), "\(fixture): interleaved vs row-major int8")
        }
    }

    @Test("inspect reports the recipe per tensor type as config.json and the weight headers give it", arguments: fixtures)
    func inspect(fixture: String) throws {
        let report = try ModelReport(model: try Model(path: Fixtures.path(fixture)))
        guard !fixture.hasSuffix("-mlx") else {
            #expect(report.mlxQuantization == nil && report.unreadTensors.isEmpty)
            return
        }
        let mlx = try #require(report.mlxQuantization)
        let config = try JSONValue.load(path: Fixtures.path(fixture) + "/config.json")
        guard case let .object(recipe)? = config["quantization"] else {
            Issue.record("\(fixture): config.json has no quantization")
            return
        }
        #expect(.number(Double(mlx.bits)) == recipe["bits"] && .number(Double(mlx.groupSize)) == recipe["group_size"])
        // Per-module entries: mlx-lm writes one for each module of a mixed recipe.
        let modules = recipe.filter { !["bits", "group_size", "mode"].contains($0.key) }
        #expect(mlx.moduleOverrides == modules.count)
        let packed = report.tensors.filter { $0.type == "U32" }
        // A matrix's bits: its module's entry, else the default.
        let sixBit = packed.filter { tensor in
            (recipe[String(tensor.name.dropLast(".weight".count))]?["bits"] ?? recipe["bits"]) == .number(6)
        }.count
        #expect((mlx.tensorTypes.first { $0.bits == 6 }?.count ?? 0) == sixBit, "\(fixture)")
        #expect(mlx.tensorTypes.reduce(0) { $0 + $1.count } == packed.count)
        #expect(report.unreadTensors.isEmpty, "\(fixture): scales and biases take their weight's role: \(report.unreadTensors)")
        #expect(report.text(listTensors: false).contains("MLX quantization: affine"))
    }
}
