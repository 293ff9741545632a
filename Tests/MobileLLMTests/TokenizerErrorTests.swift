import Foundation
import Testing
@testable import MobileLLM

/// Builds small GGUF files for tests.
struct TestGGUFWriter {
    var bytes: [UInt8] = []

    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func string(_ s: String) { u64(UInt64(s.utf8.count)); bytes += Array(s.utf8) }

    /// A key with a string value.
    mutating func kvString(_ key: String, _ value: String) { string(key); u32(8); string(value) }
    mutating func kvU32(_ key: String, _ value: UInt32) { string(key); u32(4); u32(value) }
    mutating func kvBool(_ key: String, _ value: Bool) { string(key); u32(7); bytes.append(value ? 1 : 0) }
    mutating func kvStrings(_ key: String, _ values: [String], count: UInt64? = nil) {
        string(key); u32(9); u32(8); u64(count ?? UInt64(values.count))
        for value in values { string(value) }
    }
    mutating func kvInt32s(_ key: String, _ values: [Int32]) {
        string(key); u32(9); u32(5); u64(UInt64(values.count))
        for value in values { u32(UInt32(bitPattern: value)) }
    }

    /// Header: magic, version, tensor count, kv count.
    static func header(version: UInt32 = 3, tensors: UInt64, kvs: UInt64) -> TestGGUFWriter {
        var writer = TestGGUFWriter()
        writer.bytes = Array("GGUF".utf8)
        writer.u32(version); writer.u64(tensors); writer.u64(kvs)
        return writer
    }

    func write(_ name: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("mobilellm-tok-\(UUID().uuidString)-\(name)").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }
}

/// A tiny byte-level vocabulary: the 256 byte characters (ids 0-255) and merges h+e, l+l, he+ll, hell+o.
enum TinyVocabulary {
    static let byteSpellings: [String] = (0..<256).map { String(Unicode.Scalar(ByteLevelAlphabet.characterOfByte[$0]).map(Character.init) ?? "?") }
    static let merges = ["h e", "l l", "he ll", "hell o", "Ġ hello"]
    static let extra = ["he", "ll", "hell", "hello", "Ġhello"]

    static func tokenizerJSON(model: String = "BPE", pre: String? = nil, decoder: String = #"{"type": "ByteLevel"}"#,
                              normalizer: String = "null", merges: [String]? = nil, post: String = "null",
                              added: String = "[]") -> String {
        var vocab: [String] = []
        for (id, spelling) in byteSpellings.enumerated() { vocab.append("\(jsonQuote(spelling)): \(id)") }
        for (offset, spelling) in extra.enumerated() { vocab.append("\(jsonQuote(spelling)): \(256 + offset)") }
        let mergeList = (merges ?? Self.merges).map(jsonQuote).joined(separator: ", ")
        let preTokenizer = pre ?? #"{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}"#
        return """
        {"version": "1.0", "added_tokens": \(added), "normalizer": \(normalizer), "pre_tokenizer": \(preTokenizer),
         "post_processor": \(post), "decoder": \(decoder),
         "model": {"type": "\(model)", "dropout": null, "unk_token": null, "ignore_merges": false,
                   "vocab": {\(vocab.joined(separator: ", "))}, "merges": [\(mergeList)]}}
        """
    }

    static func jsonQuote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default:
                if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }

    static func write(_ json: String) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mobilellm-tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("tokenizer.json").path
        try Data(json.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }
}

@Suite("Tokenizer errors and small cases")
struct TokenizerErrorTests {
    func expectUnsupported(_ json: String, mentioning word: String) throws {
        let path = try TinyVocabulary.write(json)
        do {
            _ = try Tokenizer(tokenizerJSON: path)
            Issue.record("expected an unsupported error mentioning \(word)")
        } catch let error as MobileLLMError {
            guard case let .unsupported(errorPath, feature) = error else {
                Issue.record("expected .unsupported, got \(error)")
                return
            }
            #expect(errorPath == path)
            #expect(feature.contains(word), "\(feature)")
        }
    }

    func expectInvalid(_ json: String, field: String) throws {
        let path = try TinyVocabulary.write(json)
        do {
            _ = try Tokenizer(tokenizerJSON: path)
            Issue.record("expected an invalidFile error for \(field)")
        } catch let error as MobileLLMError {
            guard case let .invalidFile(errorPath, errorField, _) = error else {
                Issue.record("expected .invalidFile, got \(error)")
                return
            }
            #expect(errorPath == path)
            #expect(errorField.contains(field), "\(errorField)")
        }
    }

    @Test("The tiny vocabulary encodes and decodes")
    func tinyWorks() throws {
        let tokenizer = try Tokenizer(tokenizerJSON: try TinyVocabulary.write(TinyVocabulary.tokenizerJSON()))
        #expect(tokenizer.encode("hello", addSpecial: true, parseSpecial: true) == [259])
        #expect(tokenizer.encode("hello hello", addSpecial: false, parseSpecial: true) == [259, 260])
        #expect(tokenizer.encode("hellohe", addSpecial: false, parseSpecial: true) == [259, 256])
        #expect(tokenizer.encode("hell he", addSpecial: false, parseSpecial: true) == [258, 32, 256])
        #expect(try tokenizer.decode([259, 260], skipSpecial: false) == "hello hello")
        #expect(try tokenizer.tokenPiece(260) == "Ġhello")
        #expect(tokenizer.tokenID(forPiece: "Ġhello") == 260)
    }

    @Test("Unknown or unimplemented types are typed errors naming the file and the type")
    func unsupportedTypes() throws {
        try expectUnsupported(TinyVocabulary.tokenizerJSON(model: "WordPiece"), mentioning: "WordPiece")
        try expectUnsupported(TinyVocabulary.tokenizerJSON(model: "Unigram"), mentioning: "Unigram")
        try expectUnsupported(TinyVocabulary.tokenizerJSON(pre: #"{"type": "Metaspace", "replacement": "▁"}"#), mentioning: "Metaspace")
        try expectUnsupported(TinyVocabulary.tokenizerJSON(pre: #"{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\d+"}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]}"#), mentioning: "\\d+")
        try expectUnsupported(TinyVocabulary.tokenizerJSON(pre: #"{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"String": " "}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel"}]}"#), mentioning: "Regex")
        try expectUnsupported(TinyVocabulary.tokenizerJSON(pre: #"{"type": "Whitespace"}"#), mentioning: "Whitespace")
        try expectUnsupported(TinyVocabulary.tokenizerJSON(decoder: ###"{"type": "WordPiece", "prefix": "##"}"###), mentioning: "WordPiece")
        try expectUnsupported(TinyVocabulary.tokenizerJSON(normalizer: #"{"type": "NFKC"}"#), mentioning: "NFKC")
        try expectUnsupported(TinyVocabulary.tokenizerJSON(post: #"{"type": "RobertaProcessing"}"#), mentioning: "RobertaProcessing")
    }

    @Test("Missing and malformed fields are invalidFile errors naming the field")
    func malformed() throws {
        try expectInvalid(#"{"version": "1.0"}"#, field: "model")
        try expectInvalid(#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}"#, field: "(document)")
        try expectInvalid(#"{"model": {"type": "BPE", "vocab": {"a": "zero"}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}}"#, field: "model.vocab")
        try expectInvalid(#"{"model": {"type": "BPE", "vocab": {"a": 0}}, "pre_tokenizer": {"type": "ByteLevel"}}"#, field: "model.merges")
        try expectInvalid(TinyVocabulary.tokenizerJSON(merges: ["h e", "x yz"]), field: "model.merges[1]")
        try expectInvalid(TinyVocabulary.tokenizerJSON(merges: ["h e", "h e l"]), field: "model.merges[1]")
        try expectInvalid(TinyVocabulary.tokenizerJSON(added: #"[{"id": 300, "special": true}]"#), field: "added_tokens[0].content")
        try expectInvalid(TinyVocabulary.tokenizerJSON(added: #"[{"id": -1, "content": "<x>", "special": true}]"#), field: "added_tokens[0].id")
    }

    @Test("A directory without tokenizer.json reports tokenizerMissing; bad ids are invalidArgument")
    func missingAndRange() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mobilellm-tok-empty-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        #expect(throws: MobileLLMError.tokenizerMissing(path: directory.path)) { try Tokenizer.load(path: directory.path) }
        let tokenizer = try Tokenizer(tokenizerJSON: try TinyVocabulary.write(TinyVocabulary.tokenizerJSON()))
        #expect(throws: MobileLLMError.self) { try tokenizer.decode([5, 261], skipSpecial: false) }
        #expect(throws: MobileLLMError.self) { try tokenizer.decode([-1], skipSpecial: false) }
        #expect(throws: MobileLLMError.self) { try tokenizer.tokenPiece(100_000) }
        var stream = tokenizer.makeStreamingDetokenizer(skipSpecial: false)
        #expect(throws: MobileLLMError.self) { try stream.push(999) }
    }

    @Test("Added tokens: lstrip, rstrip, single_word, special vs parseSpecial, and the BOS template")
    func addedTokenFlags() throws {
        let added = """
        [{"id": 261, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
         {"id": 262, "content": "<L>", "single_word": false, "lstrip": true, "rstrip": false, "normalized": false, "special": true},
         {"id": 263, "content": "<R>", "single_word": false, "lstrip": false, "rstrip": true, "normalized": false, "special": true},
         {"id": 264, "content": "word", "single_word": true, "lstrip": false, "rstrip": false, "normalized": false, "special": false}]
        """
        let post = #"{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [261], "tokens": ["<s>"]}}}"#
        let tokenizer = try Tokenizer(tokenizerJSON: try TinyVocabulary.write(TinyVocabulary.tokenizerJSON(post: post, added: added)))
        let space: Int32 = 32   // byte b has id b in the tiny vocabulary
        #expect(tokenizer.encode("he", addSpecial: true, parseSpecial: true) == [261, 256])
        #expect(tokenizer.encode("he  <L>he", addSpecial: false, parseSpecial: true) == [256, 262, 256])
        #expect(tokenizer.encode("he<R>  he", addSpecial: false, parseSpecial: true) == [256, 263, 256])
        #expect(tokenizer.encode("he <s>", addSpecial: false, parseSpecial: false) == [256, space, 60, 115, 62])
        #expect(tokenizer.encode("he word he", addSpecial: false, parseSpecial: false) == [256, space, 264, space, 256])
        #expect(tokenizer.encode("he swordfish", addSpecial: false, parseSpecial: true).contains(264) == false)
        #expect(try tokenizer.decode([261, 259, 263], skipSpecial: true) == "hello")
        #expect(tokenizer.isSpecial(261) && !tokenizer.isSpecial(264))
    }

    @Test("The streaming detokenizer holds back incomplete UTF-8 and flushes it as U+FFFD")
    func streaming() throws {
        let tokenizer = try Tokenizer(tokenizerJSON: try TinyVocabulary.write(TinyVocabulary.tokenizerJSON()))
        // 😀 is F0 9F 98 80; byte b has id b in the tiny vocabulary's spelling table order.
        func id(_ byte: UInt8) -> Int32 { tokenizer.tokenID(forPiece: TinyVocabulary.byteSpellings[Int(byte)]) ?? -1 }
        var stream = tokenizer.makeStreamingDetokenizer(skipSpecial: false)
        #expect(try stream.push(259) == "hello")
        #expect(try stream.push(id(0xF0)) == "")
        #expect(try stream.push(id(0x9F)) == "")
        #expect(try stream.push(id(0x98)) == "")
        #expect(try stream.push(id(0x80)) == "😀")
        #expect(try stream.push(id(0xE2)) == "")
        #expect(try stream.push(id(0x41)) == "\u{FFFD}A")
        #expect(try stream.push(id(0xE2)) == "")
        #expect(try stream.push(id(0x82)) == "")
        #expect(stream.flush() == "\u{FFFD}")
        #expect(stream.flush() == "")
        #expect(try tokenizer.decode([id(0xE2), id(0x82)], skipSpecial: false) == "\u{FFFD}")
    }
}

@Suite("GGUF reader")
struct GGUFReaderTests {
    @Test("Every metadata value type, arrays, nested arrays, tensor infos and alignment")
    func allTypes() throws {
        var writer = TestGGUFWriter.header(tensors: 2, kvs: 15)
        writer.string("u8"); writer.u32(0); writer.bytes.append(200)
        writer.string("i8"); writer.u32(1); writer.bytes.append(0xFF)
        writer.string("u16"); writer.u32(2); writer.bytes += [0x34, 0x12]
        writer.string("i16"); writer.u32(3); writer.bytes += [0xFE, 0xFF]
        writer.kvU32("u32", 70000)
        writer.string("i32"); writer.u32(5); writer.u32(UInt32(bitPattern: -5))
        writer.string("f32"); writer.u32(6); writer.u32(Float(1.5).bitPattern)
        writer.kvBool("flag", true)
        writer.kvString("general.name", "tést")
        writer.string("u64"); writer.u32(10); writer.u64(1 << 40)
        writer.string("i64"); writer.u32(11); writer.u64(UInt64(bitPattern: -7))
        writer.string("f64"); writer.u32(12); writer.u64(Double(2.25).bitPattern)
        writer.kvStrings("strings", ["a", "", "ü"])
        writer.string("nested"); writer.u32(9); writer.u32(9); writer.u64(2)
        writer.u32(5); writer.u64(2); writer.u32(1); writer.u32(2)
        writer.u32(8); writer.u64(1); writer.string("x")
        writer.kvU32("general.alignment", 64)
        // tensors: a f32 [4, 2] at 0 and a q8_0 [32] at 64
        writer.string("a"); writer.u32(2); writer.u64(4); writer.u64(2); writer.u32(0); writer.u64(0)
        writer.string("b"); writer.u32(1); writer.u64(32); writer.u32(8); writer.u64(64)
        while writer.bytes.count % 64 != 0 { writer.bytes.append(0) }
        let dataStart = writer.bytes.count
        writer.bytes += [UInt8](repeating: 1, count: 64 + 34)
        let path = try writer.write("all.gguf")
        let file = try GGUFFile(path: path)
        #expect(file.version == 3)
        #expect(file.metadata["u8"] == .uint8(200))
        #expect(file.metadata["i8"] == .int8(-1))
        #expect(file.metadata["u16"] == .uint16(0x1234))
        #expect(file.metadata["i16"] == .int16(-2))
        #expect(try file.integer("u32") == 70000)
        #expect(try file.integer("i32") == -5)
        #expect(file.metadata["f32"] == .float32(1.5))
        #expect(try file.bool("flag") == true)
        #expect(try file.string("general.name") == "tést")
        #expect(try file.integer("u64") == 1 << 40)
        #expect(try file.integer("i64") == -7)
        #expect(file.metadata["f64"] == .float64(2.25))
        #expect(try file.stringArray("strings") == ["a", "", "ü"])
        #expect(file.metadata["nested"] == .array(.array([.int32([1, 2]), .string(["x"])])))
        #expect(file.alignment == 64)
        #expect(file.dataOffset == dataStart)
        #expect(file.tensors.map(\.name) == ["a", "b"])
        #expect(file.tensors[0].dimensions == [4, 2] && file.tensors[0].byteCount == 32 && file.tensors[0].type == .f32)
        #expect(file.tensors[1].fileOffset == dataStart + 64 && file.tensors[1].byteCount == 34 && file.tensors[1].type == .q8_0)
        #expect(file.data(of: file.tensors[1])?.count == 34)
        #expect(throws: MobileLLMError.self) { try file.string("u32") }
    }

    func expectInvalid(_ writer: TestGGUFWriter, _ name: String, field: String? = nil) throws {
        let path = try writer.write(name)
        do {
            _ = try GGUFFile(path: path)
            Issue.record("\(name): expected an error")
        } catch let error as MobileLLMError {
            switch error {
            case let .invalidFile(errorPath, errorField, _):
                #expect(errorPath == path)
                if let field { #expect(errorField.contains(field), "\(name): \(errorField)") }
            case .unsupported:
                break
            default:
                Issue.record("\(name): unexpected \(error)")
            }
        }
    }

    @Test("A lying or truncated header throws instead of reading past the file")
    func lyingHeaders() throws {
        try expectInvalid(TestGGUFWriter(bytes: Array("GGUX".utf8) + [3, 0, 0, 0]), "magic.gguf", field: "magic")
        try expectInvalid(TestGGUFWriter(bytes: Array("GG".utf8)), "short.gguf")
        try expectInvalid(TestGGUFWriter.header(version: 1, tensors: 0, kvs: 0), "v1.gguf")
        try expectInvalid(TestGGUFWriter.header(tensors: 0, kvs: 1 << 60), "kvcount.gguf", field: "metadata_kv_count")
        try expectInvalid(TestGGUFWriter.header(tensors: 1 << 40, kvs: 0), "tensorcount.gguf", field: "tensor_count")
        var longString = TestGGUFWriter.header(tensors: 0, kvs: 1)
        longString.u64(1 << 50)
        try expectInvalid(longString, "keylength.gguf")
        var bigArray = TestGGUFWriter.header(tensors: 0, kvs: 1)
        bigArray.string("tokenizer.ggml.tokens"); bigArray.u32(9); bigArray.u32(8); bigArray.u64(1 << 61)
        try expectInvalid(bigArray, "arraycount.gguf", field: "tokenizer.ggml.tokens")
        var truncatedArray = TestGGUFWriter.header(tensors: 0, kvs: 1)
        truncatedArray.kvStrings("tokenizer.ggml.tokens", ["a", "b"], count: 3)
        try expectInvalid(truncatedArray, "truncatedarray.gguf", field: "tokenizer.ggml.tokens")
        var badType = TestGGUFWriter.header(tensors: 0, kvs: 1)
        badType.string("k"); badType.u32(99)
        try expectInvalid(badType, "valuetype.gguf", field: "k")
        var pastEnd = TestGGUFWriter.header(tensors: 1, kvs: 0)
        pastEnd.string("w"); pastEnd.u32(1); pastEnd.u64(1024); pastEnd.u32(0); pastEnd.u64(0)
        try expectInvalid(pastEnd, "pastend.gguf")
        pastEnd.bytes += [UInt8](repeating: 0, count: 64)
        try expectInvalid(pastEnd, "pastend2.gguf", field: "tensor w")
        var dims = TestGGUFWriter.header(tensors: 1, kvs: 0)
        dims.string("w"); dims.u32(9)
        dims.bytes += [UInt8](repeating: 0, count: 64)
        try expectInvalid(dims, "dims.gguf", field: "n_dims")
    }

    func vocabularyFile(model: String = "gpt2", pre: String? = "gpt-2", tokens: [String]? = nil, types: [Int32]? = nil,
                        merges: [String]? = ["h e"]) throws -> String {
        let tokenList = tokens ?? (TinyVocabulary.byteSpellings + ["he"])
        var count: UInt64 = 3
        if pre != nil { count += 1 }
        if types != nil { count += 1 }
        if merges != nil { count += 1 }
        var writer = TestGGUFWriter.header(tensors: 0, kvs: count)
        writer.kvString("general.architecture", "llama")
        writer.kvString("tokenizer.ggml.model", model)
        if let pre { writer.kvString("tokenizer.ggml.pre", pre) }
        writer.kvStrings("tokenizer.ggml.tokens", tokenList)
        if let types { writer.kvInt32s("tokenizer.ggml.token_type", types) }
        if let merges { writer.kvStrings("tokenizer.ggml.merges", merges) }
        return try writer.write("vocab.gguf")
    }

    @Test("Malformed GGUF vocabularies are typed errors")
    func malformedVocabulary() throws {
        let good = try Tokenizer(gguf: try GGUFFile(path: try vocabularyFile()))
        #expect(good.encode("he", addSpecial: true, parseSpecial: true) == [256])
        func expectError(_ path: String, _ word: String) {
            do {
                _ = try Tokenizer(gguf: try GGUFFile(path: path))
                Issue.record("expected an error mentioning \(word)")
            } catch let error as MobileLLMError {
                #expect(error.description.contains(word), "\(error)")
            } catch {
                Issue.record("unexpected \(error)")
            }
        }
        expectError(try vocabularyFile(model: "llama"), "tokenizer.ggml.model")
        expectError(try vocabularyFile(pre: "mystery"), "mystery")
        expectError(try vocabularyFile(pre: nil), "tokenizer.ggml.pre")
        expectError(try vocabularyFile(types: [1, 1]), "tokenizer.ggml.token_type")
        expectError(try vocabularyFile(merges: nil), "tokenizer.ggml.merges")
        expectError(try vocabularyFile(merges: ["h q"]), "tokenizer.ggml.merges[0]")
        expectError(try vocabularyFile(tokens: []), "tokenizer.ggml.tokens")
    }

    @Test("The SmolLM2 GGUF: metadata, 272 tensors inside the file, tokenizer metadata")
    func smollm2() throws {
        guard let path = TokenizerFixtures.requireAsset(TokenizerFixtures.smollm2GGUF) else { return }
        let file = try GGUFFile(path: path)
        #expect(try file.string("general.architecture") == "llama")
        #expect(try file.string("tokenizer.ggml.pre") == "smollm")
        #expect(file.tensors.count == 272)
        for tensor in file.tensors {
            let count = try #require(tensor.byteCount, "\(tensor.name) has type \(tensor.rawType)")
            #expect(tensor.fileOffset + count <= file.file.size)
        }
        let tokenizer = try Tokenizer(gguf: file)
        #expect(tokenizer.vocabularySize == 49152)
        #expect(tokenizer.bosToken == "<|im_start|>" && tokenizer.eosToken == "<|im_end|>")
        #expect(tokenizer.chatTemplate?.contains("im_start") == true)
    }
}
