import Foundation
import MobileLLM

/// A ZIP archive (PKWARE APPNOTE 6.3: the format of Python wheels) read through its central directory.
///
/// Every offset and size read from the file is checked against the file before it is used, ZIP64 records are
/// followed when the 32-bit fields overflow, and members stored (method 0) or deflated (method 8) can be
/// extracted with their CRC-32 and size checked. A malformed archive throws `MobileLLMError.invalidFile` naming
/// the archive, the record and what was wrong.
public final class ZipArchive {
    /// One member as the central directory describes it.
    public struct Entry: Sendable, Equatable {
        /// The member's path inside the archive.
        public var path: String
        /// 0 stored, 8 deflate (others are refused on extraction).
        public var method: Int
        /// General-purpose flags (bit 0: encrypted).
        public var flags: Int
        /// The CRC-32 of the uncompressed content.
        public var crc32: UInt32
        /// Bytes the member occupies in the archive.
        public var compressedSize: Int
        /// Bytes of the member's content.
        public var uncompressedSize: Int
        /// Where the member's local header starts.
        public var localHeaderOffset: Int
    }

    /// The archive's path.
    public let path: String
    /// Members in central-directory order.
    public let entries: [Entry]
    private let file: ReadOnlyFile
    /// Where the central directory starts: no member's data may reach past it.
    private let centralDirectoryOffset: Int

    /// Opens `path` and reads its central directory.
    /// - Throws: `MobileLLMError.fileNotFound` when it cannot be opened, `.invalidFile` when it is not a
    ///   well-formed ZIP archive.
    public init(path: String) throws {
        self.path = path
        file = try ReadOnlyFile(path: path)
        let directory = try Self.locateCentralDirectory(file)
        centralDirectoryOffset = directory.offset
        entries = try Self.readEntries(file, directory: directory)
    }

    /// The member at `path`, or nil.
    public func entry(named path: String) -> Entry? {
        entries.first { $0.path == path }
    }

    /// Streams `entry`'s content to `write`, checking its CRC-32 and size. Returns the byte count.
    /// - Throws: `MobileLLMError.unsupported` for encryption or a method other than stored/deflate,
    ///   `.invalidFile` for a bad local header, malformed deflate data or a CRC-32/size mismatch.
    @discardableResult
    public func extract(_ entry: Entry, to write: (UnsafeRawBufferPointer) throws -> Void) throws -> Int {
        let name = "\(path): \(entry.path)"
        guard entry.flags & 1 == 0 else { throw MobileLLMError.unsupported(path: name, feature: "encrypted ZIP members") }
        let dataOffset = try self.dataOffset(of: entry)
        var crc = CRC32()
        var produced = 0
        let sink: (UnsafeRawBufferPointer) throws -> Void = { piece in
            produced += piece.count
            guard produced <= entry.uncompressedSize else {
                throw MobileLLMError.invalidFile(path: name, field: "uncompressed size",
                                                 problem: "the content is longer than the \(entry.uncompressedSize) bytes the central directory gives")
            }
            crc.update(piece)
            try write(piece)
        }
        switch entry.method {
        case 0:
            guard entry.compressedSize == entry.uncompressedSize else {
                throw MobileLLMError.invalidFile(path: name, field: "compressed size",
                                                 problem: "a stored member's sizes differ (\(entry.compressedSize) vs \(entry.uncompressedSize))")
            }
            try file.forEachChunk(offset: dataOffset, count: entry.compressedSize, sink)
        case 8:
            var offset = dataOffset
            let end = dataOffset + entry.compressedSize
            let file = self.file
            _ = try Inflate.inflate(name: name, read: { buffer in
                let n = min(buffer.count, end - offset)
                guard n > 0 else { return 0 }
                let got = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]), at: offset)
                offset += got
                return got
            }, write: sink)
        default:
            throw MobileLLMError.unsupported(path: name, feature: "ZIP compression method \(entry.method) (only 0 stored and 8 deflate)")
        }
        guard produced == entry.uncompressedSize else {
            throw MobileLLMError.invalidFile(path: name, field: "uncompressed size",
                                             problem: "expected \(entry.uncompressedSize) bytes, the data gave \(produced)")
        }
        guard crc.value == entry.crc32 else {
            throw MobileLLMError.invalidFile(path: name, field: "CRC-32", problem: String(
                format: "expected %08x, the content has %08x", entry.crc32, crc.value))
        }
        return produced
    }

    /// `entry`'s whole content (for small members).
    public func contents(of entry: Entry) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(min(entry.uncompressedSize, 1 << 26))
        try extract(entry) { out.append(contentsOf: $0) }
        return out
    }

    /// Writes `entry`'s content to the file `destination` (created or truncated) and returns the content's
    /// SHA-256 (hex), computed on the way. On failure the file is removed.
    public func extract(_ entry: Entry, toFile destination: String) throws -> String {
        var hasher = SHA256()
        do {
            let sink = try WritableFile(path: destination, append: false)
            try extract(entry) { piece in
                hasher.update(piece)
                try sink.write(piece)
            }
            sink.sync()
        } catch {
            FileSystem.remove(destination)
            throw error
        }
        return hasher.finalize().hex
    }

    // MARK: Reading the directory

    private struct Directory {
        var offset: Int
        var size: Int
        var count: Int
    }

    private func dataOffset(of entry: Entry) throws -> Int {
        let name = "\(path): \(entry.path)"
        let header = try file.bytes(at: entry.localHeaderOffset, count: 30, field: "local header of \(entry.path)")
        guard header.u32(0) == 0x0403_4b50 else {
            throw MobileLLMError.invalidFile(path: name, field: "local header",
                                             problem: "no local header signature at offset \(entry.localHeaderOffset)")
        }
        let start = entry.localHeaderOffset + 30 + header.u16(26) + header.u16(28)
        guard start <= centralDirectoryOffset, entry.compressedSize <= centralDirectoryOffset - start else {
            throw MobileLLMError.invalidFile(path: name, field: "compressed size",
                                             problem: "\(entry.compressedSize) bytes at offset \(start) run into the central directory at \(centralDirectoryOffset)")
        }
        return start
    }

    private static func locateCentralDirectory(_ file: ReadOnlyFile) throws -> Directory {
        let path = file.path
        guard file.size >= 22 else {
            throw MobileLLMError.invalidFile(path: path, field: "end of central directory", problem: "the file has \(file.size) bytes, too few for a ZIP archive")
        }
        // The end record is 22 bytes plus a comment of up to 65535 bytes at the very end.
        let tailStart = max(0, file.size - 22 - 65535)
        let tail = try file.bytes(at: tailStart, count: file.size - tailStart, field: "end of central directory")
        var found: Int?
        var index = tail.count - 22
        while index >= 0 {
            if tail.u32(index) == 0x0605_4b50, index + 22 + tail.u16(index + 20) == tail.count {
                found = index
                break
            }
            index -= 1
        }
        guard let end = found else {
            throw MobileLLMError.invalidFile(path: path, field: "end of central directory", problem: "no end-of-central-directory record: not a ZIP archive")
        }
        let endOffset = tailStart + end
        var directory = Directory(offset: tail.u32(end + 16), size: tail.u32(end + 12), count: tail.u16(end + 10))
        var limit = endOffset
        if directory.offset == 0xFFFF_FFFF || directory.size == 0xFFFF_FFFF || directory.count == 0xFFFF {
            // ZIP64: a locator just before the end record points at the ZIP64 end record.
            guard endOffset >= 20 else {
                throw MobileLLMError.invalidFile(path: path, field: "ZIP64 locator", problem: "missing before the end record")
            }
            let locator = try file.bytes(at: endOffset - 20, count: 20, field: "ZIP64 locator")
            guard locator.u32(0) == 0x0706_4b50 else {
                throw MobileLLMError.invalidFile(path: path, field: "ZIP64 locator", problem: "the end record has ZIP64 markers but no ZIP64 locator precedes it")
            }
            let recordOffset = locator.u64(8)
            guard recordOffset >= 0, recordOffset <= endOffset - 20 - 56 else {
                throw MobileLLMError.invalidFile(path: path, field: "ZIP64 end record", problem: "offset \(recordOffset) is outside the file")
            }
            let record = try file.bytes(at: recordOffset, count: 56, field: "ZIP64 end record")
            guard record.u32(0) == 0x0606_4b50 else {
                throw MobileLLMError.invalidFile(path: path, field: "ZIP64 end record", problem: "no ZIP64 end record signature at offset \(recordOffset)")
            }
            directory = Directory(offset: record.u64(48), size: record.u64(40), count: record.u64(32))
            limit = recordOffset
        }
        guard directory.offset >= 0, directory.size >= 0, directory.count >= 0,
              directory.offset <= limit, directory.size <= limit - directory.offset else {
            throw MobileLLMError.invalidFile(path: path, field: "central directory",
                                             problem: "\(directory.size) bytes at offset \(directory.offset) do not fit before the end record at \(limit)")
        }
        guard directory.count <= directory.size / 46 else {
            throw MobileLLMError.invalidFile(path: path, field: "central directory",
                                             problem: "\(directory.count) entries cannot fit in \(directory.size) bytes")
        }
        return directory
    }

    private static func readEntries(_ file: ReadOnlyFile, directory: Directory) throws -> [Entry] {
        let path = file.path
        let bytes = try file.bytes(at: directory.offset, count: directory.size, field: "central directory")
        var entries: [Entry] = []
        entries.reserveCapacity(directory.count)
        var at = 0
        for number in 0..<directory.count {
            let field = "central directory entry \(number + 1)"
            guard bytes.count - at >= 46, bytes.u32(at) == 0x0201_4b50 else {
                throw MobileLLMError.invalidFile(path: path, field: field, problem: "no central directory header at offset \(directory.offset + at)")
            }
            let nameLength = bytes.u16(at + 28), extraLength = bytes.u16(at + 30), commentLength = bytes.u16(at + 32)
            let recordLength = 46 + nameLength + extraLength + commentLength
            guard recordLength <= bytes.count - at else {
                throw MobileLLMError.invalidFile(path: path, field: field, problem: "its name, extra field and comment run past the central directory")
            }
            let name = String(decoding: bytes[(at + 46)..<(at + 46 + nameLength)], as: UTF8.self)
            var entry = Entry(path: name, method: bytes.u16(at + 10), flags: bytes.u16(at + 8), crc32: UInt32(bytes.u32(at + 16)),
                              compressedSize: bytes.u32(at + 20), uncompressedSize: bytes.u32(at + 24),
                              localHeaderOffset: bytes.u32(at + 42))
            try applyZip64(bytes, extra: (at + 46 + nameLength)..<(at + 46 + nameLength + extraLength), to: &entry, path: path)
            guard entry.localHeaderOffset >= 0, entry.localHeaderOffset <= directory.offset - 30,
                  entry.compressedSize >= 0, entry.uncompressedSize >= 0 else {
                throw MobileLLMError.invalidFile(path: "\(path): \(name)", field: "local header offset",
                                                 problem: "\(entry.localHeaderOffset) is not before the central directory at \(directory.offset)")
            }
            entries.append(entry)
            at += recordLength
        }
        return entries
    }

    /// Replaces the 32-bit fields that hold 0xFFFFFFFF with the ZIP64 extended information (header 0x0001),
    /// which lists only those fields, in the order uncompressed size, compressed size, local header offset.
    private static func applyZip64(_ bytes: [UInt8], extra: Range<Int>, to entry: inout Entry, path: String) throws {
        let needs = [entry.uncompressedSize == 0xFFFF_FFFF, entry.compressedSize == 0xFFFF_FFFF, entry.localHeaderOffset == 0xFFFF_FFFF]
        guard needs.contains(true) else { return }
        var at = extra.lowerBound
        while extra.upperBound - at >= 4 {
            let id = bytes.u16(at), size = bytes.u16(at + 2)
            guard size <= extra.upperBound - at - 4 else { break }
            if id == 0x0001 {
                var field = at + 4
                let fieldEnd = field + size
                func next() throws -> Int {
                    guard fieldEnd - field >= 8 else {
                        throw MobileLLMError.invalidFile(path: "\(path): \(entry.path)", field: "ZIP64 extra field", problem: "too short for the sizes it must hold")
                    }
                    defer { field += 8 }
                    return bytes.u64(field)
                }
                if needs[0] { entry.uncompressedSize = try next() }
                if needs[1] { entry.compressedSize = try next() }
                if needs[2] { entry.localHeaderOffset = try next() }
                return
            }
            at += 4 + size
        }
        throw MobileLLMError.invalidFile(path: "\(path): \(entry.path)", field: "ZIP64 extra field", problem: "sizes are 0xFFFFFFFF but there is no ZIP64 extra field")
    }
}

extension Array where Element == UInt8 {
    /// The little-endian UInt16 at `offset` (the caller has checked the bounds).
    func u16(_ offset: Int) -> Int {
        Int(self[offset]) | Int(self[offset + 1]) << 8
    }

    /// The little-endian UInt32 at `offset`.
    func u32(_ offset: Int) -> Int {
        u16(offset) | u16(offset + 2) << 16
    }

    /// The little-endian UInt64 at `offset`, as an Int (values over Int.max become negative, which callers reject).
    func u64(_ offset: Int) -> Int {
        Int(truncatingIfNeeded: UInt64(u32(offset)) | UInt64(u32(offset + 4)) << 32)
    }
}
