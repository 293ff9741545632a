import Foundation
import Testing
@testable import MobileLLM

/// Inputs the fuzzers (fuzz/, scripts/fuzz.sh) found, committed as fuzz/corpus/TARGET/regression-*, checked against
/// what the reference implementations make of them (Tests/Fixtures/fuzz/regressions.json, written by
/// scripts/make_fuzz_regressions.py: Python's json, HF tokenizers, jinja2).
@Suite("Fuzzing regressions")
struct FuzzRegressionTests {
    /// One input's reference outcome; which fields are set depends on the target.
    struct Reference: Decodable {
        let value: JSONValue?
        let error: String?
        let texts: [String]?
        let with_special: [[Int32]]?
        let without_special: [[Int32]]?
        let render: String?
    }

    static let references: [String: Reference] = {
        guard let data = FileManager.default.contents(atPath: Fixtures.path("fuzz/regressions.json")),
              let decoded = try? JSONDecoder().decode([String: Reference].self, from: data) else { return [:] }
        return decoded
    }()

    static func corpusPath(_ key: String) -> String {
        Fixtures.packageRoot.appendingPathComponent("fuzz/corpus").appendingPathComponent(key).path
    }

    static func keys(_ target: String) -> [String] {
        references.keys.filter { $0.hasPrefix(target + "/") }.sorted()
    }

    @Test("Every committed regression input has a recorded reference outcome")
    func everyRegressionHasAReference() throws {
        let corpus = Fixtures.packageRoot.appendingPathComponent("fuzz/corpus").path
        var found: [String] = []
        for target in try FileManager.default.contentsOfDirectory(atPath: corpus) {
            for name in try FileManager.default.contentsOfDirectory(atPath: corpus + "/" + target) where name.hasPrefix("regression-") {
                found.append(target + "/" + name)
            }
        }
        #expect(!found.isEmpty)
        for key in found.sorted() {
            #expect(Self.references[key] != nil, "\(key): run scripts/make_fuzz_regressions.py")
        }
    }

    /// Found by the `config` target: the JSON parsers accepted leading zeros and invalid UTF-8 (Python's json rejects
    /// both), and JSONDecoder kept the first of two equal keys where Python keeps the last.
    @Test("JSON regressions: JSONValue and TemplateValue parse as Python's json.loads", arguments: keys("config"))
    func jsonParsesLikePython(key: String) throws {
        let reference = try #require(Self.references[key])
        let data = try #require(FileManager.default.contents(atPath: Self.corpusPath(key)))
        if let expected = reference.value {
            #expect(try JSONValue.parse(data, path: key) == expected)
            #expect(JSONValue(numbersOf: try TemplateValue.parse(data, path: key)) == expected)
        } else {
            #expect(throws: MobileLLMError.self) { try JSONValue.parse(data, path: key) }
            #expect(throws: MobileLLMError.self) { try TemplateValue.parse(data, path: key) }
        }
    }

    /// Found by the `tokenizer-json` target: a tokenizer whose vocabulary lacks some bytes trapped the second time a
    /// pre-token made only of such bytes was encoded (the cached empty result was read with a reversed range).
    @Test("Tokenizer regressions: ids equal HF tokenizers", arguments: keys("tokenizer-json"))
    func tokenizerMatchesHF(key: String) throws {
        let reference = try #require(Self.references[key])
        let tokenizer = try Tokenizer(tokenizerJSON: Self.corpusPath(key))
        let texts = try #require(reference.texts)
        let withSpecial = try #require(reference.with_special), withoutSpecial = try #require(reference.without_special)
        for (index, text) in texts.enumerated() {
            #expect(tokenizer.encode(text, addSpecial: true, parseSpecial: true) == withSpecial[index], "\(text)")
            #expect(tokenizer.encode(text, addSpecial: false, parseSpecial: true) == withoutSpecial[index], "\(text)")
            // Twice through one cache, as encodeBatch does: the second pass reads the cached pre-tokens.
            #expect(tokenizer.encodeBatch([text, text], addSpecial: false, parseSpecial: true) == [withoutSpecial[index], withoutSpecial[index]])
        }
    }

    /// Found by the `template` target as a LeakSanitizer report on a real template (Kimi-K2's): a macro captures the
    /// scope that holds it and a namespace may hold itself, so every render leaked its scopes. The render must match
    /// jinja2 and leave nothing alive.
    @Test("Template regressions: render like jinja2 and free every scope and namespace", arguments: keys("template"))
    func templateRendersAndFrees(key: String) throws {
        let reference = try #require(Self.references[key])
        let source = try String(contentsOfFile: Self.corpusPath(key), encoding: .utf8)
        let messages: [TemplateValue] = [
            .message(role: "system", content: "You are helpful."), .message(role: "user", content: " What is 2+2? "),
            .message(role: "assistant", content: "4"), .message(role: "user", content: "Thanks"),
        ]
        let template = try ChatTemplate(source: source, name: key)
        #expect(try template.render(messages: messages, addGenerationPrompt: true) == reference.render)

        // The same render through the interpreter, with `keep` handing out the macro / namespace to watch.
        var parser = Parser(tokens: try Lexer(source).tokens)
        let nodes = try parser.parseTemplate()
        weak var scope: Scope?
        weak var kept: AnyObject?
        var handedOut = false
        do {
            let globals = Scope(parent: nil)
            globals.variables = Builtins.globals()
            let context = Scope(parent: globals)
            context.variables["messages"] = .list(messages.map { Value($0) })
            context.variables["add_generation_prompt"] = .bool(true)
            context.variables["keep"] = .callable(Callable(name: "keep") { _, arguments in
                switch arguments.positional.first {
                case let .callable(callable)?: kept = callable; handedOut = true
                case let .namespace(namespace)?: kept = namespace; handedOut = true
                default: break
                }
                return .string("")
            })
            scope = context
            _ = try Interpreter(limits: RenderLimits(), now: Date()).render(nodes, scope: context)
        }
        #expect(handedOut, "the template never called keep()")
        #expect(scope == nil, "the render's scope outlived it")
        #expect(kept == nil, "a macro or namespace outlived the render")
    }
}

extension JSONValue {
    /// `value` as JSONValue holds JSON: every number a Double, members by key.
    init(numbersOf value: TemplateValue) {
        switch value {
        case .null: self = .null
        case let .bool(flag): self = .bool(flag)
        case let .int(number): self = .number(Double(number))
        case let .float(number): self = .number(number)
        case let .string(text): self = .string(text)
        case let .array(items): self = .array(items.map(JSONValue.init(numbersOf:)))
        case let .object(members):
            var result: [String: JSONValue] = [:]
            for member in members { result[member.key] = JSONValue(numbersOf: member.value) }
            self = .object(result)
        }
    }
}
