import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Android)
import Android
#elseif canImport(Darwin)
import Darwin
#endif

/// Severity of a log message; a sink set for a level receives that level and every more severe one.
public enum LogLevel: Int, Sendable, Comparable, CaseIterable {
    /// Something failed.
    case error = 1
    /// Something looks wrong but work goes on.
    case warning = 2
    /// One line per significant event (a model loaded).
    case info = 3
    /// Details for debugging (sessions created, errors returned to callers).
    case debug = 4

    /// Orders by verbosity: `.error < .debug`.
    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
}

/// The engine's process-wide log. Silent by default: nothing is formatted or delivered until a sink is set.
/// Messages logged on a thread while that thread is inside the sink (by library calls the sink makes) are dropped,
/// so a sink may call into the library without recursing.
public enum MobileLLMLog {
    /// Receives one message; called on the thread that logs, possibly several at once, so it must be thread-safe.
    public typealias Sink = @Sendable (LogLevel, String) -> Void

    private static let sink = Locked<Sink?>(nil)
    /// The most verbose level delivered (0: none), read without the lock on every log call.
    private static let maximumLevel = Atomic<Int>(0)
    /// Per-thread marker (non-nil) set while the thread delivers a message to the sink.
    private static let delivering: pthread_key_t = {
        var key = pthread_key_t()
        _ = pthread_key_create(&key, nil)
        return key
    }()

    /// Sends messages of `level` and more severe to `sink`; nil for either silences the log.
    public static func setSink(level: LogLevel?, _ newSink: Sink?) {
        sink.withLock { $0 = newSink }
        maximumLevel.store(newSink == nil ? 0 : (level?.rawValue ?? 0), ordering: .releasing)
    }

    /// Whether a message of `level` would be delivered.
    public static func isEnabled(_ level: LogLevel) -> Bool {
        level.rawValue <= maximumLevel.load(ordering: .acquiring)
    }

    /// Delivers `message` if its level is enabled and this thread is not already inside the sink; the text is only
    /// built then.
    public static func log(_ level: LogLevel, _ message: @autoclosure () -> String) {
        guard isEnabled(level), pthread_getspecific(delivering) == nil, let current = sink.withLock({ $0 }) else { return }
        _ = pthread_setspecific(delivering, UnsafeRawPointer(bitPattern: 1))
        defer { _ = pthread_setspecific(delivering, nil) }
        current(level, message())
    }
}
