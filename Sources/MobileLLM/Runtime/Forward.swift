import CMobileLLMKernels

/// One sequence's rows in a forward pass: `tokens` at positions `start..<start + tokens.count` of `cache`.
struct ForwardPart {
    /// The sequence's cache (the rows' K/V are stored into it).
    let cache: KVCache
    /// The tokens to run.
    let tokens: [Int32]
    /// Position of the first token.
    let start: Int
    /// Which of the part's rows return logits.
    let logits: LogitsRequest
}

extension Model {
    /// Runs every part's tokens through the model in one pass, so each weight block is read once for all rows, and
    /// appends the requested logits rows to `output` in part order (a part's rows in position order).
    ///
    /// Every row's arithmetic is independent of the others in the pass (the matrix kernels compute each row alone,
    /// attention reads only the row's own cache), so a sequence gets the same numbers alone or batched. Holds
    /// `ComputePool.passes` for the duration: concurrent passes in the process run one after the other. The caches
    /// must hold positions `0..<start` of each part, and no two parts may write the same cache position.
    /// `checkCancelled` runs before every layer; what it throws ends the pass (the caches' lengths are unchanged).
    /// The parallel regions run on `pool` (a view of the model's pool on fewer threads, see `Session.threadCount`),
    /// or on the model's whole pool when it is nil; the numbers are the same either way (work is split by output
    /// rows and fixed attention segments, never by summation order).
    func forward(_ parts: [ForwardPart], scratch s: Scratch, pool: ComputePool? = nil, checkCancelled: () throws -> Void,
                 into output: inout [Float]) throws {
        let pool = pool ?? self.pool
        let c = configuration
        let w = weights
        let hidden = c.hiddenSize
        // Rows: each part's tokens in order; a part's index is its cache's index in the pass.
        var rows: [AttentionRow] = []
        var caches: [KVCache] = []
        var tokens: [Int32] = []
        var logitRows: [Int] = []
        for part in parts {
            guard !part.tokens.isEmpty else { continue }
            part.cache.reserve(through: part.start + part.tokens.count)
            let first = rows.count
            rows.append(contentsOf: part.tokens.indices.map { AttentionRow(sequence: caches.count, position: part.start + $0) })
            caches.append(part.cache)
            tokens.append(contentsOf: part.tokens)
            switch part.logits {
            case .none: break
            case .last: logitRows.append(rows.count - 1)
            case .all: logitRows.append(contentsOf: first..<rows.count)
            }
        }
        let n = rows.count
        guard n > 0 else { return }
        let capacity = caches.map(\.capacity).max() ?? 0

        try ComputePool.passes.withLock {
            s.reserve(tokens: n, configuration: c)
            s.reserveScores(floats: Attention.scratchFloats(configuration: c, capacity: capacity, threads: pool.threadCount))
            let pass = ForwardPass(configuration: c, pool: pool, precision: activationPrecision, ropeFrequencies: ropeFrequencies,
                                   rows: rows, caches: caches, s: s)

            // x [n, hidden]: the residual stream, starting from the token embeddings.
            for (i, token) in tokens.enumerated() { w.embedding.row(Int(token), into: s.x + i * hidden) }

            // Every decoder layer: attention and MLP blocks as the family's recipe composes them (DecoderLayer.swift).
            for (index, layer) in w.layers.enumerated() {
                try checkCancelled()
                layer.forward(layer: index, recipe: recipes[index], pass: pass)
            }
            try checkCancelled()

            // logits [rows, vocab] = RMSNorm(x) · W_outᵀ for the requested rows, gathered into h.
            guard !logitRows.isEmpty else { return }
            w.finalNorm.withUnsafeBufferPointer { weight in
                if logitRows.count == logitRows.last.map({ $0 - logitRows[0] + 1 }) {
                    Ops.rmsNorm(s.x + logitRows[0] * hidden, rows: logitRows.count, width: hidden, weight: weight.baseAddress,
                                epsilon: c.rmsNormEpsilon, into: s.h)
                } else {
                    for (slot, row) in logitRows.enumerated() {
                        Ops.rmsNorm(s.x + row * hidden, rows: 1, width: hidden, weight: weight.baseAddress, epsilon: c.rmsNormEpsilon,
                                    into: s.h + slot * hidden)
                    }
                }
            }
            let vocabulary = c.vocabularySize
            let previous = output.count
            output.append(contentsOf: repeatElement(0, count: logitRows.count * vocabulary))
            let input = pass.prepare(s.h, count: logitRows.count, columns: hidden, for: [w.output])
            output.withUnsafeMutableBufferPointer { buffer in
                if let base = buffer.baseAddress {
                    pool.project([w.output], input: input, outputs: [base + previous])
                }
            }
        }
    }
}
