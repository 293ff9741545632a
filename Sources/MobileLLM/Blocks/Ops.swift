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

/// Element-wise and per-row operations of the forward pass, on raw f32 buffers.
/// Each documents its buffer shapes; all are exact transcriptions of transformers' f32 arithmetic.
enum Ops {
    /// RMS normalisation of `rows` rows of width `width`: `out = x * rsqrt(mean(x²) + eps) * weight`
    /// (weightless when `weight` is nil, as Llama-4's QK norm). `x` and `out` may alias.
    /// (`mlk_rms_norm`: the sum of squares in 8 lanes on x86.)
    static func rmsNorm(_ x: UnsafePointer<Float>, rows: Int, width: Int, weight: UnsafePointer<Float>?, epsilon: Float,
                        into out: UnsafeMutablePointer<Float>) {
        mlk_rms_norm(x, Int64(rows), Int64(width), weight, epsilon, out)
    }

    /// Rotates `heads` heads of width `dimension` (one token, `x` is [heads, dimension]) by `position`.
    static func rope(_ x: UnsafeMutablePointer<Float>, heads: Int, dimension: Int, position: Int,
                     inverseFrequencies: [Float], pairing: RoPEPairing) {
        let half = dimension / 2
        for i in 0..<half {
            let angle = Float(position) * inverseFrequencies[i]
            let c = cos(angle), s = sin(angle)
            for h in 0..<heads {
                let head = x + h * dimension
                let (first, second) = pairing == .interleaved ? (2 * i, 2 * i + 1) : (i, i + half)
                let a = head[first], b = head[second]
                head[first] = a * c - b * s
                head[second] = a * s + b * c
            }
        }
    }

    /// `gate[t] = silu(gate[t]) * up[t]` over `count` values.
    /// (`mlk_swiglu`: a vector exp on x86.)
    static func swiGLU(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        mlk_swiglu(gate, up, Int64(count))
    }

    /// `x[t] += y[t]` over `count` values.
    static func add(_ x: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, count: Int) {
        for t in 0..<count { x[t] += y[t] }
    }
}
