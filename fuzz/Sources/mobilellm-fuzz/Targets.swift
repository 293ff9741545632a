import Foundation
import MobileLLM

// The targets. Loaders that read files get the input through a file in a tmpfs scratch directory; the fixed files
// next to it (configs, shards, the other half of a tokenizer) are copied there once from fuzz/fixtures or
// Tests/Fixtures.

/// config.json: the engine's two JSON parsers (they must agree), then the configuration reader and validator.
let configTarget = FuzzTarget(
    name: "config",
    about: "config.json: JSONValue.parse vs TemplateValue.parse (must agree), ModelConfiguration.parse, RoPE",
    setUp: {},
    run: { bytes in
        let data = Data(bytes)
        let json = Result { try JSONValue.parse(data, path: "config.json") }
        let python = Result { try TemplateValue.parse(data, path: "config.json") }
        checkAgreement(json, python, data)
        guard let value = try? json.get(), let configuration = try? ModelConfiguration.parse(value, path: "config.json") else { return }
        let frequencies = configuration.ropeInverseFrequencies()
        if frequencies.count != configuration.headDimension / 2 {
            violated("\(frequencies.count) RoPE frequencies for head_dim \(configuration.headDimension)")
        }
    }
)

/// `JSONValue.parse` (RFC 8259, for model files) and `TemplateValue.parse` (Python's `json.loads`, for template
/// variables) must accept the same documents and read the same values, except where Python's json deliberately
/// accepts more: `NaN`/`Infinity` literals, a byte-order mark, and nesting beyond TemplateValue's 128 levels
/// (JSONValue allows 512).
func checkAgreement(_ json: Result<JSONValue, Error>, _ python: Result<TemplateValue, Error>, _ data: Data) {
    switch (json, python) {
    case let (.success(a), .success(b)):
        if let c = JSONValue(exactly: b), a != c { violated("JSONValue.parse read \(a), TemplateValue.parse \(b)") }
    case let (.success(a), .failure(error)):
        if depth(of: a) <= 128 { violated("JSONValue.parse read \(a), TemplateValue.parse threw \(error)") }
    case let (.failure(error), .success(b)):
        if !data.starts(with: [0xEF, 0xBB, 0xBF]), JSONValue(exactly: b) != nil {
            violated("TemplateValue.parse read \(b), JSONValue.parse threw \(error)")
        }
    case (.failure, .failure):
        break
    }
}

/// Nesting depth of arrays and objects.
func depth(of value: JSONValue) -> Int {
    switch value {
    case let .array(items): return 1 + (items.map(depth).max() ?? 0)
    case let .object(members): return 1 + (members.values.map(depth).max() ?? 0)
    default: return 0
    }
}

extension JSONValue {
    /// `value` as JSONValue would hold it (numbers as Double, members by key); nil when it holds a non-finite float,
    /// which RFC 8259 JSON cannot write.
    init?(exactly value: TemplateValue) {
        switch value {
        case .null: self = .null
        case let .bool(flag): self = .bool(flag)
        case let .int(number): self = .number(Double(number))
        case let .float(number):
            guard number.isFinite else { return nil }
            self = .number(number)
        case let .string(text): self = .string(text)
        case let .array(items):
            var converted: [JSONValue] = []
            for item in items {
                guard let item = JSONValue(exactly: item) else { return nil }
                converted.append(item)
            }
            self = .array(converted)
        case let .object(members):
            var converted: [String: JSONValue] = [:]
            for member in members {
                guard let item = JSONValue(exactly: member.value) else { return nil }
                converted[member.key] = item
            }
            self = .object(converted)
        }
    }
}

/// model.safetensors of a tiny llama4_text directory (fixed config.json): the header reader, then a full model load
/// and a few forward passes.
let safetensorsTarget = FuzzTarget(
    name: "safetensors",
    about: "model.safetensors next to a fixed tiny llama4_text config: SafeTensorsFile, Model load, forward passes",
    setUp: { _ = safetensorsDirectory },
    run: { bytes in
        let path = safetensorsDirectory + "/model.safetensors"
        writeInput(bytes, to: path)
        if let file = try? SafeTensorsFile(path: path) {
            checkInside(file, headerEnd: bytes.count >= 8 ? 8 + Int(truncatingIfNeeded: bytes.loadUnaligned(as: UInt64.self).littleEndian) : 0)
        }
        loadAndExercise(modelAt: safetensorsDirectory)
    }
)

let safetensorsDirectory = scratchDirectory("safetensors", copying: [
    "fuzz/fixtures/llama4-tiny/config.json", "fuzz/fixtures/llama4-tiny/generation_config.json",
])

/// Every tensor's bytes lie in the file's data section (after the header).
func checkInside(_ file: SafeTensorsFile, headerEnd: Int) {
    guard let base = file.file.base else { return }
    for tensor in file.tensors.values {
        let start = tensor.pointer - base
        let bytes = tensor.count * (tensor.type == .f32 ? 4 : 2)
        if start < headerEnd || start + bytes > file.file.size {
            violated("tensor \(tensor.name) spans bytes \(start)..<\(start + bytes) of a \(file.file.size)-byte file with data from \(headerEnd)")
        }
    }
}

/// model.safetensors.index.json of a tiny llama in three shards (fixed config and shards).
let safetensorsIndexTarget = FuzzTarget(
    name: "safetensors-index",
    about: "model.safetensors.index.json over fixed shards of a tiny llama: ModelDirectory, Model load, forward passes",
    setUp: { _ = shardedDirectory },
    run: { bytes in
        writeInput(bytes, to: shardedDirectory + "/model.safetensors.index.json")
        loadAndExercise(modelAt: shardedDirectory)
    }
)

let shardedDirectory: String = {
    let fixture = "fuzz/fixtures/llama-tiny-sharded"
    let files = (try? FileManager.default.contentsOfDirectory(atPath: repositoryPath(fixture))) ?? []
    guard files.contains("config.json") else { violated("missing \(fixture)/config.json (run from the repository)") }
    return scratchDirectory("safetensors-index", copying: files.sorted().map { fixture + "/" + $0 })
}()

/// A whole GGUF file: header, metadata, tensor table; then its vocabulary, chat template and the model.
let ggufTarget = FuzzTarget(
    name: "gguf",
    about: "a .gguf file: GGUFFile, Tokenizer(gguf:), its chat template, Model load and forward passes",
    setUp: { _ = scratchRoot },
    run: { bytes in
        let path = scratchRoot + "/model.gguf"
        writeInput(bytes, to: path)
        guard let file = try? GGUFFile(path: path) else { return }
        for tensor in file.tensors {
            guard let count = tensor.byteCount else { continue }
            if tensor.fileOffset < file.dataOffset || tensor.fileOffset + count > file.file.size {
                violated("tensor \(tensor.name) spans \(tensor.fileOffset)..<\(tensor.fileOffset + count) of \(file.file.size) bytes")
            }
        }
        if let tokenizer = try? Tokenizer(gguf: file) {
            exercise(tokenizer, texts: sampleTexts, roundTrip: false)
            if let template = try? ModelChatTemplate(source: tokenizer.chatTemplate, name: path, bosToken: tokenizer.bosToken,
                                                     eosToken: tokenizer.eosToken) {
                exercise(template)
            }
        }
        loadAndExercise(modelAt: path)
    }
)

/// tokenizer.json with a fixed tokenizer_config.json (r1like's).
let tokenizerJSONTarget = FuzzTarget(
    name: "tokenizer-json",
    about: "tokenizer.json (fixed tokenizer_config.json): Tokenizer.load, encode/decode/streaming invariants",
    setUp: { _ = tokenizerJSONDirectory },
    run: { bytes in
        writeInput(bytes, to: tokenizerJSONDirectory + "/tokenizer.json")
        guard let tokenizer = try? Tokenizer.load(path: tokenizerJSONDirectory) else { return }
        exercise(tokenizer, texts: sampleTexts, roundTrip: false)
    }
)

let tokenizerJSONDirectory = scratchDirectory("tokenizer-json", copying: ["Tests/Fixtures/r1like-chat/tokenizer_config.json"])

/// tokenizer_config.json with a fixed tokenizer.json (r1like's): token names, chat template selection, rendering.
let tokenizerConfigTarget = FuzzTarget(
    name: "tokenizer-config",
    about: "tokenizer_config.json (fixed tokenizer.json): Tokenizer.load, ModelChatTemplate.load, render",
    setUp: { _ = tokenizerConfigDirectory },
    run: { bytes in
        writeInput(bytes, to: tokenizerConfigDirectory + "/tokenizer_config.json")
        if let tokenizer = try? Tokenizer.load(path: tokenizerConfigDirectory) {
            exercise(tokenizer, texts: sampleTexts, roundTrip: true)
        }
        if let template = try? ModelChatTemplate.load(modelDirectory: tokenizerConfigDirectory) {
            exercise(template)
        }
    }
)

let tokenizerConfigDirectory = scratchDirectory("tokenizer-config", copying: ["Tests/Fixtures/r1like-chat/tokenizer.json"])

/// A Jinja chat template: compile, then render a fixed conversation.
let templateTarget = FuzzTarget(
    name: "template",
    about: "Jinja chat template source: ChatTemplate compile and render of a fixed conversation",
    setUp: {},
    run: { bytes in
        guard let template = try? ModelChatTemplate(source: text(of: bytes), name: "fuzz.jinja", bosToken: "<s>", eosToken: "</s>")
        else { return }
        exercise(template)
    }
)

/// Arbitrary bytes through fixed tokenizers: the committed seeds (not the regression inputs), plus the real Llama-3, SmolLM2 and llama.cpp
/// vocabularies when the assets are present (MOBILELLM_ASSETS or .cache/assets).
let encodeTarget = FuzzTarget(
    name: "encode",
    about: "arbitrary bytes: encode (raw bytes and String, parseSpecial both ways), decode round trip, streaming",
    setUp: {
        _ = encodeTokenizers
        FileHandle.standardError.write(Data("mobilellm-fuzz encode: \(encodeTokenizers.count) tokenizers: \(encodeTokenizers.map(\.path))\n".utf8))
    },
    run: { bytes in
        let raw = Array(bytes)
        for tokenizer in encodeTokenizers {
            for parseSpecial in [false, true] { checkRoundTrip(tokenizer, raw, parseSpecial: parseSpecial) }
            exercise(tokenizer, texts: [text(of: bytes)], roundTrip: true)
        }
    }
)

let encodeTokenizers: [Tokenizer] = {
    var paths = ["Tests/Fixtures/r1like-chat"].map(repositoryPath)
    let seeds = repositoryPath("fuzz/corpus/tokenizer-json")
    for name in ((try? FileManager.default.contentsOfDirectory(atPath: seeds)) ?? []).sorted() where name != "r1like.json" && !name.hasPrefix("regression-") {
        // regression-* inputs are broken vocabularies (bytes missing), which cannot round-trip.
        paths.append(seeds + "/" + name)
    }
    paths.append(repositoryPath("fuzz/corpus/gguf/r1like-vocab-only.gguf"))
    let assets = ProcessInfo.processInfo.environment["MOBILELLM_ASSETS"] ?? repositoryPath(".cache/assets")
    for asset in ["llama3-tokenizer", "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "llamacpp/ggml-vocab-llama-bpe.gguf",
                  "llamacpp/ggml-vocab-gpt-2.gguf"] where FileManager.default.fileExists(atPath: assets + "/" + asset) {
        paths.append(assets + "/" + asset)
    }
    return paths.map { path in
        do { return try Tokenizer.load(path: path) } catch { violated("cannot load the tokenizer \(path): \(error)") }
    }
}()
