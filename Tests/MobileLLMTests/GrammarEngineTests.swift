import Foundation
import Testing
@testable import MobileLLM

/// The GBNF compiler and the matcher on small grammars: acceptance, errors with their positions, UTF-8 handling.
@Suite struct GrammarEngineTests {
    /// The error a grammar fails with, as (rule, line, column, message).
    func failure(_ gbnf: String, root: String = "root") -> (rule: String, line: Int, column: Int, message: String)? {
        grammarCompileError(gbnf, root: root)
    }

    @Test func literalsClassesAndRepetition() throws {
        let grammar = try Grammar(gbnf: #"root ::= "a" [b-d]* "x" | [^a-z]{2,3}"#)
        #expect(grammar.matches("ax"))
        #expect(grammar.matches("abcdx"))
        #expect(!grammar.matches("aex"))
        #expect(grammar.matches("AB"))
        #expect(grammar.matches("ABC"))
        #expect(!grammar.matches("ABCD"))
        #expect(!grammar.matches("A"))
        #expect(!grammar.matches("Ab"))
        #expect(!grammar.matches(""))
    }

    @Test func rulesGroupsAndNewlines() throws {
        let grammar = try Grammar(gbnf: """
            # a comment
            root ::= item ("," item)*   # trailing comment
            item ::= (
                "yes" |
                "no"
            ) "!"?
            """)
        #expect(grammar.matches("yes"))
        #expect(grammar.matches("yes!,no,no!"))
        #expect(!grammar.matches("yes,"))
        #expect(!grammar.matches("maybe"))
    }

    @Test func escapesAndAnyCharacter() throws {
        let grammar = try Grammar(gbnf: #"root ::= "\x41\u00e9\U0001F600\n\t\"\\" [\[\]\-] ."#)
        #expect(grammar.matches("Aé😀\n\t\"\\[x"))
        #expect(grammar.matches("Aé😀\n\t\"\\-\n"))
        #expect(!grammar.matches("Aé😀\n\t\"\\a."))
    }

    @Test func partialUTF8() throws {
        let grammar = try Grammar(gbnf: #"root ::= "é" [一-龥]+"#)
        #expect(grammar.matches(bytes: Array("é中文".utf8)))
        #expect(!grammar.matches(bytes: Array("é中文".utf8).dropLast()))
        #expect(!grammar.matches(bytes: [0xC3]))
        // An overlong encoding of 'é' is not accepted.
        #expect(!grammar.matches(bytes: [0xE0, 0x83, 0xA9, 0xE4, 0xB8, 0xAD]))
    }

    @Test func boundedRepetition() throws {
        let grammar = try Grammar(gbnf: #"root ::= "ab"{2} "c"{0,2} "d"{1,}"#)
        #expect(grammar.matches("ababd"))
        #expect(grammar.matches("ababccddd"))
        #expect(!grammar.matches("ababcccd"))
        #expect(!grammar.matches("abd"))
    }

    @Test func errorsCarryPositions() {
        let undefined = failure("root ::= a\n")
        #expect(undefined?.rule == "root" && undefined?.line == 1 && undefined?.column == 10)
        #expect(undefined?.message.contains("undefined rule 'a'") == true)
        let missingRoot = failure("start ::= \"a\"\n")
        #expect(missingRoot?.message.contains("no rule named 'root'") == true)
        let left = failure("root ::= a\na ::= b \"x\"\nb ::= \"y\"? a\n")
        #expect(left?.message.contains("left recursion") == true)
        let empty = failure("root ::= a\na ::= \"x\" a\n")
        #expect(empty?.message.contains("no") == true)
        let unterminated = failure("root ::= \"abc\n")
        #expect(unterminated?.line == 1 && unterminated?.column == 10)
        let syntax = failure("root ::= \"a\"\n  | \"b\"\n")
        #expect(syntax?.line == 2)
        let nullableStar = failure("root ::= (\"a\"?)*\n")
        #expect(nullableStar?.message.contains("empty string") == true)
    }
}

/// JSON Schema translation on small schemas, and the token-level constraint on a real vocabulary.
@Suite struct GrammarSchemaTests {
    func schemaFailure(_ schema: String) -> (pointer: String, message: String)? { schemaCompileError(schema) }

    @Test func objectWithRequiredAndOptional() throws {
        let grammar = try Grammar(jsonSchema: """
            {"type": "object", "properties": {"name": {"type": "string", "maxLength": 5}, "age": {"type": "integer", "minimum": 0, "maximum": 150},
             "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2}}, "required": ["name"], "additionalProperties": false}
            """)
        #expect(grammar.matches(#"{"name":"Bob"}"#))
        #expect(grammar.matches(#"{"name": "Bob", "age": 150, "tags": ["a", "b"]}"#))
        #expect(grammar.matches("{\n  \"name\": \"Bob\",\n  \"tags\": []\n}"))
        #expect(!grammar.matches(#"{"name": "Bobby!"}"#))
        #expect(!grammar.matches(#"{"age": 3}"#))
        #expect(!grammar.matches(#"{"name": "Bob", "age": 151}"#))
        #expect(!grammar.matches(#"{"name": "Bob", "age": -1}"#))
        #expect(!grammar.matches(#"{"name": "Bob", "tags": ["a", "b", "a"]}"#))
        #expect(!grammar.matches(#"{"name": "Bob", "x": 1}"#))
    }

    @Test func numberBoundsAreExact() throws {
        let grammar = try Grammar(jsonSchema: #"{"type": "number", "exclusiveMinimum": -1.5, "maximum": 2.25}"#)
        for good in ["-1.49", "-1", "0", "-0", "2.25", "2.2500", "1.999", "-0.0", "2"] { #expect(grammar.matches(good), "\(good)") }
        for bad in ["-1.5", "-1.50", "2.251", "3", "-2", "01", "1.", ".5"] { #expect(!grammar.matches(bad), "\(bad)") }
        let integers = try Grammar(jsonSchema: #"{"type": "integer", "minimum": 17, "maximum": 1234}"#)
        for value in [0, 16, 17, 18, 99, 100, 999, 1000, 1233, 1234, 1235, 9999] {
            #expect(integers.matches(String(value)) == (17...1234).contains(value), "\(value)")
        }
    }

    @Test func formats() throws {
        let grammar = try Grammar(jsonSchema: #"{"type": "string", "format": "date"}"#)
        #expect(grammar.matches(#""2024-02-29""#))
        #expect(!grammar.matches(#""2023-02-29""#))
        #expect(grammar.matches(#""2000-02-29""#))
        #expect(!grammar.matches(#""1900-02-29""#))
        #expect(!grammar.matches(#""2023-04-31""#))
        #expect(!grammar.matches(#""0000-01-01""#))
    }

    @Test func errorsNamePointers() {
        #expect(schemaFailure(#"{"type": "string", "pattern": "a+"}"#)?.pointer == "/pattern")
        #expect(schemaFailure(#"{"properties": {"a/b": {"type": "nope"}}}"#)?.pointer == "/properties/a~1b/type")
        #expect(schemaFailure(#"{"type": "integer", "minimum": 5, "maximum": 4}"#) != nil)
        #expect(schemaFailure(##"{"$ref": "#/$defs/missing"}"##)?.pointer == "/$ref")
        #expect(schemaFailure("{") != nil)
    }

    @Test func recursiveReference() throws {
        let grammar = try Grammar(jsonSchema: """
            {"$ref": "#/$defs/node", "$defs": {"node": {"type": "object", "properties": {"value": {"type": "integer"},
             "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}}, "required": ["value", "next"], "additionalProperties": false}}}
            """)
        #expect(grammar.matches(#"{"value": 1, "next": {"value": 2, "next": null}}"#))
        #expect(!grammar.matches(#"{"value": 1, "next": {"value": 2}}"#))
    }

    /// Every token of a valid instance is allowed by `restrict` and taken by `accept`; the mask agrees with `accept`
    /// on a sample of other tokens; the end token is allowed exactly at the end.
    @Test func constraintFollowsTokens() throws {
        let tokenizer = try TokenizerFixtures.qwen25JSONTokenizer()
        let grammar = try Grammar(jsonSchema: """
            {"type": "object", "properties": {"city": {"type": "string"}, "temperature": {"type": "number", "minimum": -90, "maximum": 60},
             "conditions": {"type": "array", "items": {"type": "string", "enum": ["sunny", "rain", "snow"]}}}, "required": ["city", "temperature"]}
            """)
        let end: Int32 = tokenizer.eosTokenID ?? 151_643
        var constraint = try grammar.constraint(tokenizer: tokenizer, endTokens: [end])
        let text = #"{"city": "Zürich 中心", "temperature": -3.5, "conditions": ["snow", "rain"]}"#
        let tokens = tokenizer.encode(text, addSpecial: false, parseSpecial: false)
        var generator = SeededGenerator(seed: 7)
        for token in tokens {
            var allowed = [Bool](repeating: true, count: tokenizer.vocabularySize)
            constraint.restrict(&allowed)
            #expect(allowed[Int(token)])
            #expect(!allowed[Int(end)] == !constraint.canEnd)
            for _ in 0..<200 {
                let other = Int32(generator.next() % UInt64(tokenizer.vocabularySize))
                var copy = constraint
                let accepted = copy.accept(other)
                #expect(accepted == allowed[Int(other)], "token \(other)")
            }
            let accepted = constraint.accept(token)
            #expect(accepted)
        }
        #expect(constraint.canEnd)
        var allowed = [Bool](repeating: true, count: tokenizer.vocabularySize)
        constraint.restrict(&allowed)
        #expect(allowed[Int(end)])
        let ended = constraint.accept(end)
        #expect(ended)
        #expect(constraint.isFinished)
        // After the end token only end tokens remain.
        allowed = [Bool](repeating: true, count: tokenizer.vocabularySize)
        constraint.restrict(&allowed)
        #expect(allowed.indices.filter { allowed[$0] } == [Int(end)])
        let more = constraint.accept(tokens[0])
        #expect(!more)
    }
}

/// The shared automaton: constraints survive a reset of its tables, and forks work from many threads at once.
extension GrammarSchemaTests {
    /// A JSON pointer is a sequence of code points: a key that starts with a combining mark (U+06D6 after '/', one
    /// Swift character with the slash) is still its own reference token, and errors point at it with a leading '/'.
    @Test func pointersSplitByCodePoints() throws {
        let grammar = try Grammar(jsonSchema: ##"{"$defs": {"\u06D6d": {"type": "integer"}}, "$ref": "#/$defs/\u06D6d"}"##)
        #expect(grammar.matches("5") && !grammar.matches("\"x\""))
        do {
            _ = try Grammar(jsonSchema: #"{"\u06D6d": "urn:x"}"#)
            Issue.record("an unknown keyword must be refused")
        } catch let MobileLLMError.jsonSchema(pointer, _) {
            #expect(pointer.unicodeScalars.first == "/" && pointer.unicodeScalars.dropFirst().first == "\u{06D6}")
        }
    }
}

@Suite struct GrammarSharingTests {
    static let schema = """
        {"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer", "minimum": 0, "maximum": 99},
         "tags": {"type": "array", "items": {"type": "string", "maxLength": 6}}}, "required": ["name", "n"], "additionalProperties": false}
        """
    static let text = #"{"name": "Grüße, 世界", "n": 42, "tags": ["a", "bcdef"]}"#

    @Test func constraintSurvivesAutomatonReset() throws {
        let tokenizer = try TokenizerFixtures.qwen25JSONTokenizer()
        let grammar = try Grammar(jsonSchema: Self.schema)
        let tokens = tokenizer.encode(Self.text, addSpecial: false, parseSpecial: false)
        var constraint = try grammar.constraint(tokenizer: tokenizer, endTokens: [151_643])
        for (index, token) in tokens.enumerated() {
            if index % 3 == 1 { grammar.automaton.withLock { $0.reset() } }
            var allowed = [Bool](repeating: true, count: tokenizer.vocabularySize)
            constraint.restrict(&allowed)
            #expect(allowed[Int(token)], "token \(index)")
            if index % 3 == 2 { grammar.automaton.withLock { $0.reset() } }
            let accepted = constraint.accept(token)
            #expect(accepted, "token \(index)")
        }
        #expect(constraint.canEnd)
        #expect(grammar.automaton.withLock { $0.epoch } > 0)
    }

    @Test func forksFromManyThreads() throws {
        let tokenizer = try TokenizerFixtures.qwen25JSONTokenizer()
        let grammar = try Grammar(jsonSchema: Self.schema)
        let tokens = tokenizer.encode(Self.text, addSpecial: false, parseSpecial: false)
        var prefix = try grammar.constraint(tokenizer: tokenizer, endTokens: [151_643])
        for token in tokens.prefix(3) { _ = prefix.accept(token) }
        let start = prefix
        let failures = Locked(0)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            var constraint = start
            for token in tokens.dropFirst(3) {
                var allowed = [Bool](repeating: true, count: tokenizer.vocabularySize)
                constraint.restrict(&allowed)
                if !allowed[Int(token)] || !constraint.accept(token) { failures.withLock { $0 += 1 } }
            }
            if !constraint.canEnd { failures.withLock { $0 += 1 } }
        }
        #expect(failures.withLock { $0 } == 0)
        // The fork point itself did not move.
        var allowed = [Bool](repeating: true, count: tokenizer.vocabularySize)
        start.restrict(&allowed)
        #expect(allowed[Int(tokens[3])])
    }
}

/// The `.grammar` error compiling `gbnf` gives (nil when it compiles; another error is recorded as an issue).
func grammarCompileError(_ gbnf: String, root: String = "root") -> (rule: String, line: Int, column: Int, message: String)? {
    do {
        _ = try Grammar(gbnf: gbnf, root: root)
        return nil
    } catch let MobileLLMError.grammar(rule, line, column, message) {
        return (rule, line, column, message)
    } catch {
        Issue.record("unexpected error \(error)")
        return nil
    }
}

/// The `.jsonSchema` error compiling `schema` gives (nil when it compiles; another error is recorded as an issue).
func schemaCompileError(_ schema: String) -> (pointer: String, message: String)? {
    do {
        _ = try Grammar(jsonSchema: schema)
        return nil
    } catch let MobileLLMError.jsonSchema(pointer, message) {
        return (pointer, message)
    } catch {
        Issue.record("unexpected error \(error)")
        return nil
    }
}
