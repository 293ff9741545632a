import Foundation
import MobileLLM

// The grammar engine's targets: GBNF text and JSON Schema text, compiled and then matched token by token against a
// fixed vocabulary (r1like's), checking that the mask and `accept` agree.

/// GBNF text: the parser and compiler (every failure must be `.grammar` with a position), then the matcher.
let gbnfTarget = FuzzTarget(
    name: "gbnf",
    about: "GBNF grammar text: Grammar(gbnf:) errors and limits, then restrict/accept/matches invariants",
    setUp: { _ = grammarTokenizer },
    run: { bytes in
        let source = text(of: bytes)
        do {
            let grammar = try Grammar(gbnf: source)
            if grammar.source != source { violated("Grammar.source differs from the text it compiled") }
            exercise(grammar, seed: bytes)
        } catch let MobileLLMError.grammar(_, line, column, message) {
            if line < 1 || column < 1 || message.isEmpty { violated("grammar error at line \(line) column \(column): \(message)") }
        } catch {
            violated("Grammar(gbnf:) threw \(error), not MobileLLMError.grammar")
        }
    }
)

/// JSON Schema text: the translator (every failure must be `.jsonSchema`), the GBNF it writes, then the matcher.
let jsonSchemaTarget = FuzzTarget(
    name: "json-schema",
    about: "JSON Schema text: Grammar(jsonSchema:) errors, its GBNF recompiled, restrict/accept/matches invariants",
    setUp: { _ = grammarTokenizer },
    run: { bytes in
        do {
            let grammar = try Grammar(jsonSchema: text(of: bytes))
            // The GBNF it wrote compiles on its own, to the same language on the sample texts.
            let again: Grammar
            do { again = try Grammar(gbnf: grammar.source) } catch { violated("the schema's GBNF does not compile: \(error)") }
            for sample in grammarSampleTexts where grammar.matches(sample) != again.matches(sample) {
                violated("the schema's grammar and its recompiled GBNF disagree on \(sample.debugDescription)")
            }
            exercise(grammar, seed: bytes)
        } catch let MobileLLMError.jsonSchema(pointer, message) {
            if message.isEmpty || !(pointer.isEmpty || pointer.unicodeScalars.first == "/") { violated("schema error at '\(pointer)': \(message)") }
        } catch {
            violated("Grammar(jsonSchema:) threw \(error), not MobileLLMError.jsonSchema")
        }
    }
)

/// The vocabulary the grammar targets constrain.
let grammarTokenizer: Tokenizer = {
    let path = repositoryPath("Tests/Fixtures/r1like-chat")
    do { return try Tokenizer.load(path: path) } catch { violated("cannot load the tokenizer \(path): \(error)") }
}()

/// Texts every compiled grammar is asked about (answers vary; traps and hangs are the failures).
let grammarSampleTexts = ["", "a", "{}", "[]", "null", "true", "0", "-1.5", "\"x\"", "{\"a\": 1}", "[1, \"b\", null]",
                          "2024-02-29", "\"2024-02-29\"", "hello world", "日本語", "\u{1F600}", "\n", "((()))"]

/// Walks the grammar token by token on the fixed vocabulary, choosing allowed tokens from the input bytes, and
/// checks: every allowed token is accepted, a sample of disallowed ones are refused, end tokens follow `canEnd`,
/// copies advance independently, and the text taken is a prefix of the language (a whole string at the end).
func exercise(_ grammar: Grammar, seed: UnsafeRawBufferPointer) {
    for sample in grammarSampleTexts { _ = grammar.matches(sample) }
    let tokenizer = grammarTokenizer
    let end = tokenizer.eosTokenID ?? 0
    guard var constraint = try? grammar.constraint(tokenizer: tokenizer, endTokens: [end]) else {
        violated("constraint(tokenizer:endTokens:) threw")
    }
    var allowed = [Bool](repeating: true, count: tokenizer.vocabularySize)
    var taken: [Int32] = []
    var state = UInt64(seed.count) &* 0x9E37_79B9_7F4A_7C15
    for byte in seed.prefix(64) { state = (state ^ UInt64(byte)) &* 0x100_0000_01B3 }
    for _ in 0..<24 {
        if constraint.isFinished { break }
        allowed.withUnsafeMutableBufferPointer { $0.update(repeating: true) }
        constraint.restrict(&allowed)
        if allowed[Int(end)] != constraint.canEnd { violated("end token allowed: \(allowed[Int(end)]), canEnd: \(constraint.canEnd)") }
        let candidates = allowed.indices.filter { allowed[$0] && $0 != Int(end) }
        // A few disallowed tokens must be refused.
        for probe in 0..<4 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let token = Int(state >> 33) % tokenizer.vocabularySize
            if !allowed[token] {
                var copy = constraint
                if copy.accept(Int32(token)) { violated("accept took token \(token), which restrict cleared (probe \(probe))") }
            }
        }
        guard !candidates.isEmpty else {
            if !constraint.canEnd { violated("no token allowed and the grammar cannot end") }
            break
        }
        state = state &* 6364136223846793005 &+ 1442695040888963407
        let token = Int32(candidates[Int(state >> 33) % candidates.count])
        let before = constraint
        if !constraint.accept(token) { violated("accept refused token \(token), which restrict allowed") }
        // The copy taken before is unaffected.
        var other = before
        _ = other.accept(token)
        taken.append(token)
    }
    if constraint.canEnd, let text = try? tokenizer.decode(taken, skipSpecial: false), !text.contains("\u{FFFD}"),
       !grammar.matches(text) {
        violated("the constraint can end after \(text.debugDescription) but matches() rejects it")
    }
}
