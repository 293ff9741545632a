import CMobileLLMKernels
import Synchronization

/// A persistent pool of compute threads (the caller plus `threadCount - 1` workers).
/// Each `run` is a fork-join over all threads costing about a microsecond, so a forward pass can afford several
/// parallel regions per layer. Not reentrant: one caller at a time.
///
/// The engine uses one pool per thread count for the whole process (`shared(threadCount:)`), and every forward pass
/// holds `ComputePool.passes` while it runs: sessions and batches on any number of host threads then take turns
/// (first come, first served) instead of oversubscribing the cores with several spinning pools.
package final class ComputePool: @unchecked Sendable {
    /// The process's pools, one per thread count, created on first use and kept for the life of the process.
    private static let registry = Mutex<[Int: ComputePool]>([:])

    /// The process-wide pool with `threadCount` threads (at least 1).
    package static func shared(threadCount: Int) -> ComputePool {
        let count = max(1, threadCount)
        return registry.withLock { pools in
            if let pool = pools[count] { return pool }
            let pool = ComputePool(threadCount: count)
            pools[count] = pool
            return pool
        }
    }

    /// Held by every forward pass (and bandwidth probe) for its duration: at most one runs in the process at a time,
    /// and waiting callers are served in arrival order.
    package static let passes = FairLock()

    /// Threads per parallel region, the caller included.
    public let threadCount: Int
    private let pool: OpaquePointer?
    /// The pool whose threads a view (`limited(to:)`) runs on, kept alive by it; nil for a pool that owns its threads.
    private let base: ComputePool?
    /// Views of this pool on fewer threads, by thread count (see `limited(to:)`).
    private let views = Mutex<[Int: ComputePool]>([:])

    /// A pool of `threadCount` threads (at least 1). If worker threads cannot be created, work runs on the caller.
    public init(threadCount: Int) {
        let requested = max(1, threadCount)
        pool = requested > 1 ? mlk_pool_create(Int32(requested)) : nil
        self.threadCount = pool == nil ? 1 : requested
        base = nil
    }

    /// A view of `base` whose parallel regions use only its first `threadCount` threads.
    private init(view base: ComputePool, threadCount: Int) {
        pool = base.pool
        self.threadCount = threadCount
        self.base = base
    }

    deinit { if base == nil { mlk_pool_destroy(pool) } }

    /// This pool restricted to its first `threads` threads (clamped to 1 ... `threadCount`): the same worker threads,
    /// with parallel regions split among fewer of them (the rest stay idle). Views are made once per count and kept.
    /// Not a second pool: a view and its pool must not run regions at the same time (forward passes hold
    /// `ComputePool.passes`).
    package func limited(to threads: Int) -> ComputePool {
        let count = min(max(1, threads), threadCount)
        if count == threadCount { return self }
        if let base { return base.limited(to: count) }
        return views.withLock { views in
            if let view = views[count] { return view }
            let view = ComputePool(view: self, threadCount: count)
            views[count] = view
            return view
        }
    }

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
                mlk_pool_run_chunks_limited(pool, { context, chunk, thread in
                    guard let context else { return }
                    context.assumingMemoryBound(to: ((Int, Int) -> Void).self).pointee(Int(chunk), Int(thread))
                }, pointer, Int64(chunks), Int32(threadCount))
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

/// A first-come, first-served lock (a ticket lock over a mutex and condition): no caller waits while later arrivals
/// repeatedly win, which an ordinary mutex allows when one thread re-locks in a loop (a session decoding token after
/// token would starve another). Not recursive.
package final class FairLock: @unchecked Sendable {
    /// Heap-allocated so their addresses never move (pthread objects must not be copied).
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let turn = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// Guarded by `mutex`.
    private var nextTicket: UInt64 = 0
    private var serving: UInt64 = 0

    package init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(turn, nil)
    }

    deinit {
        pthread_cond_destroy(turn)
        pthread_mutex_destroy(mutex)
        turn.deallocate()
        mutex.deallocate()
    }

    /// Runs `body` once every earlier caller has finished.
    package func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        let ticket = nextTicket
        nextTicket += 1
        while serving != ticket { pthread_cond_wait(turn, mutex) }
        pthread_mutex_unlock(mutex)
        defer {
            pthread_mutex_lock(mutex)
            serving += 1
            pthread_cond_broadcast(turn)
            pthread_mutex_unlock(mutex)
        }
        return try body()
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Android)
import Android
#elseif canImport(Darwin)
import Darwin
#endif
