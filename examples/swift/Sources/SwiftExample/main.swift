// Uses MobileLLM as a Swift package: the async streaming API (`for try await piece in session.generate(...)`),
// checked against the golden fixtures, plus text streaming, early exit and errors. Exits 1 on any mismatch.
import Foundation
import MobileLLM

let root = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : FileManager.default.currentDirectoryPath
var checks = 0
var failures = 0

@MainActor func check(_ condition: Bool, _ what: String) {
    checks += 1
    if !condition {
        failures += 1
        print("FAILED: \(what)")
    }
}

struct Reference: Decodable {
    struct Greedy: Decodable {
        let prompt: [Int32]
        let continuation: [Int32]
    }
    struct Sequence: Decodable {
        let tokens: [Int32]
        let logits: [[Float]]
    }
    let greedy: [Greedy]
    let sequences: [Sequence]
}

for name in ["llama4-r1like-bf16-sharded", "llama4-nope-f32", "llama-f16", "llama-bf16-untied"] {
    let path = root + "/Tests/Fixtures/" + name
    let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: path + "/reference.json")))
    let model = try Model(path: path)
    for greedy in reference.greedy {
        let session = try model.makeSession(contextLength: 128)
        var tokens: [Int32] = []
        for try await piece in session.generate(greedy.prompt, options: GenerationOptions(maxTokens: greedy.continuation.count)) {
            tokens.append(piece.token)
        }
        check(tokens == greedy.continuation, "\(name): streamed greedy continuation")
    }
    let sequence = reference.sequences[reference.sequences.count - 1]
    let logits = try model.makeSession(contextLength: 128).feed(sequence.tokens, logits: .all)
    var worst: Float = 0
    for (row, expected) in sequence.logits.enumerated() {
        for (a, b) in zip(logits.row(row), expected) { worst = max(worst, abs(a - b)) }
    }
    check(worst <= 1e-3, "\(name): logits within 1e-3 (max \(worst))")
}

// Text: a chat prompt streamed as whole characters that add up to the detokenized tokens.
let chat = try Model(path: root + "/Tests/Fixtures/r1like-chat")
let prompt = try chat.applyChatTemplate([ChatMessage(role: "user", content: "Hello world!")])
let session = try chat.makeSession(contextLength: 512)
var text = ""
var ids: [Int32] = []
let options = GenerationOptions(maxTokens: 24, sampling: SamplingParameters(temperature: 0.7, seed: 1), ignoreEOS: true)
for try await piece in try session.generate(prompt, options: options) {
    text += piece.text
    ids.append(piece.token)
}
let full = try chat.tokenizer().decode(ids, skipSpecial: false)
check(ids.count == 24 && full.hasPrefix(text) && full.utf8.count - text.utf8.count < 4, "text pieces add up to the decoded tokens")
print("streamed: \(text.debugDescription)")

// Leaving the loop early stops generation; the session stays usable.
session.reset()
var received = 0
for try await _ in session.generate([0, 169, 380], options: GenerationOptions(maxTokens: 400, ignoreEOS: true)) {
    received += 1
    if received == 3 { break }
}
try await Task.sleep(nanoseconds: 50_000_000)
let continued = try session.generate(prompt: [5], options: GenerationOptions(maxTokens: 2))
check(received == 3 && continued.tokens.count == 2, "early exit leaves the session usable")

// Errors surface as MobileLLMError from the stream.
do {
    for try await _ in session.generate([1, 2, 100_000]) {}
    check(false, "an out-of-vocabulary prompt throws")
} catch let error as MobileLLMError {
    check(error.description.contains("100000"), "the error names the bad id: \(error)")
}

print("swift example: \(checks - failures) of \(checks) checks passed")
exit(failures == 0 ? 0 : 1)
