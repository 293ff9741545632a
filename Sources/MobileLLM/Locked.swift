#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Android)
import Android
#elseif canImport(Darwin)
import Darwin
#endif

/// A pthread mutex (what Foundation's `NSLock` and `NSRecursiveLock` wrap), for state shared between threads inside
/// the package.
///
/// Used instead of the standard library's `Synchronization.Mutex`: on Linux that one locks with futex calls from a
/// module built without ThreadSanitizer, so `scripts/sanitize.sh thread` cannot see its ordering and reports races
/// between accesses the mutex does serialise. pthread mutexes are understood by every sanitizer.
package final class PosixLock: @unchecked Sendable {
    /// Heap-allocated so its address never moves.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    /// A mutex; with `recursive`, the thread holding it may lock it again (and unlocks it as often).
    package init(recursive: Bool = false) {
        mutex.initialize(to: pthread_mutex_t())
        var attributes = pthread_mutexattr_t()
        _ = pthread_mutexattr_init(&attributes)
        if recursive { _ = pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_RECURSIVE)) }
        _ = pthread_mutex_init(mutex, &attributes)
        _ = pthread_mutexattr_destroy(&attributes)
    }

    deinit {
        _ = pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Waits for and takes the mutex.
    package func lock() { _ = pthread_mutex_lock(mutex) }

    /// Releases the mutex.
    package func unlock() { _ = pthread_mutex_unlock(mutex) }
}

/// A value behind a `PosixLock`.
package final class Locked<Value>: @unchecked Sendable {
    private let lock = PosixLock()
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
