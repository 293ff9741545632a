import Foundation
import Testing
@testable import MobileLLM

/// Loading: configurations in both transformers layouts, and clear refusals of malformed directories.
@Suite("Model loading and validation")
struct LoadingTests {
    /// Loads a copy of `fixture` after `edit` changed its config.json, expecting an error whose text contains each of `fragments`.
    func expectConfigError(fixture: String = "llama4-r1like-bf16-sharded", _ fragments: [String], edit: (inout [String: Any]) -> Void) throws {
        let directory = try TemporaryDirectory()
        try directory.copyFixture(fixture)
        let configPath = directory.path + "/config.json"
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))) as? [String: Any] ?? [:]
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
        do {
            _ = try Model(path: directory.path)
            Issue.record("expected an error containing \(fragments)")
        } catch let error as MobileLLMError {
            for fragment in fragments {
                #expect(error.description.contains(fragment), "\(error.description) lacks \(fragment)")
            }
        }
    }

    @Test("R1-style config: all RoPE layers, QK norm, interleaved pairs, theta 8e6, tied, EOS merged")
    func r1Configuration() throws {
        let model = try Model(path: Fixtures.path("llama4-r1like-bf16-sharded"))
        let c = model.configuration
        #expect(c.ropePairing == .interleaved)
        #expect(c.ropeTheta == 8_000_000)
        #expect(c.layers.allSatisfy { $0.usesRoPE && $0.qkNorm && !$0.temperatureTuning && $0.chunkSize == 8192 })
        #expect(c.tiedEmbeddings)
        #expect(c.groupSize == 2)
        #expect(model.tokenizerFile == nil)
    }

    @Test("transformers 5 layout: rope_parameters, explicit layer_types, NoPE layers with temperature tuning")
    func newLayoutConfiguration() throws {
        let c = try Model(path: Fixtures.path("llama4-nope-f32")).configuration
        #expect(c.ropeTheta == 10_000)
        #expect(c.layers.map(\.usesRoPE) == [true, false, true, false])
        #expect(c.layers.map(\.qkNorm) == [true, false, true, false])
        #expect(c.layers.map(\.temperatureTuning) == [false, true, false, true])
        #expect(c.layers.map(\.chunkSize) == [16, nil, 16, nil])
        #expect(!c.tiedEmbeddings)
    }

    @Test("llama3 RoPE scaling frequencies equal transformers' formula")
    func llama3Scaling() throws {
        let c = try Model(path: Fixtures.path("llama-f16")).configuration
        guard case let .llama3(factor, low, high, original) = c.ropeScaling else {
            Issue.record("expected llama3 scaling, found \(c.ropeScaling)")
            return
        }
        var plain = c
        plain.ropeScaling = .none
        let base = plain.ropeInverseFrequencies()
        let scaled = c.ropeInverseFrequencies()
        var changed = 0
        for (f, s) in zip(base, scaled) {
            let wavelength = 2 * Double.pi / Double(f)
            if wavelength < Double(original) / high { #expect(s == f) } else if wavelength > Double(original) / low {
                #expect(abs(Double(s) - Double(f) / factor) <= 1e-7 * Double(f))
                changed += 1
            } else { changed += 1 }
        }
        #expect(changed > 0, "the fixture's scaling must change some frequencies")
    }

    @Test("mixture-of-experts configs are refused")
    func moeRefused() throws {
        try expectConfigError(["unsupported: mixture-of-experts", "config.json"]) { $0["moe_layers"] = [1] }
        try expectConfigError(["unsupported: mixture-of-experts"]) {
            $0.removeValue(forKey: "moe_layers")
            $0["interleave_moe_layer_step"] = 1
        }
        // interleave step 0 without moe_layers is dense.
        let directory = try TemporaryDirectory()
        try directory.copyFixture("llama4-r1like-bf16-sharded")
        let configPath = directory.path + "/config.json"
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))) as? [String: Any] ?? [:]
        config.removeValue(forKey: "moe_layers")
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
        #expect(throws: Never.self) { try Model(path: directory.path) }
    }

    @Test("bad config values name the field")
    func badConfigs() throws {
        try expectConfigError(["num_key_value_heads", "does not divide"]) { $0["num_key_value_heads"] = 3 }
        try expectConfigError(["hidden_size", "expected an integer"]) { $0["hidden_size"] = "wide" }
        try expectConfigError(["model_type", "unsupported", "llama4_text"]) { $0["model_type"] = "mamba" }
        try expectConfigError(["model_type", "missing"]) { $0.removeValue(forKey: "model_type") }
        try expectConfigError(["no_rope_layers", "one per layer"]) { $0["no_rope_layers"] = [1, 1] }
        try expectConfigError(["layer_types[1]"]) { $0["layer_types"] = ["full_attention", "sliding", "full_attention"] }
        try expectConfigError(["eos_token_id", "outside the vocabulary"]) { $0["eos_token_id"] = [1, 100_000] }
        try expectConfigError(["rope_scaling", "unsupported", "yarn"]) { $0["rope_scaling"] = ["rope_type": "yarn", "factor": 2.0] }
        try expectConfigError(["hidden_act"]) { $0["hidden_act"] = "gelu" }
        try expectConfigError(["model.layers.0.self_attn.q_proj.weight", "shape"]) { $0["head_dim"] = 8 }
        try expectConfigError(["model.embed_tokens.weight", "shape"]) { $0["vocab_size"] = 500 }
    }

    @Test("missing and malformed files are named")
    func missingFiles() throws {
        #expect(throws: MobileLLMError.fileNotFound(path: "/nonexistent/model", reason: "no such file or directory")) {
            try Model(path: "/nonexistent/model")
        }
        let empty = try TemporaryDirectory()
        #expect { try Model(path: empty.path) } throws: { ($0 as? MobileLLMError)?.description.contains("config.json") == true }

        let noShard = try TemporaryDirectory()
        try noShard.copyFixture("llama4-r1like-bf16-sharded")
        try FileManager.default.removeItem(atPath: noShard.path + "/model-00002-of-00002.safetensors")
        #expect { try Model(path: noShard.path) } throws: { ($0 as? MobileLLMError)?.description.contains("model-00002-of-00002.safetensors") == true }

        let badJSON = try TemporaryDirectory()
        try badJSON.copyFixture("llama-f16")
        try badJSON.write("config.json", "{\"model_type\": \"llama\", ")
        #expect { try Model(path: badJSON.path) } throws: { ($0 as? MobileLLMError)?.description.contains("not valid JSON") == true }

        let noWeights = try TemporaryDirectory()
        try noWeights.copyFixture("llama-f16")
        try FileManager.default.removeItem(atPath: noWeights.path + "/model.safetensors")
        #expect { try Model(path: noWeights.path) } throws: { ($0 as? MobileLLMError)?.description.contains("model.safetensors") == true }
    }

    /// Builds a safetensors file from a header object and a data size.
    func safetensors(header: String, dataBytes: Int, declaredLength: UInt64? = nil) -> [UInt8] {
        let json = Array(header.utf8)
        var bytes = withUnsafeBytes(of: (declaredLength ?? UInt64(json.count)).littleEndian, Array.init)
        bytes += json
        bytes += [UInt8](repeating: 0, count: dataBytes)
        return bytes
    }

    @Test("lying safetensors headers are caught before any read", arguments: [
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,32]}}", 16, nil, "outside"),
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,8]}}", 16, nil, "needs 16"),
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 16, nil, "overlaps"),
        ("{\"a\":{\"dtype\":\"I4\",\"shape\":[2],\"data_offsets\":[0,1]}}", 16, nil, "a.dtype"),
        ("{\"a\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16, nil, "unsupported: dtype F64"),
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16, nil, "data bytes 0..<8 belong to no tensor"),
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 16, nil, "the last 8 data bytes"),
        ("{\"__metadata__\":{\"format\":[1]}}", 0, nil, "__metadata__.format"),
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 16, nil, "negative"),
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[1000000000000,4],\"data_offsets\":[0,8]}}", 16, nil, "more elements"),
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,8]}}", 16, nil, "a.shape[0]"),
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 16, nil, "data_offsets"),
        ("[1,2]", 16, nil, "expected a JSON object"),
        ("{}", 0, UInt64(1) << 40, "header length"),
        ("{\"a\":", 0, nil, "not valid JSON"),
    ] as [(String, Int, UInt64?, String)])
    func lyingSafetensors(header: String, dataBytes: Int, declared: UInt64?, fragment: String) throws {
        let directory = try TemporaryDirectory()
        let file = try directory.write("model.safetensors", bytes: safetensors(header: header, dataBytes: dataBytes, declaredLength: declared))
        #expect { try SafeTensorsFile(path: file) } throws: { error in
            let text = (error as? MobileLLMError)?.description ?? ""
            return text.contains(fragment) && text.contains("model.safetensors")
        }
    }

    @Test("a truncated safetensors file is refused")
    func truncated() throws {
        let directory = try TemporaryDirectory()
        let file = try directory.write("model.safetensors", bytes: [1, 2, 3])
        #expect { try SafeTensorsFile(path: file) } throws: { ($0 as? MobileLLMError)?.description.contains("8-byte header length") == true }
    }
}
