#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Android)
import Android
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory mapping of a whole file. Weights stay in the page cache and are never copied at load.
/// Immutable after creation, so it is safe to share across threads. (Public, not `package`, because the fuzz
/// targets, a separate package, check tensor spans against the mapping.)
public final class MappedFile: @unchecked Sendable {
    /// The file's path, for error messages.
    public let path: String
    /// The mapped bytes (nil for an empty file).
    public let base: UnsafeRawPointer?
    /// The file's size in bytes.
    public let size: Int

    /// Maps the file at `path`. Throws `fileNotFound` when it cannot be opened and `io` when it cannot be mapped.
    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw MobileLLMError.fileNotFound(path: path, reason: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw MobileLLMError.io(path: path, reason: "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw MobileLLMError.invalidFile(path: path, field: "(file)", problem: "not a regular file")
        }
        size = Int(info.st_size)
        if size == 0 {
            base = nil
            return
        }
        let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let mapped, mapped != MAP_FAILED else {
            throw MobileLLMError.io(path: path, reason: "cannot map \(size) bytes: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(mapped)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), size) }
    }

    /// The bytes in `range`, which the caller has checked lies inside the file.
    public func bytes(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        guard let base, range.lowerBound >= 0, range.upperBound <= size else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count)
    }
}
