import Foundation
import Synchronization
import Testing
@testable import MobileLLM

/// The thread pool runs every chunk exactly once, whatever the job sizes, across many back-to-back jobs and with
/// several pools competing for the cores (late workers must never run a chunk of a finished job).
@Suite("Compute pool")
struct ComputePoolTests {
    final class Counts: @unchecked Sendable {
        let values: UnsafeMutablePointer<Atomic<Int>>
        let count: Int
        init(_ count: Int) {
            self.count = count
            values = .allocate(capacity: count)
            for index in 0..<count { (values + index).initialize(to: Atomic(0)) }
        }
        deinit { values.deallocate() }
        func reset() { for index in 0..<count { values[index].store(0, ordering: .relaxed) } }
    }

    /// Runs `jobs` jobs of random sizes (or, with `alternating`, 2 and then 300 chunks in turn: a worker left holding
    /// a small job's exhausted claim must not take a chunk of the large job that follows) and checks the counts.
    static func hammer(threads: Int, jobs: Int, seed: UInt64, alternating: Bool = false) -> Bool {
        let pool = ComputePool(threadCount: threads)
        let counts = Counts(512)
        var generator = SeededGenerator(seed: seed)
        for job in 0..<jobs {
            let chunks = alternating ? (job % 2 == 0 ? 2 : 300) : Int(generator.next() % 300) + 1
            counts.reset()
            pool.run(chunks: chunks) { chunk, thread in
                precondition(thread >= 0 && thread < threads)
                counts.values[chunk].add(1, ordering: .relaxed)
            }
            for index in 0..<chunks where counts.values[index].load(ordering: .relaxed) != 1 { return false }
            for index in chunks..<counts.count where counts.values[index].load(ordering: .relaxed) != 0 { return false }
        }
        return true
    }

    @Test("every chunk runs exactly once over thousands of jobs")
    func exactlyOnce() {
        #expect(Self.hammer(threads: 4, jobs: 3000, seed: 1))
        #expect(Self.hammer(threads: 1, jobs: 100, seed: 2))
    }

    @Test("three oversubscribed pools at once stay exact")
    func concurrentPools() async {
        let results = await withTaskGroup(of: Bool.self) { group in
            for seed in 0..<3 { group.addTask { Self.hammer(threads: 3, jobs: 1500, seed: UInt64(10 + seed)) } }
            var all: [Bool] = []
            for await result in group { all.append(result) }
            return all
        }
        #expect(results == [true, true, true])
    }

    /// The race the ThreadSanitizer run found (a stale exhausted claim word paired with the next job's larger count).
    /// The window is a few instructions wide: under `scripts/sanitize.sh thread` the old pool failed this test in 2 of
    /// 3 runs (the fixed one passes 5 of 5); in a normal build it rarely opens.
    @Test("small and large jobs in turn, oversubscribed, stay exact")
    func alternatingJobSizes() async {
        let results = await withTaskGroup(of: Bool.self) { group in
            for seed in 0..<3 {
                group.addTask { Self.hammer(threads: 3, jobs: 4000, seed: UInt64(20 + seed), alternating: true) }
            }
            var all: [Bool] = []
            for await result in group { all.append(result) }
            return all
        }
        #expect(results == [true, true, true])
    }

    @Test("forEach covers every index once, in granularity-aligned ranges")
    func forEachCoverage() {
        let pool = ComputePool(threadCount: 3)
        for count in [1, 7, 64, 1000, 4097] {
            let counts = Counts(count)
            pool.forEach(count, granularity: 8) { range, _ in
                if range.lowerBound % 8 != 0 { counts.values[0].add(1000, ordering: .relaxed) }
                for index in range { counts.values[index].add(1, ordering: .relaxed) }
            }
            #expect((0..<count).allSatisfy { counts.values[$0].load(ordering: .relaxed) == 1 }, "count \(count)")
        }
    }
}
