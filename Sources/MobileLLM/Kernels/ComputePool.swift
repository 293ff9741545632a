import CMobileLLMKernels

/// A persistent pool of compute threads (the caller plus `threadCount - 1` workers) used by one session.
/// Each `run` is a fork-join over all threads costing about a microsecond, so a forward pass can afford several
/// parallel regions per layer. Not reentrant: one caller at a time (a session is used by one thread at a time).
public final class ComputePool: @unchecked Sendable {
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

    /// Calls `body(thread, threadCount)` once on every thread and returns when all calls have returned.
    public func run(_ body: (_ thread: Int, _ threadCount: Int) -> Void) {
        guard threadCount > 1, let pool else {
            body(0, 1)
            return
        }
        withoutActuallyEscaping(body) { body in
            var task = body
            withUnsafeMutablePointer(to: &task) { pointer in
                mlk_pool_run(pool, { context, thread, count in
                    guard let context else { return }
                    context.assumingMemoryBound(to: ((Int, Int) -> Void).self).pointee(Int(thread), Int(count))
                }, pointer)
            }
        }
    }

    /// Splits `0..<count` into one contiguous range per thread (in multiples of `granularity`, except the last) and
    /// calls `body` with each non-empty range. Work smaller than `minimumPerThread` per thread runs on the caller only.
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
        run { thread, _ in
            guard thread < workers else { return }
            let start = min(count, units * thread / workers * granularity)
            let end = min(count, units * (thread + 1) / workers * granularity)
            if start < end { body(start..<end, thread) }
        }
    }
}
