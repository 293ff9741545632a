import Foundation
import Testing
@testable import MobileLLM

/// Hostile grammars and schemas: each must fail with a clear error, or succeed, in bounded time.
@Suite struct GrammarHostileTests {
    /// Runs `body`, records how long it took, and fails when it took longer than `limit` seconds (debug builds on a
    /// shared machine are slow; the limit is generous, the printed time is the measurement).
    func timed<T>(_ label: String, limit: Double = 2.0, _ body: () throws -> T) rethrows -> T {
        let start = DispatchTime.now().uptimeNanoseconds
        let result = try body()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        print(String(format: "hostile grammar %@: %.3f s", label, seconds))
        #expect(seconds < limit, "\(label) took \(seconds) s")
        return result
    }

    func grammarError(_ gbnf: String) -> (rule: String, line: Int, column: Int, message: String)? { grammarCompileError(gbnf) }

    func schemaError(_ schema: String) -> (pointer: String, message: String)? { schemaCompileError(schema) }

    @Test func deepNesting() {
        let parentheses = timed("10,000 nested parentheses") {
            grammarError("root ::= " + String(repeating: "(", count: 10_000) + "\"a\"" + String(repeating: ")", count: 10_000))
        }
        #expect(parentheses?.message.contains("nested more than") == true)
        #expect(parentheses?.line == 1 && parentheses?.rule == "root")
        let operators = timed("10,000 chained '?'") { grammarError("root ::= \"a\"" + String(repeating: "?", count: 10_000)) }
        #expect(operators?.message.contains("nested more than") == true)
    }

    @Test func repetitionCounts() throws {
        let huge = timed("{1000000}") { grammarError("root ::= \"a\"{1000000}") }
        #expect(huge?.message.contains("above the limit") == true)
        let overflow = timed("{99999999999999999999999}") { grammarError("root ::= \"a\"{2,99999999999999999999999}") }
        #expect(overflow?.message.contains("above the limit") == true)
        let inverted = grammarError("root ::= \"a\"{5,2}")
        #expect(inverted?.message.contains("below the minimum") == true)
        let maximal = try timed("{10000}") { try Grammar(gbnf: "root ::= \"ab\"{10000}") }
        #expect(maximal.matches(String(repeating: "ab", count: 10_000)))
        #expect(!maximal.matches(String(repeating: "ab", count: 9_999)))
        // Repetitions of repetitions add up instead of multiplying.
        let nested = try timed("nested {0,10000}") { try Grammar(gbnf: "root ::= (((\"a\" \"b\"){0,10000} \"c\"){0,10000} \"d\"){0,10000}") }
        #expect(nested.matches("ababcabcd"))
        // Too many rules in all.
        let rules = timed("rule count") { grammarError("root ::= " + String(repeating: "\"a\"{0,10000} \"b\" ", count: 30)) }
        #expect(rules?.message.contains("rules") == true)
    }

    @Test func ambiguity() throws {
        // Every level doubles the ways to split the text: refused at compile time.
        var text = "root ::= a0\n"
        for level in 0..<30 { text += "a\(level) ::= a\(level + 1) a\(level + 1)\n" }
        text += "a30 ::= \"x\"?\n"
        let exponential = timed("2^30 parse paths") { grammarError(text) }
        #expect(exponential?.message.contains("too ambiguous") == true)
        // Ambiguity that grows with the input: refused at run time, within bounded work per character.
        let quadratic = timed("quadratic ambiguity {0,10000}{0,10000}") { grammarError("root ::= (\"a\"{0,10000}){0,10000} \"b\"") }
        #expect(quadratic?.message.contains("too ambiguous") == true)
        let growing = try timed("quadratic ambiguity {0,50}{0,50}, compile") { try Grammar(gbnf: "root ::= (\"a\"{0,50}){0,50} \"b\"") }
        #expect(timed("quadratic ambiguity {0,50}{0,50}, 100 characters") { growing.matches(String(repeating: "a", count: 100) + "b") })
        // Past the run-time limit on stacks per state the matcher keeps that many stacks, in bounded time.
        let wider = try Grammar(gbnf: "root ::= (\"a\"{0,1000}){0,1000} \"b\"")
        _ = timed("quadratic ambiguity {0,1000}{0,1000}, 12 characters") { wider.matches(String(repeating: "a", count: 12) + "b") }
        #expect(wider.automaton.withLock { $0.truncatedSteps } > 0)
        // Ambiguity that collapses (same continuation) stays cheap.
        let collapsing = try Grammar(gbnf: "root ::= (\"a\" | \"aa\" | \"aaa\")* \"b\"")
        #expect(timed("collapsing ambiguity") { collapsing.matches(String(repeating: "a", count: 5_000) + "b") })
    }

    /// Found by the `gbnf` fuzz target. found-nested-plus-stall: "((...("a" | "b")...)++++...){10000}" is
    /// ambiguous enough that its stacks multiply with the input; the matcher used to refuse every token once past the
    /// stack limit, leaving a constraint that could neither continue nor end. found-nested-plus-timeout: a class under
    /// 60 nested '+' made every new transition expand 200,000 items, so one mask took minutes. Now a step keeps the
    /// stacks it can, an expansion and a mask walk have work budgets, and the walk always has a way on.
    @Test(arguments: ["found-nested-plus-stall.gbnf", "found-nested-plus-timeout.gbnf"])
    func ambiguousGrammarStaysBounded(file: String) throws {
        let bytes = try Data(contentsOf: Fixtures.packageRoot.appendingPathComponent("fuzz/corpus/gbnf/" + file))
        let grammar = try Grammar(gbnf: String(decoding: bytes, as: UTF8.self))
        let tokenizer = try Tokenizer.load(path: Fixtures.path("r1like-chat"))
        let end = tokenizer.eosTokenID ?? 0
        var constraint = try grammar.constraint(tokenizer: tokenizer, endTokens: [end])
        var allowed = [Bool](repeating: true, count: tokenizer.vocabularySize)
        var generator = SeededGenerator(seed: UInt64(bytes.count))
        timed("\(file): 40 tokens", limit: 20) {
            for step in 0..<40 {
                allowed.withUnsafeMutableBufferPointer { $0.update(repeating: true) }
                constraint.restrict(&allowed)
                let candidates = allowed.indices.filter { allowed[$0] && $0 != Int(end) }
                #expect(!candidates.isEmpty || constraint.canEnd, "step \(step): stuck")
                guard !candidates.isEmpty else { break }
                // Alternately a random allowed token and the longest one (which pushes the stacks up fastest).
                let longest = candidates.max { (try? tokenizer.tokenBytes(Int32($0)).count) ?? 0 < (try? tokenizer.tokenBytes(Int32($1)).count) ?? 0 }
                let random = candidates[Int(generator.next() % UInt64(candidates.count))]
                let token = Int32(step % 2 == 0 ? longest ?? random : random)
                let accepted = constraint.accept(token)
                #expect(accepted)
            }
        }
    }

    @Test func leftRecursion() {
        let direct = grammarError("root ::= root \"a\" | \"b\"")
        #expect(direct?.message.contains("left recursion") == true && direct?.column == 10)
        let indirect = grammarError("root ::= x\nx ::= y \"1\"\ny ::= root \"2\" | \"3\"\n")
        #expect(indirect?.message.contains("left recursion") == true)
        let nullable = grammarError("root ::= x\nx ::= e root \"1\" | \"2\"\ne ::= \"\" | \"q\"\n")
        #expect(nullable?.message.contains("left recursion") == true)
        let group = grammarError("root ::= (\"a\"? root \"b\")? \"c\"")
        #expect(group?.message.contains("left recursion") == true)
    }

    @Test func emptyLanguage() {
        let infinite = grammarError("root ::= a\na ::= \"x\" a\n")
        #expect(infinite?.message.contains("matches no string") == true)
        let inner = grammarError("root ::= \"a\" | b\nb ::= \"x\" b\n")
        #expect(inner?.message.contains("no finite string") == true && inner?.line == 1)
        let emptyClass = grammarError("root ::= []")
        #expect(emptyClass?.message.contains("matches no string") == true)
        // An alternative with an empty class is dropped, the rest stands.
        let pruned = try? Grammar(gbnf: "root ::= \"a\" [] | \"b\"")
        #expect(pruned?.matches("b") == true && pruned?.matches("a") == false)
    }

    @Test func unterminated() {
        for (text, what) in [("root ::= \"abc", "string literal"), ("root ::= [a-z", "character class"),
                             ("root ::= \"a\\", "string literal"), ("root ::= (\"a\"", "never closed"), ("root ::= [a-", "character class")] {
            let failure = grammarError(text)
            #expect(failure?.message.contains(what) == true, "\(text.debugDescription): \(String(describing: failure))")
            #expect(failure?.line == 1 && failure?.column == 10, "\(text.debugDescription)")
        }
        #expect(grammarError("root ::= \"\\q\"")?.message.contains("unknown escape") == true)
        #expect(grammarError("root ::= \"\\x4\"")?.message.contains("hex digits") == true)
        #expect(grammarError("root ::= \"\\UFFFFFFFF\"")?.message.contains("above U+10FFFF") == true)
        #expect(grammarError("root ::= \"\\uD800\"")?.message.contains("surrogate") == true)
        #expect(grammarError("root ::= [z-a]")?.message.contains("ends before it starts") == true)
        #expect(grammarError("root ::= \"a\" <[12]>")?.message.contains("not supported") == true)
        #expect(grammarError("root ::= \"a\"\nroot ::= \"b\"")?.message.contains("defined twice") == true)
        #expect(grammarError("root ::= \"a\" )")?.message.contains("unmatched ')'") == true)
        #expect(grammarError("root ::= * \"a\"")?.message.contains("nothing before it") == true)
        #expect(grammarError("")?.message.contains("no rules") == true)
        #expect(grammarError("root = \"a\"")?.message.contains("'::='") == true)
    }

    @Test func invalidUTF8() throws {
        // Invalid bytes in the grammar text become U+FFFD when the text becomes a String; the literal then means it.
        let text = String(decoding: Array("root ::= \"a".utf8) + [0xFF, 0xC3] + Array("\"".utf8), as: UTF8.self)
        let grammar = try Grammar(gbnf: text)
        #expect(grammar.matches("a\u{FFFD}\u{FFFD}"))
        #expect(!grammar.matches(bytes: [0x61, 0xFF, 0xC3]))
        // Ill-formed UTF-8 never matches, even where any character may come.
        let any = try Grammar(gbnf: "root ::= .*")
        for bytes: [UInt8] in [[0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0x80], [0xE2, 0x82]] {
            #expect(!any.matches(bytes: bytes), "\(bytes)")
        }
        #expect(any.matches(bytes: [0xF4, 0x8F, 0xBF, 0xBF, 0xED, 0x9F, 0xBF]))
        #expect(grammarError("root ::= \"a\u{0}\"")?.message.contains("NUL") == true)
    }

    @Test func largeGrammars() throws {
        // About 1 MB: 20,000 rules chained, each with a few alternatives.
        var text = "root ::= r0\n"
        var index = 0
        while text.utf8.count < 1_000_000 {
            text += "r\(index) ::= \"item number \(index) with some text\" r\(index + 1) | [a-z]{1,3} \"-\" | \"(\" [0-9]+ \")\"\n"
            index += 1
        }
        text += "r\(index) ::= \"end\"\n"
        let grammar = try timed("1 MB grammar (\(index) rules)", limit: 10) { try Grammar(gbnf: text) }
        #expect(grammar.matches("item number 0 with some textitem number 1 with some textab-"))
        let tooLarge = timed("2 MB grammar") { grammarError(text + text) }
        #expect(tooLarge?.message.contains("bytes long") == true)
        // A single rule with 20,000 alternatives is too ambiguous to start.
        let wide = timed("20,000 alternatives") { grammarError("root ::= " + (0..<20_000).map { "\"w\($0)\"" }.joined(separator: " | ")) }
        #expect(wide?.message.contains("too ambiguous") == true)
    }

    @Test func hostileSchemas() {
        #expect(schemaError(#"{"type": "string", "patternProperties": {}}"#)?.pointer == "/patternProperties")
        #expect(schemaError(#"{"properties": {"a": {"items": {"unknownKeyword": 1}}}}"#)?.pointer == "/properties/a/items/unknownKeyword")
        #expect(schemaError(#"{"type": "array", "minItems": 1e300}"#)?.pointer == "/minItems")
        #expect(schemaError(#"{"type": "array", "minItems": -1}"#)?.pointer == "/minItems")
        #expect(schemaError(#"{"type": "number", "minimum": "3"}"#)?.pointer == "/minimum")
        #expect(schemaError(#"{"type": "number", "exclusiveMinimum": true}"#)?.pointer == "/exclusiveMinimum")
        #expect(schemaError(#"{"items": [{"type": "string"}]}"#)?.pointer == "/items")
        #expect(schemaError(#"{"type": "string", "format": "email"}"#)?.pointer == "/format")
        #expect(schemaError(#"{"$ref": "https://example.com/schema"}"#)?.pointer == "/$ref")
        #expect(schemaError("[]")?.pointer == "")
        #expect(schemaError(#"{"type": 3}"#)?.pointer == "/type")
        #expect(schemaError(#"{"type": ["string", "nope"]}"#)?.pointer == "/type/1")
        #expect(schemaError(#"{"anyOf": []}"#)?.pointer == "/anyOf")
        #expect(schemaError(#"{"type": "object", "properties": {"a": false}, "required": ["a"]}"#)?.pointer == "/properties/a")
        #expect(schemaError(#"{"enum": []}"#) != nil)
        // $ref cycles without progress are left recursion; a $ref that never ends has no value.
        let cycle = schemaError(##"{"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"anyOf": [{"$ref": "#/$defs/a"}, {"type": "null"}]}}}"##)
        #expect(cycle?.message.contains("left recursion") == true)
        let endless = schemaError(##"{"$ref": "#/$defs/a", "$defs": {"a": {"type": "array", "items": {"$ref": "#/$defs/a"}, "minItems": 1}}}"##)
        #expect(endless != nil)
        // Deep nesting: the JSON reader's depth limit, or the translator's.
        let deep = String(repeating: #"{"items": "#, count: 200) + "{}" + String(repeating: "}", count: 200)
        #expect(timed("200 nested schemas") { schemaError(deep) } != nil)
        // A long $ref chain.
        var chain = ##"{"$ref": "#/$defs/d0", "$defs": {"##
        for index in 0..<500 { chain += ##""d\##(index)": {"$ref": "#/$defs/d\##(index + 1)"}, "## }
        chain += ##""d500": {"type": "null"}}}"##
        #expect(timed("500-long $ref chain") { schemaError(chain) }?.message.contains("nested more than") == true)
        // A 20,000-value enum becomes a trie of its strings.
        let values = (0..<20_000).map { "value-\($0 * 7919 % 100_003)" }
        let enumSchema = #"{"enum": ["# + values.map { "\"\($0)\"" }.joined(separator: ", ") + ", 5, null]}"
        let big = try? timed("20,000-value enum") { try Grammar(jsonSchema: enumSchema) }
        #expect(big?.matches("\"\(values[123])\"") == true)
        #expect(big?.matches("5.0") == true && big?.matches("null") == true)
        #expect(big?.matches("\"value-\"") == false)
        // Huge bounds are exact but cost digits; absurd ones are refused.
        #expect(timed("1e300 bound") { schemaError(#"{"type": "number", "maximum": 1e300, "minimum": -1e300}"#) } == nil)
    }
}
