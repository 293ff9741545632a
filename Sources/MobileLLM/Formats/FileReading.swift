import Foundation

/// Reads a whole file (regular file, pipe or `/dev/fd/N`) into memory.
/// Throws `fileNotFound` naming the path and the system's reason when it cannot be opened or read.
public func readWholeFile(_ path: String) throws -> Data {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw MobileLLMError.fileNotFound(path: path, reason: "no such file")
    }
    guard !isDirectory.boolValue else {
        throw MobileLLMError.invalidFile(path: path, field: "(file)", problem: "is a directory (expected a file)")
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
