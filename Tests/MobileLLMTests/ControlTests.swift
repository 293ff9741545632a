import Foundation
import Testing
@testable import MobileLLM

/// The r1like-chat fixture (random weights, a 384-token byte-level BPE tokenizer) copied with `<|eom_id|>` (id 3)
/// renamed `</think>`, so that the end marker is one special token; `<think>` stays plain text (several tokens).
/// End-of-sequence ids become [1, 2] and the chat template opens a thought in its generation prompt and renders an
/// assistant's `reasoning_content`, as Qwen3's does.
enum ThinkFixture {
    static let endMarkerID: Int32 = 3
    static let template = "{{ bos_token }}{% for message in messages %}<|start|>{{ message['role'] }}\n"
        + "{% if message.reasoning_content %}<think>{{ message.reasoning_content }}</think>{% endif %}"
        + "{{ message['content'] | trim }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start|>assistant\n<think>\n{% endif %}"

    nonisolated(unsafe) static let directory: TemporaryDirectory = {
        let directory = try! TemporaryDirectory()
        let source = Fixtures.path("r1like-chat")
        for file in try! FileManager.default.contentsOfDirectory(atPath: source) {
            let url = URL(fileURLWithPath: source + "/" + file).resolvingSymlinksInPath()
            var data = try! Data(contentsOf: url)
            if file.hasPrefix("tokenizer") {
                data = Data(String(decoding: data, as: UTF8.self).replacingOccurrences(of: "<|eom_id|>", with: "</think>").utf8)
            }
            if file == "tokenizer_config.json" || file == "generation_config.json" || file == "config.json" {
                var object = try! JSONSerialization.jsonObject(with: data) as! [String: Any]
                if object["eos_token_id"] != nil { object["eos_token_id"] = [1, 2] }
                if file == "tokenizer_config.json" { object["chat_template"] = template }
                data = try! JSONSerialization.data(withJSONObject: object)
            }
            try! data.write(to: URL(fileURLWithPath: directory.path + "/" + file))
        }
        return directory
    }()

    static func model() throws -> Model { try Model(path: directory.path, options: ModelLoadOptions(threadCount: 2)) }
}

/// A token constraint for tests: allows exactly `script`, in order, then (when `ends` is not empty) only an end token.
struct ScriptConstraint: TokenConstraint {
    let script: [Int32]
    let ends: Set<Int32>
    var at = 0

    func restrict(_ allowed: inout [Bool]) {
        for index in allowed.indices {
            allowed[index] = at < script.count ? Int32(index) == script[at] : ends.contains(Int32(index))
        }
    }

    mutating func accept(_ token: Int32) -> Bool {
        guard at < script.count, token == script[at] else { return false }
        at += 1
        return true
    }

    var isFinished: Bool { at == script.count && ends.isEmpty }
    var canEnd: Bool { at == script.count }
}

/// A constraint that allows only tokens with an even id and never finishes.
struct EvenConstraint: TokenConstraint {
    func restrict(_ allowed: inout [Bool]) {
        for index in allowed.indices where index % 2 == 1 { allowed[index] = false }
    }
    mutating func accept(_ token: Int32) -> Bool { token % 2 == 0 }
    var isFinished: Bool { false }
    var canEnd: Bool { true }
}

/// Drives a `SequenceDecoder` with scripted tokens: each sampling step gets logits whose arg-max is the next scripted
/// token (greedy), forced tokens come out without using the script. Returns the steps, the final rest and the decoder.
func drive(_ model: Model, options: GenerationOptions, context: [Int32], script: [Int32])
    throws -> (steps: [DecodeStep], rest: (rest: String?, pieces: [GeneratedPiece]), decoder: SequenceDecoder) {
    var decoder = try SequenceDecoder(model: model, options: options, context: context, streamText: true)
    var steps: [DecodeStep] = []
    var history = context
    var index = 0
    while true {
        var logits = [Float](repeating: 0, count: model.vocabularySize)
        if decoder.needsLogits {
            guard index < script.count else { break }
            logits[Int(script[index])] = 50
            index += 1
        }
        let step = decoder.next(logits: logits[...], history: history, room: 10_000)
        steps.append(step)
        if let token = step.token { history.append(token) }
        if step.stop != nil { break }
    }
    let rest = decoder.finish()
    return (steps, rest, decoder)
}

@Suite("Control: reasoning channels and budget (scripted token streams)")
struct ControlReasoningTests {
    /// Token ids of `text`, one token per Unicode scalar's bytes (so a marker spans many tokens).
    static func perScalar(_ tokenizer: Tokenizer, _ text: String) -> [Int32] {
        text.unicodeScalars.flatMap { tokenizer.encode(String($0), addSpecial: false, parseSpecial: false) }
    }

    /// Token ids of `text` cut into chunks at `cuts` (scalar offsets), each chunk tokenized with special tokens parsed.
    static func chunked(_ tokenizer: Tokenizer, _ text: String, cuts: [Int]) -> [Int32] {
        let scalars = Array(text.unicodeScalars)
        var result: [Int32] = []
        var start = 0
        for end in (cuts.filter { $0 > 0 && $0 < scalars.count }.sorted() + [scalars.count]) where end > start {
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars[start..<end])
            result += tokenizer.encode(String(view), addSpecial: false, parseSpecial: true)
            start = end
        }
        return result
    }

    /// The oracle of the reasoning token count: tokens before which the decoded text (context included) ends inside a
    /// thought.
    static func expectedReasoningTokens(_ tokenizer: Tokenizer, context: [Int32], tokens: [Int32]) throws -> Int {
        let options = ReasoningOptions()
        return try (0..<tokens.count).filter { index in
            options.endsInsideThought(try tokenizer.decode(context + tokens[..<index], skipSpecial: false))
        }.count
    }

    @Test("the split is exact wherever token boundaries fall, with the end marker as text or as one special token")
    func exactSplit() throws {
        let model = try ThinkFixture.model()
        let tokenizer = try model.tokenizer()
        #expect(tokenizer.encode("</think>", addSpecial: false, parseSpecial: true) == [ThinkFixture.endMarkerID])
        let options = GenerationOptions(maxTokens: 500, stopTokenIDs: [1, 2], reasoning: ReasoningOptions())
        let cases: [(context: String, text: String, reasoning: String, answer: String, markers: [String])] = [
            ("Q:", "pre<think>reason ok</think>the answer é!", "reason ok", "prethe answer é!", ["<think>", "</think>"]),
            ("Q: <think>", "already thinking</think>\n\nanswer", "already thinking", "\n\nanswer", ["</think>"]),
            ("Q:", "<<think>a<</think>>b<think>c", "a<c", "<>b", ["<think>", "</think>", "<think>"]),
            ("Q:", "no thought at all </thin", "", "no thought at all </thin", []),
        ]
        var generator = SeededGenerator(seed: 11)
        for item in cases {
            let context = tokenizer.encode(item.context, addSpecial: true, parseSpecial: true)
            var scripts = [Self.perScalar(tokenizer, item.text), tokenizer.encode(item.text, addSpecial: false, parseSpecial: true),
                           tokenizer.encode(item.text, addSpecial: false, parseSpecial: false)]
            for _ in 0..<8 {
                let count = item.text.unicodeScalars.count
                scripts.append(Self.chunked(tokenizer, item.text, cuts: (0..<3).map { _ in Int(generator.next() % UInt64(count)) }))
            }
            for script in scripts {
                #expect(try tokenizer.decode(script, skipSpecial: false) == item.text)
                let (steps, rest, decoder) = try drive(model, options: options, context: context, script: script)
                let pieces = steps.flatMap(\.pieces) + rest.pieces
                let label = "\(item.text.debugDescription) as \(script)"
                #expect(pieces.map(\.text).joined() == item.text, "\(label)")
                #expect(decoder.text == item.text && decoder.reasoning == item.reasoning && decoder.answer == item.answer, "\(label)")
                #expect(pieces.filter { $0.channel == .reasoning }.map(\.text).joined() == item.reasoning, "\(label)")
                #expect(pieces.filter { $0.channel == .answer }.map(\.text).joined() == item.answer, "\(label)")
                #expect(pieces.filter { $0.channel == .marker }.map(\.text) == item.markers, "\(label): a marker is one whole piece")
                #expect(pieces.filter { $0.token != nil }.map(\.token) == script.map { Optional($0) }, "one first piece per token")
                #expect(decoder.reasoningTokenCount == (try Self.expectedReasoningTokens(tokenizer, context: context, tokens: script)), "\(label)")
                #expect(decoder.events.isEmpty)
            }
        }
    }

    @Test("budget N: after exactly N reasoning tokens the closing is forced (not sampled), then answer mode")
    func budget() throws {
        let model = try ThinkFixture.model()
        let tokenizer = try model.tokenizer()
        let context = tokenizer.encode("Q: 2+2?\n<think>\n", addSpecial: true, parseSpecial: true)
        let reasoning = ReasoningOptions(budget: 5)
        let closing = tokenizer.encode(reasoning.closing, addSpecial: false, parseSpecial: true)
        #expect(closing.contains(ThinkFixture.endMarkerID), "the closing's </think> is the special token")
        let script = Self.perScalar(tokenizer, "abcdefghij")
        let options = GenerationOptions(maxTokens: 100, stopTokenIDs: [1, 2], reasoning: reasoning, logprobs: 0)
        let (steps, rest, decoder) = try drive(model, options: options, context: context, script: script)
        let tokens = steps.compactMap(\.token)
        #expect(tokens == Array(script[..<5]) + closing + Array(script[5...]))
        #expect(steps.map(\.forced) == [Bool](repeating: false, count: 5) + [Bool](repeating: true, count: closing.count)
                + [Bool](repeating: false, count: 5))
        #expect(decoder.reasoningTokenCount == 5)
        #expect(decoder.events == [GenerationEvent(kind: .reasoningBudget, tokenIndex: 5)])
        #expect(decoder.reasoning == "abcde" + "\n\nConsidering the limited time, I have to give the answer now.\n")
        #expect(decoder.answer == "\n\nfghij")
        #expect((steps.flatMap(\.pieces) + rest.pieces).filter { $0.channel == .marker }.map(\.text) == ["</think>"])
        #expect(decoder.logprobs.count == tokens.count, "one logprob per token, forced ones included")
        #expect(decoder.logprobs[5..<(5 + closing.count)].allSatisfy { $0.logprob == 0 && $0.top.isEmpty })

        // The model closing the thought itself within the budget: nothing is forced.
        let early = Self.perScalar(tokenizer, "ab") + [ThinkFixture.endMarkerID] + Self.perScalar(tokenizer, "xyz")
        let (_, _, own) = try drive(model, options: options, context: context, script: early)
        #expect(own.tokens == early && own.events.isEmpty && own.reasoningTokenCount == 3 && own.answer == "xyz")

        // The budget running out while an end marker is half written: the closing completes the thought.
        let half = Self.perScalar(tokenizer, "abcd</th") + Self.perScalar(tokenizer, "zz")
        let (_, _, cut) = try drive(model, options: GenerationOptions(maxTokens: 100, stopTokenIDs: [1, 2],
                                                                     reasoning: ReasoningOptions(budget: 6)), context: context, script: half)
        #expect(cut.reasoningTokenCount == 6 && cut.events.map(\.tokenIndex) == [6])
        #expect(cut.reasoning.hasPrefix("abcd</") && cut.answer == "\n\nthzz", "\(cut.answer.debugDescription)")
    }

    @Test("budget 0: a thought open in the prompt is closed before sampling; a thought the model opens is closed at once")
    func budgetZero() throws {
        let model = try ThinkFixture.model()
        let tokenizer = try model.tokenizer()
        let reasoning = ReasoningOptions(budget: 0)
        let closing = tokenizer.encode(reasoning.closing, addSpecial: false, parseSpecial: true)
        let options = GenerationOptions(maxTokens: 100, stopTokenIDs: [1, 2], reasoning: reasoning)

        let inside = tokenizer.encode("Q<think>", addSpecial: true, parseSpecial: true)
        let (steps, _, decoder) = try drive(model, options: options, context: inside, script: Self.perScalar(tokenizer, "ok"))
        #expect(steps.compactMap(\.token) == closing + Self.perScalar(tokenizer, "ok"))
        #expect(decoder.events == [GenerationEvent(kind: .reasoningBudget, tokenIndex: 0)])
        #expect(decoder.reasoningTokenCount == 0 && decoder.answer == "\n\nok")

        let outside = tokenizer.encode("Q", addSpecial: true, parseSpecial: true)
        let script = Self.perScalar(tokenizer, "x<think>yz")
        let (opened, _, late) = try drive(model, options: options, context: outside, script: script)
        #expect(opened.compactMap(\.token) == Array(script[..<8]) + closing + Array(script[8...]))
        #expect(late.events == [GenerationEvent(kind: .reasoningBudget, tokenIndex: 8)])
        #expect(late.reasoningTokenCount == 0 && late.answer == "x\n\nyz")
        #expect(late.reasoning == "\n\nConsidering the limited time, I have to give the answer now.\n")
    }

    @Test("stop strings match anywhere (reasoning included); maxTokens cuts a forced closing")
    func stopStringsAndLimits() throws {
        let model = try ThinkFixture.model()
        let tokenizer = try model.tokenizer()
        let context = tokenizer.encode("Q", addSpecial: true, parseSpecial: true)
        let script = Self.perScalar(tokenizer, "pre<think>reason</think>answer")
        let options = GenerationOptions(maxTokens: 100, stopTokenIDs: [1, 2], stopStrings: ["aso"], reasoning: ReasoningOptions())
        let (steps, rest, decoder) = try drive(model, options: options, context: context, script: script)
        #expect(steps.last?.stop == .stopString && rest.rest == nil)
        #expect(decoder.text == "pre<think>re" && decoder.reasoning == "re" && decoder.answer == "pre")
        #expect(steps.flatMap(\.pieces).map(\.text).joined() == decoder.text)

        // A stop string right after a half-written marker: the held-back text is released as what it is.
        let (halfSteps, _, half) = try drive(model, options: GenerationOptions(maxTokens: 100, stopTokenIDs: [1, 2], stopStrings: ["k>an"],
                                                                               reasoning: ReasoningOptions()), context: context, script: script)
        #expect(half.text == "pre<think>reason</thin" && half.reasoning == "reason</thin")
        #expect(halfSteps.flatMap(\.pieces).map(\.text).joined() == half.text)

        let inside = tokenizer.encode("Q<think>", addSpecial: true, parseSpecial: true)
        let limited = GenerationOptions(maxTokens: 5, stopTokenIDs: [1, 2], reasoning: ReasoningOptions(budget: 2))
        let (cutSteps, _, cut) = try drive(model, options: limited, context: inside, script: Self.perScalar(tokenizer, "abcdef"))
        #expect(cut.tokens.count == 5 && cutSteps.last?.stop == .maxTokens && cutSteps.last?.forced == true)
    }

    @Test("options are validated with the field named")
    func validation() throws {
        let model = try ThinkFixture.model()
        func problem(_ options: GenerationOptions) -> String? {
            do {
                _ = try SequenceDecoder(model: model, options: options, context: [0], streamText: false)
                return nil
            } catch let MobileLLMError.invalidArgument(name, _) {
                return name
            } catch {
                return "\(error)"
            }
        }
        #expect(problem(GenerationOptions(reasoning: ReasoningOptions(start: ""))) == "reasoning.start")
        #expect(problem(GenerationOptions(reasoning: ReasoningOptions(end: ""))) == "reasoning.end")
        #expect(problem(GenerationOptions(reasoning: ReasoningOptions(budget: -1))) == "reasoning.budget")
        #expect(problem(GenerationOptions(reasoning: ReasoningOptions(closing: "done"))) == "reasoning.closing")
        #expect(problem(GenerationOptions(logitBias: [384: 1])) == "logitBias")
        #expect(problem(GenerationOptions(logitBias: [-1: 1])) == "logitBias")
        #expect(problem(GenerationOptions(logitBias: [5: .nan])) == "logitBias[5]")
        #expect(problem(GenerationOptions(logitBias: [5: .infinity])) == "logitBias[5]")
        #expect(problem(GenerationOptions(logitBias: [5: -.infinity])) == nil)
        #expect(problem(GenerationOptions(logitBiasPieces: ["no such piece \u{1F600}": 1])) == "logitBiasPieces")
        #expect(problem(GenerationOptions(logitBiasPieces: ["a": .nan])) == "logitBiasPieces[\"a\"]")
        #expect(problem(GenerationOptions(logprobs: 21)) == "logprobs")
        #expect(problem(GenerationOptions(logprobs: -1)) == "logprobs")
        #expect(problem(GenerationOptions(logprobs: 20)) == nil)
        let everything = Dictionary(uniqueKeysWithValues: (0..<Int32(model.vocabularySize)).map { ($0, -Float.infinity) })
        #expect(problem(GenerationOptions(logitBias: everything)) == "logitBias")
        #expect(ReasoningOptions().closing == "\n\nConsidering the limited time, I have to give the answer now.\n</think>\n\n")
        #expect(ReasoningOptions(end: "</r>").closing.hasSuffix("\n</r>\n\n"))
    }
}

@Suite("Control: constraints, bias, bans and logprobs")
struct ControlLogitTests {
    /// log_softmax in double precision.
    static func logSoftmax(_ values: [Double]) -> [Double] {
        let finite = values.filter { $0 > -.infinity }
        let maximum = finite.max() ?? 0
        let total = finite.reduce(0.0) { $0 + exp($1 - maximum) }
        return values.map { $0 - maximum - log(total) }
    }

    @Test("logprobs equal log_softmax of the processed logits within 1e-5; top-n ordered; raw logprobs of the raw logits")
    func logprobsMatchLogSoftmax() throws {
        let model = try ThinkFixture.model()
        let prompt = try model.makeSession(contextLength: 128).promptTokens("Hello there, how")
        let bias: [Int32: Float] = [7: 3.5, 40: -2, 41: -.infinity, 100: 1.25]
        let settings: [(SamplingParameters, Bool)] = [
            (SamplingParameters(temperature: 0.7, topK: 12, topP: 0.9, repetitionPenalty: 1.3, frequencyPenalty: 0.2,
                                presencePenalty: 0.1, seed: 5), false),
            (.greedy, false),
            (SamplingParameters(temperature: 1.3, minP: 0.05, seed: 9), true),
        ]
        for (sampling, raw) in settings {
            let options = GenerationOptions(maxTokens: 6, sampling: sampling, ignoreEOS: true, logitBias: bias, logprobs: 5, rawLogprobs: raw)
            let result = try model.makeSession(contextLength: 128).generate(prompt: prompt, options: options)
            #expect(result.logprobs.count == result.tokens.count && result.logprobs.map(\.token) == result.tokens)
            for (index, entry) in result.logprobs.enumerated() {
                let history = prompt + result.tokens[..<index]
                let logits = try model.makeSession(contextLength: 128).feed(history).last.map(Double.init)
                var scores = logits
                if !raw {
                    for (id, value) in bias { scores[Int(id)] += Double(value) }
                    // transformers' penalties over the history, then temperature (1 when greedy).
                    var counts: [Int32: Int] = [:]
                    for token in history { counts[token, default: 0] += 1 }
                    for (token, count) in counts {
                        var score = scores[Int(token)]
                        let p = sampling
                        if p.repetitionPenalty != 1 { score = score < 0 ? score * Double(p.repetitionPenalty) : score / Double(p.repetitionPenalty) }
                        score -= Double(count) * Double(p.frequencyPenalty) + Double(p.presencePenalty)
                        scores[Int(token)] = score
                    }
                    let temperature = sampling.temperature == 0 ? 1 : Double(sampling.temperature)
                    scores = scores.map { $0 / temperature }
                }
                let expected = Self.logSoftmax(scores)
                #expect(abs(Double(entry.logprob) - expected[Int(entry.token)]) < 1e-5, "step \(index): \(entry.logprob) vs \(expected[Int(entry.token)])")
                #expect(entry.top.count == 5)
                let order = expected.indices.filter { expected[$0] > -.infinity }
                    .sorted { expected[$0] != expected[$1] ? expected[$0] > expected[$1] : $0 < $1 }
                #expect(entry.top.map { Int($0.token) } == Array(order.prefix(5)), "step \(index)")
                for top in entry.top { #expect(abs(Double(top.logprob) - expected[Int(top.token)]) < 1e-5) }
                #expect(zip(entry.top, entry.top.dropFirst()).allSatisfy { $0.logprob >= $1.logprob })
                if !raw { #expect(!entry.top.contains { $0.token == 41 }, "a banned token is never listed") }
            }
        }
    }

    @Test("bias and bans by id and by piece move the arg-max as expected")
    func biasAndBans() throws {
        let model = try ThinkFixture.model()
        let tokenizer = try model.tokenizer()
        let prompt = try model.makeSession(contextLength: 64).promptTokens("Hello")
        let logits = try model.makeSession(contextLength: 64).feed(prompt).last
        let best = Int32(Sampler.argmax(logits))
        let second = Int32(Sampler.argmax(logits.enumerated().map { $0.offset == Int(best) ? -Float.infinity : $0.element }))
        func first(_ options: GenerationOptions) throws -> Int32 {
            var options = options
            options.maxTokens = 1
            options.ignoreEOS = true
            return try model.makeSession(contextLength: 64).generate(prompt: prompt, options: options).tokens[0]
        }
        #expect(try first(GenerationOptions()) == best)
        #expect(try first(GenerationOptions(logitBias: [best: -.infinity])) == second)
        let worst = Int32(Sampler.argmax(logits.map { -$0 }))
        #expect(try first(GenerationOptions(logitBias: [worst: 1000])) == worst)
        // By piece: the vocabulary spelling, and the decoded text, of the arg-max token.
        let spelling = try tokenizer.tokenPiece(best)
        let text = String(decoding: try tokenizer.tokenBytes(best), as: UTF8.self)
        #expect(try first(GenerationOptions(logitBiasPieces: [spelling: -.infinity])) == second)
        #expect(try first(GenerationOptions(logitBiasPieces: [text: -.infinity])) == second)
        #expect(try first(GenerationOptions(logitBiasPieces: [try tokenizer.tokenPiece(worst): 1000])) == worst)
        // Sampling with top-k never draws a banned token either.
        let banned = Dictionary(uniqueKeysWithValues: (0..<Int32(200)).map { ($0, -Float.infinity) })
        for seed in 0..<20 {
            let token = try first(GenerationOptions(sampling: SamplingParameters(temperature: 5, topK: 50, seed: UInt64(seed)), logitBias: banned))
            #expect(token >= 200)
        }
    }

    @Test("the sampler handles -inf logits on every path")
    func samplerWithInfinities() throws {
        var logits = (0..<1000).map { Float(($0 * 7919) % 1000) / 100 }
        for index in stride(from: 0, to: 1000, by: 3) { logits[index] = -.infinity }
        logits[999] = -.infinity  // the largest raw value, banned
        let history: [Int32] = [0, 3, 6, 999, 5, 5, 5]
        let parameters: [SamplingParameters] = [
            .greedy, SamplingParameters(temperature: 0, repetitionPenalty: 1.5),
            SamplingParameters(temperature: 1, seed: 1), SamplingParameters(temperature: 2, topK: 5, seed: 2),
            SamplingParameters(temperature: 2, topP: 0.5, seed: 3), SamplingParameters(temperature: 2, minP: 0.2, seed: 4),
            SamplingParameters(temperature: 50, topK: 900, topP: 0.99, minP: 0.0001, repetitionPenalty: 2,
                               frequencyPenalty: 1, presencePenalty: 1, seed: 5),
        ]
        for p in parameters {
            var sampler = try Sampler(p)
            for _ in 0..<50 {
                let token = sampler.sample(logits, history: history)
                #expect(logits[Int(token)] > -.infinity, "\(p)")
            }
            #expect(sampler.distribution(logits, history: history).allSatisfy { logits[Int($0.token)] > -.infinity })
        }
        // Only one finite token: every path picks it.
        var single = [Float](repeating: -.infinity, count: 300)
        single[123] = -5
        for p in parameters {
            var sampler = try Sampler(p)
            #expect(sampler.sample(single, history: history) == 123)
        }
    }

    @Test("constraints: the mask restricts tokens, a finished grammar stops with .grammar, end tokens end it, nothing allowed stops")
    func constraints() throws {
        let model = try ThinkFixture.model()
        let session = try model.makeSession(contextLength: 128)
        let prompt = try session.promptTokens("Hello")
        let script: [Int32] = [50, 60, 70, 80]
        var options = GenerationOptions(maxTokens: 20, sampling: SamplingParameters(temperature: 1, seed: 3), stopTokenIDs: [1, 2])
        options.constraintFactory = { _, _ in ScriptConstraint(script: script, ends: []) }
        var result = try model.makeSession(contextLength: 128).generateText(prompt: prompt, options: options) { (_: GeneratedPiece) in true }
        #expect(result.generation.tokens == script && result.generation.stopReason == .grammar)

        options.constraintFactory = { _, ends in ScriptConstraint(script: script, ends: ends) }
        result = try model.makeSession(contextLength: 128).generateText(prompt: prompt, options: options) { (_: GeneratedPiece) in true }
        #expect(result.generation.stopReason == .endOfSequence)
        #expect(Array(result.generation.tokens.prefix(4)) == script && [1, 2].contains(result.generation.tokens.last!))

        options.constraintFactory = { _, _ in ScriptConstraint(script: [], ends: []) }
        let nothing = try model.makeSession(contextLength: 128).generate(prompt: prompt, options: options)
        #expect(nothing.tokens.isEmpty && nothing.stopReason == .grammar)

        options.constraintFactory = { _, _ in EvenConstraint() }
        let even = try model.makeSession(contextLength: 128).generate(prompt: prompt, options: options)
        #expect(even.tokens.count == 20 && even.tokens.allSatisfy { $0 % 2 == 0 })

        // With reasoning, the grammar waits for the end marker: the thought is free, the answer constrained.
        let tokenizer = try model.tokenizer()
        let inside = tokenizer.encode("Q<think>", addSpecial: true, parseSpecial: true)
        var both = GenerationOptions(maxTokens: 100, stopTokenIDs: [1, 2], reasoning: ReasoningOptions())
        both.constraintFactory = { _, _ in ScriptConstraint(script: [50, 60], ends: []) }
        let thought = ControlReasoningTests.perScalar(tokenizer, "abc") + [ThinkFixture.endMarkerID]
        let (steps, _, decoder) = try drive(model, options: both, context: inside, script: thought + [99, 98, 97])
        #expect(steps.compactMap(\.token) == thought + [50, 60] && steps.last?.stop == .grammar)
        #expect(decoder.reasoning == "abc")
    }
}

@Suite("Control: batch results equal Session results with every option on")
struct ControlBatchTests {
    static func options(seed: UInt64) -> GenerationOptions {
        var options = GenerationOptions(maxTokens: 40, sampling: SamplingParameters(temperature: 0.9, topK: 40, topP: 0.95,
                                                                                    repetitionPenalty: 1.1, seed: seed),
                                        stopTokenIDs: [1, 2], stopStrings: ["qqqq"], reasoning: ReasoningOptions(budget: 6),
                                        logitBias: [5: -.infinity, 10: 2], logitBiasPieces: ["a": 1.5], logprobs: 3)
        options.constraintFactory = { _, _ in EvenConstraint() }
        return options
    }

    @Test("tokens, text, reasoning, answer, logprobs, events and pieces: batch (and forked samples) equal Session")
    func batchEqualsSession() throws {
        let model = try ThinkFixture.model()
        let tokenizer = try model.tokenizer()
        let prompts = ["Q: one<think>", "Q: two\n<think>\nhm", "plain prompt"].map {
            tokenizer.encode($0, addSpecial: true, parseSpecial: true)
        }
        struct Expected { var result: TextGenerationResult; var pieces: [GeneratedPiece] }
        func alone(_ prompt: [Int32], seed: UInt64) throws -> Expected {
            var pieces: [GeneratedPiece] = []
            let result = try model.makeSession(contextLength: 256).generateText(prompt: prompt, options: Self.options(seed: seed)) { piece in
                pieces.append(piece)
                return true
            }
            return Expected(result: result, pieces: pieces)
        }
        let batch = try BatchGenerator(model: model, maxRowsPerStep: 16)
        var expected: [Int: Expected] = [:]
        for (index, prompt) in prompts.enumerated() {
            let ids = try batch.add(prompt: prompt, samples: 2, options: Self.options(seed: UInt64(index * 10)), contextLength: 256,
                                    streamText: true)
            for (sample, id) in ids.enumerated() { expected[id] = try alone(prompt, seed: UInt64(index * 10 + sample)) }
        }
        var pieces: [Int: [GeneratedPiece]] = [:]
        var results: [Int: BatchResult] = [:]
        try batch.run { event in
            switch event {
            case let .token(sequence, _, text, tokenPieces):
                #expect(tokenPieces.map(\.text).joined() == text)
                pieces[sequence, default: []] += tokenPieces
            case let .finished(sequence, _, restPieces, result):
                pieces[sequence, default: []] += restPieces
                results[sequence] = result
            }
            return true
        }
        var budgets = 0
        for (id, want) in expected {
            let got = try #require(results[id])
            let generation = want.result.generation
            #expect(got.tokens == generation.tokens, "sequence \(id)")
            #expect(got.stopReason == generation.stopReason)
            #expect(got.text == want.result.text && got.reasoning == want.result.reasoning && got.answer == want.result.answer)
            #expect(got.reasoningTokenCount == want.result.reasoningTokenCount)
            #expect(got.logprobs == generation.logprobs && got.logprobs.count == got.tokens.count)
            #expect(got.events == want.result.events)
            #expect(pieces[id] == want.pieces, "sequence \(id)")
            budgets += got.events.count
        }
        #expect(budgets > 0, "some sequence must hit the reasoning budget for the test to mean something")
    }
}

@Suite("Control: SmolLM2 GGUF obeys a reasoning budget", .serialized)
struct ControlSmolLM2Tests {
    @Test("a prompt inside <think> with budget 16: 16 reasoning tokens, the closing text, then answer tokens")
    func budgetSixteen() throws {
        guard let path = TokenizerFixtures.requireAsset(TokenizerFixtures.smollm2GGUF) else { return }
        let model = try Model(path: path, options: ModelLoadOptions(threadCount: 2))
        let tokenizer = try model.tokenizer()
        let prompt = tokenizer.encode("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n",
                                      addSpecial: false, parseSpecial: true)
        let reasoning = ReasoningOptions(budget: 16)
        let closing = tokenizer.encode(reasoning.closing, addSpecial: false, parseSpecial: true)
        var pieces: [GeneratedPiece] = []
        let result = try model.makeSession(contextLength: 256).generateText(
            prompt: prompt, options: GenerationOptions(maxTokens: 16 + closing.count + 8, ignoreEOS: true, reasoning: reasoning)) { piece in
                pieces.append(piece)
                return true
            }
        let tokens = result.generation.tokens
        #expect(result.reasoningTokenCount == 16)
        #expect(result.events == [GenerationEvent(kind: .reasoningBudget, tokenIndex: 16)])
        #expect(Array(tokens[16..<(16 + closing.count)]) == closing)
        #expect(tokens.count == 16 + closing.count + 8 && result.generation.stopReason == .maxTokens)
        let thought = try tokenizer.decode(Array(tokens[..<16]), skipSpecial: false)
        #expect(!thought.contains("</think>"), "the model did not close the thought itself")
        #expect(result.reasoning == thought + "\n\nConsidering the limited time, I have to give the answer now.\n")
        #expect(result.answer == "\n\n" + (try tokenizer.decode(Array(tokens[(16 + closing.count)...]), skipSpecial: false)))
        #expect(pieces.filter(\.forced).count >= closing.count)
        #expect(pieces.map(\.text).joined() == result.text)
        #expect(pieces.filter { $0.channel == .marker }.map(\.text) == ["</think>"])
    }
}

@Suite("Control: Conversation keeps the thought out of the history's content")
struct ControlConversationTests {
    @Test("a template that opens <think>: the answer is the content, the thought the reasoning_content the template renders")
    func conversationReasoning() throws {
        let model = try ThinkFixture.model()
        let chat = try Conversation(model: model, contextLength: 1024)
        let options = GenerationOptions(maxTokens: 120, stopTokenIDs: [1, 2], reasoning: ReasoningOptions(budget: 4))
        var pieces: [GeneratedPiece] = []
        let turn = try chat.send("Hi", options: options) { (piece: GeneratedPiece) in
            pieces.append(piece)
            return true
        }
        let last = try #require(chat.messages.last)
        #expect(last.role == "assistant" && last.content == turn.reply && last.reasoningContent == turn.reasoning)
        #expect(turn.events == [GenerationEvent(kind: .reasoningBudget, tokenIndex: 4)] && turn.reasoningTokenCount == 4,
                "the random model does not close the thought within 4 tokens")
        #expect(!turn.reply.contains("think>") && !turn.reasoning.contains("think>"))
        #expect(turn.reasoning.hasSuffix("I have to give the answer now."))
        #expect(pieces.filter { $0.channel == .marker }.map(\.text) == ["</think>"])
        #expect(turn.reply == String(pieces.filter { $0.channel == .answer }.map(\.text).joined().drop { $0 == "\n" }))
        // The next rendering carries the thought through reasoning_content, as the template asks.
        let rendered = try chat.template.render(messages: chat.messages, addGenerationPrompt: true, variables: chat.variables)
        #expect(rendered.contains("<think>" + turn.reasoning + "</think>" + turn.reply.trimmingCharacters(in: .whitespacesAndNewlines)))
        // A second turn through the text overload (markers left out of its pieces) reuses the cache.
        var texts: [String] = []
        let second = try chat.send("More", options: options) { (text: String) in
            texts.append(text)
            return true
        }
        #expect(second.reusedTokenCount > 0 && !texts.joined().contains("</think>"))
        #expect(chat.messages.count == 4 && chat.messages[3].reasoningContent == second.reasoning)
    }
}
