import Foundation
import Testing
@testable import MobileLLM
@testable import MobileLLMTools

/// The whole `eval` pipeline driven by scripted responses (no model), checked against per-item correctness and
/// scores computed with math-verify (scripts/make_eval_fixtures.py), plus the real model path on SmolLM2.
@Suite struct EvalPipelineTests {
    struct Expected: Decodable {
        struct Item: Decodable {
            struct Sample: Decodable {
                let answer: String?
                let correct: Bool
            }
            let id: String
            let reference: String
            let samples: [Sample]
        }
        struct Summary: Decodable {
            let accuracy: Double
            let pass_at_1: Double
            let pass_at_k: Double
        }
        let samples: Int
        let items: [Item]
        let summary: Summary
    }

    static func expected(_ task: EvalTask) throws -> Expected {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("eval/expected_\(task.rawValue).json")))
        return try JSONDecoder().decode(Expected.self, from: data)
    }

    @Test(arguments: EvalTask.allCases)
    func scriptedRunMatchesReference(task: EvalTask) throws {
        let expected = try Self.expected(task)
        let items = try EvalDataset.load(path: Fixtures.path("eval/\(task.rawValue).jsonl"), task: task)
        #expect(items.map(\.id) == expected.items.map(\.id))
        #expect(items.map(\.reference) == expected.items.map(\.reference))
        let source = try ScriptedAnswerSource(path: Fixtures.path("eval/responses_\(task.rawValue).jsonl"))
        var written: [EvalItemResult] = []
        var progressCalls = 0
        let summary = try EvalRunner.run(task: task, items: items, source: source, samples: expected.samples, seed: 7,
                                         onItem: { written.append($0) }, onProgress: { _ in progressCalls += 1 })
        #expect(written.count == items.count)
        #expect(progressCalls > items.count)
        for (result, reference) in zip(written, expected.items) {
            #expect(result.samples.map(\.correct) == reference.samples.map(\.correct), "item \(result.id)")
            #expect(result.samples.map(\.seed) == (0..<expected.samples).map { 7 + UInt64($0) })
            for (sample, want) in zip(result.samples, reference.samples) {
                // Same answer after normalization (the reference extraction keeps e.g. "36" where ours is "36 dollars.").
                #expect(sample.answer.map(AnswerNormalizer.compact) == want.answer.map(AnswerNormalizer.compact), "item \(result.id)")
            }
        }
        #expect(abs(summary.accuracy - expected.summary.accuracy) < 1e-12)
        #expect(abs(summary.passAt1 - expected.summary.pass_at_1) < 1e-12)
        #expect(abs(summary.passAtK - expected.summary.pass_at_k) < 1e-12)
        #expect(summary.items == items.count && summary.samplesPerItem == expected.samples)
    }

    @Test func summaryDefinitions() {
        // Hand-made outcomes; the expected numbers are the documented definitions applied by hand.
        func sample(_ correct: Bool) -> EvalSampleResult {
            EvalSampleResult(seed: 0, answer: correct ? "1" : nil, method: correct ? .boxed : nil, correct: correct,
                             tokens: 10, stopReason: correct ? "eos" : "max_tokens", response: nil)
        }
        let results = [
            EvalItemResult(id: "a", question: "", reference: "1", samples: [sample(false), sample(true), sample(true), sample(true)]),
            EvalItemResult(id: "b", question: "", reference: "1", samples: [sample(true), sample(false), sample(false), sample(false)]),
            EvalItemResult(id: "c", question: "", reference: "1", samples: [sample(false), sample(false), sample(false), sample(false)]),
        ]
        let summary = EvalSummary(task: .gsm8k, samples: 4, results: results)
        #expect(summary.accuracy == 1.0 / 3)           // only b's first sample is correct
        #expect(summary.passAt1 == (0.75 + 0.25 + 0) / 3)
        #expect(summary.passAtK == 2.0 / 3)
        #expect(summary.correctSamples == 4 && summary.noAnswerSamples == 8)
        #expect(summary.stopReasons == ["eos": 4, "max_tokens": 8])
    }

    @Test func datasetErrorsNameFileLineAndField() throws {
        let dir = try TemporaryDirectory()
        let cases: [(EvalTask, String, String)] = [
            (.gsm8k, "{\"question\": \"q\", \"answer\": \"#### 1\"}\nnot json\n", ":2: field '(line)': not valid JSON"),
            (.gsm8k, "{\"question\": \"q\", \"answer\": \"1\"}\n", ":1: field 'answer': no \"####\""),
            (.gsm8k, "{\"answer\": \"#### 1\"}\n", ":1: field 'question': missing"),
            (.math500, "{\"problem\": \"q\"}\n", ":1: field 'answer': missing"),
            (.math500, "{\"problem\": \"q\", \"solution\": \"no box\"}\n", ":1: field 'solution': no \"answer\" field and no \\boxed"),
            (.aime, "[1, 2]\n", ":1: field '(line)': not a JSON object"),
            (.aime, "{\"Problem\": \"q\", \"Answer\": true}\n", ":1: field 'Answer': expected a string or a number, found a boolean"),
            (.aime, "{\"problem\": \"q\", \"answer\": \"  \"}\n", ":1: field 'answer': empty reference"),
            (.aime, "{\"id\": 1, \"problem\": \"q\", \"answer\": 1}\n{\"id\": 1, \"problem\": \"r\", \"answer\": 2}\n", ":2: field 'id': duplicate id \"1\""),
            (.aime, "\n\n", ": field '(rows)': no rows"),
        ]
        for (index, (task, text, message)) in cases.enumerated() {
            let path = try dir.write("bad\(index).jsonl", text)
            #expect(throws: MobileLLMError.self) { try EvalDataset.load(path: path, task: task) }
            do {
                _ = try EvalDataset.load(path: path, task: task)
            } catch let error as MobileLLMError {
                #expect(error.description.hasPrefix(path), "\(error)")
                #expect(error.description.contains(message), "\(error) does not contain \(message)")
            }
        }
        #expect(throws: MobileLLMError.fileNotFound(path: dir.path + "/missing.jsonl", reason: "cannot read the file")) {
            try EvalDataset.load(path: dir.path + "/missing.jsonl", task: .aime)
        }
    }

    @Test func scriptedSourceErrors() throws {
        let dir = try TemporaryDirectory()
        let item = EvalItem(id: "x", question: "q", reference: "1")
        let script = try dir.write("r.jsonl", "{\"id\": \"x\", \"responses\": [\"\\\\boxed{1}\"]}\n")
        let source = try ScriptedAnswerSource(path: script)
        #expect(try source.respond(to: item, sample: 0, seed: 0, onToken: { _ in }).text == "\\boxed{1}")
        #expect(throws: MobileLLMError.self) { try source.respond(to: item, sample: 1, seed: 0, onToken: { _ in }) }
        #expect(throws: MobileLLMError.self) { try source.respond(to: EvalItem(id: "y", question: "q", reference: "1"), sample: 0, seed: 0, onToken: { _ in }) }
        let bad = try dir.write("bad.jsonl", "{\"id\": \"x\", \"responses\": [5]}\n")
        #expect(throws: MobileLLMError.invalidFile(path: bad + ":1", field: "responses[0]", problem: "expected a string or an object with a \"text\" string")) {
            try ScriptedAnswerSource(path: bad)
        }
    }

    /// The built `mobilellm` executable next to the test bundle.
    static func cli() -> String? {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("mobilellm").path
        for path in [beside, Fixtures.packageRoot.appendingPathComponent(".build/debug/mobilellm").path]
        where FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        Issue.record("the mobilellm executable was not built (swift build)")
        return nil
    }

    /// Runs the CLI; returns (exit status, stdout, stderr).
    static func runCLI(_ arguments: [String]) throws -> (Int32, String, String) {
        guard let executable = cli() else { return (-1, "", "") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }

    @Test func cliEndToEndWithScriptedResponses() throws {
        let dir = try TemporaryDirectory()
        let output = dir.path + "/out.jsonl"
        let expected = try Self.expected(.math500)
        let (status, stdout, stderr) = try Self.runCLI([
            "eval", "--task", "math500", "--data", Fixtures.path("eval/math500.jsonl"),
            "--responses", Fixtures.path("eval/responses_math500.jsonl"),
            "--samples", "2", "--limit", "3", "--seed", "5", "--output", output, "--include-responses", "--json",
        ])
        #expect(status == 0, "\(stderr)")
        #expect(stderr.contains("3/3 questions"))
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any])
        let first3 = Array(expected.items.prefix(3))
        #expect(summary["items"] as? Int == 3)
        #expect(summary["samples_per_item"] as? Int == 2)
        let accuracy = Double(first3.filter { $0.samples[0].correct }.count) / 3
        let passAt1 = first3.map { Double($0.samples.filter(\.correct).count) / 2 }.reduce(0, +) / 3
        #expect(abs((summary["accuracy"] as? Double ?? -1) - accuracy) < 1e-12)
        #expect(abs((summary["pass_at_1"] as? Double ?? -1) - passAt1) < 1e-12)
        #expect(summary["task"] as? String == "math500")
        let settings = try #require(summary["settings"] as? [String: Any])
        #expect(settings["temperature"] as? Double == 0.6 && settings["top_p"] as? Double == 0.95 && settings["max_tokens"] as? Int == 30000)

        let lines = try String(contentsOfFile: output, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 3)
        for (line, want) in zip(lines, first3) {
            let row = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(row["id"] as? String == want.id)
            #expect(row["reference"] as? String == want.reference)
            #expect(row["question"] is String)
            let samples = try #require(row["samples"] as? [[String: Any]])
            #expect(samples.map { $0["correct"] as? Bool } == want.samples.map(\.correct))
            #expect(samples.map { $0["seed"] as? Int } == [5, 6])
            for sample in samples {
                #expect(Set(sample.keys) == ["seed", "answer", "method", "correct", "tokens", "stop_reason", "response"])
                #expect(sample["tokens"] is Int && sample["stop_reason"] as? String == "eos" && sample["response"] is String)
            }
        }
    }

    @Test func cliRejectsBadInput() throws {
        let dir = try TemporaryDirectory()
        let bad = try dir.write("bad.jsonl", "{\"question\": \"q\"}\n")
        let (status, _, stderr) = try Self.runCLI(["eval", "--task", "gsm8k", "--data", bad, "--responses", bad])
        #expect(status == 1)
        #expect(stderr.contains("bad.jsonl:1: field 'answer': missing"), "\(stderr)")
        let (usage, _, _) = try Self.runCLI(["eval", "--task", "gsm8k", "--data", bad, "--responses", bad, "--model", bad])
        #expect(usage == 2)
        let (help, helpText, _) = try Self.runCLI(["eval", "--help"])
        #expect(help == 0 && helpText.contains("pass@1") && helpText.contains("\\boxed") && !helpText.contains("--responses"))
    }

    @Test func modelSourceMatchesTransformersOnSmolLM2() throws {
        // transformers' greedy chat answer for this question on the same weights (Tests/Fixtures/smollm2).
        guard let path = TokenizerFixtures.requireAsset(TokenizerFixtures.smollm2GGUF) else { return }
        let reference = try RealModelTests.reference()
        let model = try Model(path: path)
        let source = try ModelAnswerSource(model: model, maxTokens: 16, sampling: .greedy)
        let item = EvalItem(id: "france", question: "What is the capital of France?", reference: "Paris")
        #expect(try source.prompt(for: item) == reference.chat.prompt_tokens)
        let summary = try EvalRunner.run(task: .math500, items: [item], source: source, samples: 1, seed: 0, includeResponses: true,
                                         onItem: { result in
            #expect(result.samples[0].response == reference.chat.answer)
            #expect(result.samples[0].tokens == reference.chat.answer_tokens.count)
            #expect(result.samples[0].stopReason == "eos")
        })
        #expect(summary.noAnswerSamples == 1)  // no box and no number in "The capital of France is Paris."
    }
}
