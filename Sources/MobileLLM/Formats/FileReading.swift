import Foundation

/// Reads a whole file (regular file, pipe or `/dev/fd/N`) into memory.
/// Throws `fileNotFound` naming the path and the system's reason when it cannot be opened or read.
public func readWholeFile(_ path: String) throws -> Data {
    guard FileManager.default.fileExists(atPath: path) else {
        throw MobileLLMError.fileNotFound(path: path, reason: "no such file")
    }
    guard let handle = FileHandle(forReadingAtPath: path) else {
        throw MobileLLMError.fileNotFound(path: path, reason: "cannot open the file for reading")
    }
    defer { try? handle.close() }
    do {
        return try handle.readToEnd() ?? Data()
    } catch {
        throw MobileLLMError.io(path: path, reason: "cannot read: \(error.localizedDescription)")
    }
}
