import Foundation
import MobileLLMTools
import Testing
@testable import MobileLLM

/// `mobilellm inspect --json --tensors` (ModelReport) against Tests/Fixtures/inspect/expected.json, which
/// scripts/make_inspect_fixtures.py wrote from transformers' AutoConfig/AutoTokenizer, the raw safetensors headers
/// and gguf-py's GGUFReader.
@Suite("Inspect", .serialized)
struct InspectTests {
    static func expected() throws -> JSONValue {
        try JSONValue.load(path: Fixtures.path("inspect/expected.json"))
    }

    /// Every member of `expected` must be in `actual` with an equal value (objects compared recursively); `actual`
    /// may hold more.
    static func expectSubset(_ expected: JSONValue, _ actual: JSONValue?, at path: String, in model: String) {
        if case let .object(members) = expected {
            for (key, value) in members { expectSubset(value, actual?[key], at: path + "." + key, in: model) }
        } else if case let .array(items) = expected, case let .array(found)? = actual, items.count == found.count {
            for (index, pair) in zip(items, found).enumerated() { expectSubset(pair.0, pair.1, at: path + "[\(index)]", in: model) }
        } else {
            #expect(actual == expected, "\(model) \(path)")
        }
    }

    static func check(_ path: String, _ expected: JSONValue) throws {
        let report = try ModelReport(model: try Model(path: path))
        let json = try report.json(listTensors: true)
        let actual = try JSONValue.parse(Data(json.utf8), path: "inspect --json")
        expectSubset(expected, actual, at: "", in: path)
        // The summary without --tensors has no tensor list but the same totals.
        let summary = try JSONValue.parse(Data(try report.json(listTensors: false).utf8), path: "inspect --json")
        #expect(summary["tensors"] == nil && summary["parameters"] == actual["parameters"])
        #expect(!report.text(listTensors: false).isEmpty)
    }

    @Test("model directories: configuration, tensors, tokenizer and template as transformers and the headers say")
    func directories() throws {
        guard case let .object(models)? = try Self.expected()["directories"] else {
            Issue.record("expected.json has no directories")
            return
        }
        #expect(models.count == 5)
        for (relative, expected) in models {
            try Self.check(Fixtures.packageRoot.appendingPathComponent(relative).path, expected)
        }
    }

    @Test("SmolLM2 GGUF: as gguf-py reads it")
    func gguf() throws {
        guard case let .object(assets)? = try Self.expected()["assets"] else {
            Issue.record("expected.json has no assets")
            return
        }
        for (relative, expected) in assets {
            guard let path = TokenizerFixtures.requireAsset(TokenizerFixtures.assets.appendingPathComponent(relative).path) else { continue }
            try Self.check(path, expected)
        }
    }

    @Test("every stored tensor has its schema role; names the schema does not know are listed as unread",
          arguments: Fixtures.models)
    func schemaRoles(fixture: String) throws {
        let report = try ModelReport(model: try Model(path: Fixtures.path(fixture)))
        #expect(report.unreadTensors.isEmpty, "\(fixture): \(report.unreadTensors)")
        let roles = report.tensors.compactMap(\.role)
        #expect(Set(roles).count == report.tensors.count, "\(fixture): every tensor has its own role")
        let role = Dictionary(report.tensors.map { ($0.name, $0.role) }, uniquingKeysWith: { first, _ in first })
        #expect(role["model.embed_tokens.weight"] == "embedding")
        #expect(role["model.layers.0.self_attn.q_proj.weight"] == "query@0")
        #expect(role["model.layers.1.post_attention_layernorm.weight"] == "mlpNorm@1")
        if fixture.hasPrefix("qwen2") { #expect(role["model.layers.1.self_attn.k_proj.bias"] == "key.bias@1") }
        if fixture.hasPrefix("qwen3") { #expect(role["model.layers.0.self_attn.q_norm.weight"] == "queryNorm@0") }
        #expect(report.text(listTensors: true).contains("query@0"))
    }

    @Test("Qwen2.5-Coder GGUF: llama.cpp's tensor names map to the qwen2 schema",
          .enabled(if: TokenizerFixtures.hasQwen25GGUF, TokenizerFixtures.qwen25Missing))
    func qwenGGUFRoles() throws {
        let report = try ModelReport(model: try Model(path: TokenizerFixtures.qwen25GGUF))
        #expect(report.unreadTensors.isEmpty, "\(report.unreadTensors)")
        let role = Dictionary(report.tensors.map { ($0.name, $0.role) }, uniquingKeysWith: { first, _ in first })
        #expect(role["blk.0.attn_q.bias"] == "query.bias@0")
        #expect(role["output.weight"] == "output" && role["token_embd.weight"] == "embedding")
        #expect(role["blk.23.ffn_down.weight"] == "down@23")
    }
}
