import Foundation
import Testing
@testable import MobileLLM

/// The engine's replacements for Foundation conveniences (Sources/MobileLLM/Support, FileReading, ModelDirectory)
/// give what Foundation gives for the same input.
@Suite("Support: Foundation replacements")
struct SupportTests {
    @Test("string helpers equal Foundation's replacingOccurrences, range(of:.backwards), trimming, percent decoding")
    func stringHelpers() {
        let texts = ["", "a_b__c", "~/a~b/", "_\u{301}x_", "<think>a</think>b<think>", "\n\nthought\n\r\n", "é_é", "no"]
        for text in texts {
            for (target, replacement) in [("_", ""), ("~", "~0"), ("/", "~1"), ("~1", "/"), ("</think>", "|")] {
                #expect(text.replacingEvery(target, with: replacement)
                        == text.replacingOccurrences(of: target, with: replacement, options: .literal), "\(text)")
            }
            for target in ["<think>", "</think>", "_", "x"] {
                let ours = text.lastRange(of: target).map { text.utf8.distance(from: text.startIndex, to: $0.lowerBound) }
                let theirs = text.range(of: target, options: [.backwards, .literal])
                    .map { text.utf8.distance(from: text.startIndex, to: $0.lowerBound) }
                #expect(ours == theirs, "\(text) \(target)")
                #expect(text.contains(literal: target) == (theirs != nil))
            }
            #expect(text.trimmingScalars(in: ["\n"]) == text.trimmingCharacters(in: CharacterSet(charactersIn: "\n")))
        }
        for encoded in ["", "/$defs/a%20b", "%2Fx", "%", "%4", "%zz", "%C3%A9", "%C3", "a%25b"] {
            #expect(encoded.percentDecoded == encoded.removingPercentEncoding, "\(encoded)")
        }
        for value: UInt32 in [0, 0x7, 0x1f, 0xab, 0x100, 0xffff, 0x1f600, 0x10ffff] {
            #expect(lowercaseHex(value, width: 2) == String(format: "%02x", value))
            #expect(lowercaseHex(value, width: 4) == String(format: "%04x", value))
            #expect(lowercaseHex(value, width: 8) == String(format: "%08x", value))
        }
    }

    @Test("path helpers: parent, last component and stem as NSString and URL give them")
    func pathHelpers() {
        for path in ["/a/b/c.gguf", "a/b/", "/x", "/", "dir/model.Q4_0.gguf", "Qwen2.5-0.5B", ".hidden", "a.", "b//c"] {
            #expect(ModelDirectory.lastComponent(of: path) == (path as NSString).lastPathComponent, "\(path)")
        }
        for path in ["/a/b/c.gguf", "a/b/", "/x", "/", "dir/model.Q4_0.gguf", "b//c"] {
            #expect(ModelDirectory.parent(of: path) == (path as NSString).deletingLastPathComponent, "\(path)")
        }
        #expect(ModelDirectory.parent(of: "tokenizer.json") == ".")
        for path in ["/a/b/c.gguf", "dir/model.Q4_0.gguf", "models/SmolLM2-135M/", "x"] {
            #expect(ModelDirectory.stem(of: path) == URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent, "\(path)")
        }
    }

    @Test("file helpers: kind, size and whole-file reads")
    func fileHelpers() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mobilellm-support-\(getpid())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/f.bin"
        let bytes = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        #expect(pathKind(directory) == .directory)
        #expect(pathKind(file) == .file)
        #expect(pathKind(directory + "/missing") == .missing)
        #expect(fileSize(file) == bytes.count)
        #expect(try readWholeFile(file) == bytes)
        #expect(try readFilePrefix(file, count: 4) == Array(bytes[0..<4]))
        #expect(throws: MobileLLMError.self) { try readWholeFile(directory) }
        #expect(throws: MobileLLMError.self) { try readWholeFile(directory + "/missing") }
    }

    @Test("platform: processors, memory, local time, threads")
    func platform() async {
        #expect(Platform.activeProcessorCount == ProcessInfo.processInfo.activeProcessorCount)
        #expect(Platform.physicalMemory == ProcessInfo.processInfo.physicalMemory)
        #expect(Platform.pageSize > 0)
        #expect(Platform.formatLocalTime("%Y", secondsSince1970: 0)?.count == 4)
        let ran = await withCheckedContinuation { continuation in
            if !Platform.startThread({ continuation.resume(returning: true) }) { continuation.resume(returning: false) }
        }
        #expect(ran)
    }
}
