#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import MobileLLM

/// `write(2)` under a name the methods called `write` do not shadow.
private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, buffer, count)
}

/// `rename(2)` under a name the methods called `rename` do not shadow.
private func posixRename(_ source: String, _ destination: String) -> Int32 {
    rename(source, destination)
}

/// A file opened for reading at explicit offsets (`pread`), closed when the value goes away.
public final class ReadOnlyFile {
    /// The path the file was opened with, for error messages.
    public let path: String
    /// The file's size in bytes when it was opened.
    public let size: Int
    private let descriptor: Int32

    /// Opens `path` for reading.
    /// - Throws: `MobileLLMError.fileNotFound` when it cannot be opened, `.io` when it is not a regular file.
    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw MobileLLMError.fileNotFound(path: path, reason: String(cString: strerror(errno))) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw MobileLLMError.io(path: path, reason: "not a regular file")
        }
        descriptor = fd
        size = Int(info.st_size)
    }

    deinit { close(descriptor) }

    /// Reads up to `buffer.count` bytes at `offset`; fewer only at the end of the file.
    /// - Throws: `MobileLLMError.io` on a read error.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws -> Int {
        guard let base = buffer.baseAddress else { return 0 }
        var done = 0
        while done < buffer.count {
            let n = pread(descriptor, base + done, buffer.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw MobileLLMError.io(path: path, reason: "read at offset \(offset + done) failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Reads exactly `count` bytes at `offset`.
    /// - Throws: `MobileLLMError.invalidFile` naming `field` when the file ends first.
    public func bytes(at offset: Int, count: Int, field: String) throws -> [UInt8] {
        guard offset >= 0, count >= 0, offset <= size, count <= size - offset else {
            throw MobileLLMError.invalidFile(path: path, field: field,
                                             problem: "\(count) bytes at offset \(offset) run past the end of the \(size)-byte file")
        }
        var out = [UInt8](repeating: 0, count: count)
        let n = try out.withUnsafeMutableBytes { try read(into: $0, at: offset) }
        guard n == count else {
            throw MobileLLMError.invalidFile(path: path, field: field, problem: "the file ended after \(n) of \(count) bytes at offset \(offset)")
        }
        return out
    }

    /// Calls `body` with consecutive pieces (up to `chunkSize` bytes) of `count` bytes starting at `offset`
    /// (default: the whole file).
    public func forEachChunk(offset: Int = 0, count: Int? = nil, chunkSize: Int = 1 << 20,
                             _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let total = count ?? (size - offset)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, chunkSize), alignment: 16)
        defer { buffer.deallocate() }
        var done = 0
        while done < total {
            let want = min(buffer.count, total - done)
            let n = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]), at: offset + done)
            guard n > 0 else { throw MobileLLMError.io(path: path, reason: "the file ended at offset \(offset + done), expected \(offset + total) bytes") }
            try body(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            done += n
        }
    }
}

/// A file opened for writing (created or truncated, or appended to), closed when the value goes away.
public final class WritableFile {
    /// The path, for error messages.
    public let path: String
    private let descriptor: Int32

    /// Opens `path` for writing: appending when `append` is true (creating it if needed), else truncating.
    /// - Throws: `MobileLLMError.io` when it cannot be opened.
    public init(path: String, append: Bool) throws {
        self.path = path
        let flags = O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC)
        let fd = open(path, flags, 0o644)
        guard fd >= 0 else { throw MobileLLMError.io(path: path, reason: "cannot open for writing: \(String(cString: strerror(errno)))") }
        descriptor = fd
    }

    deinit { close(descriptor) }

    /// Writes all of `bytes`.
    /// - Throws: `MobileLLMError.io` on a write error (a full disk, say).
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress else { return }
        var done = 0
        while done < bytes.count {
            let n = posixWrite(descriptor, base + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw MobileLLMError.io(path: path, reason: "write failed: \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }

    /// Truncates the file to `length` bytes.
    public func truncate(to length: Int) throws {
        guard ftruncate(descriptor, off_t(length)) == 0 else {
            throw MobileLLMError.io(path: path, reason: "truncate failed: \(String(cString: strerror(errno)))")
        }
    }

    /// Flushes the file to disk.
    public func sync() {
        _ = fsync(descriptor)
    }
}

/// File-system helpers for the download code.
enum FileSystem {
    /// The size of the regular file at `path`, or nil when there is none.
    static func size(of path: String) -> Int? {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int(info.st_size)
    }

    /// Size and modification time (nanoseconds) of the regular file at `path`, or nil when there is none.
    static func identity(of path: String) -> (size: Int, mtimeNanoseconds: Int64)? {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return (Int(info.st_size), Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec))
    }

    /// Creates `path` and its parents.
    static func makeDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw MobileLLMError.io(path: path, reason: "cannot create the directory: \(error.localizedDescription)")
        }
    }

    /// Renames `source` to `destination` atomically (same file system), replacing it.
    static func rename(_ source: String, to destination: String) throws {
        guard posixRename(source, destination) == 0 else {
            throw MobileLLMError.io(path: destination, reason: "cannot rename \(source) to it: \(String(cString: strerror(errno)))")
        }
    }

    /// Removes the file at `path` if it exists.
    static func remove(_ path: String) {
        _ = unlink(path)
    }

    /// Whether stderr is a terminal.
    static var stderrIsTerminal: Bool { isatty(2) == 1 }
}

/// An exclusive advisory lock on a file (`flock`), held until the value goes away, so two processes do not fetch
/// into the same place at once.
final class FileLock {
    private let descriptor: Int32

    /// Waits for the lock on `path` (created if missing).
    init(path: String) throws {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw MobileLLMError.io(path: path, reason: "cannot open the lock file: \(String(cString: strerror(errno)))") }
        while flock(fd, LOCK_EX) != 0 {
            if errno == EINTR { continue }
            close(fd)
            throw MobileLLMError.io(path: path, reason: "cannot lock: \(String(cString: strerror(errno)))")
        }
        descriptor = fd
    }

    deinit {
        _ = flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
