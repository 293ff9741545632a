import Foundation

/// A value behind a pthread mutex (`NSLock`), for state shared between threads inside the package.
///
/// Used instead of the standard library's `Synchronization.Mutex`: on Linux that one locks with futex calls from a
/// module built without ThreadSanitizer, so `scripts/sanitize.sh thread` cannot see its ordering and reports races
/// between accesses the mutex does serialise. pthread mutexes are understood by every sanitizer.
package final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    /// Wraps `value`.
    package init(_ value: Value) {
        self.value = value
    }

    /// Runs `body` with exclusive access to the value and returns what it returns.
    package func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
