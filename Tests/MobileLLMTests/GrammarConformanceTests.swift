import Foundation
import Testing
@testable import MobileLLM

/// Agreement with implementations we did not write (Tests/Fixtures/grammar/cases.json, made by
/// scripts/make_grammar_fixtures.py): GBNF strings labelled by llguidance, JSON Schema instances by Python's
/// `jsonschema`. Whole-string acceptance: a string is accepted when it is a complete member of the language.
@Suite struct GrammarConformanceTests {
    struct Cases: Decodable {
        struct GrammarCase: Decodable {
            struct Item: Decodable {
                let text: String
                let accept: Bool
            }
            let name: String
            let file: String?
            let gbnf: String?
            let root: String
            let strings: [Item]
        }
        struct SchemaCase: Decodable {
            struct Instance: Decodable {
                let text: String
                let valid: Bool
                let differs: String?
            }
            let name: String
            let schema: String
            let instances: [Instance]
        }
        let grammars: [GrammarCase]
        let schemas: [SchemaCase]
    }

    static func load() throws -> Cases {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("grammar/cases.json")))
        return try JSONDecoder().decode(Cases.self, from: data)
    }

    @Test func gbnfAgreesWithLlguidance() throws {
        let cases = try GrammarConformanceTests.load()
        #expect(cases.grammars.count >= 30)
        var checked = 0
        for entry in cases.grammars {
            let text: String
            if let file = entry.file {
                text = try String(contentsOfFile: Fixtures.path("grammar/" + file), encoding: .utf8)
            } else {
                text = entry.gbnf ?? ""
            }
            let grammar: Grammar
            do {
                grammar = try Grammar(gbnf: text, root: entry.root)
            } catch {
                Issue.record("\(entry.name): \(error)")
                continue
            }
            for item in entry.strings {
                let matched = grammar.matches(item.text)
                #expect(matched == item.accept, "\(entry.name): \(item.text.debugDescription) should be \(item.accept ? "accepted" : "rejected")")
                checked += 1
            }
        }
        #expect(checked >= 300)
    }

    @Test func jsonSchemaAgreesWithJsonschema() throws {
        let cases = try GrammarConformanceTests.load()
        #expect(cases.schemas.count >= 20)
        for entry in cases.schemas {
            let grammar: Grammar
            do {
                grammar = try Grammar(jsonSchema: entry.schema)
            } catch {
                Issue.record("\(entry.name): \(error)")
                continue
            }
            for instance in entry.instances {
                let expected = instance.differs == nil ? instance.valid : false
                let matched = grammar.matches(instance.text)
                #expect(matched == expected, "\(entry.name): \(instance.text.debugDescription) should be \(expected ? "accepted" : "rejected")\(instance.differs.map { " (\($0))" } ?? "")")
            }
        }
    }

    /// The same strings fed as tokens of a byte-level BPE vocabulary (Qwen2.5's, whose tokens split UTF-8
    /// characters): `accept` over the tokens agrees with `matches` over the bytes, and for a sample of strings every
    /// token is also allowed by `restrict`.
    @Test func tokensAgreeWithBytes() throws {
        let cases = try GrammarConformanceTests.load()
        let tokenizer = try TokenizerFixtures.qwen25JSONTokenizer()
        let end: Int32 = 151_643
        var checked = 0, masked = 0
        for entry in cases.grammars {
            let text = try entry.file.map { try String(contentsOfFile: Fixtures.path("grammar/" + $0), encoding: .utf8) } ?? (entry.gbnf ?? "")
            guard let grammar = try? Grammar(gbnf: text, root: entry.root) else { continue }
            for (index, item) in entry.strings.enumerated() {
                var constraint = try grammar.constraint(tokenizer: tokenizer, endTokens: [end])
                var taken = true
                let withMask = index < 2
                for token in tokenizer.encode(item.text, addSpecial: false, parseSpecial: false) {
                    if withMask {
                        var allowed = [Bool](repeating: true, count: tokenizer.vocabularySize)
                        constraint.restrict(&allowed)
                        var copy = constraint
                        #expect(allowed[Int(token)] == copy.accept(token), "\(entry.name): \(item.text.debugDescription)")
                        masked += 1
                    }
                    if !constraint.accept(token) { taken = false; break }
                }
                #expect((taken && constraint.canEnd) == item.accept, "\(entry.name): \(item.text.debugDescription)")
                checked += 1
            }
        }
        #expect(checked > 1000 && masked > 100)
    }
}
