#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Android)
import Android
#elseif canImport(Darwin)
import Darwin
#endif

/// What is at a path.
enum PathKind {
    case missing, file, directory
}

/// What is at `path` (`stat(2)`, following symbolic links): nothing, a directory, or something else (a file, pipe,
/// device), as `FileManager.fileExists(atPath:isDirectory:)` reports it.
func pathKind(_ path: String) -> PathKind {
    var info = stat()
    guard stat(path, &info) == 0 else { return .missing }
    return (info.st_mode & S_IFMT) == S_IFDIR ? .directory : .file
}

/// Whether anything is at `path` (`FileManager.fileExists(atPath:)`).
func fileExists(_ path: String) -> Bool {
    pathKind(path) != .missing
}

/// The size in bytes of what is at `path`; nil when nothing is there.
func fileSize(_ path: String) -> Int? {
    var info = stat()
    guard stat(path, &info) == 0 else { return nil }
    return Int(info.st_size)
}

/// Reads a whole file (regular file, pipe or `/dev/fd/N`) into memory.
/// Throws `fileNotFound` naming the path and the system's reason when it cannot be opened or read.
public func readWholeFile(_ path: String) throws -> [UInt8] {
    switch pathKind(path) {
    case .missing: throw MobileLLMError.fileNotFound(path: path, reason: "no such file")
    case .directory: throw MobileLLMError.invalidFile(path: path, field: "(file)", problem: "is a directory (expected a file)")
    case .file: break
    }
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else {
        throw MobileLLMError.fileNotFound(path: path, reason: "cannot open the file for reading")
    }
    defer { close(descriptor) }
    var data: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == EINTR { continue }
            throw MobileLLMError.io(path: path, reason: "cannot read: \(Platform.errorText(errno))")
        }
        if count == 0 { return data }
        data.append(contentsOf: chunk[0..<count])
    }
}

/// Up to the first `count` bytes of the file at `path`. Throws `fileNotFound` when it cannot be opened.
func readFilePrefix(_ path: String, count: Int) throws -> [UInt8] {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { throw MobileLLMError.fileNotFound(path: path, reason: "cannot open") }
    defer { close(descriptor) }
    var bytes = [UInt8](repeating: 0, count: count)
    var filled = 0
    while filled < count {
        let got = bytes.withUnsafeMutableBytes { buffer -> Int in
            guard let base = buffer.baseAddress else { return 0 }
            return read(descriptor, base + filled, count - filled)
        }
        if got < 0 && errno == EINTR { continue }
        if got <= 0 { break }
        filled += got
    }
    return Array(bytes[0..<filled])
}
