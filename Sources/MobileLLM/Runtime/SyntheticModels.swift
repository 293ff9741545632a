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

/// Tensors filled with fan-in-scaled pseudo-random BF16 values, named as the architecture expects.
struct SyntheticTensorSource: TensorSource {
    let tensors: [String: StoredTensor]
    var location: String { "(synthetic weights)" }
    func tensor(named name: String) -> StoredTensor? { tensors[name] }

    init(configuration c: ModelConfiguration, architecture: ArchitectureDefinition, seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        var tensors: [String: StoredTensor] = [:]
        func add(_ name: String, _ shape: [Int], scale: Float, around center: Float = 0) {
            let count = shape.reduce(1, *)
            let buffer = OwnedBuffer(byteCount: count * 2)
            let values = buffer.pointer.bindMemory(to: UInt16.self, capacity: count)
            var state = generator.next() | 1
            for index in 0..<count {
                // xorshift64: fast enough for a billion weights; uniform in [-scale, scale) around `center`.
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                let unit = Float(state >> 40) / Float(1 << 24) * 2 - 1
                values[index] = UInt16(truncatingIfNeeded: (center + unit * scale).bitPattern >> 16)
            }
            tensors[name] = StoredTensor(name: name, type: .bf16, shape: shape, owner: buffer, pointer: UnsafeRawPointer(buffer.pointer))
        }
        let hidden = c.hiddenSize, q = c.headCount * c.headDimension, kv = c.kvHeadCount * c.headDimension
        let fanIn = { (n: Int) in Float(3.0 / Double(n)).squareRoot() }
        add(architecture.embeddingName, [c.vocabularySize, hidden], scale: 1)
        add(architecture.finalNormName, [hidden], scale: 0.1, around: 1)
        if !c.tiedEmbeddings { add(architecture.outputName, [c.vocabularySize, hidden], scale: fanIn(hidden)) }
        for layer in 0..<c.layerCount {
            let names = architecture.layerNames(layer)
            add(names.attentionNorm, [hidden], scale: 0.1, around: 1)
            add(names.query, [q, hidden], scale: fanIn(hidden))
            add(names.key, [kv, hidden], scale: fanIn(hidden))
            add(names.value, [kv, hidden], scale: fanIn(hidden))
            add(names.output, [hidden, q], scale: fanIn(q))
            add(names.mlpNorm, [hidden], scale: 0.1, around: 1)
            add(names.gate, [c.intermediateSize, hidden], scale: fanIn(hidden))
            add(names.up, [c.intermediateSize, hidden], scale: fanIn(hidden))
            add(names.down, [hidden, c.intermediateSize], scale: fanIn(c.intermediateSize))
        }
        self.tensors = tensors
    }
}

extension Model {
    /// A model with `shape`'s exact configuration and pseudo-random BF16 weights made in memory (for benchmarks).
    public static func synthetic(_ shape: SyntheticModel, seed: UInt64 = 1, options: ModelLoadOptions = ModelLoadOptions()) throws -> Model {
        let configuration = shape.configuration
        guard let architecture = ArchitectureRegistry.architecture(for: configuration.modelType) else {
            throw MobileLLMError.unsupported(path: shape.rawValue, feature: "model_type \(configuration.modelType)")
        }
        let source = SyntheticTensorSource(configuration: configuration, architecture: architecture, seed: seed)
        return try Model(path: "synthetic:\(shape.rawValue)", configuration: configuration, source: source, tokenizerFile: nil, options: options)
    }
}
