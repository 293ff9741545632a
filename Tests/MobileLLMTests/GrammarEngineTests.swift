import Foundation
import Testing
@testable import MobileLLM

/// The GBNF compiler and the matcher on small grammars: acceptance, errors with their positions, UTF-8 handling.
@Suite struct GrammarEngineTests {
    /// The error a grammar fails with, as (rule, line, column, message).
    func failure(_ gbnf: String, root: String = "root") -> (rule: String, line: Int, column: Int, message: String)? {
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
