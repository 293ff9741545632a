import Foundation
import Testing
@testable import MobileLLM

/// The memory estimate follows what loading and a session really allocate; per-session thread counts give the same
/// numbers; the system report names the kernels the dispatch uses. (Estimate vs measured RSS: python/tests/test_memory.py.)
@Suite("Memory estimate, session threads, system report")
struct MemoryThreadsTests {
    @Test("estimate equals the loaded model's and the session's own sizes", arguments: Fixtures.models)
    func estimateMatchesLoadedSizes(fixture: String) throws {
        let path = Fixtures.path(fixture)
        for quantize in [nil, QuantType.q8_0] {
            let options = ModelLoadOptions(threadCount: 2, quantize: quantize)
            let estimate = try Model.estimateMemory(path: path, options: options, contextLength: 200)
            let model = try Model(path: path, options: options)
            let session = try model.makeSession(contextLength: 200)
            #expect(estimate.kvCacheType == session.kvCacheType)
            #expect(estimate.kvBytesPerPosition * 200 == session.kvCacheCapacityBytes)
            #expect(estimate.kvBytes >= session.kvCacheCapacityBytes)
            #expect(estimate.kvBytes % (KVCache.pagePositions * estimate.kvBytesPerPosition) == 0)
            #expect(estimate.totalBytes == estimate.mappedWeightBytes + estimate.anonymousWeightBytes + estimate.kvBytes + estimate.scratchBytes)
            // Converted matrices: the bytes of the loaded matrices that live in owned buffers (each counted once);
            // the rest of the anonymous bytes are the f32 norm and bias vectors.
            var owned: [ObjectIdentifier: Int] = [:]
            for matrix in model.weights.matrices + [model.weights.embedding] where matrix.owner is OwnedBuffer {
                owned[ObjectIdentifier(matrix.owner)] = matrix.byteCount
            }
            let ownedBytes = owned.values.reduce(0, +)
            let vectorBytes = estimate.anonymousWeightBytes - ownedBytes
            #expect(vectorBytes > 0)
            #expect(vectorBytes < 1 << 20)
            if quantize == nil { #expect(ownedBytes == 0) }
        }
    }

    @Test("estimate errors match the loader's")
    func estimateErrors() throws {
        let missing = "/nonexistent/model.gguf"
        var loadError = ""
        do { _ = try Model(path: missing) } catch { loadError = "\(error)" }
        var estimateError = ""
        do { _ = try Model.estimateMemory(path: missing) } catch { estimateError = "\(error)" }
        #expect(!loadError.isEmpty && loadError == estimateError)
        let path = Fixtures.path("llama-f16")
        #expect(throws: MobileLLMError.self) { try Model.estimateMemory(path: path, contextLength: 0) }
        #expect(throws: MobileLLMError.self) { try Model.estimateMemory(path: path, options: ModelLoadOptions(threadCount: 0)) }
    }

    @Test("1 thread and all threads give identical logits")
    func threadCountsAgree() throws {
        let model = try Model(path: Fixtures.path("llama4-r1like-bf16-sharded"), options: ModelLoadOptions(threadCount: 3))
        var rows: [[Float]] = []
        for threads in [1, 2, 3] {
            let session = try model.makeSession(contextLength: 300)
            try session.setThreadCount(threads)
            #expect(session.threadCount == threads)
            // A prefill past one attention segment, then decode steps.
            var logits = try session.feed((0..<290).map { Int32($0 * 7 % model.vocabularySize) })
            for step in 0..<4 { logits = try session.feed([Int32(step + 5)]) }
            rows.append(Array(logits.last))
        }
        #expect(rows[0] == rows[1])
        #expect(rows[0] == rows[2])
        let session = try model.makeSession(contextLength: 16)
        #expect(throws: MobileLLMError.self) { try session.setThreadCount(0) }
        #expect(throws: MobileLLMError.self) { try session.setThreadCount(4) }
        #expect(session.threadCount == 3)
    }

    @Test("a batch on 1 thread and on all threads gives the same tokens")
    func batchThreadCountsAgree() throws {
        let model = try Model(path: Fixtures.path("llama4-r1like-bf16-sharded"), options: ModelLoadOptions(threadCount: 3))
        var runs: [[Int: [Int32]]] = []
        for threads in [1, 3] {
            let batch = try BatchGenerator(model: model)
            try batch.setThreadCount(threads)
            #expect(batch.threadCount == threads)
            var ids: [Int] = []
            for prompt in [[0, 169, 380], [5, 6, 7, 8]] as [[Int32]] {
                ids.append(try batch.add(prompt: prompt, options: GenerationOptions(maxTokens: 8, ignoreEOS: true), contextLength: 64))
            }
            var results: [Int: [Int32]] = [:]
            try batch.run { event in
                if case let .finished(sequence, _, _, result) = event { results[sequence] = result.tokens }
                return true
            }
            runs.append(Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($0.offset, results[$0.element] ?? []) }))
        }
        #expect(runs[0] == runs[1])
        #expect(runs[0][0]?.count == 8)
        let batch = try BatchGenerator(model: model)
        #expect(throws: MobileLLMError.self) { try batch.setThreadCount(4) }
    }

    @Test("system report lists the kernels of every type")
    func systemReport() {
        let info = MobileLLMSystem.info
        #expect(info.hasPrefix("arch: "))
        for name in ["features:", "\nisa: ", "\nf16: ", "\nattention (head size 64 / 320): f32 ", ", q8_0 ",
                     "\nq4_0: exact-decode ", "\nq6_k: exact-decode ", ", int8 "] {
            #expect(info.contains(name), "\(name) missing from \(info)")
        }
    }
}
