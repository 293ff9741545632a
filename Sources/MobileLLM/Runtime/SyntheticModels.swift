import CMobileLLMKernels
import Dispatch

/// Random-weight models with the exact shapes of real checkpoints, built in memory, so speed and memory can be
/// measured on real shapes without the (gated) weights. Their outputs are meaningless.
public enum SyntheticModel: String, CaseIterable, Sendable {
    /// MobileLLM-R1-140M: 15 layers, 576 wide, 9 heads / 3 KV heads, MLP 2048.
    case mobileLLMR1_140M = "mobilellm-r1-140m"
    /// MobileLLM-R1-360M: 15 layers, 1024 wide, 16 heads / 4 KV heads, MLP 4096.
    case mobileLLMR1_360M = "mobilellm-r1-360m"
    /// MobileLLM-R1-950M: 22 layers, 1536 wide, 24 heads / 6 KV heads, MLP 6144.
    case mobileLLMR1_950M = "mobilellm-r1-950m"
    /// SmolLM2-135M: 30 layers, 576 wide, 9 heads / 3 KV heads, MLP 1536, vocabulary 49,152.
    case smolLM2_135M = "smollm2-135m"
    /// MobileLLM-R1-950M's shapes (22 layers, 1536 wide, 24 heads / 6 KV heads, MLP 6144, vocabulary 128,256) as a
    /// plain Llama model (no QK norm, no chunked attention), so that its GGUF (`mobilellm quantize --synthetic`)
    /// also runs in llama.cpp: the speed comparison's model.
    case llamaR1_950M = "llama-r1-950m"

    /// The configuration of the real checkpoint.
    public var configuration: ModelConfiguration {
        func r1(layers: Int, hidden: Int, heads: Int, kvHeads: Int, mlp: Int) -> ModelConfiguration {
            ModelConfiguration(
                modelType: "llama4_text", vocabularySize: 128_256, hiddenSize: hidden, layerCount: layers, headCount: heads,
                kvHeadCount: kvHeads, headDimension: 64, intermediateSize: mlp, rmsNormEpsilon: 1e-5, ropeTheta: 8_000_000,
                ropeScaling: .none, ropePairing: .interleaved, maxPositions: 32_768, tiedEmbeddings: true, attentionBias: false,
                mlpBias: false,
                layers: Array(repeating: LayerAttentionSpec(usesRoPE: true, qkNorm: true, chunkSize: 32_768, temperatureTuning: false), count: layers),
                attentionTemperatureScale: 0.1, attentionFloorScale: 8192, bosTokenID: 128_000, eosTokenIDs: [128_001, 128_008, 128_009])
        }
        switch self {
        case .mobileLLMR1_140M: return r1(layers: 15, hidden: 576, heads: 9, kvHeads: 3, mlp: 2048)
        case .mobileLLMR1_360M: return r1(layers: 15, hidden: 1024, heads: 16, kvHeads: 4, mlp: 4096)
        case .mobileLLMR1_950M: return r1(layers: 22, hidden: 1536, heads: 24, kvHeads: 6, mlp: 6144)
        case .llamaR1_950M:
            return ModelConfiguration(
                modelType: "llama", vocabularySize: 128_256, hiddenSize: 1536, layerCount: 22, headCount: 24, kvHeadCount: 6,
                headDimension: 64, intermediateSize: 6144, rmsNormEpsilon: 1e-5, ropeTheta: 8_000_000, ropeScaling: .none,
                ropePairing: .halves, maxPositions: 32_768, tiedEmbeddings: true, attentionBias: false, mlpBias: false,
                layers: Array(repeating: LayerAttentionSpec(usesRoPE: true, qkNorm: false, chunkSize: nil, temperatureTuning: false), count: 22),
                attentionTemperatureScale: 0, attentionFloorScale: 1, bosTokenID: 128_000, eosTokenIDs: [128_001, 128_008, 128_009])
        case .smolLM2_135M:
            return ModelConfiguration(
                modelType: "llama", vocabularySize: 49_152, hiddenSize: 576, layerCount: 30, headCount: 9, kvHeadCount: 3,
                headDimension: 64, intermediateSize: 1536, rmsNormEpsilon: 1e-5, ropeTheta: 100_000, ropeScaling: .none,
                ropePairing: .halves, maxPositions: 8192, tiedEmbeddings: true, attentionBias: false, mlpBias: false,
                layers: Array(repeating: LayerAttentionSpec(usesRoPE: true, qkNorm: false, chunkSize: nil, temperatureTuning: false), count: 30),
                attentionTemperatureScale: 0, attentionFloorScale: 1, bosTokenID: 1, eosTokenIDs: [2])
        }
    }
}

/// Tensors filled with fan-in-scaled pseudo-random BF16 values, named as the architecture expects. With a
/// quantization plan, matrices are generated a few rows at a time and quantized straight into their final buffers
/// (the same bytes as quantizing the BF16 tensors afterwards), so the BF16 weights never occupy memory.
struct SyntheticTensorSource: TensorSource {
    let tensors: [String: StoredTensor]
    var location: String { "(synthetic weights)" }
    func tensor(named name: String) -> StoredTensor? { tensors[name] }

    init(configuration c: ModelConfiguration, architecture: any Architecture.Type, seed: UInt64,
         plan: QuantizationPlan? = nil, threads: Int = 1) {
        var generator = SeededGenerator(seed: seed)
        let schema = architecture.tensors(c)
        // (name, shape, scale, center, seed) in the order the seeds are drawn: the global tensors (embedding, final
        // norm, untied output), then each layer's in schema order.
        var specs: [(String, [Int], Float, Float, UInt64)] = []
        let fanIn = { (n: Int) in Float(3.0 / Double(n)).squareRoot() }
        let global = schema.tensors.filter { $0.layer == nil && !($0.role == .output && c.tiedEmbeddings) }
        let ordered = global.filter { $0.role == .embedding } + global.filter { $0.role == .norm } + global.filter { $0.role == .output }
            + schema.tensors.filter { $0.layer != nil }
        for spec in ordered {
            let shape = spec.sizes
            let (scale, center): (Float, Float)
            switch spec.role {
            case .embedding: (scale, center) = (1, 0)
            case .norm: (scale, center) = (0.1, 1)
            case .bias: (scale, center) = (0.1, 0)
            case .output, .projection: (scale, center) = (fanIn(shape.last ?? 1), 0)
            }
            specs.append((spec.name, shape, scale, center, generator.next() | 1))
        }
        // Each tensor has its own seed, so tensors are generated in parallel, largest first.
        let work = specs
        let sizes: [Int] = work.map { $0.1.reduce(1, *) }
        let order: [Int] = work.indices.sorted { sizes[$0] > sizes[$1] }
        let results = UnsafeMutableBufferPointer<StoredTensor?>.allocate(capacity: work.count)
        results.initialize(repeating: nil)
        // Deinitialize before deallocating: the slots hold references (found by scripts/sanitize.sh address).
        defer {
            results.deinitialize()
            results.deallocate()
        }
        let next = Counter()
        let output = UnsafeSendableResults(results)
        DispatchQueue.concurrentPerform(iterations: max(1, min(threads, work.count))) { _ in
            while let position = next.take(below: order.count) {
                let index = order[position]
                let (name, shape, scale, center, seed) = work[index]
                let role = schema.quantizationRole(of: name)
                let quantized = shape.count == 2 ? plan?.type(for: role, columns: shape[1])?.type : nil
                output.results[index] = Self.generate(name, shape, scale: scale, center: center, seed: seed, as: quantized ?? .bf16)
            }
        }
        var tensors: [String: StoredTensor] = [:]
        for (index, spec) in work.enumerated() { tensors[spec.0] = results[index] }
        self.tensors = tensors
    }

    /// One tensor of xorshift64 values, uniform in [-scale, scale) around `center`, rounded to BF16, stored as `type`
    /// (BF16 as generated, anything else converted row by row from the BF16 values).
    static func generate(_ name: String, _ shape: [Int], scale: Float, center: Float, seed: UInt64, as type: QuantType) -> StoredTensor {
        let count = shape.reduce(1, *)
        let k = shape.last ?? 1
        let rows = count / max(1, k)
        let rowBytes = type.rowBytes(k) ?? 0
        let buffer = OwnedBuffer(byteCount: rows * rowBytes)
        var state = seed
        @inline(__always) func value() -> UInt16 {
            // xorshift64: fast enough for a billion weights.
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            let unit = Float(state >> 40) / Float(1 << 24) * 2 - 1
            return UInt16(truncatingIfNeeded: (center + unit * scale).bitPattern >> 16)
        }
        if type == .bf16 {
            let values = buffer.pointer.bindMemory(to: UInt16.self, capacity: count)
            for index in 0..<count { values[index] = value() }
        } else {
            let batch = max(1, min(rows, 16_384 / max(1, k)))
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: batch * k)
            defer { scratch.deallocate() }
            var row = 0
            while row < rows {
                let n = min(batch, rows - row)
                for index in 0..<(n * k) { scratch[index] = Float(bitPattern: UInt32(value()) << 16) }
                mlk_q_quantize_rows(type.rawValue, scratch, Int64(n), Int64(k), buffer.pointer + row * rowBytes)
                row += n
            }
        }
        return StoredTensor(name: name, type: type, shape: shape, owner: buffer, pointer: UnsafeRawPointer(buffer.pointer))
    }
}

/// A shared work counter for `concurrentPerform` loops.
private final class Counter: @unchecked Sendable {
    private let lock = PosixLock()
    private var value = 0

    /// The next index below `limit`, or nil when all are taken.
    func take(below limit: Int) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard value < limit else { return nil }
        value += 1
        return value - 1
    }
}

/// Result slots that worker threads fill, each thread its own indices.
private struct UnsafeSendableResults: @unchecked Sendable {
    let results: UnsafeMutableBufferPointer<StoredTensor?>
    init(_ results: UnsafeMutableBufferPointer<StoredTensor?>) { self.results = results }
}

extension Model {
    /// A model with `shape`'s exact configuration and pseudo-random BF16 weights made in memory (for benchmarks).
    /// With `options.quantize`, the matrices are made directly in that type (the bytes quantizing the BF16 weights
    /// would give), so peak memory stays near the quantized size.
    public static func synthetic(_ shape: SyntheticModel, seed: UInt64 = 1, options: ModelLoadOptions = ModelLoadOptions()) throws -> Model {
        let configuration = shape.configuration
        guard let architecture = ArchitectureRegistry.architecture(for: configuration.modelType) else {
            throw MobileLLMError.unsupported(path: shape.rawValue, feature: "model_type \(configuration.modelType)")
        }
        try QuantizationPlan.checkWritable(options.quantize, name: "quantize")
        let source = SyntheticTensorSource(configuration: configuration, architecture: architecture, seed: seed,
                                           plan: options.quantize.map { QuantizationPlan(projectionType: $0) },
                                           threads: options.threadCount ?? Platform.activeProcessorCount)
        return try Model(path: "synthetic:\(shape.rawValue)", configuration: configuration, source: source, tokenizerFile: nil, options: options)
    }
}
