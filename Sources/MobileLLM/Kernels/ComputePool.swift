import CMobileLLMKernels

/// A persistent pool of compute threads (the caller plus `threadCount - 1` workers) used by one session.
/// Each `run` is a fork-join over all threads costing about a microsecond, so a forward pass can afford several
/// parallel regions per layer. Not reentrant: one caller at a time (a session is used by one thread at a time).
package final class ComputePool: @unchecked Sendable {
    /// Threads per parallel region, the caller included.
    public let threadCount: Int
    private let pool: OpaquePointer?

    /// A pool of `threadCount` threads (at least 1). If worker threads cannot be created, work runs on the caller.
    public init(threadCount: Int) {
        let requested = max(1, threadCount)
        pool = requested > 1 ? mlk_pool_create(Int32(requested)) : nil
        self.threadCount = pool == nil ? 1 : requested
    }

    deinit { mlk_pool_destroy(pool) }

    /// Calls `body(chunk, thread)` once for every chunk in `0..<chunks`, on whichever thread claims it (the caller
    /// claims chunks too); `thread` is in `0..<threadCount`, so it can index per-thread scratch. Returns when every
    /// chunk has run. A worker slow to wake (a busy machine) never delays the call: the caller takes its chunks.
    public func run(chunks: Int, _ body: (_ chunk: Int, _ thread: Int) -> Void) {
        guard chunks > 0 else { return }
        guard threadCount > 1, chunks > 1, let pool else {
            for chunk in 0..<chunks { body(chunk, 0) }
            return
        }
        withoutActuallyEscaping(body) { body in
            var task = body
            withUnsafeMutablePointer(to: &task) { pointer in
                mlk_pool_run_chunks(pool, { context, chunk, thread in
                    guard let context else { return }
                    context.assumingMemoryBound(to: ((Int, Int) -> Void).self).pointee(Int(chunk), Int(thread))
                }, pointer, Int64(chunks))
            }
        }
    }

    /// Splits `0..<count` into contiguous ranges (multiples of `granularity`, except the last; about four per thread)
    /// and calls `body` with each. Work smaller than `minimumPerThread` per thread runs on the caller only.
    public func forEach(_ count: Int, granularity: Int = 1, minimumPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
        forEach(count, granularity: granularity, minimumPerThread: minimumPerThread) { range, _ in body(range) }
    }

    /// `forEach` that also passes the index (0..<threadCount) of the thread running each range, so callers can give
    /// every thread its own scratch memory.
    public func forEach(_ count: Int, granularity: Int = 1, minimumPerThread: Int = 1, _ body: (Range<Int>, Int) -> Void) {
        guard count > 0 else { return }
        let units = (count + granularity - 1) / granularity
        let workers = min(threadCount, max(1, count / max(1, minimumPerThread)), units)
        if workers == 1 {
            body(0..<count, 0)
            return
        }
        let unitsPerChunk = max(1, units / (workers * 4))
        let chunks = (units + unitsPerChunk - 1) / unitsPerChunk
        run(chunks: chunks) { chunk, thread in
            let start = min(count, chunk * unitsPerChunk * granularity)
            let end = min(count, (chunk + 1) * unitsPerChunk * granularity)
            if start < end { body(start..<end, thread) }
        }
    }
}
