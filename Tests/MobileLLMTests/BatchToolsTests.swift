import Foundation
import Testing
@testable import MobileLLM
@testable import MobileLLMTools

/// The engine pieces the CLI's batch features stand on: the KV bytes a decoded token reads (`bench --depth`), the
/// synthetic GGUF export (`quantize --synthetic`) and the batched evaluation path (`eval --parallel`).
@Suite("Batch tools")
struct BatchToolsTests {
    @Test func kvBytesReadFollowsTheChunkWindow() {
        var c = SyntheticModel.smolLM2_135M.configuration
        let row = 2 * c.kvHeadCount * KVCacheType.f16.rowBytes(c.headDimension)
        #expect(KVCache.bytesPerPosition(configuration: c, type: .f16) == c.layerCount * row)
        // Full attention: a token at position p reads p + 1 positions in every layer.
        #expect(KVCache.bytesRead(configuration: c, type: .f16, position: 9) == c.layerCount * row * 10)
        // Chunked layers (Llama-4, chunk 8) read only their chunk: position 9 is the second of chunk 8..<16.
        for layer in stride(from: 0, to: c.layerCount, by: 2) { c.layers[layer].chunkSize = 8 }
        let chunked = (c.layerCount + 1) / 2, full = c.layerCount / 2
        #expect(KVCache.bytesRead(configuration: c, type: .f16, position: 9) == (chunked * 2 + full * 10) * row)
        #expect(KVCache.bytesRead(configuration: c, type: .q8_0, position: 0) == c.layerCount * 2 * c.kvHeadCount * 34 * 2)
    }

    @Test func syntheticExportLoadsWithTheSameConfiguration() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("synthetic-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("smollm2.gguf").path
        let report = try GGUFExport.write(synthetic: .smolLM2_135M, to: path, options: GGUFExportOptions(type: .q8_0))
        #expect(report.architecture == "llama")
        let model = try Model(path: path)
        let expected = SyntheticModel.smolLM2_135M.configuration
        #expect(model.configuration.layerCount == expected.layerCount)
        #expect(model.configuration.hiddenSize == expected.hiddenSize)
        #expect(model.configuration.kvHeadCount == expected.kvHeadCount)
        #expect(model.vocabularySize == expected.vocabularySize)
        // A tokenizer whose vocabulary does not fit is refused before anything is written.
        let other = directory.appendingPathComponent("other.gguf").path
        #expect(throws: MobileLLMError.self) {
            try GGUFExport.write(synthetic: .llamaR1_950M, tokenizerDirectory: path, to: other, options: GGUFExportOptions(type: .q4_0))
        }
        #expect(!FileManager.default.fileExists(atPath: other))
    }
}
