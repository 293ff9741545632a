import Foundation
import Testing
@testable import MobileLLM

/// Hugging Face fixtures written as GGUF (float and quantized) and loaded back, against the same fixtures loaded from
/// their directories; quantize-on-load against loading the quantized file.
@Suite("GGUF export and quantization")
struct QuantizeExportTests {
    static let llamaFixtures = ["llama-f16", "llama-bf16-untied"]

    /// Logits at every position of every reference sequence of `fixture`.
    static func logits(_ model: Model, _ fixture: String) throws -> [Logits] {
        try ModelReference.load(fixture).sequences.map { sequence in
            try model.makeSession(contextLength: 128, kvCacheType: .f32).feed(sequence.tokens, logits: .all)
        }
    }

    /// Writes `fixture` as GGUF with `options` into `directory` and returns the file's path.
    static func export(_ fixture: String, _ options: GGUFExportOptions, in directory: TemporaryDirectory, suffix: String = "") throws -> String {
        let path = directory.path + "/\(fixture)-\(options.plan.projectionType.name)\(suffix).gguf"
        try GGUFExport.write(modelAt: Fixtures.path(fixture), to: path, options: options)
        return path
    }

    /// Largest |Δ| over all rows, the largest |logit| of `reference`, the relative RMS error ‖Δ‖₂ / ‖reference‖₂
    /// and the fraction of positions whose arg-max agrees.
    static func compare(_ a: [Logits], _ reference: [Logits]) -> (worst: Float, scale: Float, relativeRMS: Double, argmaxAgreement: Double) {
        var worst: Float = 0, scale: Float = 0, agree = 0, total = 0
        var error = 0.0, norm = 0.0
        for (x, y) in zip(a, reference) {
            worst = max(worst, maxAbsDifference(x.values, y.values))
            scale = max(scale, y.values.map(abs).max() ?? 0)
            for (u, v) in zip(x.values, y.values) {
                error += Double(u - v) * Double(u - v)
                norm += Double(v) * Double(v)
            }
            for row in 0..<y.rowCount {
                total += 1
                if Sampler.argmax(x.row(row)) == Sampler.argmax(y.row(row)) { agree += 1 }
            }
        }
        return (worst, scale, (error / max(norm, 1e-30)).squareRoot(), Double(agree) / Double(max(1, total)))
    }

    /// Whether GGUF export permutes this configuration's q/k rows into llama.cpp's pair order (the `llama` family;
    /// llama.cpp reads qwen2/qwen3 with NEOX RoPE, so their rows stay half-split).
    static func permutesQueryKey(_ c: ModelConfiguration) -> Bool {
        guard let architecture = ArchitectureRegistry.architecture(for: c.modelType),
              let query = architecture.tensors(c).spec(named: "model.layers.0.self_attn.q_proj.weight") else { return false }
        return query.ggufRowOrder != .unchanged
    }

    /// The configuration fields a GGUF must carry, with the values the runtime actually uses (f32 scalars).
    static func expectSameConfiguration(_ file: ModelConfiguration, _ source: ModelConfiguration, _ fixture: String) {
        #expect(file.modelType == source.modelType, "\(fixture)")
        #expect(file.vocabularySize == source.vocabularySize)
        #expect(file.hiddenSize == source.hiddenSize)
        #expect(file.layerCount == source.layerCount)
        #expect(file.headCount == source.headCount)
        #expect(file.kvHeadCount == source.kvHeadCount)
        #expect(file.headDimension == source.headDimension)
        #expect(file.intermediateSize == source.intermediateSize)
        #expect(file.rmsNormEpsilon == source.rmsNormEpsilon)
        #expect(Float(file.ropeTheta) == Float(source.ropeTheta))
        #expect(file.ropeInverseFrequencies() == source.ropeInverseFrequencies(), "\(fixture): RoPE frequencies differ")
        // A permuted (llama) file reads as interleaved pairs; the others keep their own pairing.
        #expect(file.ropePairing == (permutesQueryKey(source) ? .interleaved : source.ropePairing), "\(fixture)")
        #expect(file.maxPositions == source.maxPositions)
        #expect(file.tiedEmbeddings == source.tiedEmbeddings)
        #expect(file.attentionBias == source.attentionBias)
        #expect(file.mlpBias == source.mlpBias)
        #expect(file.layers == source.layers, "\(fixture): per-layer attention differs")
        #expect(Float(file.attentionTemperatureScale) == Float(source.attentionTemperatureScale))
        #expect(Float(file.attentionFloorScale) == Float(source.attentionFloorScale))
        #expect(file.bosTokenID == source.bosTokenID)
        #expect(Set(file.eosTokenIDs) == Set(source.eosTokenIDs))
    }

    @Test("F32 GGUF: same configuration; logits bit-identical, or within summation order where q/k rows are permuted (llama)",
          arguments: Fixtures.models)
    func f32RoundTrip(fixture: String) throws {
        let directory = try TemporaryDirectory()
        let path = try Self.export(fixture, GGUFExportOptions(type: .f32), in: directory)
        let source = try Model(path: Fixtures.path(fixture))
        let file = try Model(path: path)
        Self.expectSameConfiguration(file.configuration, source.configuration, fixture)
        let result = Self.compare(try Self.logits(file, fixture), try Self.logits(source, fixture))
        if !Self.permutesQueryKey(source.configuration) {
            #expect(result.worst == 0, "\(fixture): max |Δlogit| \(result.worst)")
        } else {
            #expect(result.worst <= 1e-5 * max(1, result.scale), "\(fixture): max |Δlogit| \(result.worst)")
        }
        #expect(result.argmaxAgreement == 1)
        // And against transformers itself, as the golden tests check the directory.
        for (logits, sequence) in zip(try Self.logits(file, fixture), try ModelReference.load(fixture).sequences) {
            #expect(maxAbsDifference(logits.values, sequence.logits.flatMap { $0 }) <= 1e-3)
        }
    }

    @Test("F16 GGUF: logits within f16 rounding of the directory's", arguments: Fixtures.models)
    func f16RoundTrip(fixture: String) throws {
        let directory = try TemporaryDirectory()
        let path = try Self.export(fixture, GGUFExportOptions(type: .f16), in: directory)
        let file = try Model(path: path)
        #expect(file.weights.layers[0].query.weight.type == .f16)
        #expect(file.weights.embedding.type == .f16)
        let result = Self.compare(try Self.logits(file, fixture), try Self.logits(try Model(path: Fixtures.path(fixture)), fixture))
        #expect(result.relativeRMS <= 5e-3, "\(fixture): relative RMS error \(result.relativeRMS), max |Δlogit| \(result.worst)")
        #expect(result.argmaxAgreement >= 0.95)
    }

    @Test("llama q/k rows must be permuted: the unpermuted file gives different logits", arguments: llamaFixtures)
    func permutationMatters(fixture: String) throws {
        let directory = try TemporaryDirectory()
        var options = GGUFExportOptions(type: .f32)
        options.skipQKPermutation = true
        let wrong = try Model(path: try Self.export(fixture, options, in: directory, suffix: "-unpermuted"))
        let right = try Model(path: try Self.export(fixture, GGUFExportOptions(type: .f32), in: directory))
        let reference = try Self.logits(try Model(path: Fixtures.path(fixture)), fixture)
        let good = Self.compare(try Self.logits(right, fixture), reference)
        let bad = Self.compare(try Self.logits(wrong, fixture), reference)
        #expect(good.worst <= 1e-4)
        #expect(bad.worst > 0.1, "\(fixture): the unpermuted file is only \(bad.worst) away")
        #expect(bad.argmaxAgreement < good.argmaxAgreement, "\(fixture): arg-max agreement \(bad.argmaxAgreement)")
        // The permutation is llama.cpp's: within each head, rows (i, i + d/2) become rows (2i, 2i + 1).
        let map = GGUFExport.llamaCppPermutation(headCount: 2, headDimension: 8)
        #expect((0..<16).map(map) == [0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15])
    }

    /// A copy of llama-f16 with q/k/v/o biases: its weights moved to shard 1 of 2, random F32 biases in shard 2.
    static func biasedLlama(in directory: TemporaryDirectory) throws -> String {
        try directory.copyFixture("llama-f16")
        let config = try String(contentsOfFile: directory.path + "/config.json", encoding: .utf8)
        #expect(config.contains("\"attention_bias\": false"))
        try directory.write("config.json", config.replacingOccurrences(of: "\"attention_bias\": false", with: "\"attention_bias\": true"))
        let original = try Data(contentsOf: URL(fileURLWithPath: directory.path + "/model.safetensors"))
        let headerLength = original.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try JSONSerialization.jsonObject(with: original.subdata(in: 8..<(8 + headerLength))) as? [String: Any] ?? [:]
        try FileManager.default.moveItem(atPath: directory.path + "/model.safetensors", toPath: directory.path + "/model-00001-of-00002.safetensors")
        var map: [String: String] = [:]
        for name in header.keys where name != "__metadata__" { map[name] = "model-00001-of-00002.safetensors" }
        var entries: [String] = [], data: [UInt8] = []
        var generator = SeededGenerator(seed: 11)
        for layer in 0..<3 {
            for (module, size) in [("q_proj", 64), ("k_proj", 32), ("v_proj", 32), ("o_proj", 64)] {
                let name = "model.layers.\(layer).self_attn.\(module).bias"
                let start = data.count
                for _ in 0..<size {
                    let value = Float(Int(generator.next() % 2001) - 1000) / 1000
                    withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) }
                }
                entries.append("\"\(name)\": {\"dtype\": \"F32\", \"shape\": [\(size)], \"data_offsets\": [\(start), \(data.count)]}")
                map[name] = "model-00002-of-00002.safetensors"
            }
        }
        var json = Array(("{" + entries.joined(separator: ", ") + "}").utf8)
        while json.count % 8 != 0 { json.append(0x20) }
        let shard = withUnsafeBytes(of: UInt64(json.count).littleEndian, Array.init) + json + data
        try directory.write("model-00002-of-00002.safetensors", bytes: shard)
        let index = try JSONSerialization.data(withJSONObject: ["metadata": [String: Any](), "weight_map": map])
        try directory.write("model.safetensors.index.json", bytes: Array(index))
        return directory.path
    }

    @Test("llama q/k biases are permuted like the rows: the biased model's GGUF computes what its directory does")
    func biasesPermuted() throws {
        let source = try TemporaryDirectory()
        let path = try Self.biasedLlama(in: source)
        let directoryModel = try Model(path: path)
        #expect(directoryModel.configuration.attentionBias)
        let out = try TemporaryDirectory()
        for type in [QuantType.f32, .q8_0] {
            let file = out.path + "/biased-\(type.name).gguf"
            let report = try GGUFExport.write(modelAt: path, to: file, options: GGUFExportOptions(type: type))
            #expect(report.tensors.contains { $0.name == "blk.2.attn_k.bias" && $0.type == .f32 })
            let model = try Model(path: file)
            #expect(model.configuration.attentionBias)
            let result = Self.compare(try Self.logits(model, "llama-f16"), try Self.logits(directoryModel, "llama-f16"))
            if type == .f32 {
                #expect(result.worst <= 1e-5 * max(1, result.scale), "max |Δlogit| \(result.worst)")
            } else {
                #expect(result.relativeRMS <= 0.1, "relative RMS \(result.relativeRMS)")
            }
        }
        // The biases matter: without them the logits are far away.
        let unbiased = Self.compare(try Self.logits(try Model(path: Fixtures.path("llama-f16")), "llama-f16"), try Self.logits(directoryModel, "llama-f16"))
        #expect(unbiased.worst > 0.1)
    }

    /// The fixtures are tiny random models whose logits amplify weight noise, so "close" is measured against the
    /// quantization itself: the quantized file must compute what an F32 model of its dequantized weights computes
    /// (within float summation order), and that model must be within the quantization noise of the original.
    // (No K-quant here: the fixtures' rows are too short for 256-blocks and would fall back to Q8_0.)
    @Test("Q8_0 / Q4_1 / Q4_0 / Q5_0 / Q5_1 GGUF: logits are the dequantized model's and close to the directory's",
          arguments: Fixtures.models, [QuantType.q8_0, .q4_1, .q4_0, .q5_0, .q5_1])
    func quantizedRoundTrip(fixture: String, type: QuantType) throws {
        let directory = try TemporaryDirectory()
        let path = try Self.export(fixture, GGUFExportOptions(type: type), in: directory)
        let file = try Model(path: path)
        #expect(file.isQuantized)
        // The same file dequantized to F32 by the GGUF → GGUF path.
        let dequantizedPath = directory.path + "/dequantized.gguf"
        try GGUFExport.write(modelAt: path, to: dequantizedPath, options: GGUFExportOptions(type: .f32))
        let quantized = try Self.logits(file, fixture)
        let exact = Self.compare(quantized, try Self.logits(try Model(path: dequantizedPath), fixture))
        #expect(exact.relativeRMS <= 2e-6, "\(fixture) \(type): quantized vs dequantized model: relative RMS \(exact.relativeRMS)")
        #expect(exact.argmaxAgreement >= 0.99)

        let result = Self.compare(quantized, try Self.logits(try Model(path: Fixtures.path(fixture)), fixture))
        // Q8_0 weight noise is ~16x smaller than Q4's; these random 3-4 layer models amplify it to a few % (Q8_0)
        // and tens of % (Q4) of the logits. Unrelated logits would be ~140% away.
        // 5-bit noise is about half of 4-bit's; the 4-bit bounds hold for it with room to spare.
        let (tolerance, agreement) = type == .q8_0 ? (0.1, 0.85) : (0.8, 0.2)
        #expect(result.relativeRMS <= tolerance, "\(fixture) \(type): relative RMS error \(result.relativeRMS), max |Δlogit| \(result.worst) of \(result.scale)")
        #expect(result.argmaxAgreement >= agreement, "\(fixture) \(type): arg-max agreement \(result.argmaxAgreement)")
        print("\(fixture) \(type.name): relative RMS \(result.relativeRMS), arg-max agreement \(result.argmaxAgreement)")
    }

    @Test("IQ4_NL, Q2_K and Q3_K are read-only: exporting or quantizing on load to them is refused, naming the option")
    func readOnlyTypeRefused() throws {
        let directory = try TemporaryDirectory()
        let readOnly = QuantType.allCases.filter { !$0.canQuantize }
        #expect(Set(readOnly) == [.iq4_nl, .q2_K, .q3_K])
        for type in readOnly {
            for options in [GGUFExportOptions(type: type), GGUFExportOptions(type: .q8_0, outputType: type)] {
                #expect(throws: MobileLLMError.self) {
                    try GGUFExport.write(modelAt: Fixtures.path("llama-f16"), to: directory.path + "/x.gguf", options: options)
                }
            }
            #expect(!FileManager.default.fileExists(atPath: directory.path + "/x.gguf"))
            do {
                _ = try Model(path: Fixtures.path("llama-f16"), options: ModelLoadOptions(quantize: type))
                Issue.record("quantize-on-load to \(type) was accepted")
            } catch let MobileLLMError.invalidArgument(name, problem) {
                #expect(name == "quantize" && problem.contains(type.name), "\(name): \(problem)")
            }
        }
    }

    @Test("rows that the block size does not divide fall back to Q8_0 or F16, with a note")
    func blockFallback() throws {
        let directory = try TemporaryDirectory()
        // llama4-nope-f32 is 48 wide: q/k/v/gate/up and the embedding have rows of 48.
        let path = directory.path + "/nope.gguf"
        let report = try GGUFExport.write(modelAt: Fixtures.path("llama4-nope-f32"), to: path, options: GGUFExportOptions(type: .q4_0))
        #expect(report.notes.count == 1, "\(report.notes)")
        #expect(report.notes.first?.hasPrefix("22 matrices with rows of 48 (not a multiple of the q4_0 block size 32) stored as f16: model.embed_tokens.weight, model.layers.0.self_attn.q_proj.weight") == true)
        let types = Dictionary(report.tensors.map { ($0.name, $0.type) }, uniquingKeysWith: { a, _ in a })
        #expect(types["blk.0.attn_q.weight"] == .f16)
        #expect(types["blk.0.attn_output.weight"] == .q4_0)
        #expect(types["blk.0.ffn_down.weight"] == .q4_0)
        #expect(types["blk.0.attn_norm.weight"] == .f32)
        // Q4_K (blocks of 256) on 64-wide rows: Q8_0.
        let kReport = try GGUFExport.write(modelAt: Fixtures.path("llama-f16"), to: directory.path + "/k.gguf", options: GGUFExportOptions(type: .q4_K))
        #expect(kReport.tensors.first { $0.name == "blk.0.attn_q.weight" }?.type == .q8_0)
        #expect(kReport.notes.count == 2, "\(kReport.notes)")   // rows of 64 and of 160 (down_proj)
        _ = try Model(path: directory.path + "/k.gguf")
    }

    @Test("--keep-output: the embedding/output matrix gets its own type")
    func outputType() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/untied.gguf"
        let report = try GGUFExport.write(modelAt: Fixtures.path("llama-bf16-untied"), to: path,
                                          options: GGUFExportOptions(type: .q4_0, outputType: .q8_0))
        let types = Dictionary(report.tensors.map { ($0.name, $0.type) }, uniquingKeysWith: { a, _ in a })
        #expect(types["token_embd.weight"] == .q8_0)
        #expect(types["output.weight"] == .q8_0)
        #expect(types["blk.2.ffn_up.weight"] == .q4_0)
        let file = try GGUFFile(path: path)
        #expect(file.metadata["general.file_type"] == .uint32(2))
        #expect(file.metadata["general.quantization_version"] == .uint32(2))
        // down_proj rows are 144 long (not a multiple of 32): F16.
        #expect(report.typeCounts["q4_0"] == 18)
        #expect(report.typeCounts["f16"] == 3)
    }

    @Test("quantize on load gives the bytes of the quantized file (and, for llama4, identical logits)",
          arguments: Fixtures.models, [QuantType.q4_0, .q8_0, .q4_1])
    func quantizeOnLoadEqualsFile(fixture: String, type: QuantType) throws {
        let directory = try TemporaryDirectory()
        let path = try Self.export(fixture, GGUFExportOptions(type: type), in: directory)
        let file = try Model(path: path)
        let loaded = try Model(path: Fixtures.path(fixture), options: ModelLoadOptions(quantize: type))
        #expect(loaded.isQuantized)
        #expect(loaded.weightBytesPerToken == file.weightBytesPerToken)
        let c = loaded.configuration
        func bytes(_ matrix: WeightMatrix, row: Int) -> [UInt8] {
            Array(UnsafeRawBufferPointer(start: matrix.pointer + row * matrix.rowBytes, count: matrix.rowBytes))
        }
        func expectSame(_ a: WeightMatrix, _ b: WeightMatrix, permutedHeads heads: Int?, _ what: String) {
            #expect(a.type == b.type && a.rows == b.rows && a.columns == b.columns, "\(what)")
            guard a.type == b.type, a.rows == b.rows else { return }
            let map = heads.map { GGUFExport.llamaCppPermutation(headCount: $0, headDimension: c.headDimension) }
            let same = (0..<a.rows).allSatisfy { bytes(a, row: map?($0) ?? $0) == bytes(b, row: $0) }
            #expect(same, "\(fixture) \(type): \(what) bytes differ")
        }
        let permute = Self.permutesQueryKey(c)
        expectSame(loaded.weights.embedding, file.weights.embedding, permutedHeads: nil, "embedding")
        expectSame(loaded.weights.output.weight, file.weights.output.weight, permutedHeads: nil, "output")
        for (index, (a, b)) in zip(loaded.weights.layers, file.weights.layers).enumerated() {
            expectSame(a.query.weight, b.query.weight, permutedHeads: permute ? c.headCount : nil, "layer \(index) q")
            expectSame(a.key.weight, b.key.weight, permutedHeads: permute ? c.kvHeadCount : nil, "layer \(index) k")
            expectSame(a.value.weight, b.value.weight, permutedHeads: nil, "layer \(index) v")
            expectSame(a.output.weight, b.output.weight, permutedHeads: nil, "layer \(index) o")
            expectSame(a.gate.weight, b.gate.weight, permutedHeads: nil, "layer \(index) gate")
            expectSame(a.up.weight, b.up.weight, permutedHeads: nil, "layer \(index) up")
            expectSame(a.down.weight, b.down.weight, permutedHeads: nil, "layer \(index) down")
        }
        let onLoad = try Self.logits(loaded, fixture), fromFile = try Self.logits(file, fixture)
        if !permute {
            #expect(onLoad == fromFile, "\(fixture) \(type): logits differ")
        } else {
            #expect(Self.compare(onLoad, fromFile).worst <= 1e-4)
        }
    }

    /// Found by scripts/sanitize.sh address: the parallel generator deallocated its result slots without releasing
    /// them, so every synthetic tensor outlived its source.
    @Test("synthetic tensors are freed with their source")
    func syntheticTensorsAreFreed() throws {
        let c = try ModelDirectory(path: Fixtures.path("llama-bf16-untied")).configuration
        let architecture = try #require(ArchitectureRegistry.architecture(for: c.modelType))
        var owners: [Weak] = []
        do {
            let source = SyntheticTensorSource(configuration: c, architecture: architecture, seed: 5, plan: nil, threads: 2)
            owners = source.tensors.values.map { Weak($0.owner) }
            #expect(!owners.isEmpty && owners.allSatisfy { $0.object != nil })
        }
        #expect(owners.allSatisfy { $0.object == nil }, "\(owners.filter { $0.object != nil }.count) of \(owners.count) tensors leaked")
    }

    /// A weak reference, for checking that objects are freed.
    struct Weak {
        weak var object: AnyObject?
        init(_ object: AnyObject) { self.object = object }
    }

    @Test("synthetic weights made quantized equal synthetic BF16 weights quantized afterwards", arguments: [QuantType.q4_0, .q8_0])
    func syntheticQuantized(type: QuantType) throws {
        for fixture in ["llama4-r1like-bf16-sharded", "llama-bf16-untied"] {
            let c = try ModelDirectory(path: Fixtures.path(fixture)).configuration
            let architecture = try #require(ArchitectureRegistry.architecture(for: c.modelType))
            let plan = QuantizationPlan(projectionType: type)
            let direct = SyntheticTensorSource(configuration: c, architecture: architecture, seed: 5, plan: plan, threads: 3)
            let bf16 = SyntheticTensorSource(configuration: c, architecture: architecture, seed: 5, plan: nil, threads: 1)
            let later = QuantizingSource(wrapping: bf16, configuration: c, architecture: architecture, plan: plan, threads: 2)
            #expect(direct.tensors.count == bf16.tensors.count)
            for (name, tensor) in bf16.tensors {
                let a = try #require(direct.tensor(named: name)), b = try #require(later.tensor(named: name))
                #expect(a.type == b.type && a.shape == tensor.shape, "\(name)")
                let size = a.count / a.type.blockSize * a.type.blockBytes
                #expect(Array(UnsafeRawBufferPointer(start: a.pointer, count: size)) == Array(UnsafeRawBufferPointer(start: b.pointer, count: size)), "\(fixture): \(name)")
            }
        }
    }

    @Test("a GGUF re-quantizes to the same bytes as its source directory; same-type tensors are copied")
    func requantizeGGUF() throws {
        let directory = try TemporaryDirectory()
        for fixture in ["llama-f16", "llama4-r1like-bf16-sharded"] {
            let f32 = try Self.export(fixture, GGUFExportOptions(type: .f32), in: directory)
            let direct = try Self.export(fixture, GGUFExportOptions(type: .q8_0), in: directory)
            let again = directory.path + "/\(fixture)-again.gguf"
            try GGUFExport.write(modelAt: f32, to: again, options: GGUFExportOptions(type: .q8_0))
            let copy = directory.path + "/\(fixture)-copy.gguf"
            try GGUFExport.write(modelAt: direct, to: copy, options: GGUFExportOptions(type: .q8_0))
            let reference = try GGUFFile(path: direct)
            for other in [try GGUFFile(path: again), try GGUFFile(path: copy)] {
                #expect(other.tensors.map(\.name) == reference.tensors.map(\.name))
                for (a, b) in zip(other.tensors, reference.tensors) {
                    #expect(a.type == b.type && a.dimensions == b.dimensions, "\(a.name)")
                    #expect(other.data(of: a).map(Array.init) == reference.data(of: b).map(Array.init), "\(fixture): \(a.name) differs")
                }
                for key in reference.metadataKeys where key != "general.name" {
                    #expect(other.metadata[key] == reference.metadata[key], "\(fixture): \(key)")
                }
            }
        }
    }

    @Test("export errors name the file and field, and leave no file")
    func exportErrors() throws {
        let directory = try TemporaryDirectory()
        let out = directory.path + "/out.gguf"
        #expect(throws: MobileLLMError.self) { try GGUFExport.write(modelAt: directory.path + "/nope", to: out, options: GGUFExportOptions(type: .q8_0)) }
        // A tensor missing from the weights.
        let broken = try TemporaryDirectory()
        try broken.copyFixture("llama-f16")
        var config = try String(contentsOfFile: broken.path + "/config.json", encoding: .utf8)
        config = config.replacingOccurrences(of: "\"num_hidden_layers\": 3", with: "\"num_hidden_layers\": 4")
        try broken.write("config.json", config)
        do {
            try GGUFExport.write(modelAt: broken.path, to: out, options: GGUFExportOptions(type: .q8_0))
            Issue.record("a missing layer was accepted")
        } catch let error as MobileLLMError {
            #expect(error.description.contains("model.layers.3"), "\(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: out))
        // An output directory that does not exist.
        #expect(throws: MobileLLMError.self) {
            try GGUFExport.write(modelAt: Fixtures.path("llama-f16"), to: directory.path + "/no/such/dir/x.gguf", options: GGUFExportOptions(type: .q8_0))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
    }

    @Test("an R1-like model with a trained tokenizer and chat template: the GGUF tokenizes and renders like the directory")
    func r1ChatRoundTrip() throws {
        struct Reference: Decodable {
            struct Encoding: Decodable { let text: String; let add_special: Bool; let parse_special: Bool; let ids: [Int32] }
            struct Message: Decodable { let role: String; let content: String }
            struct Chat: Decodable { let messages: [Message]; let add_generation_prompt: Bool; let text: String }
            let encodings: [Encoding]
            let chats: [Chat]
        }
        let source = Fixtures.packageRoot.appendingPathComponent("Tests/Fixtures/r1like-chat").path
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: source + "/reference_text.json")))
        let directory = try TemporaryDirectory()
        let path = directory.path + "/r1like-chat.gguf"
        let report = try GGUFExport.write(modelAt: source, to: path, options: GGUFExportOptions(type: .f32))
        #expect(report.notes.isEmpty, "\(report.notes)")
        let file = try Model(path: path), original = try Model(path: source)
        #expect(file.isGGUF)
        Self.expectSameConfiguration(file.configuration, original.configuration, "r1like-chat")
        let gguf = try GGUFFile(path: path)
        #expect(gguf.metadata["tokenizer.ggml.pre"] == .string("gpt-2"))
        #expect(gguf.metadata["tokenizer.ggml.eos_token_id"] == .uint32(2), "the tokenizer's <|eot_id|> stays its EOS")
        let tokenizer = try file.tokenizer()
        #expect(tokenizer.eosToken == "<|eot_id|>" && tokenizer.bosToken == "<|begin_of_text|>")
        for encoding in reference.encodings {
            #expect(tokenizer.encode(encoding.text, addSpecial: encoding.add_special, parseSpecial: encoding.parse_special) == encoding.ids,
                    "\(encoding.text)")
        }
        var rendered = 0
        for chat in reference.chats {
            let messages = chat.messages.map { ChatMessage(role: $0.role, content: $0.content) }
            guard let text = try? original.applyChatTemplate(messages, addGenerationPrompt: chat.add_generation_prompt), text == chat.text else { continue }
            #expect(try file.applyChatTemplate(messages, addGenerationPrompt: chat.add_generation_prompt) == chat.text)
            rendered += 1
        }
        #expect(rendered >= 2)
        let tokens = reference.encodings[0].ids
        let a = try file.makeSession(kvCacheType: .f32).feed(tokens, logits: .all)
        let b = try original.makeSession(kvCacheType: .f32).feed(tokens, logits: .all)
        #expect(a == b)
    }

    @Test("a Llama-3 tokenizer written as GGUF metadata encodes like its tokenizer.json")
    func tokenizerExport() throws {
        guard let assetPath = TokenizerFixtures.requireAsset(TokenizerFixtures.llama3Directory) else { return }
        // This tokenizer.json says ignore_merges: false, which GGUF's llama-bpe cannot express (llama.cpp always
        // ignores merges for it): noted. The real Llama-3 setting (true) round-trips exactly.
        let original = try Tokenizer.load(path: assetPath)
        #expect(original.ggufPreTokenizerName?.name == "llama-bpe")
        #expect(original.ggufPreTokenizerName?.exact == false)
        let directory = try TemporaryDirectory()
        let json = try String(contentsOfFile: assetPath + "/tokenizer.json", encoding: .utf8)
        try directory.write("tokenizer.json", json.replacingOccurrences(of: "\"ignore_merges\": false", with: "\"ignore_merges\": true"))
        try directory.write("tokenizer_config.json", try String(contentsOfFile: assetPath + "/tokenizer_config.json", encoding: .utf8))
        let tokenizer = try Tokenizer.load(path: directory.path)
        #expect(tokenizer.ggufPreTokenizerName?.exact == true)
        let merges = try Tokenizer.mergeStrings(tokenizerJSON: directory.path + "/tokenizer.json")
        var writer = try GGUFWriter()
        try writer.set("general.architecture", .string("llama"))
        let exported = try tokenizer.ggufMetadata(vocabularySize: tokenizer.vocabularySize + 2, merges: merges, location: "test")
        #expect(exported.notes.isEmpty)
        #expect(try original.ggufMetadata(vocabularySize: original.vocabularySize, merges: merges, location: "x").notes.count == 1)
        for (key, value) in exported.metadata {
            try writer.set(key, value)
        }
        try writer.set("tokenizer.ggml.bos_token_id", .uint32(UInt32(tokenizer.bosTokenID ?? 0)))
        try writer.set("tokenizer.ggml.eos_token_id", .uint32(UInt32(tokenizer.eosTokenID ?? 0)))
        let path = directory.path + "/vocab.gguf"
        try writer.write(to: path)
        let file = try GGUFFile(path: path)
        #expect(try file.stringArray("tokenizer.ggml.tokens")?.last == "[PAD\(tokenizer.vocabularySize + 1)]")
        #expect(try file.integerArray("tokenizer.ggml.token_type")?[128_000] == 3)
        let restored = try Tokenizer(gguf: file)
        let corpus = try String(contentsOfFile: Fixtures.path("tokenizer/corpus.jsonl"), encoding: .utf8)
            .split(separator: "\n").prefix(400).compactMap { line -> String? in
                guard let data = line.data(using: .utf8) else { return nil }
                return (try? JSONSerialization.jsonObject(with: data, options: .fragmentsAllowed)) as? String
            }
        #expect(corpus.count > 100)
        for text in corpus {
            #expect(restored.encode(text, addSpecial: true, parseSpecial: true) == tokenizer.encode(text, addSpecial: true, parseSpecial: true), "\(text.prefix(60))")
        }
        #expect(restored.bosTokenID == tokenizer.bosTokenID)
        // A tokenizer with more ids than the model's vocabulary is refused.
        #expect(throws: MobileLLMError.self) { _ = try tokenizer.ggufMetadata(vocabularySize: 1000, merges: merges, location: "test") }
    }
}
