import Foundation
import MobileLLM
import MobileLLMOpenAI

/// What a scheduled request hears about its sequences (its *choices*: prompt p's sample s is choice
/// p × samples + s).
public enum ChoiceUpdate: Sendable {
    /// Choice `choice` produced `token`; `pieces` is its text split by channel (possibly empty text while a stop
    /// string or a multi-byte character is held back).
    case token(choice: Int, token: Int32, pieces: [GeneratedPiece])
    /// Choice `choice` ended: `rest` is the held-back text released at the end, `result` its tokens and stop reason.
    case finished(choice: Int, rest: [GeneratedPiece], result: BatchResult)
    /// The request failed before or while it ran (every choice not yet finished is abandoned).
    case failed(APIError)
}

/// One request waiting in or running through a `BatchScheduler`. Its updates arrive on `updates`; `cancel()` (or
/// dropping the stream's iterator) ends its sequences at the next step.
public final class ScheduledRequest: Sendable {
    /// The request.
    public let request: CompletionRequest
    /// Every update of every choice, in order; finishes after the last choice finishes (or on failure).
    public let updates: AsyncStream<ChoiceUpdate>
    fileprivate let continuation: AsyncStream<ChoiceUpdate>.Continuation
    fileprivate let state = Locked(State())
    fileprivate struct State {
        var cancelled = false
        /// Batch sequence ids once admitted.
        var ids: [Int] = []
        var unfinished = 0
    }
    private let scheduler: BatchScheduler

    fileprivate init(request: CompletionRequest, scheduler: BatchScheduler) {
        self.request = request
        self.scheduler = scheduler
        (updates, continuation) = AsyncStream.makeStream(of: ChoiceUpdate.self)
    }

    /// Number of choices (prompts × samples).
    public var choiceCount: Int { request.prompts.count * request.samples }

    /// Stops the request: a waiting one leaves the queue, a running one's sequences finish with `.cancelled` at the
    /// next step. Safe from any thread, more than once.
    public func cancel() {
        let ids = state.withLock { state -> [Int] in
            state.cancelled = true
            return state.ids
        }
        scheduler.cancel(ids: ids)
    }

    fileprivate var isCancelled: Bool { state.withLock { $0.cancelled } }
}

/// Runs every request of a server through one `BatchGenerator` on a thread of its own: requests wait in a FIFO queue
/// and join the running batch as soon as their sequences fit under `parallel` (a request with more sequences than
/// `parallel` runs when the batch is empty), so a new request's prompt is fed in chunks beside the other sequences'
/// decode tokens (continuous batching). The forward passes run on the model's compute pool.
public final class BatchScheduler: @unchecked Sendable {
    /// The model.
    public let model: Model
    /// Most sequences decoding at once.
    public let parallel: Int
    /// Most requests waiting; `submit` refuses more with a 503.
    public let maxQueue: Int
    /// KV positions of each sequence.
    public let contextLength: Int
    private let kvCacheType: KVCacheType?
    private let batch: BatchGenerator
    private let condition = NSCondition()
    // Guarded by `condition`:
    private var queue: [ScheduledRequest] = []
    private var owners: [Int: (request: ScheduledRequest, choice: Int)] = [:]
    private var stopping = false
    private var thread: Thread?
    private let stats = Locked(SchedulerStatistics())

    /// A scheduler for `model` (it does not start until `start()`).
    public init(model: Model, parallel: Int, maxQueue: Int, contextLength: Int, kvCacheType: KVCacheType?) throws {
        guard parallel >= 1 else { throw MobileLLMError.invalidArgument(name: "parallel", problem: "expected a count >= 1, found \(parallel)") }
        guard maxQueue >= 1 else { throw MobileLLMError.invalidArgument(name: "max-queue", problem: "expected a count >= 1, found \(maxQueue)") }
        guard contextLength >= 2 else {
            throw MobileLLMError.invalidArgument(name: "context-length", problem: "expected a length >= 2, found \(contextLength)")
        }
        self.model = model
        self.parallel = parallel
        self.maxQueue = maxQueue
        self.contextLength = contextLength
        self.kvCacheType = kvCacheType
        batch = try BatchGenerator(model: model)
    }

    /// Starts the scheduling thread.
    public func start() {
        condition.lock()
        defer { condition.unlock() }
        guard thread == nil else { return }
        let worker = Thread { [self] in loop() }
        worker.name = "mobilellm-batch"
        thread = worker
        worker.start()
    }

    /// Queues `request`; throws a 503 `APIError` when the queue is full or the server is stopping.
    public func submit(_ request: CompletionRequest) throws -> ScheduledRequest {
        let scheduled = ScheduledRequest(request: request, scheduler: self)
        condition.lock()
        defer { condition.unlock() }
        guard !stopping else {
            throw APIError(status: 503, message: "the server is shutting down", type: "server_error", code: "shutting_down")
        }
        guard queue.count < maxQueue else {
            throw APIError(status: 503, message: "the server is busy: \(queue.count) requests are waiting (--max-queue \(maxQueue))",
                           type: "server_error", code: "queue_full")
        }
        queue.append(scheduled)
        scheduled.continuation.onTermination = { [weak scheduled] termination in
            if case .cancelled = termination { scheduled?.cancel() }
        }
        condition.signal()
        return scheduled
    }

    /// Cancels sequences by id and wakes the thread (a queued request is dropped there).
    fileprivate func cancel(ids: [Int]) {
        for id in ids { batch.cancel(id) }
        condition.lock()
        condition.signal()
        condition.unlock()
    }

    /// Stops taking requests and cancels every waiting and running one (running choices finish with `.cancelled`,
    /// so their streams end normally); returns once the thread has drained the batch.
    public func shutdown() {
        condition.lock()
        stopping = true
        let waiting = queue
        queue = []
        condition.signal()
        condition.unlock()
        for request in waiting {
            request.continuation.yield(.failed(APIError(status: 503, message: "the server is shutting down", type: "server_error", code: "shutting_down")))
            request.continuation.finish()
        }
        batch.cancelAll()
        condition.lock()
        while thread != nil { condition.wait() }
        condition.unlock()
    }

    /// Counters for `/metrics`.
    public var statistics: SchedulerStatistics {
        var snapshot = stats.withLock { $0 }
        condition.lock()
        snapshot.queueDepth = queue.count
        condition.unlock()
        snapshot.runningSequences = batch.activeCount
        return snapshot
    }

    // MARK: - The scheduling thread

    private func loop() {
        while true {
            condition.lock()
            while !stopping && batch.activeCount == 0 && queue.isEmpty {
                condition.wait()
            }
            if stopping && batch.activeCount == 0 {
                thread = nil
                condition.broadcast()
                condition.unlock()
                return
            }
            admit()
            condition.unlock()
            guard batch.activeCount > 0 else { continue }

            let start = DispatchTime.now().uptimeNanoseconds
            let events: [BatchEvent]
            do {
                events = try batch.step()
            } catch {
                failRunning(APIError(error))
                continue
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            var tokens = 0
            condition.lock()
            for event in events {
                switch event {
                case let .token(sequence, token, _, pieces):
                    tokens += 1
                    guard let owner = owners[sequence] else { continue }
                    owner.request.continuation.yield(.token(choice: owner.choice, token: token, pieces: pieces))
                case let .finished(sequence, _, restPieces, result):
                    guard let owner = owners.removeValue(forKey: sequence) else { continue }
                    owner.request.continuation.yield(.finished(choice: owner.choice, rest: restPieces, result: result))
                    let done = owner.request.state.withLock { state -> Bool in
                        state.unfinished -= 1
                        return state.unfinished == 0
                    }
                    if done { owner.request.continuation.finish() }
                }
            }
            condition.unlock()
            stats.withLock { $0.record(tokens: tokens, seconds: seconds) }
        }
    }

    /// Moves waiting requests into the batch while their sequences fit (called holding `condition`).
    private func admit() {
        while let next = queue.first {
            if next.isCancelled {
                queue.removeFirst()
                next.continuation.finish()
                continue
            }
            let active = batch.activeCount
            guard active == 0 || active + next.choiceCount <= parallel, !stopping else { return }
            queue.removeFirst()
            let request = next.request
            var added: [Int] = []
            do {
                for prompt in request.prompts {
                    var options = request.options
                    // max_tokens beyond the room left is clipped (finish reason "length").
                    options.maxTokens = min(options.maxTokens, contextLength - prompt.count)
                    added += try batch.add(prompt: prompt, samples: request.samples, options: options,
                                           contextLength: contextLength, kvCacheType: kvCacheType, streamText: true)
                }
            } catch {
                for id in added { batch.cancel(id) }
                next.continuation.yield(.failed(APIError(error)))
                next.continuation.finish()
                continue
            }
            for (choice, id) in added.enumerated() { owners[id] = (next, choice) }
            let cancelled = next.state.withLock { state -> Bool in
                state.ids = added
                state.unfinished = added.count
                return state.cancelled
            }
            if cancelled { for id in added { batch.cancel(id) } }
            stats.withLock { $0.promptTokens += request.prompts.reduce(0) { $0 + $1.count } }
        }
    }

    /// A forward pass failed: every running request fails, and the batch is emptied.
    private func failRunning(_ error: APIError) {
        batch.cancelAll()
        _ = try? batch.step()
        condition.lock()
        var seen = Set<ObjectIdentifier>()
        for owner in owners.values where seen.insert(ObjectIdentifier(owner.request)).inserted {
            owner.request.continuation.yield(.failed(error))
            owner.request.continuation.finish()
        }
        owners = [:]
        condition.unlock()
    }
}

/// Counters a scheduler keeps for `/metrics`.
public struct SchedulerStatistics: Sendable {
    /// Prompt tokens admitted.
    public var promptTokens = 0
    /// Tokens generated.
    public var generatedTokens = 0
    /// Requests waiting.
    public var queueDepth = 0
    /// Sequences in the batch.
    public var runningSequences = 0
    /// Tokens per second over recent steps (an exponential moving average over about 20 steps).
    public var decodeTokensPerSecond = 0.0

    mutating func record(tokens: Int, seconds: Double) {
        generatedTokens += tokens
        guard seconds > 0, tokens > 0 else { return }
        let rate = Double(tokens) / seconds
        decodeTokensPerSecond = decodeTokensPerSecond == 0 ? rate : 0.95 * decodeTokensPerSecond + 0.05 * rate
    }
}
