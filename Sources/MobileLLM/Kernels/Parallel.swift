import Dispatch

/// Splits index ranges across worker threads. Work below `minimumPerThread` items stays on the caller's thread,
/// because waking threads costs more than tiny loops.
public struct Parallel: Sendable {
    /// Maximum number of threads one call uses (1 = run inline).
    public let threadCount: Int

    /// A splitter using up to `threadCount` threads (at least 1).
    public init(threadCount: Int) {
        self.threadCount = max(1, threadCount)
    }

    /// Calls `body` on disjoint sub-ranges covering `0..<count`, possibly concurrently, and returns when all are done.
    public func forEach(_ count: Int, minimumPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let workers = min(threadCount, max(1, count / max(1, minimumPerThread)))
        if workers == 1 {
            body(0..<count)
            return
        }
        withoutActuallyEscaping(body) { body in
            nonisolated(unsafe) let body = body
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                let start = count * worker / workers
                let end = count * (worker + 1) / workers
                if start < end { body(start..<end) }
            }
        }
    }
}
