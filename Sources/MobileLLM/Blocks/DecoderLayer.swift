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

/// The state one forward pass shares across its layers: the rows it computes, their caches, the scratch buffers,
/// the thread pool and the model-wide constants.
struct ForwardPass {
    let configuration: ModelConfiguration
    let pool: ComputePool
    /// How quantized projections multiply (int8: activations quantized once per projection input).
    let precision: ActivationPrecision
    /// Inverse RoPE frequencies, one per rotated pair.
    let ropeFrequencies: [Float]
    /// The rows: each one token at a position of a sequence.
    let rows: [AttentionRow]
    /// The caches the rows' sequences write and read.
    let caches: [KVCache]
    /// Scratch buffers, sized for `rows.count` rows.
    let s: Scratch

    /// Number of rows.
    var n: Int { rows.count }

    /// Wraps `count` rows of `columns` f32 values as a projection input. In the int8-activation mode, when one of
    /// `linears` is quantized, the rows are also quantized (once, split across threads for prefill) to the Q8A
    /// activation format into scratch memory; in the int16 mode, when a quantized linear's kernel reads 16-bit
    /// activations (`mlk_qf32_prepared_bytes`: long passes on AVX-512 VNNI), the rows are rounded to that form once.
    func prepare(_ x: UnsafeMutablePointer<Float>, count: Int, columns: Int, for linears: [Linear]) -> ProjectionInput {
        nonisolated(unsafe) let destination = s.activations
        nonisolated(unsafe) let source = x
        let quantized = linears.lazy.filter { $0.weight.isQuantized }
        switch precision {
        case .int8:
            guard let type = quantized.first?.weight.type else { break }
            let rowBytes = type.activationRowBytes(columns) ?? 0
            pool.forEach(count, minimumPerThread: 8) { range in
                mlk_q_quantize_activations(type.rawValue, source + range.lowerBound * columns, Int64(range.count), Int64(columns),
                                           destination + range.lowerBound * rowBytes)
            }
            return ProjectionInput(x: x, count: count, quantized: UnsafeRawPointer(destination), prepared: nil)
        case .int16:
            let bytes = quantized.map { Int(mlk_qf32_prepared_bytes($0.weight.layout, Int64(count), Int64(columns))) }.max() ?? 0
            guard bytes > 0 else { break }
            let rowBytes = bytes / count
            pool.forEach(count, minimumPerThread: 8) { range in
                mlk_qf32_prepare(source + range.lowerBound * columns, Int64(range.count), Int64(columns),
                                 destination + range.lowerBound * rowBytes)
            }
            return ProjectionInput(x: x, count: count, quantized: nil, prepared: UnsafeRawPointer(destination))
        case .exact:
            break
        }
        return ProjectionInput(x: x, count: count, quantized: nil, prepared: nil)
    }

    /// RMS-normalises the pass's `n` rows of `x` (width `width`) with `weight` into `out`, rows split across threads
    /// for prefill (each row's numbers are the same however rows are split).
    func normalize(_ x: UnsafeMutablePointer<Float>, width: Int, weight: [Float], into out: UnsafeMutablePointer<Float>) {
        let epsilon = configuration.rmsNormEpsilon
        nonisolated(unsafe) let x = x, out = out
        weight.withUnsafeBufferPointer { w in
            nonisolated(unsafe) let w = w.baseAddress
            pool.forEach(n, minimumPerThread: 32) { range in
                Ops.rmsNorm(x + range.lowerBound * width, rows: range.count, width: width, weight: w, epsilon: epsilon,
                            into: out + range.lowerBound * width)
            }
        }
    }

    /// `output = input · Wᵀ (+ b)` for each linear, in one parallel region (see `ComputePool.project`).
    func project(_ linears: [Linear], _ x: UnsafeMutablePointer<Float>, columns: Int, into outputs: [UnsafeMutablePointer<Float>],
                 epilogue: ((Range<Int>) -> Void)? = nil) {
        pool.project(linears, input: prepare(x, count: n, columns: columns, for: linears), outputs: outputs, epilogue: epilogue)
    }
}

extension PositionBlock {
    /// Applies the block to one row's q (`[heads, headDim]`) and k (`[kvHeads, headDim]`) at `position`.
    func apply(q: UnsafeMutablePointer<Float>, k: UnsafeMutablePointer<Float>, position: Int, layer: LayerWeights,
               pass: ForwardPass) {
        let c = pass.configuration
        let d = c.headDimension
        switch self {
        case let .rope(pairing):
            Ops.rope(q, heads: c.headCount, dimension: d, position: position, inverseFrequencies: pass.ropeFrequencies, pairing: pairing)
            Ops.rope(k, heads: c.kvHeadCount, dimension: d, position: position, inverseFrequencies: pass.ropeFrequencies, pairing: pairing)
        case let .headNorm(weighted):
            func norm(_ x: UnsafeMutablePointer<Float>, heads: Int, _ weight: [Float]?) {
                if weighted, let weight {
                    weight.withUnsafeBufferPointer { w in
                        Ops.rmsNorm(x, rows: heads, width: d, weight: w.baseAddress, epsilon: c.rmsNormEpsilon, into: x)
                    }
                } else {
                    Ops.rmsNorm(x, rows: heads, width: d, weight: nil, epsilon: c.rmsNormEpsilon, into: x)
                }
            }
            norm(q, heads: c.headCount, layer.queryNorm)
            norm(k, heads: c.kvHeadCount, layer.keyNorm)
        case let .temperatureTuning(strength, floorScale):
            let scale = log1p(((Float(position) + 1) / floorScale).rounded(.down)) * strength + 1
            for t in 0..<(c.headCount * d) { q[t] *= scale }
        }
    }
}

/// The pre-norm decoder layer every supported family shares (Llama, Llama-4, Qwen2, Qwen3):
///
///     h = RMSNorm(x);  q, k, v = h·Wq (+bq), h·Wk (+bk), h·Wv (+bv)
///     q, k = recipe blocks (RoPE, QK norm, temperature tuning) per row;  cache ← k, v
///     x += attention(q, cache) · Wo (+bo)
///     h = RMSNorm(x);  x += (silu(h·Wg) * h·Wu) · Wd
extension LayerWeights {
    /// Runs the layer on the pass's rows: reads and updates the residual stream `s.x` ([n, hidden]), stores the rows'
    /// K/V in layer `index` of their caches.
    func forward(layer index: Int, recipe: LayerRecipe, pass: ForwardPass) {
        let c = pass.configuration, s = pass.s, n = pass.n
        let hidden = c.hiddenSize
        let qWidth = c.headCount * c.headDimension, kvWidth = c.kvHeadCount * c.headDimension

        // h = RMSNorm(x); q [n, heads*headDim], k/v [n, kvHeads*headDim].
        pass.normalize(s.x, width: hidden, weight: attentionNorm, into: s.h)
        pass.project([query, key, value], s.h, columns: hidden, into: [s.q, s.k, s.v])

        // Position blocks per row, then K/V into the row's cache.
        for (i, row) in pass.rows.enumerated() {
            let q = s.q + i * qWidth, k = s.k + i * kvWidth
            for block in recipe.blocks { block.apply(q: q, k: k, position: row.position, layer: self, pass: pass) }
            pass.caches[row.sequence].store(layer: index, position: row.position, key: k, value: s.v + i * kvWidth)
        }

        // attention [n, heads*headDim]; x += o(attention).
        Attention(configuration: c, pool: pass.pool).run(layer: index, rows: pass.rows, caches: pass.caches, chunkSize: recipe.chunkSize,
                                                         q: s.q, output: s.attention, scratch: s.scores)
        pass.project([output], s.attention, columns: qWidth, into: [s.h])
        Ops.add(s.x, s.h, count: n * hidden)

        // MLP: h = RMSNorm(x); x += down(silu(gate(h)) * up(h)), SwiGLU applied by each thread to the rows it computed.
        pass.normalize(s.x, width: hidden, weight: mlpNorm, into: s.h)
        let width = c.intermediateSize
        pass.project([gate, up], s.h, columns: hidden, into: [s.gate, s.up]) { rows in
            for i in 0..<n { Ops.swiGLU(s.gate + i * width + rows.lowerBound, s.up + i * width + rows.lowerBound, count: rows.count) }
        }
        pass.project([down], s.gate, columns: width, into: [s.h])
        Ops.add(s.x, s.h, count: n * hidden)
    }
}
