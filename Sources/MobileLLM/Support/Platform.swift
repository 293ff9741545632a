// The one place where the engine's operating-system calls differ by platform: the C library's module name and the
// few calls whose Swift signatures or behaviour differ between glibc, musl, Bionic (Android) and Darwin. Other files
// import the C library with the same four-way `#if` and call only what POSIX gives every platform alike.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Android)
import Android
#elseif canImport(Darwin)
import Darwin
// ProcessInfo: Darwin's Foundation is part of the system, so using it there costs the library nothing.
import Foundation
#endif

/// Platform services used across the engine.
enum Platform {
    /// The number of processors online (`ProcessInfo.activeProcessorCount` on Darwin; `sysconf` elsewhere).
    static var activeProcessorCount: Int {
        #if canImport(Darwin)
        return ProcessInfo.processInfo.activeProcessorCount
        #else
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        #endif
    }

    /// The machine's physical memory in bytes (`ProcessInfo.physicalMemory` on Darwin; `sysconf` pages times page
    /// size elsewhere; `Int.max` when the system does not say).
    static var physicalMemory: UInt64 {
        #if canImport(Darwin)
        return ProcessInfo.processInfo.physicalMemory
        #else
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, size > 0 else { return UInt64(Int.max) }
        return UInt64(pages).multipliedReportingOverflow(by: UInt64(size)).partialValue
        #endif
    }

    /// The virtual-memory page size in bytes (0 if the system does not say).
    static var pageSize: Int { max(0, Int(sysconf(Int32(_SC_PAGESIZE)))) }

    /// `write(2)`: writes up to `count` bytes, returning how many were written or -1 with `errno` set.
    static func write(_ descriptor: Int32, _ pointer: UnsafeRawPointer, _ count: Int) -> Int {
        #if canImport(Glibc)
        return Glibc.write(descriptor, pointer, count)
        #elseif canImport(Musl)
        return Musl.write(descriptor, pointer, count)
        #elseif canImport(Android)
        return Android.write(descriptor, pointer, count)
        #else
        return Darwin.write(descriptor, pointer, count)
        #endif
    }

    /// The system's description of the error number `code` (`strerror`).
    static func errorText(_ code: Int32) -> String {
        String(cString: strerror(code))
    }

    /// Tells the kernel that the resident pages of a read-only file mapping in `address ..< address + length`
    /// (page-aligned) are not needed now; they are read back from the file if touched again.
    static func dropMappedPages(_ address: UnsafeMutableRawPointer, _ length: Int) {
        _ = madvise(address, length, Int32(MADV_DONTNEED))
    }

    /// Asks for transparent huge pages for the anonymous memory `address ..< address + length` (2 MB-aligned) before
    /// it is first touched (Linux `MADV_HUGEPAGE`; where the system lacks or refuses it, nothing happens).
    static func adviseHugePages(_ address: UnsafeMutableRawPointer, _ length: Int) {
        #if os(Linux) || os(Android)
        if length > 0 { _ = madvise(address, length, 14 /* MADV_HUGEPAGE */) }
        #endif
    }

    /// `format` applied to the local time at `seconds` since 1970 by C `strftime`; nil when the time cannot be
    /// converted. An expansion longer than 4095 bytes gives "".
    static func formatLocalTime(_ format: String, secondsSince1970 seconds: Int) -> String? {
        var time = time_t(seconds)
        var parts = tm()
        guard localtime_r(&time, &parts) != nil else { return nil }
        var buffer = [Int8](repeating: 0, count: 4096)
        let count = format.withCString { strftime(&buffer, buffer.count, $0, &parts) }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Runs `body` on a new detached thread with the platform's default stack size (what Foundation's `Thread`
    /// gives). Returns false, without running `body`, when the thread cannot be created.
    @discardableResult
    static func startThread(_ body: @escaping @Sendable () -> Void) -> Bool {
        let context = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
        var attributes = pthread_attr_t()
        guard pthread_attr_init(&attributes) == 0 else {
            Unmanaged<ThreadBody>.fromOpaque(context).release()
            return false
        }
        defer { pthread_attr_destroy(&attributes) }
        _ = pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        #if canImport(Darwin) || canImport(Musl)
        var thread: pthread_t? = nil  // a pointer type there
        #else
        var thread = pthread_t()  // an integer on glibc and Bionic
        #endif
        let created = pthread_create(&thread, &attributes, { argument in
            // Optional on glibc/musl/Bionic, not on Darwin: the cast reads both the same way.
            if let argument = argument as UnsafeMutableRawPointer? {
                Unmanaged<ThreadBody>.fromOpaque(argument).takeRetainedValue().body()
            }
            return nil
        }, context)
        guard created == 0 else {
            Unmanaged<ThreadBody>.fromOpaque(context).release()
            return false
        }
        return true
    }
}

/// A thread's body, boxed to pass through `pthread_create`'s context pointer.
private final class ThreadBody {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}
