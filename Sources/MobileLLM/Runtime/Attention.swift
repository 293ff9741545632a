import CMobileLLMKernels

/// One query row of an attention batch: which sequence's cache it reads and its position there.
struct AttentionRow: Sendable, Equatable {
    /// Index into the batch's caches.
    var sequence: Int
    /// The row's position (it sees cached positions up to and including this one).
    var position: Int
}

/// Grouped-query attention over KV caches, scheduled in fixed segments.
///
/// Each (row, KV head) item covers the head's query group, so a cached K/V row is read once per group. A row's
/// visible positions are split at multiples of `segment` (the KV cache's page size, so a segment is contiguous) and
/// the segments' partial softmax results are combined in segment order. The arithmetic is the same however the work
/// is scheduled: a batch of one row (decode) spreads its segments over threads; larger batches give each thread
/// (block of up to `rowBlock` rows of one sequence, KV head) items, whose rows attend each segment one after the other
/// while it is in cache (`mlk_attention_partial_rows`) and compute as if alone — so prefill and decode are
/// bit-identical, and so is a row whatever else shares its batch.
struct Attention {
    /// Positions per segment.
    static let segment = 256
    /// Most rows of one sequence that attend a segment together.
    static let rowBlock = 8

    /// Floats of one thread's scratch: the scores and segment partials of `rowBlock` rows, and one set of partials
    /// to combine from.
    static func threadScratchFloats(configuration c: ModelConfiguration, maxSegments segments: Int) -> Int {
        let partialStride = c.groupSize * (c.headDimension + 2)
        return rowBlock * (c.groupSize * segment + segments * partialStride) + segments * partialStride
    }

    /// Floats of scratch `run` needs: `threadScratchFloats` per thread, then the partials of every KV head for split
    /// decode. `capacity` is the largest cache's.
    static func scratchFloats(configuration c: ModelConfiguration, capacity: Int, threads: Int) -> Int {
        let segments = maxSegments(capacity: capacity)
        let partialStride = c.groupSize * (c.headDimension + 2)
        return threads * threadScratchFloats(configuration: c, maxSegments: segments) + c.kvHeadCount * segments * partialStride
    }

    /// Most segments a row of a cache of `capacity` positions spans (a window that starts mid-segment adds one).
    static func maxSegments(capacity: Int) -> Int { (capacity + segment - 1) / segment + 1 }

    let configuration: ModelConfiguration
    let pool: ComputePool

    /// Computes `output` ([rows, heads * headDim]) = softmax(q·Kᵀ · scale) · V for every row of `q` ([rows, heads *
    /// headDim]) against layer `layer` of its sequence's cache, over the positions its window shows (`chunkSize`: the
    /// row's own chunk only). The rows' K/V must already be stored. `scratch` holds `scratchFloats` floats for the
    /// largest cache's capacity.
    func run(layer: Int, rows: [AttentionRow], caches: [KVCache], chunkSize: Int?, q: UnsafePointer<Float>,
             output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let c = configuration
        let n = rows.count
        let headDim = c.headDimension, group = c.groupSize, kvHeads = c.kvHeadCount, segment = Self.segment
        let qWidth = c.headCount * headDim
        let scale = Float(1.0 / Double(headDim).squareRoot())
        let partialStride = group * (headDim + 2)
        let capacity = caches.map(\.capacity).max() ?? 0
        let maxSegments = Self.maxSegments(capacity: capacity)
        let perThread = Self.threadScratchFloats(configuration: c, maxSegments: maxSegments)
        nonisolated(unsafe) let q = q, output = output, threadScratch = scratch

        // Visible positions of row i: first...position.
        func first(_ i: Int) -> Int {
            chunkSize.map { (rows[i].position / $0) * $0 } ?? 0
        }
        // Segments row i's window spans (split at multiples of `segment`).
        func segmentCount(_ i: Int) -> Int { rows[i].position / segment - first(i) / segment + 1 }
        // One segment's partial result into `partial` ([group][d] outputs, then group maxes, then group sums).
        func attendSegment(row i: Int, kvHead: Int, segment index: Int, scores: UnsafeMutablePointer<Float>,
                           partial: UnsafeMutablePointer<Float>) {
            let start = first(i)
            let absolute = start / segment + index
            let begin = max(start, absolute * segment)
            let count = min(rows[i].position + 1, (absolute + 1) * segment) - begin
            let cache = caches[rows[i].sequence]
            mlk_attention_partial(q + i * qWidth + kvHead * group * headDim, Int64(group), Int64(headDim),
                                  cache.keys(layer: layer, head: kvHead, from: begin),
                                  cache.values(layer: layer, head: kvHead, from: begin), cache.type.kernelType,
                                  Int64(count), scale, scores, partial, partial + group * headDim, partial + group * headDim + group)
        }
        // Combines `segments` partials laid out with `partialStride` into row i's output for the KV head.
        func combine(row i: Int, kvHead: Int, segments: Int, partials: UnsafeMutablePointer<Float>, work: UnsafeMutablePointer<Float>) {
            // Regroup [segment][out | maxes | sums] into the combine layout: outs, then maxes, then sums.
            let outs = work, maxes = work + segments * group * headDim, sums = maxes + segments * group
            for index in 0..<segments {
                let partial = partials + index * partialStride
                (outs + index * group * headDim).update(from: partial, count: group * headDim)
                (maxes + index * group).update(from: partial + group * headDim, count: group)
                (sums + index * group).update(from: partial + group * headDim + group, count: group)
            }
            mlk_attention_combine(Int64(segments), Int64(group), Int64(headDim), outs, maxes, sums,
                                  output + i * qWidth + kvHead * group * headDim)
        }

        let decodeSegments = n == 1 ? segmentCount(0) : 1
        if n == 1 && decodeSegments > 1 {
            // One row: its segments spread over threads, then combined per KV head.
            nonisolated(unsafe) let shared = threadScratch + pool.threadCount * perThread
            pool.forEach(kvHeads * decodeSegments) { range, thread in
                let scores = threadScratch + thread * perThread
                for item in range {
                    let kvHead = item / decodeSegments, index = item % decodeSegments
                    attendSegment(row: 0, kvHead: kvHead, segment: index, scores: scores,
                                  partial: shared + (kvHead * maxSegments + index) * partialStride)
                }
            }
            let work = threadScratch + group * segment
            for kvHead in 0..<kvHeads {
                combine(row: 0, kvHead: kvHead, segments: decodeSegments, partials: shared + kvHead * maxSegments * partialStride, work: work)
            }
        } else {
            // Blocks of consecutive rows of one sequence with rising positions and one window start: a block's rows
            // that see a segment are a suffix of it, and they attend it together.
            var blocks: [Range<Int>] = []
            var blockStart = 0
            for i in 1...n {
                if i == n || i - blockStart == Self.rowBlock || rows[i].sequence != rows[i - 1].sequence
                    || rows[i].position <= rows[i - 1].position || first(i) != first(blockStart) {
                    blocks.append(blockStart..<i)
                    blockStart = i
                }
            }
            let rowScores = group * segment, rowPartials = maxSegments * partialStride
            let items = blocks.count * kvHeads
            pool.forEach(items) { range, thread in
                let scores = threadScratch + thread * perThread
                let partials = scores + Self.rowBlock * rowScores
                let work = partials + Self.rowBlock * rowPartials
                withUnsafeTemporaryAllocation(of: Int64.self, capacity: Self.rowBlock) { lengths in
                    for item in range {
                        // Latest blocks (the most positions) first, so the threads finish together.
                        let block = blocks[(items - 1 - item) / kvHeads], kvHead = (items - 1 - item) % kvHeads
                        let start = first(block.lowerBound), firstSegment = start / segment
                        for absolute in firstSegment...(rows[block.upperBound - 1].position / segment) {
                            let begin = max(start, absolute * segment)
                            let end = (absolute + 1) * segment
                            guard let j = block.first(where: { rows[$0].position >= begin }) else { continue }
                            for i in j..<block.upperBound { lengths[i - j] = Int64(min(rows[i].position + 1, end) - begin) }
                            let cache = caches[rows[j].sequence]
                            mlk_attention_partial_rows(Int64(block.upperBound - j), q + j * qWidth + kvHead * group * headDim, Int64(qWidth),
                                                       lengths.baseAddress, Int64(group), Int64(headDim),
                                                       cache.keys(layer: layer, head: kvHead, from: begin),
                                                       cache.values(layer: layer, head: kvHead, from: begin), cache.type.kernelType,
                                                       scale, scores + (j - block.lowerBound) * rowScores, Int64(rowScores),
                                                       partials + (j - block.lowerBound) * rowPartials + (absolute - firstSegment) * partialStride,
                                                       Int64(rowPartials))
                        }
                        for i in block {
                            combine(row: i, kvHead: kvHead, segments: segmentCount(i),
                                    partials: partials + (i - block.lowerBound) * rowPartials, work: work)
                        }
                    }
                }
            }
        }
    }
}
