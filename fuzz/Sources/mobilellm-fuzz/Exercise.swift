import Foundation
import MobileLLM

// What a target does with whatever loaded: the calls a host makes next, each checked against the engine's promises.

/// Texts every loaded tokenizer encodes: plain, special-token spellings, digits, whitespace runs, invalid-free Unicode.
let sampleTexts = [
    "", "Hello world! How are you?", "<|begin_of_text|>Hi<|eot_id|>", "12345 3.14  \n\n\t x", "naïve café 日本語 🙂 e\u{301}",
    "<think>a</think><|start_header_id|>user<|end_header_id|>",
]

/// A fixed conversation for chat templates: system, user, assistant with reasoning, tool call and reply, user.
let sampleMessages: [TemplateValue] = [
    .message(role: "system", content: "You are helpful."),
    .message(role: "user", content: "What is 2+2?"),
    .object([(key: "role", value: .string("assistant")), (key: "content", value: .string("4")),
             (key: "reasoning_content", value: .string("2+2=4"))]),
    .object([(key: "role", value: .string("assistant")), (key: "content", value: .string("")),
             (key: "tool_calls", value: .array([.object([(key: "type", value: .string("function")),
                                                          (key: "function", value: .object([
                                                              (key: "name", value: .string("add")),
                                                              (key: "arguments", value: .object([(key: "a", value: .int(2))])),
                                                          ]))])]))]),
    .object([(key: "role", value: .string("tool")), (key: "content", value: .string("4"))]),
    .message(role: "user", content: "Thanks <|eot_id|> {{ x }}"),
]

/// Extra template variables: a tool list and a thinking switch, as chat UIs pass them.
let sampleVariables: [String: TemplateValue] = [
    "tools": .array([.object([(key: "type", value: .string("function")),
                              (key: "function", value: .object([(key: "name", value: .string("add")),
                                                                (key: "description", value: .string("Adds.")),
                                                                (key: "parameters", value: .object([]))]))])]),
    "enable_thinking": .bool(false),
]

/// A fixed clock for `strftime_now`, so a render depends on its input only.
let fixedDate = Date(timeIntervalSince1970: 1_700_000_000)

/// Renders the sample conversation with and without the generation prompt; errors are fine, traps are not.
func exercise(_ template: ModelChatTemplate) {
    for prompt in [true, false] {
        _ = try? template.render(messages: sampleMessages, addGenerationPrompt: prompt, variables: sampleVariables, now: fixedDate)
    }
}

/// Checks the promises every tokenizer makes, whatever file it came from, on `texts`:
/// encoded ids decode without error; the streaming detokenizer's pieces concatenate to `decode` (with and without
/// special tokens); `encodeBatch` equals separate `encode` calls. With `roundTrip` (tokenizers without a normalizer
/// or stripping added tokens, i.e. the committed and real ones), the bytes of the ids are exactly the input bytes.
func exercise(_ tokenizer: Tokenizer, texts: [String], roundTrip: Bool) {
    for parseSpecial in [false, true] {
        let batch = tokenizer.encodeBatch(texts, addSpecial: true, parseSpecial: parseSpecial)
        for (index, text) in texts.enumerated() {
            let ids = tokenizer.encode(text, addSpecial: true, parseSpecial: parseSpecial)
            if batch[index] != ids { violated("encodeBatch differs from encode for \(text.debugDescription)") }
            for skipSpecial in [false, true] {
                let decoded: String
                do {
                    decoded = try tokenizer.decode(ids, skipSpecial: skipSpecial)
                } catch {
                    violated("encode produced ids that decode rejects: \(error)")
                }
                var detokenizer = tokenizer.makeStreamingDetokenizer(skipSpecial: skipSpecial)
                var streamed = ""
                for id in ids {
                    do { streamed += try detokenizer.push(id) } catch { violated("push rejected id \(id): \(error)") }
                }
                streamed += detokenizer.flush()
                if streamed != decoded {
                    violated("streamed \(streamed.debugDescription) != decoded \(decoded.debugDescription)")
                }
            }
            if roundTrip {
                checkRoundTrip(tokenizer, Array(text.utf8), parseSpecial: parseSpecial)
            }
        }
    }
}

/// The bytes that have no single-byte token in `tokenizer`'s vocabulary: a byte-level BPE drops them, as HF tokenizers
/// does without an unknown token. Real vocabularies lack some of the bytes that never occur in UTF-8 (SmolLM2 has no
/// token for 0xC0, 0xC1, 0xF5, 0xFE or 0xFF).
func bytesWithoutToken(_ tokenizer: Tokenizer) -> Set<UInt8> {
    var missing = Set(UInt8.min ... UInt8.max)
    for id in 0 ..< Int32(tokenizer.vocabularySize) {
        if let bytes = try? tokenizer.tokenBytes(id), bytes.count == 1 { missing.remove(bytes[0]) }
    }
    return missing
}

/// With no special tokens added, the token bytes of `encode(bytes:)` are the input bytes (valid UTF-8 or not), less
/// the bytes the vocabulary has no token for.
func checkRoundTrip(_ tokenizer: Tokenizer, _ bytes: [UInt8], parseSpecial: Bool) {
    let ids = bytes.withUnsafeBufferPointer { tokenizer.encode(bytes: $0, addSpecial: false, parseSpecial: parseSpecial) }
    var back: [UInt8] = []
    back.reserveCapacity(bytes.count)
    for id in ids {
        do { back += try tokenizer.tokenBytes(id) } catch { violated("encode produced id \(id) that tokenBytes rejects") }
    }
    guard back != bytes else { return }
    // Only a mismatch pays for the vocabulary scan (most inputs round-trip exactly).
    let missing = bytesWithoutToken(tokenizer)
    if back != bytes.filter({ !missing.contains($0) }) {
        violated("\(tokenizer.path): bytes \(bytes) encode (parseSpecial \(parseSpecial)) to \(ids), which decode to \(back)")
    }
}

/// Runs a loaded model a little: a prefill with every row of logits, a decode step and a short greedy generation,
/// checking the logits' shape. A model that loads must run without trapping whatever its weights hold.
func exercise(_ model: Model) {
    do {
        let session = try model.makeSession(contextLength: 8)
        let last = Int32(model.vocabularySize - 1)
        let logits = try session.feed([0, last, 0], logits: .all)
        guard logits.vocabularySize == model.vocabularySize, logits.rowCount == 3 else {
            violated("feed of 3 tokens returned \(logits.rowCount) rows of \(logits.vocabularySize), vocabulary \(model.vocabularySize)")
        }
        _ = try session.feed([last], logits: .last)
        let result = try session.generate(prompt: [], options: GenerationOptions(maxTokens: 2, ignoreEOS: true))
        if result.tokens.contains(where: { $0 < 0 || Int($0) >= model.vocabularySize }) {
            violated("generate returned a token outside the vocabulary: \(result.tokens)")
        }
    } catch {
        // Errors are acceptable; only traps and broken invariants are findings.
    }
}

/// Loads the model at `path` (one thread), runs it, and again with 8-bit activations when its weights are quantized;
/// then its tokenizer and chat template when it has them.
func loadAndExercise(modelAt path: String) {
    guard let model = try? Model(path: path, options: ModelLoadOptions(threadCount: 1)) else { return }
    exercise(model)
    if model.isQuantized, let int8 = try? Model(path: path, options: ModelLoadOptions(threadCount: 1, activationPrecision: .int8)) {
        exercise(int8)
    }
    if let tokenizer = try? model.tokenizer() {
        exercise(tokenizer, texts: sampleTexts, roundTrip: false)
    }
    if let template = try? model.chatTemplate() {
        exercise(template)
    }
}
